//! `medic change record` (issue 9): tell a running medic that a service was
//! deployed or reconfigured (`POST /api/v1/changes`), so that an error spike
//! right after it is diagnosed as `error_spike_after_change`; `medic change
//! list` shows the changes recorded (`GET /api/v1/changes`).
use std::process::ExitCode;

use medic_api::changes::ChangeRequest;

use crate::client::ApiClient;
use crate::codes::{CliError, Code};

#[derive(clap::Subcommand)]
pub enum ChangeCmd {
    /// Record a deploy or config change on a service (operator role; audited
    /// `change.recorded`).
    Record {
        /// The service that changed (a name under `services:`).
        #[arg(long)]
        service: String,
        /// What changed.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The version deployed (e.g. a tag or commit).
        #[arg(long)]
        version: Option<String>,
        /// A free-form note (e.g. the pipeline run).
        #[arg(long)]
        note: Option<String>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List the recorded changes, newest first (viewer role; from the
    /// audit's last 2,000 records).
    List {
        /// Only this service's changes.
        #[arg(long)]
        service: Option<String>,
        /// At most this many (1 to 500; default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Deploy,
    Config,
}

pub async fn run(api: &str, cmd: ChangeCmd) -> Result<ExitCode, CliError> {
    let (service, kind, version, note, json) = match cmd {
        ChangeCmd::Record {
            service,
            kind,
            version,
            note,
            json,
        } => (service, kind, version, note, json),
        ChangeCmd::List {
            service,
            limit,
            json,
        } => return list(api, service, limit, json).await,
    };
    if service.trim().is_empty() {
        return Err(CliError::new(Code::ChangeInvalid, "--service is empty"));
    }
    let body = ChangeRequest {
        service: service.trim().to_string(),
        kind: match kind {
            Kind::Deploy => "deploy",
            Kind::Config => "config",
        }
        .to_string(),
        version,
        note,
    };
    let v = match ApiClient::new(api).post("/api/v1/changes", &body).await {
        Ok(v) => v,
        Err(e) if e.message.contains("E0482") => {
            return Err(CliError::new(Code::ChangeServiceUnknown, e.message));
        }
        Err(e) if e.message.contains("E0422") => {
            return Err(CliError::new(Code::ChangeInvalid, e.message));
        }
        Err(e) => return Err(e),
    };
    if json {
        println!("{v}");
    } else {
        println!("{}", v["message"].as_str().unwrap_or("recorded"));
    }
    Ok(ExitCode::SUCCESS)
}

/// `medic change list`: `GET /api/v1/changes`, one line per change.
async fn list(
    api: &str,
    service: Option<String>,
    limit: Option<u32>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut query = Vec::new();
    if let Some(s) = &service {
        if s.trim().is_empty() {
            return Err(CliError::new(Code::ChangeListInvalid, "--service is empty"));
        }
        query.push(("service", s.trim().to_string()));
    }
    if let Some(n) = limit {
        query.push(("limit", n.to_string()));
    }
    // The query string, encoded (any base does: only its query is used).
    let mut url = reqwest::Url::parse("http://medic/api/v1/changes")
        .map_err(|e| CliError::new(Code::ChangeListInvalid, e.to_string()))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(&query);
    }
    let path = match url.query() {
        Some(q) => format!("/api/v1/changes?{q}"),
        None => "/api/v1/changes".to_string(),
    };
    let v = match ApiClient::new(api).get(&path).await {
        Ok(v) => v,
        Err(e) if e.message.contains("E0422") => {
            return Err(CliError::new(Code::ChangeListInvalid, e.message));
        }
        Err(e) => return Err(e),
    };
    if json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let changes = v["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if changes.is_empty() {
        println!("no changes recorded");
    }
    for c in changes {
        let text = |k: &str| c[k].as_str().unwrap_or("");
        let mut line = format!("{}  {}  {}", text("at"), text("service"), text("kind"));
        if !text("version").is_empty() {
            line.push_str(&format!("  version {}", text("version")));
        }
        line.push_str(&format!("  by {}", text("by")));
        if !text("note").is_empty() {
            line.push_str(&format!("  ({})", text("note")));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
