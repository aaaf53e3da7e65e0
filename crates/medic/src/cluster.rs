//! `medic cluster status` (issue 13): the members of an HA cluster, its
//! leader and fencing token, each member's last renewal and lag, read from
//! etcd with the config's `ha:` section.
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::codes::{CliError, Code};

pub fn status(config: &Path, json: bool) -> Result<ExitCode, CliError> {
    let cfg = medic_config::load(config).map_err(CliError::config)?;
    let Some(ha) = cfg.ha else {
        return Err(CliError::new(
            Code::HaNotConfigured,
            format!(
                "{}: no `ha:` section: this medic runs alone",
                config.display()
            ),
        ));
    };
    let rt = crate::runtime()?;
    let st = rt
        .block_on(medic_ha::cluster_status(
            &ha.etcd,
            &ha.election,
            &ha.prefix,
            Duration::from_secs(3),
        ))
        .map_err(|e| {
            CliError::new(
                Code::EtcdUnreachable,
                format!("etcd ({}): {e}", ha.etcd.join(", ")),
            )
        })?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&st).unwrap_or_else(|_| "{}".into())
        );
        return Ok(ExitCode::SUCCESS);
    }
    match (&st.leader, st.token) {
        (Some(l), Some(t)) => println!("leader: {l} (token {t})"),
        _ => println!("leader: none"),
    }
    println!(
        "{:<24} {:<22} {:<7} {:>8} {:>10}",
        "MEMBER", "API", "LEADER", "TOKEN", "LAG"
    );
    for m in &st.members {
        println!(
            "{:<24} {:<22} {:<7} {:>8} {:>8}ms",
            m.member.member,
            m.member.api,
            if m.member.leader { "yes" } else { "no" },
            m.member
                .token
                .map_or_else(|| "-".to_string(), |t| t.to_string()),
            m.lag_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
