//! `medic change record` (issue 9): tell a running medic that a service was
//! deployed or reconfigured (`POST /api/v1/changes`), so that an error spike
//! right after it is diagnosed as `error_spike_after_change`.
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
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Deploy,
    Config,
}

pub async fn run(api: &str, cmd: ChangeCmd) -> Result<ExitCode, CliError> {
    let ChangeCmd::Record {
        service,
        kind,
        version,
        note,
        json,
    } = cmd;
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
