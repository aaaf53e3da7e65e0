//! `medic token create|list|revoke`: API tokens, managed on the host that
//! holds the database (the config file names it). The token is printed once;
//! the database keeps only its sha256. Creating and revoking a token append
//! `token.created` / `token.revoked` to the audit chain in the same
//! transaction, naming the operating-system user (`"via": "cli"`), never
//! the token.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::codes::{CliError, Code};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (once).
    Create {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// viewer | operator | approver | admin
        #[arg(long)]
        role: String,
        /// The name the audit log records for this token's actions ([a-z0-9._@-], 1-64).
        #[arg(long)]
        name: String,
    },
    /// List tokens (names, roles, dates; never the tokens).
    List {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
    },
    /// Revoke the active token of a name.
    Revoke {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
}

/// The database a config names (relative paths are relative to the file).
pub fn database_path(config: &Path, cfg: &medic_config::Config) -> PathBuf {
    if cfg.database.is_absolute() {
        cfg.database.clone()
    } else {
        config
            .parent()
            .map(|p| p.join(&cfg.database))
            .unwrap_or_else(|| cfg.database.clone())
    }
}

/// The store a config names: `store.url` (Postgres) or the `database` file.
pub fn store_target(config: &Path, cfg: &medic_config::Config) -> medic_store::StoreTarget {
    match &cfg.store_url {
        Some(url) => medic_store::StoreTarget::Postgres(url.clone()),
        None => medic_store::StoreTarget::Sqlite(database_path(config, cfg)),
    }
}

async fn open(config: &Path) -> Result<medic_store::Store, CliError> {
    let cfg = medic_config::load(config).map_err(CliError::config)?;
    let target = store_target(config, &cfg);
    medic_store::Store::open_target(&target)
        .await
        .map_err(|e| CliError::new(Code::Store, format!("{}: {e}", target.describe())))
}

/// The operating-system user running the CLI, as the audit record's `by`
/// (`$USER`, else `$LOGNAME`, else `unknown`).
fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn token_error(e: medic_store::StoreError) -> CliError {
    match e {
        medic_store::StoreError::InvalidInput { .. } => CliError::new(Code::Token, e.to_string()),
        other => CliError::new(Code::Store, other.to_string()),
    }
}

pub async fn run(cmd: TokenCmd) -> Result<ExitCode, CliError> {
    let now = crate::daemon::now_rfc3339();
    let user = os_user();
    let who = medic_store::tokens::TokenChange {
        by: &user,
        via: "cli",
    };
    match cmd {
        TokenCmd::Create { config, role, name } => {
            let role = medic_store::tokens::parse_role(role.trim()).ok_or_else(|| {
                CliError::new(
                    Code::Usage,
                    format!("--role {role:?}: expected viewer, operator, approver or admin"),
                )
            })?;
            let store = open(&config).await?;
            let (token, _) = store
                .create_token_audited(name.trim(), role, &now, who)
                .await
                .map_err(token_error)?;
            store.close().await;
            eprintln!(
                "token for {} ({}); shown once, store it now:",
                name.trim(),
                role.as_str()
            );
            println!("{token}");
        }
        TokenCmd::List { config } => {
            let store = open(&config).await?;
            let list = store.list_tokens().await.map_err(token_error)?;
            store.close().await;
            println!("{:<24} {:<9} {:<26} REVOKED", "NAME", "ROLE", "CREATED");
            for t in list {
                println!(
                    "{:<24} {:<9} {:<26} {}",
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-")
                );
            }
        }
        TokenCmd::Revoke { config, name } => {
            let store = open(&config).await?;
            let done = store
                .revoke_token_audited(name.trim(), &now, who)
                .await
                .map_err(token_error)?
                .is_some();
            store.close().await;
            if !done {
                return Err(CliError::new(
                    Code::Token,
                    format!("{name:?} has no active token"),
                ));
            }
            println!("revoked the token of {}", name.trim());
        }
    }
    Ok(ExitCode::SUCCESS)
}
