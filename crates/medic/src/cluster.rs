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

/// `medic cluster unlock LOCK`: operator force-release of a distributed lock
/// (`scope/name`, e.g. `service/web`), straight in etcd.
pub fn unlock(config: &Path, lock: &str) -> Result<ExitCode, CliError> {
    let cfg = medic_config::load(config).map_err(CliError::config)?;
    let Some(ha) = cfg.ha else {
        return Err(CliError::new(
            Code::HaNotConfigured,
            format!("{}: no `ha:` section: there are no locks", config.display()),
        ));
    };
    let Some(l) = medic_ha::locks::Lock::parse(lock) else {
        return Err(CliError::new(
            Code::Usage,
            format!(
                "invalid lock `{lock}`: expected SCOPE/NAME with SCOPE one of system, service, incident, deployment"
            ),
        ));
    };
    let rt = crate::runtime()?;
    let r = rt.block_on(async {
        let mut c = medic_ha::elector::connect(&ha.etcd, Duration::from_secs(3))
            .await
            .map_err(|e| e.to_string())?;
        medic_ha::locks::force_release(&mut c, &ha.prefix, &l)
            .await
            .map_err(|e| e.to_string())
    });
    match r {
        Ok(Some(holder)) => {
            println!("released {lock} (held by {holder})");
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => {
            println!("{lock} was not held");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError::new(
            Code::EtcdUnreachable,
            format!("etcd ({}): {e}", ha.etcd.join(", ")),
        )),
    }
}

/// The cluster's own API routes (issue 13), behind the same auth as every
/// route: the distributed locks.
pub const HA_ROUTES: &[medic_api::auth::RouteInfo] = &[
    medic_api::auth::RouteInfo {
        method: "GET",
        path: "/api/v1/cluster/locks",
        role: Some(medic_core::Role::Viewer),
        summary: "the distributed locks held in etcd and their holders",
    },
    medic_api::auth::RouteInfo {
        method: "POST",
        path: "/api/v1/cluster/locks/release",
        role: Some(medic_core::Role::Admin),
        summary: "force-release a distributed lock (`{\"lock\":\"service/web\"}`), audited",
    },
];

#[derive(Clone)]
struct HaApi {
    cfg: medic_config::HaConfig,
    store: medic_store::Store,
}

pub fn router(cfg: medic_config::HaConfig, api: medic_api::ApiState) -> axum::Router {
    use axum::routing::{get, post};
    let state = HaApi {
        cfg,
        store: api.store.clone(),
    };
    axum::Router::new()
        .route("/api/v1/cluster/locks", get(list_locks))
        .route("/api/v1/cluster/locks/release", post(release_lock))
        .route_layer(axum::middleware::from_fn_with_state(
            (api, HA_ROUTES),
            medic_api::auth::authenticate_in,
        ))
        .with_state(state)
}

async fn etcd(
    cfg: &medic_config::HaConfig,
) -> Result<medic_ha::etcd_client::Client, medic_api::ApiError> {
    medic_ha::elector::connect(&cfg.etcd, Duration::from_secs(3))
        .await
        .map_err(|e| {
            medic_api::ApiError::new(
                medic_api::ErrorCode::NotActing,
                format!("etcd unreachable: {e}"),
            )
            .with_reason_code("etcd_unreachable")
        })
}

async fn list_locks(
    axum::extract::State(s): axum::extract::State<HaApi>,
) -> Result<axum::Json<serde_json::Value>, medic_api::ApiError> {
    let mut c = etcd(&s.cfg).await?;
    let locks = medic_ha::locks::list(&mut c, &s.cfg.prefix)
        .await
        .map_err(|e| medic_api::ApiError::internal(format!("etcd: {e}")))?;
    Ok(axum::Json(serde_json::json!({
        "locks": locks
            .into_iter()
            .map(|(lock, holder)| serde_json::json!({"lock": lock, "holder": holder}))
            .collect::<Vec<_>>(),
    })))
}

async fn release_lock(
    axum::extract::State(s): axum::extract::State<HaApi>,
    axum::Extension(actor): axum::Extension<medic_core::Actor>,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, medic_api::ApiError> {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| medic_api::ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let Some(text) = v["lock"].as_str() else {
        return Err(medic_api::ApiError::invalid_field(
            "lock",
            "lock is required: SCOPE/NAME, e.g. service/web",
        ));
    };
    let Some(lock) = medic_ha::locks::Lock::parse(text) else {
        return Err(medic_api::ApiError::invalid_field(
            "lock",
            "expected SCOPE/NAME with SCOPE one of system, service, incident, deployment",
        ));
    };
    let mut c = etcd(&s.cfg).await?;
    let holder = medic_ha::locks::force_release(&mut c, &s.cfg.prefix, &lock)
        .await
        .map_err(|e| medic_api::ApiError::internal(format!("etcd: {e}")))?;
    if holder.is_some() {
        // Audited by the leader (a follower's write is fenced off: logged).
        let payload = serde_json::json!({"lock": text, "holder": holder, "by": actor.id, "v": 1});
        if let Err(e) = s
            .store
            .append_audit(
                &crate::daemon::now_rfc3339(),
                "ha.lock_released",
                &payload.to_string(),
            )
            .await
        {
            tracing::warn!(error = %e, lock = text, by = %actor.id, "lock released; audit append failed");
        }
    }
    tracing::warn!(lock = text, holder = ?holder, by = %actor.id, "lock force-released");
    Ok(axum::Json(serde_json::json!({
        "lock": text,
        "released": holder.is_some(),
        "holder": holder,
        "by": actor.id,
    })))
}
