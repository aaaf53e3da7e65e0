//! Who is calling: bearer tokens and roles, checked at the edge for every
//! route in [`ROUTES`] before any handler runs.
//!
//! - No token, or a token the store does not know (or revoked) → `401`
//!   `E0406 unauthenticated` with `WWW-Authenticate: Bearer`.
//! - A role below the route's → `403` `E0403 forbidden`.
//! - Otherwise the handler gets the [`Actor`] (the token's name and role) as
//!   a request extension; that name is what the audit log records. Nothing
//!   in a request body names the actor.
//!
//! With `auth: none` ([`Auth::None`]) every caller is `anonymous` with the
//! admin role (for the demo and loopback experiments; the daemon warns).
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medic_core::{Actor, Role};

use crate::error::{ApiError, ErrorCode};
use crate::ApiState;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`, looked up (by hash) in the store.
    Tokens,
    /// Everyone is `anonymous` with [`Role::Admin`] (`auth: none`).
    None,
}

/// One route of the API: method, path (axum syntax), the least role that may
/// call it (`None`: public) and a one-line summary. `docs/api.md` documents
/// every row (a test checks), and the 401/403 matrix test walks them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub role: Option<Role>,
    pub summary: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    role: Option<Role>,
    summary: &'static str,
) -> RouteInfo {
    RouteInfo {
        method,
        path,
        role,
        summary,
    }
}

/// Every route of [`crate::router`].
pub const ROUTES: &[RouteInfo] = &[
    r(
        "GET",
        "/healthz",
        None,
        "liveness: `ok` while the process serves",
    ),
    r(
        "GET",
        "/readyz",
        None,
        "readiness: `ok`, or `E0503` while starting",
    ),
    r(
        "GET",
        "/metrics",
        Some(Role::Viewer),
        "medic's own metrics (Prometheus text; OpenMetrics on request)",
    ),
    r(
        "GET",
        "/api/v1/incidents",
        Some(Role::Viewer),
        "incidents, newest first",
    ),
    r(
        "GET",
        "/api/v1/incidents/{id}",
        Some(Role::Viewer),
        "one incident with its timeline",
    ),
    r(
        "GET",
        "/api/v1/audit",
        Some(Role::Viewer),
        "audit records after a seq",
    ),
    r(
        "GET",
        "/api/v1/approvals",
        Some(Role::Viewer),
        "pending approvals, pauses, mass-incident latch",
    ),
    r(
        "GET",
        "/api/v1/explain/{incident}",
        Some(Role::Viewer),
        "every decision of an incident with its reason code",
    ),
    r(
        "GET",
        "/api/v1/whoami",
        Some(Role::Viewer),
        "the caller's name and role",
    ),
    r(
        "POST",
        "/api/v1/pause",
        Some(Role::Operator),
        "pause automation (kill switch)",
    ),
    r(
        "POST",
        "/api/v1/resume",
        Some(Role::Operator),
        "lift pauses",
    ),
    r(
        "POST",
        "/api/v1/actions/{id}/cancel",
        Some(Role::Operator),
        "cancel a running action",
    ),
    r(
        "POST",
        "/api/v1/incidents/{id}/resolve",
        Some(Role::Operator),
        "close an incident by hand",
    ),
    r(
        "POST",
        "/api/v1/services/{name}/autoheal",
        Some(Role::Operator),
        "re-enable automation after failed heals",
    ),
    r(
        "GET",
        "/api/v1/changes",
        Some(Role::Viewer),
        "recorded changes, newest first (`service`, `limit`)",
    ),
    r(
        "POST",
        "/api/v1/changes",
        Some(Role::Operator),
        "record a deploy or config change on a service (evidence for the diagnosis, audited `change.recorded`)",
    ),
    r(
        "POST",
        "/api/v1/approvals/{id}/approve",
        Some(Role::Approver),
        "approve a pending action",
    ),
    r(
        "POST",
        "/api/v1/approvals/{id}/reject",
        Some(Role::Approver),
        "reject a pending action",
    ),
    r(
        "POST",
        "/api/v1/mode",
        Some(Role::Admin),
        "set the mode, globally or for one service",
    ),
    r(
        "POST",
        "/api/v1/actions/force",
        Some(Role::Admin),
        "run an action past the gates",
    ),
    r(
        "GET",
        "/api/v1/locks",
        Some(Role::Viewer),
        "held locks (key, holder, expiry, blast radius) and the actions waiting for one",
    ),
    r(
        "POST",
        "/api/v1/locks/release",
        Some(Role::Admin),
        "force-release the lock on `key` (`scope:target`) with a reason (audited `lock.force_released`)",
    ),
    r(
        "GET",
        "/api/v1/tokens",
        Some(Role::Admin),
        "API tokens (names, roles, dates; never the tokens)",
    ),
    r(
        "POST",
        "/api/v1/tokens",
        Some(Role::Admin),
        "create a token (shown once)",
    ),
    r(
        "POST",
        "/api/v1/tokens/{name}/revoke",
        Some(Role::Admin),
        "revoke a name's token",
    ),
];

/// The row of [`ROUTES`] for `method` on the matched `path`.
pub fn route_info(method: &Method, path: &str) -> Option<&'static RouteInfo> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
}

/// The bearer token of `headers`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `401 E0406 unauthenticated` with `WWW-Authenticate: Bearer`.
pub fn unauthenticated(message: impl Into<String>) -> Response {
    let mut resp = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"medic\""),
    );
    resp
}

/// `403 E0403 forbidden`: `actor` lacks `needed`.
pub fn forbidden(actor: &Actor, needed: Role, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "{} has role {}; {what} needs {}",
            actor.id,
            actor.role.as_str(),
            needed.as_str()
        ),
    )
    .with_reason_code("forbidden")
}

/// Resolves a token to its actor: `Ok(None)` when the store does not know it.
pub async fn actor_for_token(state: &ApiState, token: &str) -> Result<Option<Actor>, ApiError> {
    Ok(state
        .store
        .authenticate(token)
        .await?
        .map(|t| Actor::new(t.name, t.role)))
}

/// The actor of a request in `auth: none` mode.
pub fn anonymous() -> Actor {
    Actor::new("anonymous", Role::Admin)
}

/// The middleware: authenticate, check the route's role, pass the [`Actor`]
/// on as an extension.
pub async fn authenticate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    check(&state, ROUTES, req, next).await
}

/// [`authenticate`] for routes the daemon adds outside this crate (e.g. the
/// drills), with their own table of [`RouteInfo`]: the same 401/403 rules.
/// Use with `axum::middleware::from_fn_with_state((state, table), authenticate_in)`.
pub async fn authenticate_in(
    State((state, table)): State<(ApiState, &'static [RouteInfo])>,
    req: Request,
    next: Next,
) -> Response {
    check(&state, table, req, next).await
}

async fn check(
    state: &ApiState,
    table: &'static [RouteInfo],
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return next.run(req).await;
    };
    let Some(info) = table
        .iter()
        .find(|r| r.path == path && r.method == req.method().as_str())
    else {
        if table.iter().any(|r| r.path == path) {
            // A method this route does not have: the handler answers E0405.
            return next.run(req).await;
        }
        // Fail closed: a route someone added to the router but not to the
        // table is served to no one.
        return ApiError::internal(format!("route {path} is missing from the auth table"))
            .into_response();
    };
    let Some(needed) = info.role else {
        return next.run(req).await;
    };
    let actor = match state.auth {
        Auth::None => anonymous(),
        Auth::Tokens => {
            let Some(token) = bearer(req.headers()) else {
                return unauthenticated(
                    "this route needs a token: send `Authorization: Bearer <token>` (medic token create)",
                );
            };
            match actor_for_token(state, token).await {
                Ok(Some(a)) => a,
                Ok(None) => return unauthenticated("unknown or revoked token"),
                Err(e) => return e.into_response(),
            }
        }
    };
    if actor.role < needed {
        return forbidden(&actor, needed, &format!("{} {}", info.method, info.path))
            .into_response();
    }
    req.extensions_mut().insert(actor);
    next.run(req).await
}
