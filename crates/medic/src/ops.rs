//! Operator commands against a running medic: pause, resume, approvals,
//! explain, cancel, force. Each is one API call; the daemon audits who did it.
use std::process::ExitCode;

use clap::Subcommand;

use medic_api::governance::{
    EmptyRequest, ForceRequest, PauseRequest, ReasonRequest, ReleaseLockRequest, ResumeRequest,
};

use crate::client::ApiClient;
use crate::codes::{CliError, Code};

#[derive(Subcommand)]
pub enum OpCmd {
    /// Pause automation (globally, for a service, or for one action kind), optionally for a while.
    Pause {
        #[arg(long)]
        service: Option<String>,
        /// Action kind: restart, exec or http.
        #[arg(long)]
        action: Option<String>,
        /// How long (e.g. 30m); until `medic resume` when absent.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a pause (the same scope as it was set with).
    Resume {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
    /// List pending approvals and active pauses.
    Approvals {
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending action.
    Approve { id: String },
    /// Reject a pending action.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Why medic did (or did not do) what it did for an incident.
    Explain {
        incident: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running action (its id is in the audit log and incident timeline).
    Cancel {
        action_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Mark an incident resolved by hand.
    Resolve {
        incident: String,
        #[arg(long)]
        reason: String,
    },
    /// Re-enable automation for a service after it was disabled by repeated failures.
    EnableAutoheal { service: String },
    /// Locks held by running actions and the actions waiting for one;
    /// `release` force-releases one (admin, audited).
    Locks {
        #[command(subcommand)]
        cmd: Option<LocksCmd>,
        #[arg(long)]
        json: bool,
    },
    /// Run an action now, past the gates (audited as an override).
    Force {
        #[arg(long)]
        service: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum LocksCmd {
    /// Remove the lock on KEY (`scope:target`, e.g. `service:db`), whoever holds it.
    Release {
        key: String,
        #[arg(long)]
        reason: String,
    },
}

fn nonempty(field: &str, v: &str) -> Result<(), CliError> {
    if v.trim().is_empty() {
        return Err(CliError::new(
            Code::Usage,
            format!("--{field} must not be empty"),
        ));
    }
    Ok(())
}

pub async fn run(api: &str, cmd: OpCmd) -> Result<ExitCode, CliError> {
    let c = ApiClient::new(api);
    let v = match cmd {
        OpCmd::Pause {
            service,
            action,
            duration,
            reason,
        } => {
            let body = PauseRequest {
                service,
                kind: action,
                duration_s: duration.map(|d| d.as_secs().max(1)),
                reason,
            };
            c.post("/api/v1/pause", &body).await?
        }
        OpCmd::Resume { service, action } => {
            let body = ResumeRequest {
                service,
                kind: action,
            };
            c.post("/api/v1/resume", &body).await?
        }
        OpCmd::Approvals { json } => {
            let v = c.get("/api/v1/approvals").await?;
            if json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
            let approvals = v["approvals"].as_array().cloned().unwrap_or_default();
            if approvals.is_empty() {
                println!("no pending approvals");
            }
            for a in approvals {
                println!(
                    "{}  {} {} on {} (risk {}, score {:.2}): {} — approvers {}/{}",
                    s(&a, "id"),
                    s(&a, "incident"),
                    s(&a, "action"),
                    s(&a, "service"),
                    s(&a, "risk"),
                    a["score"].as_f64().unwrap_or(0.0),
                    s(&a, "reason"),
                    a["approvers"].as_array().map_or(0, Vec::len),
                    a["required"].as_u64().unwrap_or(1)
                );
            }
            for p in v["pauses"].as_array().into_iter().flatten() {
                println!(
                    "paused: service={} kind={} until={} by={} {}",
                    s(p, "service"),
                    s(p, "kind"),
                    p["until"].as_str().unwrap_or("resumed"),
                    s(p, "by"),
                    s(p, "reason")
                );
            }
            if v["mass_incident_pause"] == serde_json::Value::Bool(true) {
                println!("automation latched off after a mass incident (medic resume lifts it)");
            }
            return Ok(ExitCode::SUCCESS);
        }
        OpCmd::Approve { id } => {
            c.post(&format!("/api/v1/approvals/{id}/approve"), &EmptyRequest {})
                .await?
        }
        OpCmd::Reject { id, reason } => {
            nonempty("reason", &reason)?;
            c.post(
                &format!("/api/v1/approvals/{id}/reject"),
                &ReasonRequest { reason },
            )
            .await?
        }
        OpCmd::Explain { incident, json } => {
            let v = c.get(&format!("/api/v1/explain/{incident}")).await?;
            if json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
            println!(
                "{} on {}: {} (outcome {})",
                s(&v, "incident"),
                s(&v, "service"),
                s(&v, "phase"),
                s(&v, "outcome")
            );
            for d in v["decisions"].as_array().into_iter().flatten() {
                println!(
                    "  {} {} {} [{}] risk {} score {:.2}: {} ({})",
                    s(d, "at"),
                    s(d, "verdict"),
                    s(d, "action"),
                    s(d, "stage"),
                    s(d, "risk"),
                    d["score"].as_f64().unwrap_or(0.0),
                    s(d, "reason"),
                    s(d, "reason_code")
                );
            }
            for c in v["canary"].as_array().into_iter().flatten() {
                println!(
                    "  {} canary {} stage {} ({}%): {}",
                    s(c, "at"),
                    s(c, "action"),
                    c["stage"].as_u64().unwrap_or(0),
                    c["percent"].as_u64().unwrap_or(0),
                    s(c, "explanation")
                );
                for m in c["metrics"].as_array().into_iter().flatten() {
                    println!("     {}", s(m, "explanation"));
                }
            }
            let hyps = v["hypotheses"].as_array().cloned().unwrap_or_default();
            if !hyps.is_empty() {
                println!("  hypotheses (confidence = 100 · prior · evidence · learned):");
            }
            for h in &hyps {
                let f = |k: &str| h[k].as_f64().unwrap_or(0.0);
                println!(
                    "  {}. {}/{} {} confidence {} = 100 · {:.2} · {:.2} · {:.2} [{}]: {}",
                    h["rank"].as_u64().unwrap_or(0),
                    s(h, "service"),
                    s(h, "signal"),
                    s(h, "pattern"),
                    h["confidence"].as_u64().unwrap_or(0),
                    f("prior"),
                    f("evidence"),
                    f("learned"),
                    s(h, "band"),
                    s(h, "evidence_text")
                );
                if let Some(w) = h["not_taken"].as_str() {
                    println!("     not taken: {w}");
                }
            }
            let merged: Vec<&str> = v["merged_services"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_str())
                .collect();
            if !merged.is_empty() {
                println!(
                    "  merged into this incident (victims of {}): {}",
                    s(&v, "service"),
                    merged.join(", ")
                );
            }
            // History (issue 9): past incidents like this one and what
            // worked, from the store (the incident may not be stored yet).
            if let Ok(d) = c.get(&format!("/api/v1/incidents/{incident}")).await {
                let similar = d["similar"].as_array().cloned().unwrap_or_default();
                if !similar.is_empty() {
                    println!("  similar past incidents:");
                }
                for p in &similar {
                    let cause = p["diagnosis"]
                        .as_object()
                        .map(|c| {
                            format!(
                                " cause {} {}",
                                c.get("service").and_then(|v| v.as_str()).unwrap_or("-"),
                                c.get("pattern").and_then(|v| v.as_str()).unwrap_or("-")
                            )
                        })
                        .unwrap_or_default();
                    println!(
                        "  - {} on {} ({}){}: {}{}",
                        s(p, "id"),
                        s(p, "service"),
                        s(p, "trigger"),
                        cause,
                        s(p, "outcome"),
                        p["what_worked"]
                            .as_str()
                            .map(|w| format!(", what worked: {w}"))
                            .unwrap_or_default()
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        OpCmd::Cancel { action_id, reason } => {
            nonempty("reason", &reason)?;
            let id = action_id.trim_start_matches("act-");
            c.post(
                &format!("/api/v1/actions/{id}/cancel"),
                &ReasonRequest { reason },
            )
            .await?
        }
        OpCmd::Resolve { incident, reason } => {
            nonempty("reason", &reason)?;
            c.post(
                &format!("/api/v1/incidents/{incident}/resolve"),
                &ReasonRequest { reason },
            )
            .await?
        }
        OpCmd::EnableAutoheal { service } => {
            c.post(
                &format!("/api/v1/services/{service}/autoheal"),
                &EmptyRequest {},
            )
            .await?
        }
        OpCmd::Locks { cmd: None, json } => {
            let v = c.get("/api/v1/locks").await?;
            if json {
                println!("{v}");
                return Ok(ExitCode::SUCCESS);
            }
            let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
            let locks = v["locks"].as_array().cloned().unwrap_or_default();
            if locks.is_empty() {
                println!("no locks held");
            }
            for l in &locks {
                let radius: Vec<&str> = l["radius"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .collect();
                println!(
                    "{}  held by {} since {} until {} (radius {})",
                    s(l, "key"),
                    s(l, "holder"),
                    s(l, "acquired"),
                    s(l, "expires"),
                    radius.join(",")
                );
            }
            for (i, w) in v["waiting"].as_array().into_iter().flatten().enumerate() {
                let keys: Vec<&str> = w["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str())
                    .collect();
                println!(
                    "waiting {}: {} for {} since {}",
                    i + 1,
                    s(w, "holder"),
                    keys.join(","),
                    s(w, "since")
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        OpCmd::Locks {
            cmd: Some(LocksCmd::Release { key, reason }),
            ..
        } => {
            nonempty("reason", &reason)?;
            if medic_core::LockKey::parse(key.trim()).is_none() {
                return Err(CliError::new(
                    Code::LockKey,
                    format!("invalid lock key {key:?}: expected scope:target (scope: system, service, incident or deployment)"),
                ));
            }
            let body = ReleaseLockRequest {
                key: key.trim().to_string(),
                reason,
            };
            match c.post("/api/v1/locks/release", &body).await {
                Ok(v) => v,
                Err(e) if e.message.contains("E0490") => {
                    return Err(CliError::new(Code::LockNotHeld, e.message));
                }
                Err(e) => return Err(e),
            }
        }
        OpCmd::Force {
            service,
            action,
            reason,
        } => {
            nonempty("reason", &reason)?;
            c.post(
                "/api/v1/actions/force",
                &ForceRequest {
                    service,
                    action,
                    reason,
                },
            )
            .await?
        }
    };
    println!(
        "{}",
        v["message"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_string)
    );
    Ok(ExitCode::SUCCESS)
}
