//! `medic demo`: a supervised fixture, faults injected one after another, the
//! healing loop measured end to end, the audit chain verified at the end.
//!
//! What medic did (the ACTIONS column) is read from medic's own audit log in
//! the store: its `action.intent` records and their `action.outcome`s (and,
//! for dry-run, its `would-act` decisions), not from the fixture's state.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use medic_core::{Mode, Phase};
use medic_exec::ProcessState;
use serde::Serialize;

use crate::daemon::{self, DaemonHandle, IncidentSnapshot};

/// Latency above which the demo's healthz probe counts as slow.
const SLOW_OVER_MS: u64 = 800;
/// Latency the slow fault injects.
const SLOW_FAULT_MS: u64 = 1200;

#[derive(Serialize, Debug, Clone)]
struct ScenarioResult {
    name: &'static str,
    expected: &'static str,
    outcome: String,
    detect_ms: Option<u64>,
    recover_ms: Option<u64>,
    /// From the audit log: each action medic ran, `NAME` when its outcome was
    /// `succeeded`, else `NAME (failed)` / `NAME (no outcome)`.
    actions: Vec<String>,
    note: String,
    /// The scenario's incident.
    #[serde(skip)]
    incident: Option<String>,
    /// The last audit seq before the fault was injected.
    #[serde(skip)]
    audit_from: u64,
}

impl ScenarioResult {
    /// A scenario that has not (yet) reached any outcome.
    fn pending(name: &'static str, expected: &'static str) -> Self {
        ScenarioResult {
            name,
            expected,
            outcome: "failed".into(),
            detect_ms: None,
            recover_ms: None,
            actions: vec![],
            note: String::new(),
            incident: None,
            audit_from: 0,
        }
    }
}

/// One action as medic's audit log records it: an `action.intent` and the
/// `status` of the `action.outcome` with the same `action_id`, if any yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuditedAction {
    seq: u64,
    incident: String,
    service: String,
    action: String,
    /// For a revert: the action it undoes.
    revert_of: Option<String>,
    status: Option<String>,
}

impl AuditedAction {
    fn succeeded(&self) -> bool {
        self.status.as_deref() == Some("succeeded")
    }

    /// The ACTIONS column entry.
    fn label(&self) -> String {
        match self.status.as_deref() {
            Some("succeeded") => self.action.clone(),
            Some(other) => format!("{} ({other})", self.action),
            None => format!("{} (no outcome)", self.action),
        }
    }
}

/// A `decision` record: the verdict the engine reached for an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuditedDecision {
    incident: String,
    verdict: String,
    /// The action the decision is about (the record's `action` field).
    action: String,
}

/// Audit records with `seq > after`, as read from the store.
#[derive(Debug, Default)]
struct AuditLog {
    actions: Vec<AuditedAction>,
    decisions: Vec<AuditedDecision>,
    last_seq: u64,
}

impl AuditLog {
    /// Builds the view from raw records (in seq order).
    fn from_records(records: &[medic_store::AuditRecord]) -> anyhow::Result<Self> {
        let mut log = AuditLog::default();
        let mut index = std::collections::BTreeMap::new();
        for r in records {
            log.last_seq = log.last_seq.max(r.seq);
            if !matches!(
                r.kind.as_str(),
                "action.intent" | "action.outcome" | "decision"
            ) {
                continue;
            }
            let p: serde_json::Value = serde_json::from_str(&r.payload)
                .with_context(|| format!("audit record {} ({}): payload", r.seq, r.kind))?;
            let field = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
            match r.kind.as_str() {
                "action.intent" => {
                    let id = field("action_id").unwrap_or_default();
                    index.insert(id, log.actions.len());
                    log.actions.push(AuditedAction {
                        seq: r.seq,
                        incident: field("incident").unwrap_or_default(),
                        service: field("service").unwrap_or_default(),
                        action: field("action").unwrap_or_default(),
                        revert_of: field("revert_of"),
                        status: None,
                    });
                }
                "action.outcome" => {
                    let id = field("action_id").unwrap_or_default();
                    if let Some(a) = index.get(&id).and_then(|&i| log.actions.get_mut(i)) {
                        a.status = field("status");
                    }
                }
                _ => log.decisions.push(AuditedDecision {
                    incident: field("incident").unwrap_or_default(),
                    verdict: field("verdict").unwrap_or_default(),
                    action: field("action").unwrap_or_default(),
                }),
            }
        }
        Ok(log)
    }

