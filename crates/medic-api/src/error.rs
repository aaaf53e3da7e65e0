//! The API's error codes and the JSON error type.
//!
//! Every error the API returns has the shape
//!
//! ```json
//! {"error":{"code":"E0404","name":"incident_not_found","message":"…","field":"…"}}
//! ```
//!
//! (`field` only when one input field is to blame). Codes come from the one
//! table in this module; [`CODES`] lists it. Codes `E0001`–`E0399` are
//! reserved for configuration and CLI errors defined by the `medic` binary;
//! the API uses `E0400`–`E0599`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One row of the error-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CodeInfo {
    /// Stable code, e.g. `"E0404"`.
    pub code: &'static str,
    /// Stable snake_case name, e.g. `"incident_not_found"`.
    pub name: &'static str,
    /// HTTP status returned with it.
    pub status: u16,
    /// One-line description for docs.
    pub description: &'static str,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $name:literal, $status:literal, $desc:literal) ),* $(,)?) => {
        /// Every error code the API can return.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[doc = $desc] $variant ),*
        }

        /// The whole error-code table, in code order.
        pub const CODES: &[CodeInfo] = &[
            $( CodeInfo { code: $code, name: $name, status: $status, description: $desc } ),*
        ];

        impl ErrorCode {
            /// All variants, in the same order as [`CODES`].
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];

            /// This code's row of the table.
            pub const fn info(self) -> CodeInfo {
                match self {
                    $( ErrorCode::$variant => CodeInfo { code: $code, name: $name, status: $status, description: $desc } ),*
                }
            }
        }
    };
}

error_codes! {
    BadRequest = ("E0400", "bad_request", 400, "The request is malformed, e.g. the body is not valid JSON."),
    RouteNotFound = ("E0401", "route_not_found", 404, "No API route matches this path."),
    IncidentNotFound = ("E0404", "incident_not_found", 404, "No incident has this id."),
    MethodNotAllowed = ("E0405", "method_not_allowed", 405, "The route exists but not for this HTTP method."),
    Unauthenticated = ("E0406", "unauthenticated", 401, "No bearer token was sent, or the token is unknown or revoked."),
    Forbidden = ("E0403", "forbidden", 403, "The caller's role does not allow this command."),
    Conflict = ("E0409", "conflict", 409, "The request conflicts with the current state."),
    PayloadTooLarge = ("E0413", "payload_too_large", 413, "The request body exceeds the size limit."),
    UnsupportedMediaType = ("E0415", "unsupported_media_type", 415, "The request body must be sent as application/json."),
    InvalidField = ("E0422", "invalid_field", 422, "A field of the body or query is missing, has the wrong type or an invalid value."),
    DrillRefused = ("E0440", "drill_refused", 409, "A drill was not started: outside its window, blocked by governance (kill switch, freeze, mode), another drill running, or drills stopped after a failed one (`reason_code` says which)."),
    DrillNotFound = ("E0441", "drill_not_found", 404, "No drill has this name in the config's `drills.list`."),
    // issue 12 (notifications): E0460–E0469
    NothingToAcknowledge = ("E0460", "nothing_to_acknowledge", 409, "No notification was ever queued for this incident, so there is nothing to acknowledge."),
    UnknownChannel = ("E0461", "unknown_channel", 422, "No notification channel has this name (see notify.channels)."),
    NotifyDisabled = ("E0462", "notify_disabled", 409, "The configuration has no notify section, so nothing can be sent."),
    // issue 13 (high availability): E0470–E0479
    Fenced = ("E0470", "fenced", 503, "The store refused this instance's write: a newer leader presented a higher fencing token, so this instance must not act (nothing was written)."),
    NotActing = ("E0475", "not_acting", 503, "This instance does not act: it is a follower, lost its lease, or cannot reach etcd or the store (`reason_code` says which; the message names the leader)."),
    NotLeader = ("E0476", "not_leader", 409, "Operator writes (commands, acknowledgements, notification tests) go to the acting leader; this instance is a follower, or elected but not acting (store unreachable): the message names the leader."),
    // web console request forgery: E0480–E0481
    CsrfTokenInvalid = ("E0480", "csrf_token_invalid", 403, "A web console form (`/ui/login`, `/ui/logout`, `/ui/action`) came without its CSRF token or with another one: the login form's must match its `medic_login_csrf` cookie, a session's must match the session. Reload the page and send it again."),
    CrossOriginRefused = ("E0481", "cross_origin_refused", 403, "A web console form was posted from another site: its `Origin` (or, without one, its `Referer`) does not name the host it was sent to (or `X-Forwarded-Host`)."),
    // issue 9 (changes as evidence): E0482–E0485
    ServiceNotFound = ("E0482", "service_not_found", 404, "No service has this name in the config (`POST /api/v1/changes`)."),
    // issue 10 (locks): E0490–E0494
    LockNotHeld = ("E0490", "lock_not_held", 404, "No lock is held on this key (`scope:target`, see `medic locks`)."),
    Internal = ("E0500", "internal", 500, "An internal error, e.g. the store failed."),
    ControlUnavailable = ("E0502", "control_unavailable", 503, "The control loop is not accepting requests."),
    NotReady = ("E0503", "not_ready", 503, "medic is starting up or shutting down and not ready."),
    ControlTimeout = ("E0504", "control_timeout", 504, "The control loop did not answer in time."),
}

impl ErrorCode {
    /// The code string, e.g. `"E0404"`.
    pub const fn code(self) -> &'static str {
        self.info().code
    }
    /// The snake_case name, e.g. `"incident_not_found"`.
    pub const fn name(self) -> &'static str {
        self.info().name
    }
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.info().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The code for an error status that no handler wrote (a framework rejection or default):
    /// `404` → `E0401`, `405` → `E0405`, `413` → `E0413`, `415` → `E0415`, `422` → `E0422`;
    /// any other client error → `E0400`, any other server error → `E0500`.
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            404 => ErrorCode::RouteNotFound,
            405 => ErrorCode::MethodNotAllowed,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::InvalidField,
            s if s >= 500 => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// An API error: a code from the table, a human message, and optionally the
/// offending input field. Converts into the JSON error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {}: {message}", code.code(), code.name())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// The engine's machine-readable refusal code (`same_approver`, ...).
    pub reason_code: Option<String>,
    /// Seconds to send as `Retry-After`, if any.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            field: None,
            reason_code: None,
            retry_after: None,
        }
    }

    /// Adds the engine's machine-readable refusal code.
    pub fn with_reason_code(mut self, code: impl Into<String>) -> Self {
        self.reason_code = Some(code.into());
        self
    }

    /// Names the input field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a `Retry-After` header with this many seconds.
    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// `E0422 invalid_field` naming `field`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidField, message).with_field(field)
    }

    /// `E0400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// `E0409 conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// `E0500 internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.code().to_string(),
                name: self.code.name().to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
                reason_code: self.reason_code.clone(),
            },
        }
    }
}

impl From<medic_store::StoreError> for ApiError {
    fn from(e: medic_store::StoreError) -> Self {
        if e.is_fenced() {
            return ApiError::new(ErrorCode::Fenced, e.to_string());
        }
        ApiError::internal(e.to_string())
    }
}

/// Wire shape of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Wire shape of the `error` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub name: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.code.status(), axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
