//! Chaos drills at the daemon's edge (issue 14).
//!
//! A drill injects a declared fault into a service through one of the
//! service's own actions (the operator's fault action) and watches medic
//! heal it. The engine loop owns the drill state, so a drill is judged, run
//! and recorded in the same order as everything else:
//!
//! 1. refused (audit `drill.refused`, with a reason code) when it is outside
//!    every drill window, another drill runs, drills are stopped after a
//!    failed one, or the core's gates say no (`Engine::judge_drill`: kill
//!    switch, freeze window, mode, budgets; the same gates as any action);
//! 2. `drill.started`, then the fault action runs on the executor registry;
//! 3. `drill.passed` when an incident of that service opened after the
//!    injection closes as `healed` within `drills.timeout`, with the pattern
//!    (the incident's trigger), the actions that healed it and the time to
//!    heal; otherwise `drill.failed`: a critical notification (escalation)
//!    and no further drill until `drill.reset`.
//!
//! The records are durable in the audit chain and carry the pattern and
//! action names, so learned confidence in (pattern, action) pairs (issue 9)
//! can count drills like real incidents. `medic drill report` reads them back.
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use medic_api::{ask, ApiError, ApiState, ErrorCode, RouteInfo};
use medic_config::DrillsConfig;
use medic_core::IncidentOutcome;
use medic_core::{Actor, Role};
use medic_store::Store;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::daemon::{IncidentSnapshot, Msg};

/// How many finished drills the API lists.
const RECENT: usize = 100;

/// A finished drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillOutcome {
    pub drill: String,
    pub service: String,
    pub fault: String,
    pub passed: bool,
    /// The incident's trigger, e.g. `healthz failing`.
    pub pattern: Option<String>,
    /// Actions run for the incident.
    pub actions: Vec<String>,
    pub incident: Option<String>,
    pub detect_ms: Option<u64>,
    /// Injection to the incident closed as healed.
    pub heal_ms: Option<u64>,
    pub reason: String,
}

/// The shipped pattern a drill's fault kind stands for, when the service
/// was not diagnosed otherwise: `kill`, `crash`, `exit` → `crash`; `hang`,
/// `sigstop`, `stop`, `deadlock` → `hang`. Other kinds (`slow`, `error`, ...)
/// name no single pattern, and such a drill teaches nothing unless the
/// ranking diagnosed its service.
pub fn pattern_of_fault(fault: &str) -> Option<&'static str> {
    match fault.trim().to_ascii_lowercase().as_str() {
        "kill" | "crash" | "exit" => Some("crash"),
        "hang" | "sigstop" | "stop" | "deadlock" => Some("hang"),
        _ => None,
    }
}

/// Why a drill was not started.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub not_found: bool,
}

/// The drill state the engine loop owns.
pub struct DrillState {
    pub cfg: DrillsConfig,
    /// The drill whose failure stopped drills.
    pub stopped: Option<String>,
    pub running: Option<String>,
    pub recent: VecDeque<DrillOutcome>,
    /// Round robin of scheduled drills.
    pub next: usize,
}

impl DrillState {
    pub fn new(cfg: DrillsConfig, stopped: Option<String>) -> Self {
        DrillState {
            cfg,
            stopped,
            running: None,
            recent: VecDeque::new(),
            next: 0,
        }
    }

    pub fn finish(&mut self, o: DrillOutcome) {
        self.running = None;
        if !o.passed {
            self.stopped = Some(o.drill.clone());
        }
        self.recent.push_back(o);
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }
}

/// The drill that failed last without a reset after it, from the audit log.
pub async fn stopped_by(store: &Store) -> Option<String> {
    let mut after = 0;
    let mut stopped = None;
    loop {
        let page = store.list_audit(after, 1000).await.ok()?;
        let Some(last) = page.last() else {
            return stopped;
        };
        after = last.seq;
        for r in &page {
            match r.kind.as_str() {
                "drill.failed" => {
                    let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap_or_default();
                    stopped = Some(v["drill"].as_str().unwrap_or("?").to_string());
                }
                "drill.reset" => stopped = None,
                _ => {}
            }
        }
    }
}

