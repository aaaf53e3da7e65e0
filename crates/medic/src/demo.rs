//! `medic demo`: a supervised fixture, faults injected one after another, the
//! healing loop measured end to end, the audit chain verified at the end.
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
    actions: Vec<String>,
    note: String,
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
        }
    }
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
}

struct Health {
    pid: Option<u64>,
    latency: Duration,
}

impl Ctx {
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

/// A fault on `web` healed by medic: inject, detect, recover, close.
async fn healing_scenario(
    cx: &Ctx,
    name: &'static str,
    inject: impl std::future::Future<Output = anyhow::Result<()>>,
    new_process: bool,
) -> anyhow::Result<ScenarioResult> {
    cx.settle().await?;
    let known = cx.known();
    let old = cx.health().await.and_then(|h| h.pid);
    let t0 = Instant::now();
    inject.await?;
    let mut r = ScenarioResult::pending(name, "healed");
    let Some(inc) = cx
        .new_incident("web", &known, Duration::from_secs(20))
        .await
    else {
        r.note = "no incident opened within 20s".into();
        return Ok(r);
    };
    r.detect_ms = Some(ms(t0, inc.first_seen));
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
    match closed {
        Some(s) => {
            r.outcome = s.view.outcome.unwrap_or("unknown").to_string();
            r.actions = s.view.actions.clone();
            r.note = s.view.cause.clone();
        }
        None => r.note = "incident not closed within 30s".into(),
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
    let cx = Ctx {
        handle: d.handle.clone(),
        http: reqwest::Client::new(),
        web: format!("http://127.0.0.1:{web_port}"),
        api: format!("http://{}", d.handle.api_addr),
    };
    let result = scenarios(&cx, json).await;
    cx.handle.shutdown();
    match d.join.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("daemon failed")),
        Err(e) => bail!("daemon task: {e}"),
    }
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
        )
        .await?,
    );

    say("hang: /healthz stops answering");
    out.push(healing_scenario(cx, "hang", cx.post("/fault/hang"), true).await?);

    say("error: /healthz returns 500");
    out.push(healing_scenario(cx, "error", cx.post("/fault/error"), true).await?);

    say("slow: latency over the limit -> shed load, then restore");
    let path = format!("/fault/slow?ms={SLOW_FAULT_MS}");
    let mut slow = healing_scenario(cx, "slow", cx.post(&path), false).await?;
    // The cause goes away; medic then undoes its mitigation after the hold.
    cx.post("/fault/clear").await?;
    let restored = wait_unshed(cx, Duration::from_secs(15)).await;
    if restored {
        slow.actions.push("restore-load".into());
    } else {
        slow.outcome = "failed".into();
        slow.note = "load shedding was not reverted".into();
    }
    out.push(slow);

    say("dry-run: the same crash with automation in dry-run");
    out.push(dry_run(cx).await?);

    say("crash-loop: a service that exits at start");
    out.push(crash_loop(cx).await?);
    Ok(out)
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
    let snap = cx
        .incident_where(&inc.view.id.0, Duration::from_secs(1), |_| true)
        .await;
    let acted = snap.as_ref().is_some_and(|s| !s.view.actions.is_empty());
    if let Some(w) = &would {
        r.actions = w
            .view
            .timeline
            .iter()
            .filter(|t| t.kind == "would-act")
            .map(|t| {
                let action = t.message.split("would run ").nth(1).unwrap_or(&t.message);
                format!("would {}", action.split(' ').next().unwrap_or(action))
            })
            .collect();
    }
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
    let after = healed.and_then(|s| s.view.outcome).unwrap_or("not closed");
    r.note = format!("service stayed down for the whole pass; after it: {after}");
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
    if let Some(s) = esc {
        r.outcome = s.view.outcome.unwrap_or("unknown").to_string();
        r.actions = s.view.actions.clone();
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