    /// The actions run for `incident` (not the reverts), in order.
    fn for_incident(&self, incident: &str) -> Vec<&AuditedAction> {
        self.actions
            .iter()
            .filter(|a| a.incident == incident && a.revert_of.is_none())
            .collect()
    }

    /// The reverts on `service` of any of `undone` (action names), in order.
    fn reverts(&self, service: &str, undone: &[&AuditedAction]) -> Vec<&AuditedAction> {
        self.actions
            .iter()
            .filter(|a| {
                a.service == service
                    && a.revert_of.as_ref().is_some_and(|of| {
                        undone
                            .iter()
                            .any(|u| u.action == *of && u.seq < a.seq && u.service == service)
                    })
            })
            .collect()
    }

    /// `would NAME` for every dry-run decision on `incident`.
    fn would_act(&self, incident: &str) -> Vec<String> {
        self.decisions
            .iter()
            .filter(|d| d.incident == incident && d.verdict == "would-act")
            .map(|d| format!("would {}", d.action))
            .collect()
    }
}

fn labels(actions: &[&AuditedAction]) -> Vec<String> {
    actions.iter().map(|a| a.label()).collect()
}

/// Checks that what medic ran for an incident is `expected` (every action, at
/// least one of them succeeded). `Err` names what it ran instead.
fn check_actions(actions: &[&AuditedAction], expected: &str) -> Result<(), String> {
    let names: Vec<String> = labels(actions);
    if actions.is_empty() {
        return Err(format!(
            "expected {expected}, but the audit log has no action for the incident"
        ));
    }
    if actions.iter().any(|a| a.action != expected) || !actions.iter().any(|a| a.succeeded()) {
        return Err(format!(
            "expected {expected}, the audit log says medic ran: {}",
            names.join(", ")
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct AuditSummary {
    records: u64,
    verified: bool,
}

#[derive(Serialize)]
struct Report {
    scenarios: Vec<ScenarioResult>,
    audit: AuditSummary,
    dir: String,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn config_yaml(exe: &str, web_port: u16, crashy_port: u16) -> String {
    format!(
        r#"# Written by `medic demo`. Timings are shortened so the demo runs in about a minute.
mode: aggressive
listen: 127.0.0.1:0
auth: none
database: medic.db
policy:
  cooldown: 1s
  restart_budget: 10
  budget_window: 10m
  max_failed_heals: 3
  failed_heal_window: 10m
  verify_window: 6s
  max_attempts: 5
# The demo opens six incidents within a minute; the default incident-rate gate
# (5 per hour) would rightly stop automation for the last one.
governance:
  gates: {{ max_incidents_per_hour: 100, max_failed_actions_per_hour: 100 }}
services:
  web:
    process:
      command: ["{exe}", "fixture", "--port", "{web_port}"]
      stop_grace: 2s
    probes:
      alive:
        process: {{}}
        interval: 200ms
      healthz:
        http:
          url: http://127.0.0.1:{web_port}/healthz
          expect_status: 200
          body_contains: ok
          timeout: 1500ms
        interval: 250ms
        failure: {{ consecutive: 3, within: 1m }}
        latency: {{ over: {SLOW_OVER_MS}ms, consecutive: 3 }}
        recovery: {{ consecutive: 3 }}
    actions:
      restart:
        restart: {{}}
      shed-load:
        http: {{ url: "http://127.0.0.1:{web_port}/admin/shed", method: POST, timeout: 2s }}
        risk: low
        revert: {{ action: restore-load, after: 3s }}
      restore-load:
        http: {{ url: "http://127.0.0.1:{web_port}/admin/unshed", method: POST, timeout: 2s }}
        risk: low
    remediate:
      - when: {{ probe: alive, condition: failing }}
        action: restart
      - when: {{ probe: healthz, condition: failing }}
        action: restart
      - when: {{ probe: healthz, condition: slow }}
        action: shed-load
  crashy:
    process:
      command: ["{exe}", "fixture", "--port", "{crashy_port}", "--crash-on-start"]
      autostart: false
      stop_grace: 1s
    probes:
      alive:
        process: {{}}
        interval: 200ms
    actions:
      restart:
        restart: {{}}
    remediate:
      - when: {{ probe: alive, condition: failing }}
        action: restart
"#
    )
}

struct Ctx {
    handle: DaemonHandle,
    http: reqwest::Client,
    web: String,
    api: String,
    /// medic's database, opened for reading its audit log.
    store: medic_store::Store,
}

struct Health {
    pid: Option<u64>,
    latency: Duration,
}

impl Ctx {
    /// The audit records with `seq > after`.
    async fn audit(&self, after: u64) -> anyhow::Result<AuditLog> {
        let mut records = Vec::new();
        let mut from = after;
        loop {
            let page = self
                .store
                .list_audit(from, 1000)
                .await
                .context("reading the audit log")?;
            let Some(last) = page.last() else { break };
            from = last.seq;
            records.extend(page);
        }
        let mut log = AuditLog::from_records(&records)?;
        log.last_seq = log.last_seq.max(after);
        Ok(log)
    }

    /// The seq of the newest audit record.
    async fn audit_seq(&self) -> anyhow::Result<u64> {
        Ok(self.audit(0).await?.last_seq)
    }

    async fn health(&self) -> Option<Health> {
        let t = Instant::now();
        let resp = self
            .http
            .get(format!("{}/healthz", self.web))
            .timeout(Duration::from_millis(1500))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        let v: serde_json::Value = resp.json().await.ok()?;
        Some(Health {
            pid: v["pid"].as_u64(),
            latency: t.elapsed(),
        })
    }

    async fn post(&self, path: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}{path}", self.web))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        if !r.status().is_success() {
            bail!("POST {path}: HTTP {}", r.status());
        }
        Ok(())
    }

    async fn set_mode(&self, mode: Mode) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/api/v1/mode", self.api))
            .json(&serde_json::json!({"mode": mode.as_str()}))
            .send()
            .await
            .context("POST /api/v1/mode")?;
        if !r.status().is_success() {
            bail!("setting mode {mode}: HTTP {}", r.status());
        }
        Ok(())
    }

    fn web_pid(&self) -> Option<u32> {
        match self.handle.supervisors.get("web")?.state() {
            ProcessState::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    fn known(&self) -> Vec<String> {
        self.handle
            .incidents()
            .into_iter()
            .map(|s| s.view.id.0)
            .collect()
    }

    async fn new_incident(
        &self,
        service: &str,
        known: &[String],
        within: Duration,
    ) -> Option<IncidentSnapshot> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(s) = self
                .handle
                .incidents()
                .into_iter()
                .find(|s| s.view.service == service && !known.contains(&s.view.id.0))
            {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    async fn incident_where(
        &self,
        id: &str,
        within: Duration,
        pred: impl Fn(&IncidentSnapshot) -> bool,
    ) -> Option<IncidentSnapshot> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(s) = self
                .handle
                .incidents()
                .into_iter()
                .find(|s| s.view.id.0 == id)
            {
                if pred(&s) {
                    return Some(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Wait until web answers healthz (from a new pid if `old_pid` is set).
    async fn recovered(
        &self,
        old_pid: Option<u64>,
        fast: bool,
        within: Duration,
    ) -> Option<Instant> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(h) = self.health().await {
                let new_proc = old_pid.is_none_or(|p| h.pid != Some(p));
                let fast_ok = !fast || h.latency < Duration::from_millis(SLOW_OVER_MS);
                if new_proc && fast_ok {
                    return Some(Instant::now());
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// Wait for web to be healthy with no open incident, so scenarios don't overlap.
    async fn settle(&self) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let open = self
                .handle
                .incidents()
                .iter()
                .any(|s| s.view.service == "web" && s.view.closed_at.is_none());
            if !open && self.health().await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("web did not settle (healthy, no open incident) within 30s")
    }
}

fn ms(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u64::MAX)
}

/// A fault on `web` healed by medic with `action` (as its audit log shows):
/// inject, detect, recover, close.
async fn healing_scenario(
    cx: &Ctx,
    name: &'static str,
    inject: impl std::future::Future<Output = anyhow::Result<()>>,
    new_process: bool,
    action: &str,
) -> anyhow::Result<ScenarioResult> {
    cx.settle().await?;
    let known = cx.known();
    let old = cx.health().await.and_then(|h| h.pid);
    let audit_from = cx.audit_seq().await?;
    let t0 = Instant::now();
    inject.await?;
    let mut r = ScenarioResult::pending(name, "healed");
    r.audit_from = audit_from;
    let Some(inc) = cx
        .new_incident("web", &known, Duration::from_secs(20))
        .await
    else {
        r.note = "no incident opened within 20s".into();
        return Ok(r);
    };
    r.detect_ms = Some(ms(t0, inc.first_seen));
    r.incident = Some(inc.view.id.0.clone());
    let rec = cx
        .recovered(
            if new_process { old } else { None },
            !new_process,
            Duration::from_secs(30),
        )
        .await;
    r.recover_ms = rec.map(|t| ms(t0, t));
    let closed = cx
        .incident_where(&inc.view.id.0, Duration::from_secs(30), |s| {
            s.view.closed_at.is_some()
        })
        .await;
    let was_closed = closed.is_some();
    match closed {
        Some(s) => {
            r.outcome = s.view.outcome.map_or("unknown", |o| o.as_str()).to_string();
            r.note = s.view.cause.clone();
        }
        None => r.note = "incident not closed within 30s".into(),
    }
    let log = cx.audit(audit_from).await?;
    let ran = log.for_incident(&inc.view.id.0);
    r.actions = labels(&ran);
    if was_closed && r.outcome == r.expected {
        if let Err(why) = check_actions(&ran, action) {
            r.outcome = "failed".into();
            r.note = why;
        }
    }
    if rec.is_none() {
        r.outcome = "failed".into();
        r.note = "service did not answer healthz again".into();
    }
    Ok(r)
}

pub async fn run(dir: Option<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::Builder::new().prefix("medic-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe().context("locating the medic binary")?;
    let exe = exe
        .to_str()
        .context("the medic binary's path is not UTF-8")?
        .to_string();
    let web_port = free_port()?;
    let crashy_port = free_port()?;
    let cfg_path = dir.join("medic.yaml");
    std::fs::write(&cfg_path, config_yaml(&exe, web_port, crashy_port))?;
    let cfg = medic_config::load(&cfg_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = dir.join("medic.db");
    if !json {
        eprintln!(
            "medic demo: working in {} (config medic.yaml, database medic.db)",
            dir.display()
        );
    }
    let d = daemon::start(daemon::DaemonOptions {
        mode: cfg.mode.unwrap_or(Mode::Aggressive),
        config: cfg,
        db: db.clone(),
        listen: "127.0.0.1:0".parse()?,
        log_dir: dir.clone(),
        seed: 7,
    })
    .await?;
    let store = match medic_store::Store::open(&db).await {
        Ok(s) => s,
        Err(e) => {
            d.handle.shutdown();
            let _ = d.join.await;
            return Err(anyhow::Error::new(e).context("opening the database to read the audit log"));
        }
    };
    let cx = Ctx {
        handle: d.handle.clone(),
        http: reqwest::Client::new(),
        web: format!("http://127.0.0.1:{web_port}"),
        api: format!("http://{}", d.handle.api_addr),
        store,
    };
    let result = scenarios(&cx, json).await;
    cx.handle.shutdown();
    match d.join.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("daemon failed")),
        Err(e) => bail!("daemon task: {e}"),
    }
    cx.store.close().await;
    let scenarios = result?;
    let report = medic_store::verify_audit(&db).await?;
    let audit = AuditSummary {
        records: report.records,
        verified: report.first_bad.is_none(),
    };
    let ok = audit.verified && scenarios.iter().all(|s| s.outcome == s.expected);
    let report = Report {
        scenarios,
        audit,
        dir: dir.display().to_string(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
        println!(
            "{}",
            if ok {
                "all scenarios reached their expected outcome"
            } else {
                "SOME SCENARIOS DID NOT REACH THEIR EXPECTED OUTCOME"
            }
        );
    }
    Ok(ok)
}

async fn scenarios(cx: &Ctx, json: bool) -> anyhow::Result<Vec<ScenarioResult>> {
    let say = |s: &str| {
        if !json {
            eprintln!("  … {s}");
        }
    };
    cx.settle().await?;
    let mut out = Vec::new();

    say("crash: kill -9 the supervised fixture");
    let pid = cx.web_pid().context("web is not running")?;
    out.push(
        healing_scenario(
            cx,
            "crash",
            async move {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(pid)?),
                    nix::sys::signal::Signal::SIGKILL,
                )?;
                Ok(())
            },
            true,
            "restart",
        )
        .await?,
    );

    say("hang: /healthz stops answering");
    out.push(healing_scenario(cx, "hang", cx.post("/fault/hang"), true, "restart").await?);

    say("error: /healthz returns 500");
    out.push(healing_scenario(cx, "error", cx.post("/fault/error"), true, "restart").await?);

    say("slow: latency over the limit -> shed load, then restore");
    let path = format!("/fault/slow?ms={SLOW_FAULT_MS}");
    let mut slow = healing_scenario(cx, "slow", cx.post(&path), false, "shed-load").await?;
    // The cause goes away; medic then undoes its mitigation after the hold.
    cx.post("/fault/clear").await?;
    reverted(cx, &mut slow, Duration::from_secs(15)).await?;
    out.push(slow);

    say("dry-run: the same crash with automation in dry-run");
    out.push(dry_run(cx).await?);

    say("crash-loop: a service that exits at start");
    out.push(crash_loop(cx).await?);
    Ok(out)
}

/// The slow scenario's second half, from medic's audit log: the shed-load it
/// ran for the incident must be reverted by a `restore-load` that succeeded
/// (and the fixture must then serve unshed). Appends the revert to ACTIONS.
async fn reverted(cx: &Ctx, r: &mut ScenarioResult, within: Duration) -> anyhow::Result<()> {
    let Some(incident) = r.incident.clone() else {
        return Ok(()); // already failed: no incident
    };
    let end = Instant::now() + within;
    let reverts = loop {
        let log = cx.audit(r.audit_from).await?;
        let ran = log.for_incident(&incident);
        let reverts: Vec<AuditedAction> = log.reverts("web", &ran).into_iter().cloned().collect();
        if reverts.iter().any(|a| a.status.is_some()) || Instant::now() >= end {
            break reverts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    r.actions.extend(reverts.iter().map(AuditedAction::label));
    let restored = reverts
        .iter()
        .any(|a| a.action == "restore-load" && a.succeeded());
    if r.outcome != r.expected {
        return Ok(()); // keep the first failure's note
    }
    if !restored {
        r.outcome = "failed".into();
        r.note = format!(
            "shed-load was not reverted: no successful restore-load in the audit log within {}s",
            within.as_secs()
        );
    } else if !wait_unshed(cx, Duration::from_secs(5)).await {
        r.outcome = "failed".into();
        r.note = "restore-load succeeded but the fixture still sheds load".into();
    }
    Ok(())
}

async fn wait_unshed(cx: &Ctx, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        let state = cx
            .http
            .get(format!("{}/admin/state", cx.web))
            .send()
            .await
            .ok();
        if let Some(r) = state {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["shedding"] == serde_json::Value::Bool(false) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn dry_run(cx: &Ctx) -> anyhow::Result<ScenarioResult> {
    cx.settle().await?;
    cx.set_mode(Mode::DryRun).await?;
    let known = cx.known();
    let pid = cx.web_pid().context("web is not running")?;
    let audit_from = cx.audit_seq().await?;
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid)?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let mut r = ScenarioResult::pending("dry-run", "would-act");
    let Some(inc) = cx
        .new_incident("web", &known, Duration::from_secs(20))
        .await
    else {
        r.note = "no incident opened".into();
        cx.set_mode(Mode::Aggressive).await?;
        return Ok(r);
    };
    r.detect_ms = Some(ms(t0, inc.first_seen));
    let would = cx
        .incident_where(&inc.view.id.0, Duration::from_secs(10), |s| {
            s.view.timeline.iter().any(|t| t.kind == "would-act")
        })
        .await;
    // Hold the pass open: nothing may be done, the service must stay down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still_down = cx.health().await.is_none() && cx.web_pid().is_none();
    // What medic's records say about the pass: would-act decisions, no action.
    let log = cx.audit(audit_from).await?;
    let ran_in_pass = log.for_incident(&inc.view.id.0);
    let acted = !ran_in_pass.is_empty();
    r.actions = log.would_act(&inc.view.id.0);
    r.actions.extend(labels(&ran_in_pass));
    let pass_end = log.last_seq;
    r.outcome = match (would.is_some(), still_down, acted) {
        (true, true, false) => "would-act".into(),
        (false, _, _) => "failed".into(),
        (_, false, _) => "failed: service came back during dry-run".into(),
        (_, _, true) => "failed: acted in dry-run".into(),
    };
    // End of the pass: back to aggressive, and medic heals the open incident.
    cx.set_mode(Mode::Aggressive).await?;
    let healed = cx
        .incident_where(&inc.view.id.0, Duration::from_secs(30), |s| {
            s.view.closed_at.is_some()
        })
        .await;
    let after = healed
        .and_then(|s| s.view.outcome)
        .map_or("not closed", |o| o.as_str());
    let after_log = cx.audit(pass_end).await?;
    let by = labels(&after_log.for_incident(&inc.view.id.0));
    r.note = if by.is_empty() {
        format!("service stayed down for the whole pass; after it: {after}")
    } else {
        format!(
            "service stayed down for the whole pass; after it: {after} by {}",
            by.join(", ")
        )
    };
    Ok(r)
}

async fn crash_loop(cx: &Ctx) -> anyhow::Result<ScenarioResult> {
    cx.settle().await?;
    let known = cx.known();
    let sup = cx
        .handle
        .supervisors
        .get("crashy")
        .context("no crashy service")?;
    let audit_from = cx.audit_seq().await?;
    let t0 = Instant::now();
    sup.start().await?;
    let mut r = ScenarioResult::pending("crash-loop", "escalated");
    let Some(inc) = cx
        .new_incident("crashy", &known, Duration::from_secs(20))
        .await
    else {
        r.note = "no incident opened".into();
        return Ok(r);
    };
    r.detect_ms = Some(ms(t0, inc.first_seen));
    let esc = cx
        .incident_where(&inc.view.id.0, Duration::from_secs(60), |s| {
            s.view.phase == Phase::ManualIntervention
        })
        .await;
    r.actions = labels(&cx.audit(audit_from).await?.for_incident(&inc.view.id.0));
    if let Some(s) = esc {
        r.outcome = s.view.outcome.map_or("unknown", |o| o.as_str()).to_string();
        r.note = s
            .view
            .timeline
            .iter()
            .rev()
            .find(|t| t.kind == "escalated")
            .map(|t| t.message.clone())
            .unwrap_or_default();
    } else {
        r.note = "not escalated within 60s".into();
    }
    sup.stop().await;
    Ok(r)
}

fn print_table(r: &Report) {
    let fmt = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}"));
    println!();
    println!(
        "{:<11} {:<10} {:<10} {:>9} {:>10}  {:<28} NOTE",
        "SCENARIO", "EXPECTED", "OUTCOME", "DETECT_MS", "RECOVER_MS", "ACTIONS"
    );
    for s in &r.scenarios {
        let actions = if s.actions.is_empty() {
            "-".to_string()
        } else {
            s.actions.join(", ")
        };
        println!(
            "{:<11} {:<10} {:<10} {:>9} {:>10}  {:<28} {}",
            s.name,
            s.expected,
            s.outcome,
            fmt(s.detect_ms),
            fmt(s.recover_ms),
            actions,
            s.note
        );
    }
    println!();
    println!(
        "audit: {} records, chain {}",
        r.audit.records,
        if r.audit.verified {
            "verified"
        } else {
            "BROKEN"
        }
    );
    println!("database: {}/medic.db", r.dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, kind: &str, payload: serde_json::Value) -> medic_store::AuditRecord {
        medic_store::AuditRecord {
            seq,
            ts: "2026-01-01T00:00:00Z".into(),
            kind: kind.into(),
            payload: payload.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn intent(
        seq: u64,
        id: &str,
        inc: &str,
        action: &str,
        revert_of: Option<&str>,
    ) -> medic_store::AuditRecord {
        let mut p = serde_json::json!({"action_id": id, "incident": inc, "service": "web", "action": action});
        if let Some(of) = revert_of {
            p["revert_of"] = of.into();
        }
        rec(seq, "action.intent", p)
    }

    fn outcome(seq: u64, id: &str, status: &str) -> medic_store::AuditRecord {
        rec(
            seq,
            "action.outcome",
            serde_json::json!({"action_id": id, "status": status}),
        )
    }

    #[test]
    fn actions_come_from_intents_and_their_outcomes() {
        let log = AuditLog::from_records(&[
            rec(1, "medic.started", serde_json::json!({})),
            intent(2, "act-1", "inc-1", "shed-load", None),
            outcome(3, "act-1", "succeeded"),
            intent(4, "act-2", "", "restore-load", Some("shed-load")),
            outcome(5, "act-2", "succeeded"),
            intent(6, "act-3", "inc-2", "restart", None),
            outcome(7, "act-3", "failed"),
            intent(8, "act-4", "inc-2", "restart", None),
        ])
        .unwrap();
        assert_eq!(log.last_seq, 8);
        let slow = log.for_incident("inc-1");
        assert_eq!(labels(&slow), ["shed-load"]);
        assert_eq!(labels(&log.reverts("web", &slow)), ["restore-load"]);
        assert!(log.reverts("db", &slow).is_empty());
        assert_eq!(check_actions(&slow, "shed-load"), Ok(()));
        let e = check_actions(&slow, "restart").unwrap_err();
        assert!(e.contains("medic ran: shed-load"), "{e}");
        let two = log.for_incident("inc-2");
        assert_eq!(labels(&two), ["restart (failed)", "restart (no outcome)"]);
        assert!(check_actions(&two, "restart").is_err(), "none succeeded");
        assert!(check_actions(&log.for_incident("inc-9"), "restart").is_err());
    }

    #[test]
    fn a_restart_instead_of_shed_load_fails_the_slow_expectation() {
        let log = AuditLog::from_records(&[
            intent(1, "act-1", "inc-1", "restart", None),
            outcome(2, "act-1", "succeeded"),
        ])
        .unwrap();
        let ran = log.for_incident("inc-1");
        let e = check_actions(&ran, "shed-load").unwrap_err();
        assert_eq!(
            e,
            "expected shed-load, the audit log says medic ran: restart"
        );
        // A revert that precedes the action it would undo is not its revert.
        let log = AuditLog::from_records(&[
            intent(1, "act-1", "", "restore-load", Some("shed-load")),
            outcome(2, "act-1", "succeeded"),
            intent(3, "act-2", "inc-1", "shed-load", None),
        ])
        .unwrap();
        assert!(log.reverts("web", &log.for_incident("inc-1")).is_empty());
    }

    #[test]
    fn dry_run_decisions_read_as_would_act() {
        let log = AuditLog::from_records(&[
            rec(1, "decision", serde_json::json!({"incident": "inc-5", "verdict": "would-act", "action": "restart"})),
            rec(2, "decision", serde_json::json!({"incident": "inc-5", "verdict": "held", "action": "restart"})),
            rec(3, "decision", serde_json::json!({"incident": "inc-6", "verdict": "would-act", "action": "shed-load"})),
        ])
        .unwrap();
        assert_eq!(log.would_act("inc-5"), ["would restart"]);
        assert_eq!(log.would_act("inc-6"), ["would shed-load"]);
        assert!(AuditLog::from_records(&[medic_store::AuditRecord {
            payload: "not json".into(),
            ..rec(9, "action.intent", serde_json::json!({}))
        }])
        .is_err());
    }
}