/// Watch for the drill's incident: opened after `t0` on `service`, closed.
pub async fn watch(
    drill: medic_config::DrillSpec,
    t0: Instant,
    timeout: Duration,
    incidents: Arc<Mutex<BTreeMap<String, IncidentSnapshot>>>,
) -> DrillOutcome {
    let mut out = DrillOutcome {
        drill: drill.name.clone(),
        service: drill.service.clone(),
        fault: drill.fault.clone(),
        passed: false,
        pattern: None,
        actions: Vec::new(),
        incident: None,
        detect_ms: None,
        heal_ms: None,
        reason: String::new(),
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    loop {
        let found = {
            let map = match incidents.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            map.values()
                .filter(|s| s.view.service == drill.service && s.first_seen >= t0)
                .min_by_key(|s| s.first_seen)
                .cloned()
        };
        if let Some(s) = &found {
            out.incident = Some(s.view.id.0.clone());
            out.pattern = Some(s.view.trigger.clone());
            out.actions = s.view.actions.clone();
            out.detect_ms = Some(ms(s.first_seen.saturating_duration_since(t0)));
            if s.view.closed_at.is_none() && s.view.phase == medic_core::Phase::ManualIntervention {
                // Escalated to a human (a budget, a gate, failed heals): the
                // drill has its answer; no need to wait for the timeout.
                let why = s
                    .view
                    .timeline
                    .iter()
                    .rev()
                    .find(|t| t.kind == "escalated")
                    .map_or_else(String::new, |t| format!(": {}", t.message));
                out.reason = format!("medic escalated instead of healing{why}");
                return out;
            }
            if s.view.closed_at.is_some() {
                let healed = s.view.outcome == Some(IncidentOutcome::Healed);
                out.passed = healed;
                if healed {
                    out.heal_ms = Some(ms(t0.elapsed()));
                    out.reason = format!("healed by {}", s.view.actions.join(", "));
                } else {
                    out.reason = format!(
                        "the incident closed as {}, not healed",
                        s.view.outcome.map_or("unknown", |o| o.as_str())
                    );
                }
                return out;
            }
        }
        if t0.elapsed() >= timeout {
            out.reason = match found {
                None => format!("no incident within {}s of the injection", timeout.as_secs()),
                Some(_) => format!("not healed within {}s", timeout.as_secs()),
            };
            return out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The audit payload of a finished drill.
pub fn outcome_payload(o: &DrillOutcome) -> serde_json::Value {
    serde_json::json!({
        "drill": o.drill, "service": o.service, "fault": o.fault,
        "pattern": o.pattern, "actions": o.actions, "incident": o.incident,
        "detect_ms": o.detect_ms, "heal_ms": o.heal_ms, "reason": o.reason, "v": 1
    })
}

/// What the API answers for `GET /api/v1/drills`.
#[derive(Debug, Clone, Serialize)]
pub struct DrillsView {
    pub in_window: bool,
    pub running: Option<String>,
    pub stopped_by: Option<String>,
    pub drills: Vec<String>,
    pub recent: Vec<DrillOutcome>,
}

/// `POST /api/v1/drills/{name}/run`, `POST /api/v1/drills/reset`,
/// `GET /api/v1/drills`; answered by the engine loop.
/// The drill routes, with the least role for each: the same 401/403 rules
/// as every API route (`medic_api::auth`). Injecting a fault on purpose is
/// an admin's call, like forcing an action.
pub const DRILL_ROUTES: &[RouteInfo] = &[
    RouteInfo {
        method: "GET",
        path: "/api/v1/drills",
        role: Some(Role::Viewer),
        summary: "drills, whether a window is open, the running and recent drills",
    },
    RouteInfo {
        method: "POST",
        path: "/api/v1/drills/reset",
        role: Some(Role::Admin),
        summary: "resume drills after a failed one",
    },
    RouteInfo {
        method: "POST",
        path: "/api/v1/drills/{name}/run",
        role: Some(Role::Admin),
        summary: "run drill `name` now (gated like any action)",
    },
];

pub fn router(tx: mpsc::Sender<Msg>, api: ApiState) -> Router {
    Router::new()
        .route("/api/v1/drills", get(list))
        .route("/api/v1/drills/reset", post(reset))
        .route("/api/v1/drills/{name}/run", post(run))
        .route_layer(axum::middleware::from_fn_with_state(
            (api, DRILL_ROUTES),
            medic_api::auth::authenticate_in,
        ))
        .with_state(tx)
}

async fn run(
    State(tx): State<mpsc::Sender<Msg>>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let by = actor.id.clone();
    match ask(&tx, |r| Msg::Drill(name.clone(), by, r)).await? {
        Ok(msg) => Ok(Json(
            serde_json::json!({"status": "started", "drill": name, "message": msg}),
        )),
        Err(r) if r.not_found => Err(ApiError::new(ErrorCode::DrillNotFound, r.message)),
        Err(r) => Err(ApiError::new(ErrorCode::DrillRefused, r.message).with_reason_code(r.code)),
    }
}

async fn reset(
    State(tx): State<mpsc::Sender<Msg>>,
    Extension(actor): Extension<Actor>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let by = actor.id.clone();
    let msg = ask(&tx, |r| Msg::DrillReset(by, r)).await?;
    Ok(Json(serde_json::json!({ "message": msg })))
}

async fn list(State(tx): State<mpsc::Sender<Msg>>) -> Result<Json<DrillsView>, ApiError> {
    Ok(Json(ask(&tx, Msg::DrillList).await?))
}

/// Start the next scheduled drill every `every`, only inside a window.
pub async fn schedule(
    cfg: DrillsConfig,
    tx: mpsc::Sender<Msg>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Some(every) = cfg.every else { return };
    if cfg.drills.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !cfg.in_window(now_unix_ms()) {
            continue;
        }
        let (rtx, _rrx) = oneshot::channel();
        if tx
            .send(Msg::DrillScheduled("schedule".to_string(), rtx))
            .await
            .is_err()
        {
            return;
        }
    }
}

pub fn now_unix_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

// === report ===

/// One drill record read back from the audit log.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    kind: String,
    drill: String,
    service: String,
    fault: String,
    actions: Vec<String>,
    heal_ms: Option<u64>,
    reason: String,
}

/// `medic drill report`: drills, time to heal per fault kind, and the
/// configured remediations no passed drill has proven yet.
pub async fn report(
    config: &medic_config::Config,
    target: &medic_store::StoreTarget,
    json: bool,
) -> anyhow::Result<String> {
    let store = Store::open_target(target).await?;
    let mut recs = Vec::new();
    let mut after = 0;
    loop {
        let page = store.list_audit(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            if !r.kind.starts_with("drill.") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&r.payload).unwrap_or_default();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            recs.push(Rec {
                kind: r.kind.clone(),
                drill: s("drill"),
                service: s("service"),
                fault: s("fault"),
                actions: v["actions"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                heal_ms: v["heal_ms"].as_u64(),
                reason: s("reason"),
            });
        }
    }
    store.close().await;
    Ok(render_report(config, &recs, json))
}

fn render_report(config: &medic_config::Config, recs: &[Rec], json: bool) -> String {
    // Per drill: runs, passed, failed, refused.
    let mut per: BTreeMap<&str, [u32; 4]> = BTreeMap::new();
    let mut per_fault: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in recs {
        let e = per.entry(r.drill.as_str()).or_default();
        match r.kind.as_str() {
            "drill.started" => e[0] += 1,
            "drill.passed" => {
                e[1] += 1;
                per_fault
                    .entry(r.fault.as_str())
                    .or_default()
                    .extend(r.heal_ms);
            }
            "drill.failed" => e[2] += 1,
            "drill.refused" => e[3] += 1,
            _ => {}
        }
    }
    // Remediations (service, action) proven by a passed drill.
    let proven: Vec<(&str, &str)> = recs
        .iter()
        .filter(|r| r.kind == "drill.passed")
        .flat_map(|r| r.actions.iter().map(|a| (r.service.as_str(), a.as_str())))
        .collect();
    let mut unproven = Vec::new();
    for svc in &config.engine.services {
        for rem in &svc.remediations {
            if !proven.contains(&(svc.name.as_str(), rem.action.as_str())) {
                let what = format!(
                    "{}: {} {} -> {}",
                    svc.name,
                    rem.probe,
                    rem.condition.as_str(),
                    rem.action
                );
                if !unproven.contains(&what) {
                    unproven.push(what);
                }
            }
        }
    }
    let stopped = recs
        .iter()
        .rev()
        .find(|r| r.kind == "drill.failed" || r.kind == "drill.reset")
        .filter(|r| r.kind == "drill.failed")
        .map(|r| format!("{} ({})", r.drill, r.reason));
    let faults: Vec<serde_json::Value> = per_fault
        .iter()
        .map(|(f, v)| {
            let mut v = v.clone();
            let mm = crate::bench::median_max(&mut v);
            serde_json::json!({"fault": f, "passed": v.len(), "median_ms": mm.map(|m| m.0), "max_ms": mm.map(|m| m.1)})
        })
        .collect();
    if json {
        let drills: Vec<serde_json::Value> = per
            .iter()
            .filter(|(d, _)| !d.is_empty())
            .map(|(d, c)| serde_json::json!({"drill": d, "started": c[0], "passed": c[1], "failed": c[2], "refused": c[3]}))
            .collect();
        return format!(
            "{}\n",
            serde_json::json!({"drills": drills, "faults": faults, "unproven": unproven, "stopped_by": stopped})
        );
    }
    let mut s = String::from("DRILL                STARTED  PASSED  FAILED  REFUSED\n");
    for (d, c) in per.iter().filter(|(d, _)| !d.is_empty()) {
        s.push_str(&format!(
            "{d:<20} {:>7} {:>7} {:>7} {:>8}\n",
            c[0], c[1], c[2], c[3]
        ));
    }
    s.push_str("\nTIME TO HEAL BY FAULT (passed drills)\n");
    for f in &faults {
        s.push_str(&format!(
            "{:<12} passed {:>3}  median {}  max {}\n",
            f["fault"].as_str().unwrap_or(""),
            f["passed"],
            f["median_ms"]
                .as_u64()
                .map_or("-".into(), crate::bench::fmt_ms),
            f["max_ms"]
                .as_u64()
                .map_or("-".into(), crate::bench::fmt_ms),
        ));
    }
    s.push_str("\nREMEDIATIONS NEVER YET PROVEN BY A DRILL\n");
    if unproven.is_empty() {
        s.push_str("(none)\n");
    }
    for u in &unproven {
        s.push_str(&format!("{u}\n"));
    }
    if let Some(st) = stopped {
        s.push_str(&format!(
            "\nDRILLS STOPPED after the failed drill {st}; `medic drill reset` resumes them\n"
        ));
    }
    s
}

// === CLI ===

#[derive(clap::Subcommand, Debug)]
pub enum DrillCmd {
    /// Inject the named drill's fault into a running medic's service and
    /// (with --wait) wait until medic healed it or the drill failed.
    Run {
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// Resume drills after a failed drill stopped them (audited).
    Reset,
    /// The drills of a running medic: window, running, stopped, recent outcomes.
    Status,
    /// Drills, time to heal per fault kind, remediations never yet proven
    /// (read from the database; medic need not run).
    Report {
        #[arg(short, long, default_value = "medic.yaml")]
        config: std::path::PathBuf,
        /// Database (default: the config's).
        #[arg(long)]
        db: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn cli(
    api: &str,
    cmd: DrillCmd,
) -> Result<std::process::ExitCode, crate::codes::CliError> {
    use crate::codes::{CliError, Code};
    let client = crate::client::ApiClient::new(api);
    match cmd {
        DrillCmd::Run { name, wait } => {
            let v = client
                .post(
                    &format!("/api/v1/drills/{name}/run"),
                    &serde_json::json!({}),
                )
                .await
                .map_err(|e| {
                    if e.message.contains("E0440") {
                        CliError::new(Code::DrillRefused, e.message)
                    } else {
                        e
                    }
                })?;
            println!("{}", v["message"].as_str().unwrap_or("started"));
            if !wait {
                return Ok(std::process::ExitCode::SUCCESS);
            }
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = client.get("/api/v1/drills").await?;
                if s["running"].as_str() == Some(name.as_str()) {
                    continue;
                }
                let Some(o) = s["recent"]
                    .as_array()
                    .and_then(|r| r.iter().rev().find(|o| o["drill"] == name.as_str()))
                else {
                    continue;
                };
                if o["passed"] == true {
                    println!(
                        "drill {name} passed: {} (pattern {}, healed in {} ms)",
                        o["reason"].as_str().unwrap_or(""),
                        o["pattern"].as_str().unwrap_or("-"),
                        o["heal_ms"]
                    );
                    return Ok(std::process::ExitCode::SUCCESS);
                }
                return Err(CliError::new(
                    Code::DrillFailed,
                    format!(
                        "drill {name} failed: {}; drills are stopped until `medic drill reset`",
                        o["reason"].as_str().unwrap_or("")
                    ),
                ));
            }
        }
        DrillCmd::Reset => {
            let v = client
                .post("/api/v1/drills/reset", &serde_json::json!({}))
                .await?;
            println!("{}", v["message"].as_str().unwrap_or("ok"));
            Ok(std::process::ExitCode::SUCCESS)
        }
        DrillCmd::Status => {
            let v = client.get("/api/v1/drills").await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(std::process::ExitCode::SUCCESS)
        }
        DrillCmd::Report { config, db, json } => {
            let cfg = medic_config::load(&config).map_err(CliError::config)?;
            // `--db`, else the config's store (`store.url` or `database`).
            let target = match db {
                Some(db) => medic_store::StoreTarget::Sqlite(db),
                None => crate::token::store_target(&config, &cfg),
            };
            if let medic_store::StoreTarget::Sqlite(db) = &target {
                if !db.exists() {
                    return Err(CliError::new(
                        Code::NotFound,
                        format!("{}: no such database", db.display()),
                    ));
                }
            }
            let out = report(&cfg, &target, json)
                .await
                .map_err(|e| CliError::new(Code::Store, format!("{}: {e:#}", target.describe())))?;
            print!("{out}");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
