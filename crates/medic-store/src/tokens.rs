//! API tokens: bearer tokens with a role and a name.
//!
//! ```sql
//! CREATE TABLE api_tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
//!   hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
//! CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens(name) WHERE revoked_at IS NULL;
//! ```
//!
//! A token is `medic_` followed by 64 hex digits (32 bytes from the operating
//! system's random source). Only `sha256(token)` (hex) is stored, so a copy of
//! the database does not give access. A name has at most one active token;
//! the name is the actor the audit log records.
use crate::db::{Arg, DbRow};
use crate::{AuditRecord, Store, StoreError};
use medic_core::Role;
use sha2::{Digest, Sha256};

/// Prefix of every token (lets secret scanners recognise one).
pub const TOKEN_PREFIX: &str = "medic_";

/// A stored token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

const INSERT_SQL: &str =
    "INSERT INTO api_tokens(name, role, hash, created_at) VALUES ($1, $2, $3, $4)";
const REVOKE_SQL: &str =
    "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL";

/// Who changes a token, for its audit record: `by` is the actor (an API
/// token's name, or the operating-system user of the CLI), `via` how the
/// change came (`api`, `cli`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenChange<'a> {
    pub by: &'a str,
    pub via: &'a str,
}

/// Parses a role name (`viewer`, `operator`, `approver`, `admin`).
pub fn parse_role(s: &str) -> Option<Role> {
    [Role::Viewer, Role::Operator, Role::Approver, Role::Admin]
        .into_iter()
        .find(|r| r.as_str() == s)
}

/// `sha256(token)` as hex: what the store keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a token name: 1–64 characters of `[a-z0-9._@-]`. Upper case is
/// refused rather than folded, so `alice` and `ALICE` cannot be two people.
pub fn check_token_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "token name {name:?} must be 1-64 characters of [a-z0-9._@-]"
        ))
    }
}

fn new_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| StoreError::InvalidInput {
        op: "create_token",
        field: "random",
        reason: format!("the operating system's random source failed: {e}"),
    })?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// 32 random bytes as a token-shaped string, e.g. for a per-process secret.
pub fn random_secret() -> Result<String, StoreError> {
    new_token()
}

impl Store {
    /// Creates a token for `name` with `role` and returns it; this is the
    /// only time the token is available. Fails when `name` already has an
    /// active token.
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        created_at: &str,
    ) -> Result<String, StoreError> {
        const OP: &str = "create_token";
        check_token_name(name).map_err(|reason| StoreError::InvalidInput {
            op: OP,
            field: "name",
            reason,
        })?;
        let token = new_token()?;
        let hash = hash_token(&token);
        let r = self
            .db
            .execute(
                INSERT_SQL,
                &[
                    Arg::Text(name),
                    Arg::Text(role.as_str()),
                    Arg::Text(&hash),
                    Arg::Text(created_at),
                ],
            )
            .await;
        match r {
            Ok(_) => Ok(token),
            Err(e) => Err(name_taken(name, StoreError::Database { op: OP, source: e })),
        }
    }

    /// [`Store::create_token`] and its `token.created` audit record
    /// (`{"name","role","by","via"}`, never the token or its hash) in one
    /// transaction, in the same chain as every other record. Fenced.
    pub async fn create_token_audited(
        &self,
        name: &str,
        role: Role,
        created_at: &str,
        who: TokenChange<'_>,
    ) -> Result<(String, AuditRecord), StoreError> {
        const OP: &str = "create_token";
        check_token_name(name).map_err(|reason| StoreError::InvalidInput {
            op: OP,
            field: "name",
            reason,
        })?;
        let token = new_token()?;
        let hash = hash_token(&token);
        let payload = serde_json::json!({
            "name": name, "role": role.as_str(), "by": who.by, "via": who.via,
        })
        .to_string();
        let rec = self
            .write_audited(
                OP,
                INSERT_SQL,
                &[
                    Arg::Text(name),
                    Arg::Text(role.as_str()),
                    Arg::Text(&hash),
                    Arg::Text(created_at),
                ],
                (created_at, "token.created", &payload),
            )
            .await
            .map_err(|e| name_taken(name, e))?;
        match rec {
            Some(rec) => Ok((token, rec)),
            None => Err(StoreError::Corrupt {
                op: OP,
                reason: "the token insert changed no row".into(),
            }),
        }
    }

    /// [`Store::revoke_token`] and its `token.revoked` audit record
    /// (`{"name","by","via"}`) in one transaction. `Ok(None)`, nothing
    /// written, when `name` has no active token. Fenced.
    pub async fn revoke_token_audited(
        &self,
        name: &str,
        revoked_at: &str,
        who: TokenChange<'_>,
    ) -> Result<Option<AuditRecord>, StoreError> {
        let payload = serde_json::json!({"name": name, "by": who.by, "via": who.via}).to_string();
        self.write_audited(
            "revoke_token",
            REVOKE_SQL,
            &[Arg::Text(revoked_at), Arg::Text(name)],
            (revoked_at, "token.revoked", &payload),
        )
        .await
    }

    /// The active token whose hash matches `token`, if any.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenInfo>, StoreError> {
        const OP: &str = "authenticate";
        let hash = hash_token(token);
        let row = self
            .db
            .fetch_optional(
                "SELECT name, role, created_at, revoked_at FROM api_tokens \
                 WHERE hash = $1 AND revoked_at IS NULL",
                &[Arg::Text(&hash)],
            )
            .await
            .map_err(StoreError::db(OP))?;
        row.as_ref().map(|r| decode(r, OP)).transpose()
    }

    /// Every token ever created (active and revoked), oldest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        const OP: &str = "list_tokens";
        let rows = self
            .db
            .fetch_all(
                "SELECT name, role, created_at, revoked_at FROM api_tokens ORDER BY id",
                &[],
            )
            .await
            .map_err(StoreError::db(OP))?;
        rows.iter().map(|r| decode(r, OP)).collect()
    }

    /// Revokes the active token of `name`; `false` when it has none.
    pub async fn revoke_token(&self, name: &str, revoked_at: &str) -> Result<bool, StoreError> {
        const OP: &str = "revoke_token";
        let n = self
            .db
            .execute(REVOKE_SQL, &[Arg::Text(revoked_at), Arg::Text(name)])
            .await
            .map_err(StoreError::db(OP))?;
        Ok(n > 0)
    }

    /// How many tokens are active.
    pub async fn active_tokens(&self) -> Result<u64, StoreError> {
        const OP: &str = "active_tokens";
        let n = self
            .db
            .fetch_one(
                "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL",
                &[],
            )
            .await
            .and_then(|r| r.int(0))
            .map_err(StoreError::db(OP))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A unique violation on insert: `name` already has an active token.
fn name_taken(name: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Database {
            op,
            source: sqlx::Error::Database(d),
        } if d.is_unique_violation() => StoreError::InvalidInput {
            op,
            field: "name",
            reason: format!("{name:?} already has an active token (revoke it first)"),
        },
        other => other,
    }
}

fn decode(row: &DbRow, op: &'static str) -> Result<TokenInfo, StoreError> {
    let role_text = row.text("role").map_err(StoreError::db(op))?;
    let role = parse_role(&role_text).ok_or_else(|| StoreError::Corrupt {
        op,
        reason: format!("unknown role {role_text:?}"),
    })?;
    Ok(TokenInfo {
        name: row.text("name").map_err(StoreError::db(op))?,
        role,
        created_at: row.text("created_at").map_err(StoreError::db(op))?,
        revoked_at: row.opt_text("revoked_at").map_err(StoreError::db(op))?,
    })
}
