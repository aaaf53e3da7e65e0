//! `/api/v1/tokens`: token management over the API (admin). The token is
//! in the answer of the create call only; the store keeps its sha256. Every
//! create and revoke is appended to the audit log with the admin's name, in
//! the same transaction as the change.
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use medic_core::Actor;
use medic_store::tokens::TokenChange;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::ApiState;

/// `POST /api/v1/tokens` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    pub name: String,
    pub role: String,
}

/// `POST /api/v1/tokens` answer: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub role: String,
    pub token: String,
}

/// One token in `GET /api/v1/tokens` (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// `GET /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenEntry>,
}

fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    medic_store::record::rfc3339_ms(ms).unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

pub(crate) async fn list(State(state): State<ApiState>) -> Result<Json<TokenList>, ApiError> {
    let tokens = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .map(|t| TokenEntry {
            name: t.name,
            role: t.role.as_str().to_string(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

pub(crate) async fn create(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CreatedToken>, ApiError> {
    let req: CreateTokenRequest = crate::parse_json(&headers, body)?;
    let role = medic_store::tokens::parse_role(req.role.trim()).ok_or_else(|| {
        ApiError::invalid_field(
            "role",
            format!(
                "role {:?}: expected viewer, operator, approver or admin",
                req.role
            ),
        )
    })?;
    let name = req.name.trim().to_string();
    medic_store::tokens::check_token_name(&name).map_err(|m| ApiError::invalid_field("name", m))?;
    let who = TokenChange {
        by: &actor.id,
        via: "api",
    };
    let token = match state
        .store
        .create_token_audited(&name, role, &now(), who)
        .await
    {
        Ok((t, _)) => t,
        Err(medic_store::StoreError::InvalidInput { reason, .. }) => {
            return Err(ApiError::new(ErrorCode::Conflict, reason).with_field("name"))
        }
        Err(e) => return Err(e.into()),
    };
    state.metrics.inc_audit();
    Ok(Json(CreatedToken {
        name,
        role: role.as_str().to_string(),
        token,
    }))
}

pub(crate) async fn revoke(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::governance::OperatorReply>, ApiError> {
    let Path(name) = name
        .map_err(|e| ApiError::invalid_field("name", format!("invalid name: {}", e.body_text())))?;
    let _: crate::governance::EmptyRequest = crate::parse_json(&headers, body)?;
    let who = TokenChange {
        by: &actor.id,
        via: "api",
    };
    if state
        .store
        .revoke_token_audited(&name, &now(), who)
        .await?
        .is_none()
    {
        return Err(
            ApiError::new(ErrorCode::Conflict, format!("{name:?} has no active token"))
                .with_field("name"),
        );
    }
    state.metrics.inc_audit();
    Ok(Json(crate::governance::OperatorReply {
        message: format!("revoked the token of {name}"),
        actor: actor.id,
    }))
}
