//! The daemon: the only driver of the engine outside the simulator.
//!
//! One task owns the [`Engine`]. Probes, executors and the API talk to it
//! through one bounded channel; it drains every command after every input
//! (audit first, then actions), exactly as the core's contract says.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use medic_api::governance::{Query, QueryAnswer, WallSync};
use medic_api::{ApiState, ControlRequest, Metrics};
use medic_config::Config;
use medic_core::{
    Ack, ActionFailure, ActionFailureKind, ActionId, ActionRequest, ActionStage, ActionStatus,
    Actor, Command, Engine, IncidentView, Input, Mode, MonoTime, Notice, Notification,
    OperatorCommand, OperatorError, ProbeReport, Role,
};
use medic_exec::{failpoint, procfs, ProcessState, Supervisor};
use medic_store::{IncidentRecord, Store, TimelineEntry};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Bound of the engine's input queue: producers wait when it is full.
const INPUT_QUEUE: usize = 1024;
/// Queued inputs handled before the engine's next deadline is recomputed.
const BATCH: usize = 255;
/// Engine inputs handled before one drain (one audit transaction, one
/// snapshot write) under load.
const STEP_BATCH: usize = 64;

/// An operator command's reply channel and the engine's answer.
type OperatorReply = (
    oneshot::Sender<Result<Ack, OperatorError>>,
    Result<Ack, OperatorError>,
);

pub struct DaemonOptions {
    pub config: Config,
    pub mode: Mode,
    pub db: PathBuf,
    pub listen: SocketAddr,
    /// Where supervised processes' logs go.
    pub log_dir: PathBuf,
    pub seed: u64,
}

pub(crate) enum Msg {
    /// A probe run (or a signal rule's or alert's report, unstamped).
    Probe(crate::probes::ProbeRun),
    /// A signal rule's value, evidence for the root-cause ranking (issue 9).
    Sample(medic_signal::SignalSample),
    /// The AI request for diagnosis generation `.0` ended: the diagnosis
    /// with the suggestions appended, or `None` (none, an error, a timeout).
    Ai(u64, Option<medic_core::DiagnosisReport>),
    /// The accepted candidate patterns in the store (at start, and after
    /// `medic patterns accept|reject` changed them), for the ranking.
    Accepted(Vec<medic_config::Pattern>),
    Outcome {
        id: ActionId,
        result: Result<String, ActionFailure>,
    },
    /// An operator command as `Actor`; the reply is the engine's answer.
    Operate(
        Actor,
        OperatorCommand,
        oneshot::Sender<Result<Ack, OperatorError>>,
    ),
    /// A read of engine state (approvals, pauses, explain).
    Query(Query, oneshot::Sender<QueryAnswer>),
    /// A change recorded on a service (`POST /api/v1/changes`, issue 9).
    Change(
        medic_api::changes::Change,
        oneshot::Sender<Result<medic_api::changes::ChangeReply, medic_api::changes::ChangeRefusal>>,
    ),
    /// The host's wall clock, for freeze windows and timing risk.
    WallClock,
    /// Freeze windows expanded from their cron schedules.
    Freeze(Vec<medic_core::FreezeWindow>),
    /// Run the named drill, as the named actor (see `crate::drill`).
    Drill(
        String,
        String,
        oneshot::Sender<Result<String, crate::drill::Refusal>>,
    ),
    /// Run the next drill of the schedule.
    DrillScheduled(
        String,
        oneshot::Sender<Result<String, crate::drill::Refusal>>,
    ),
    /// A drill finished (healed, or not).
    DrillDone(crate::drill::DrillOutcome),
    /// Resume drills after a failed one, as the named actor.
    DrillReset(String, oneshot::Sender<String>),
    DrillList(oneshot::Sender<crate::drill::DrillsView>),
    /// The samples of a staged canary's judge window (issue 10).
    Canary(medic_core::CanarySamples),
    /// The election state changed, or its periodic re-check (issue 13).
    Ha,
}

/// An incident as last published by the engine, with host times.
#[derive(Clone, Debug)]
pub struct IncidentSnapshot {
    pub view: IncidentView,
    pub first_seen: Instant,
}

/// Control of a running daemon.
#[derive(Clone)]
pub struct DaemonHandle {
    pub api_addr: SocketAddr,
    pub supervisors: BTreeMap<String, Supervisor>,
    incidents: Arc<Mutex<BTreeMap<String, IncidentSnapshot>>>,
    shutdown: watch::Sender<bool>,
}

impl DaemonHandle {
    /// Every incident seen by this daemon run, oldest first.
    pub fn incidents(&self) -> Vec<IncidentSnapshot> {
        let map = match self.incidents.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<IncidentSnapshot> = map.values().cloned().collect();
        v.sort_by_key(|s| s.first_seen);
        v
    }

    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

pub struct Daemon {
    pub handle: DaemonHandle,
    pub join: JoinHandle<anyhow::Result<()>>,
}

fn wall_clock() -> Input {
    let now = OffsetDateTime::now_utc();
    let unix_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let offset = time::UtcOffset::local_offset_at(now)
        .map(|o| i32::from(o.whole_minutes()))
        .ok();
    Input::WallClock {
        unix_ms,
        utc_offset_minutes: offset,
    }
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

struct Clock {
    start: Instant,
    wall: OffsetDateTime,
}

impl Clock {
    fn now(&self) -> MonoTime {
        MonoTime::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn wall(&self, t: MonoTime) -> String {
        (self.wall + Duration::from_millis(t.as_millis()))
            .format(&Rfc3339)
            .unwrap_or_default()
    }
}

/// Start everything: store, API, supervised processes, probes, engine loop.
pub async fn start(opts: DaemonOptions) -> anyhow::Result<Daemon> {
    // `store.url` (Postgres) when configured, else the SQLite file `db`.
    let store_target = match &opts.config.store_url {
        Some(url) => medic_store::StoreTarget::Postgres(url.clone()),
        None => medic_store::StoreTarget::Sqlite(opts.db.clone()),
    };
    // With `ha:` on Postgres a member starts even while the shared store is
    // unreachable (fail safe, docs/ha.md): it probes and detects, records
    // locally and acts once the store answers.
    let (store, offline) = match (&store_target, &opts.config.ha) {
        (medic_store::StoreTarget::Postgres(url), Some(h)) => {
            // Bounds how long one store operation waits for a connection
            // (a busy pool or a server that does not answer).
            let wait = (h.lease_ttl / 3).max(Duration::from_secs(2));
            let store = Store::open_postgres_lazy(url, wait)
                .with_context(|| format!("opening the store {}", store_target.describe()))?;
            match store.prepare().await {
                Ok(()) => (store, false),
                Err(e) => {
                    if opts.config.services.iter().any(|s| s.process.is_some()) {
                        return Err(anyhow::anyhow!(e)).with_context(|| {
                            format!(
                                "opening the store {} (supervised processes are recorded there: \
                                 medic cannot start without it)",
                                store_target.describe()
                            )
                        });
                    }
                    tracing::error!(store = %store_target.describe(), error = %e,
                        "ha: the shared store is unreachable at start; not acting (store_unreachable) until it answers");
                    (store, true)
                }
            }
        }
        _ => (
            Store::open_target(&store_target)
                .await
                .with_context(|| format!("opening the store {}", store_target.describe()))?,
            false,
        ),
    };
    let ready = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>(INPUT_QUEUE);
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlRequest>(64);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Signal sources (metrics, logs, alerts) report as virtual probes.
    let (hooks, sig_events) = medic_signal::SignalHooks::new();
    // Rule values feed the root-cause ranking (issue 9) when there is a
    // graph to rank across.
    let hooks = if opts.config.dependencies.is_empty() {
        hooks
    } else {
        let (sample_tx, mut sample_rx) = mpsc::channel(medic_signal::SAMPLE_QUEUE);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(s) = sample_rx.recv().await {
                if tx.send(Msg::Sample(s)).await.is_err() {
                    return;
                }
            }
        });
        hooks.with_samples(sample_tx)
    };
    // One registry: the signal layer's counters are read from its atomics at
    // scrape time.
    let metrics = {
        let sig = hooks.metrics.clone();
        let m = Arc::new(Metrics::with_sources(vec![Arc::new(move || {
            sig.snapshot()
        })]));
        let sig = hooks.metrics.clone();
        m.add_source(Arc::new(move || sig.families()));
        m
    };
    // Reports of signal rules and alerts (virtual probes), and the probe
    // loops' runs, each through a queue of its own into the daemon's.
    let (rep_tx, mut rep_rx) = mpsc::channel::<ProbeReport>(INPUT_QUEUE);
    let (probe_reports, mut run_rx) = mpsc::channel::<crate::probes::ProbeRun>(INPUT_QUEUE);
    {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let run = tokio::select! {
                    Some(r) = rep_rx.recv() => crate::probes::ProbeRun::unstamped(r),
                    Some(r) = run_rx.recv() => r,
                    else => return,
                };
                if tx.send(Msg::Probe(run)).await.is_err() {
                    return;
                }
            }
        });
    }
    let console = Arc::new(medic_api::ui::Console::new(
        opts.config
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        opts.config
            .signals
            .rules
            .iter()
            .map(|r| medic_api::ui::RuleRow {
                name: r.name.clone(),
                service: r.service.clone(),
                source: r.source.clone(),
                check: match &r.check {
                    medic_config::Check::Threshold { above, below } => format!(
                        "threshold{}{}",
                        above.map(|a| format!(" above {a}")).unwrap_or_default(),
                        below.map(|b| format!(" below {b}")).unwrap_or_default()
                    ),
                    medic_config::Check::Detector { name, threshold } => {
                        format!("detector {name} ≥ {threshold}")
                    }
                },
            })
            .collect(),
        Some(store_target.clone()),
    ));
    tokio::spawn(audit_signal_events(
        store.clone(),
        sig_events,
        metrics.clone(),
        console.clone(),
    ));
    medic_signal::spawn_sources(
        &opts.config.signals,
        rep_tx.clone(),
        shutdown_rx.clone(),
        &hooks,
    );

    // Notifications: the outbox and its delivery task (issue 12).
    // With `ha:` the notification outbox is delivered by the leader only.
    let (acting_tx, acting_rx) = watch::channel(false);
    let outbox = crate::notify::Outbox::start(
        &store,
        opts.config.notify.as_ref(),
        shutdown_rx.clone(),
        opts.config.ha.as_ref().map(|_| acting_rx),
    )?;

    let traces = crate::trace::Traces::start(
        opts.config.otlp.as_ref(),
        opts.db.parent().unwrap_or(std::path::Path::new(".")),
        shutdown_rx.clone(),
    )?;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding the API to {}", opts.listen))?;
    let api_addr = listener.local_addr()?;
    let auth = match opts.config.auth {
        medic_config::AuthMode::Tokens => {
            let n = match store.active_tokens().await {
                Ok(n) => n,
                Err(e) if offline => {
                    tracing::warn!(error = %e, "auth: the store is unreachable; API tokens are checked once it answers");
                    1
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                tracing::warn!(
                    "auth: no API token exists yet; every API route but /healthz and /readyz \
                     answers 401 until one is created with `medic token create`"
                );
            }
            medic_api::Auth::Tokens
        }
        medic_config::AuthMode::None => {
            tracing::warn!(
                "auth: none: the API is unauthenticated; every caller acts as `anonymous` \
                 with the admin role"
            );
            medic_api::Auth::None
        }
    };
    let api_state = ApiState {
        store: store.clone(),
        metrics: metrics.clone(),
        ready: ready.clone(),
        control: ctl_tx,
        auth,
    };
    let app = medic_api::router(api_state.clone())
        .merge(medic_signal::alertmanager_router(
            &opts.config.signals,
            rep_tx,
            &hooks,
        ))
        .merge(crate::drill::router(tx.clone(), api_state.clone()))
        .merge(medic_notify::api::router(outbox.api(), api_state.clone()));
    let app = match &opts.config.ha {
        Some(h) => app.merge(crate::cluster::router(h.clone(), api_state.clone())),
        None => app,
    };
    let app = medic_api::json_errors(app)
        // The web console answers HTML, also for its errors: outside the
        // JSON error layer.
        .merge(medic_api::ui::router(api_state, console.clone()));
    // The notifier's counters (per channel) in the one registry, and the
    // outbox's depth (medic_outbox_depth).
    {
        let stats = outbox.api().stats;
        let s = stats.clone();
        metrics.add_source(Arc::new(move || s.families()));
        let gauge = metrics.outbox();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => gauge.store(
                        stats.depth.load(Ordering::Relaxed),
                        Ordering::Relaxed,
                    ),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
    }
    let mut api_shutdown = shutdown_rx.clone();
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_shutdown.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "API server failed");
        }
    });
    tokio::spawn(forward_control(ctl_rx, tx.clone()));

    // Adopts the processes a killed medic left running; starts the others.
    let supervisors =
        crate::lifecycle::start_supervisors(&opts.config, &store, &opts.log_dir, offline).await?;

    let clock = Arc::new(Clock {
        start: Instant::now(),
        wall: OffsetDateTime::now_utc(),
    });
    let prober = medic_probe::Prober::new().context("building the HTTP client")?;
    let hints = crate::lifecycle::Hints::default();
    crate::probes::spawn_all(
        &opts.config,
        &supervisors,
        &prober,
        &probe_reports,
        &metrics,
        &hints,
        &shutdown_rx,
    );

    let instance = uuid::Uuid::now_v7().simple().to_string();
    let mut engine_cfg = opts.config.engine.clone();
    engine_cfg.mode = opts.mode;
    engine_cfg.seed = opts.seed;
    engine_cfg.instance = instance[..12.min(instance.len())].to_string();
    let autostarted: Vec<String> = opts
        .config
        .services
        .iter()
        .filter(|s| s.process.as_ref().is_some_and(|p| p.autostart))
        .map(|s| s.name.clone())
        .collect();
    // High availability (issue 13): an election loop on etcd; the engine
    // starts as a follower (dry-run, no shared writes) and is rebuilt from
    // the shared store when this instance is elected.
    let ha = opts.config.ha.as_ref().map(|h| {
        let member = h
            .member
            .clone()
            .unwrap_or_else(|| format!("medic-{}", &instance[..12.min(instance.len())]));
        let (state, _join) = medic_ha::spawn(
            medic_ha::ElectorConfig {
                endpoints: h.etcd.clone(),
                election: h.election.clone(),
                prefix: h.prefix.clone(),
                member,
                api: api_addr.to_string(),
                ttl: h.lease_ttl,
                margin: h.drift_margin,
            },
            shutdown_rx.clone(),
        );
        let base = opts.db.parent().unwrap_or(std::path::Path::new("."));
        // A follower presents token 0: once any leader has claimed the
        // store, every write this instance would make is rejected there.
        store.set_fence(Some(0));
        let ctl = crate::ha::HaCtl {
            cfg: h.clone(),
            state,
            acting: None,
            acting_tx,
            fence_file: base.join(&h.fence_file),
            no_fence: std::env::var(crate::ha::UNSAFE_NO_FENCE).is_ok_and(|v| v == "1"),
            store_down: offline,
            cell: metrics.ha().clone(),
            etcd: None,
            held: BTreeMap::new(),
            spool: crate::ha::Spool::open(base.join("ha.journal.jsonl"), crate::ha::SPOOL_MAX),
            retry_at: None,
            backoff: Duration::ZERO,
            replayed: 0,
        };
        if ctl.spool.len() > 0 {
            tracing::warn!(
                events = ctl.spool.len(),
                "ha: local journal events wait for the shared store"
            );
        }
        if ctl.no_fence {
            tracing::error!(
                "{}=1: fencing is OFF (a deliberate bug for tests); a stale leader can act",
                crate::ha::UNSAFE_NO_FENCE
            );
        }
        ctl.publish();
        ctl
    });
    let first_mode = if ha.is_some() {
        Mode::DryRun
    } else {
        opts.mode
    };
    let engine = build_engine(&store, &engine_cfg, &autostarted, first_mode, clock.now()).await;
    if ha.is_none() {
        let open: Vec<String> = engine
            .open_incidents()
            .iter()
            .map(|v| v.id.0.clone())
            .collect();
        close_interrupted(&store, &open, &metrics).await?;
    }
    let incidents = Arc::new(Mutex::new(BTreeMap::new()));
    let drills = crate::drill::DrillState::new(
        opts.config.drills.clone(),
        crate::drill::stopped_by(&store).await,
    );
    tokio::spawn(crate::drill::schedule(
        opts.config.drills.clone(),
        tx.clone(),
        shutdown_rx.clone(),
    ));
    let http = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    if let Some(h) = &ha {
        let mut state = h.state.clone();
        let every = h.cfg.lease_ttl / 10;
        let tx = tx.clone();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = state.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if tx.send(Msg::Ha).await.is_err() {
                    return;
                }
            }
        });
    }
    let is_ha = ha.is_some();
    let started = clock.wall;
    let lp = EngineLoop {
        engine,
        ha,
        fenced_off: false,
        engine_cfg,
        autostarted,
        start_mode: opts.mode,
        clock,
        store: store.clone(),
        metrics,
        tx: tx.clone(),
        actions: crate::lifecycle::Actions::new(&opts.config, &supervisors, http.clone(), hints),
        http,
        outbox,
        traces,
        incidents: incidents.clone(),
        action_names: BTreeMap::new(),
        running: BTreeMap::new(),
        saved_generation: None,
        gauges_at: None,
        console,
        drills,
        rca: match crate::rca::RcaState::new(&opts.config) {
            Some(mut r) => {
                match store.pattern_outcomes().await {
                    Ok(rows) => r.load_learned(rows),
                    Err(e) => tracing::warn!(error = %e, "reading learned pattern outcomes failed"),
                }
                restore_changes(&store, started, &mut r, "start").await;
                Some(r)
            }
            None => None,
        },
        opened: BTreeMap::new(),
        human_action: BTreeMap::new(),
        canaries: opts
            .config
            .services
            .iter()
            .filter_map(|s| s.canary.clone().map(|c| (s.name.clone(), c)))
            .collect(),
        ai: ai_endpoint(opts.config.ai.as_ref()),
        diag_generation: 0,
        ai_flight: crate::ai::InFlight::default(),
        services_names: opts
            .config
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        approve_band: opts.config.engine.governance.autonomy.approve,
        supervisors: supervisors.clone(),
    };
    // Accepted candidate patterns (issue 9): loaded at start, and again
    // whenever `medic patterns accept|reject` changes the accepted set (the
    // CLI writes the store; this looks every 2 s).
    if !opts.config.dependencies.is_empty() {
        let (store, tx, mut stop) = (store.clone(), tx.clone(), shutdown_rx.clone());
        tokio::spawn(async move {
            let mut last: Option<Vec<i64>> = None;
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let all = match store.candidate_patterns().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading candidate patterns failed");
                        continue;
                    }
                };
                let ids: Vec<i64> = all
                    .iter()
                    .filter(|c| c.status == "accepted")
                    .map(|c| c.id)
                    .collect();
                if last.as_ref() != Some(&ids) {
                    last = Some(ids);
                    let p = crate::rca::accepted_patterns(&all);
                    if tx.send(Msg::Accepted(p)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // With `ha:` only the leader writes to the shared store (`ha.elected`).
    if !is_ha {
        store
            .append_audit(
                &now_rfc3339(),
                "medic.started",
                &serde_json::json!({"mode": opts.mode.as_str(), "services": opts.config.services.len()})
                    .to_string(),
            )
            .await?;
        lp.metrics.inc_audit();
    }
    // The engine extrapolates wall time from monotonic time; resend it every
    // minute so clock jumps (NTP, DST) are picked up, and the freeze windows
    // of the next 8 days (expanded from cron in their time zones) every hour.
    {
        let tx = tx.clone();
        let mut shutdown = shutdown_rx.clone();
        let freezes = opts.config.freeze_windows.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = shutdown.changed() => return,
                }
                if tx.send(Msg::WallClock).await.is_err() {
                    return;
                }
                if !freezes.is_empty() && n.is_multiple_of(60) {
                    let now_ms =
                        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                            .unwrap_or(i64::MAX);
                    let windows = freezes
                        .iter()
                        .flat_map(|f| f.windows(now_ms, Duration::from_secs(8 * 86_400)))
                        .collect();
                    if tx.send(Msg::Freeze(windows)).await.is_err() {
                        return;
                    }
                }
                n += 1;
            }
        });
    }
    ready.store(true, Ordering::SeqCst);
    tracing::info!(api = %api_addr, mode = %opts.mode, "medic running");
    let sups = supervisors.clone();
    let join = tokio::spawn(async move {
        let r = lp.run(rx, shutdown_rx).await;
        ready.store(false, Ordering::SeqCst);
        for s in sups.values() {
            s.stop().await;
        }
        if !is_ha {
            let _ = store
                .append_audit(&now_rfc3339(), "medic.stopped", "{}")
                .await;
        }
        store.close().await;
        r
    });
    Ok(Daemon {
        handle: DaemonHandle {
            api_addr,
            supervisors,
            incidents,
            shutdown: shutdown_tx,
        },
        join,
    })
}

/// Muted and unmuted noisy rules are recorded in the audit log.
async fn audit_signal_events(
    store: Store,
    mut rx: mpsc::Receiver<medic_signal::SignalEvent>,
    metrics: Arc<Metrics>,
    console: Arc<medic_api::ui::Console>,
) {
    while let Some(ev) = rx.recv().await {
        let (kind, payload) = match ev {
            medic_signal::SignalEvent::RuleMuted {
                rule,
                service,
                rate_per_hour,
                limit_per_hour,
                until_unix_ms,
            } => {
                let until = i64::try_from(until_unix_ms)
                    .ok()
                    .and_then(medic_store::record::rfc3339_ms);
                console.set_muted(&rule, Some(until.clone().unwrap_or_default()));
                (
                    "signal.rule_muted",
                    serde_json::json!({"rule": rule, "service": service, "rate_per_hour": rate_per_hour,
                    "limit_per_hour": limit_per_hour,
                    "until": until,
                    "v": 1}),
                )
            }
            medic_signal::SignalEvent::RuleUnmuted { rule, service } => {
                console.set_muted(&rule, None);
                (
                    "signal.rule_unmuted",
                    serde_json::json!({"rule": rule, "service": service}),
                )
            }
        };
        match store
            .append_audit(&now_rfc3339(), kind, &payload.to_string())
            .await
        {
            Ok(_) => metrics.inc_audit(),
            Err(e) => tracing::error!(error = %e, kind, "audit append failed"),
        }
    }
}

/// A fresh engine: the wall clock, the start phase of each process medic
/// started, then the safety state restored from the store (see
/// [`restore_state`]) in `mode` or a more restrictive saved one.
async fn build_engine(
    store: &Store,
    cfg: &medic_core::EngineConfig,
    autostarted: &[String],
    mode: Mode,
    now: MonoTime,
) -> Engine {
    let mut cfg = cfg.clone();
    cfg.mode = mode;
    let mut engine = Engine::new(cfg, now);
    engine.handle_input(now, wall_clock());
    for service in autostarted {
        engine.handle_input(
            now,
            Input::ProcessStarted {
                service: service.clone(),
            },
        );
    }
    restore_state(store, &mut engine, mode, now).await;
    engine
}

/// Restore the safety state saved by the previous run: pauses, approvals,
/// budgets, cooldowns, disabled autoheal, the mass latch, open incidents and
/// in-flight actions (reconciled, never re-run). The global mode becomes the
/// more restrictive of the saved one and the one medic was started with, so a
/// restart never lifts an operator's `disabled` or `dry-run`. A saved state
/// that cannot be read or restored starts medic in dry-run, loudly.
async fn restore_state(store: &Store, engine: &mut Engine, start_mode: Mode, now: MonoTime) {
    let unusable = |why: String| {
        tracing::error!(%why, "the saved safety state cannot be restored; starting in dry-run");
        (Mode::DryRun, false)
    };
    // The mode to set, and whether a restored state already holds it.
    let (mode, restored) = match store.load_snapshot().await {
        Ok(None) => (start_mode, false),
        Ok(Some((snap, saved_at))) => {
            let downtime = OffsetDateTime::parse(&saved_at, &Rfc3339)
                .ok()
                .map(|t| {
                    let d = OffsetDateTime::now_utc() - t;
                    Duration::try_from(d).unwrap_or(Duration::ZERO)
                })
                .unwrap_or(Duration::ZERO);
            match engine.restore(snap, downtime) {
                Ok(()) => {
                    let saved = engine.mode();
                    let mode = saved.most_restrictive(start_mode);
                    if mode != start_mode {
                        tracing::warn!(
                            saved = %saved, requested = %start_mode,
                            "keeping the more restrictive mode from before the restart; `medic mode` changes it"
                        );
                    }
                    (mode, true)
                }
                Err(e) => unusable(e.to_string()),
            }
        }
        Err(e) => unusable(e.to_string()),
    };
    if !(restored && mode == engine.mode()) {
        let _ = engine.operate(
            now,
            &Actor::new("medic", Role::Admin),
            OperatorCommand::SetMode {
                service: None,
                mode,
            },
        );
    }
}

/// Incidents left open by a previous run that the restored engine does not
/// carry on (no saved state, or a service no longer configured): close them
/// as interrupted, visibly.
async fn close_interrupted(
    store: &Store,
    carried: &[String],
    metrics: &Metrics,
) -> anyhow::Result<()> {
    for mut inc in store.list_incidents(1000).await? {
        if inc.closed_at.is_some() || carried.contains(&inc.id) {
            continue;
        }
        let ts = now_rfc3339();
        inc.timeline.push(TimelineEntry {
            ts: ts.clone(),
            kind: "interrupted".into(),
            message: "medic restarted while this incident was open and could not carry it on; \
                      closed as interrupted"
                .into(),
        });
        inc.state = "resolved".into();
        inc.outcome = Some("interrupted".into());
        inc.closed_at = Some(ts.clone());
        inc.updated_at = ts.clone();
        store
            .append_audit(
                &ts,
                "incident.interrupted",
                &serde_json::json!({"incident": inc.id, "service": inc.service, "v": 1})
                    .to_string(),
            )
            .await?;
        metrics.inc_audit();
        store.upsert_incident(&inc).await?;
    }
    Ok(())
}

/// The changes recorded before (issue 9): the `change.recorded` records
/// among the audit's last [`crate::rca::RESTORE_AUDIT_SCAN`], each at its
/// time relative to `started` (the wall time of the daemon's monotonic
/// zero), merged with those held (`RcaState::merge_changes`: none twice).
/// At start (`at` = "start") a deploy recorded just before a restart still
/// counts; at an HA takeover (`at` = "takeover") the new leader holds those
/// the old leader recorded.
async fn restore_changes(
    store: &Store,
    started: OffsetDateTime,
    r: &mut crate::rca::RcaState,
    at: &'static str,
) {
    let (tip, _) = store.audit_tip().await;
    let scan = crate::rca::RESTORE_AUDIT_SCAN;
    let records = match store
        .list_audit(
            tip.saturating_sub(scan),
            u32::try_from(scan).unwrap_or(u32::MAX),
        )
        .await
    {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(error = %e, at, "reading recorded changes from the audit failed");
            return;
        }
    };
    let restored = r.merge_changes(
        records
            .iter()
            .filter_map(|rec| crate::rca::change_of_audit(rec, started))
            .collect(),
    );
    if restored > 0 {
        tracing::info!(restored, at, "recorded changes restored from the audit");
    }
}

/// The AI endpoint from `ai:` and the environment, logged once at start (URL
/// and model, never the key).
fn ai_endpoint(file: Option<&medic_config::AiConfig>) -> Option<crate::ai::AiEndpoint> {
    let ai = crate::ai::AiEndpoint::resolve(file, |k| std::env::var(k).ok());
    match &ai {
        Some(a) => {
            tracing::info!(url = %a.url, model = %a.model, key = a.key.is_some(), timeout = ?a.timeout, "AI suggestions on");
            if a.key.is_none() {
                if let Some(name) = file.and_then(|f| f.api_key_env.as_deref()) {
                    tracing::warn!(
                        api_key_env = name,
                        "ai.api_key_env names an unset variable: requests go without a key"
                    );
                }
            }
        }
        None => tracing::info!("AI suggestions off"),
    }
    ai
}

async fn forward_control(mut rx: mpsc::Receiver<ControlRequest>, tx: mpsc::Sender<Msg>) {
    while let Some(req) = rx.recv().await {
        let msg = match req {
            ControlRequest::Operate { actor, cmd, reply } => Msg::Operate(actor, cmd, reply),
            ControlRequest::Query { query, reply } => Msg::Query(query, reply),
            ControlRequest::RecordChange { change, reply } => Msg::Change(change, reply),
        };
        // A dropped reply tells the API the control loop is gone.
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

struct EngineLoop {
    engine: Engine,
    /// Leader election and fencing (`ha:`, issue 13).
    ha: Option<crate::ha::HaCtl>,
    /// A shared write was rejected by the store's fence: step down.
    fenced_off: bool,
    /// To rebuild the engine at a takeover or a step-down.
    engine_cfg: medic_core::EngineConfig,
    autostarted: Vec<String>,
    start_mode: Mode,
    clock: Arc<Clock>,
    store: Store,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Msg>,
    /// Executors by action kind (see `lifecycle`).
    actions: crate::lifecycle::Actions,
    /// For the optional AI hypotheses (issue 9).
    http: reqwest::Client,
    /// Audit + notification outbox, written per step (issue 12).
    outbox: crate::notify::Outbox,
    /// OTLP incident traces, when configured.
    traces: Option<crate::trace::Traces>,
    incidents: Arc<Mutex<BTreeMap<String, IncidentSnapshot>>>,
    /// action id -> (action name, stage) for metrics on completion.
    action_names: BTreeMap<ActionId, (String, ActionStage)>,
    /// Actions in flight, for cancellation.
    running: BTreeMap<ActionId, tokio::task::AbortHandle>,
    /// The safety generation last persisted.
    saved_generation: Option<u64>,
    /// When the `/metrics` gauges were last computed (at most once a second:
    /// computing them looks at every service).
    gauges_at: Option<Instant>,
    /// The web console's probe history.
    console: Arc<medic_api::ui::Console>,
    drills: crate::drill::DrillState,
    /// Root-cause diagnosis across `depends_on` (None without dependencies).
    rca: Option<crate::rca::RcaState>,
    /// Optional AI hypotheses (`ai:`; `MEDIC_AI_URL`, `MEDIC_AI_MODEL`,
    /// `MEDIC_AI_KEY` override it).
    ai: Option<crate::ai::AiEndpoint>,
    /// Bumped by every diagnosis sent to the engine.
    diag_generation: u64,
    /// The AI request in flight (at most one) and the diagnosis waiting.
    ai_flight: crate::ai::InFlight,
    services_names: Vec<String>,
    approve_band: u8,
    /// Open incidents' (service, trigger), for candidate patterns (bounded).
    opened: BTreeMap<String, (String, String)>,
    /// The last action a human forced per service (bounded).
    human_action: BTreeMap<String, String>,
    /// Supervised processes, to journal and reconcile a restart's target.
    supervisors: BTreeMap<String, Supervisor>,
    /// The instances each staged canary samples (issue 10).
    canaries: BTreeMap<String, medic_config::CanaryConfig>,
}

impl EngineLoop {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Whatever start-up recorded (restore, reconciliation) goes out first.
        self.drain().await;
        self.publish_gauges();
        loop {
            let deadline = self.engine.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => {
                        let now = self.clock.now();
                        tokio::time::sleep(t.since(now)).await
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let msg = tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { return Ok(()) };
                    Some(msg)
                }
                _ = sleep => None,
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            };
            let Some(msg) = msg else {
                let now = self.clock.now();
                self.engine.handle_timeout(now);
                self.drain().await;
                // Timers (pause or approval expiry) change what the gauges show.
                self.gauges_at = None;
                self.publish_gauges();
                continue;
            };
            // Under load, take what is already queued before the next
            // deadline: `poll_timeout` looks at every service, so it is
            // asked once per batch, not once per probe report. The engine
            // inputs of a batch (up to STEP_BATCH) are handled in order and
            // then drained once: their audit records go in one transaction
            // and the safety state is written once, before any of their
            // commands runs (intent before action still holds for every
            // action of the batch). Operator replies wait for that drain.
            let mut replies = Vec::new();
            let mut pending = 0usize;
            let mut next = Some(msg);
            let mut taken = 0usize;
            while let Some(m) = next.take() {
                if Self::batchable(&m) {
                    if let Some(r) = self.apply(m) {
                        replies.push(r);
                    }
                    pending += 1;
                } else {
                    // Drills, HA steps and queries see (and act on) the
                    // state of everything before them.
                    if pending > 0 {
                        self.flush(&mut replies).await;
                        pending = 0;
                    }
                    self.handle_msg(m).await;
                }
                if pending >= STEP_BATCH {
                    self.flush(&mut replies).await;
                    pending = 0;
                }
                if taken < BATCH {
                    taken += 1;
                    next = rx.try_recv().ok();
                }
            }
            if pending > 0 {
                self.flush(&mut replies).await;
            }
            self.publish_gauges();
        }
    }

    /// The engine's state and the input queue's depth, for `/metrics`.
    fn publish_gauges(&mut self) {
        if self
            .gauges_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.gauges_at = Some(Instant::now());
        let phases: Vec<medic_core::Phase> = self
            .engine
            .open_incidents()
            .iter()
            .map(|v| v.phase)
            .collect();
        let autoheal: Vec<(String, bool)> = self
            .engine
            .service_names()
            .map(|s| (s.to_string(), self.engine.autoheal_disabled(s)))
            .collect();
        self.metrics.set_engine_state(&medic_api::EngineState {
            mode: self.engine.mode(),
            pauses: &self.engine.pauses(),
            mass_paused: self.engine.mass_paused(),
            open_phases: &phases,
            autoheal: &autoheal,
            pending_approvals: self.engine.pending_approvals().len(),
            running_actions: self.running.len(),
        });
        self.metrics.set_queue_depth(
            "engine_input",
            self.tx.max_capacity().saturating_sub(self.tx.capacity()),
        );
    }

    /// Inputs that only feed the engine (and may wait for one drain with
    /// the others of their batch).
    fn batchable(msg: &Msg) -> bool {
        matches!(
            msg,
            Msg::Probe(_)
                | Msg::Sample(_)
                | Msg::Ai(..)
                | Msg::Outcome { .. }
                | Msg::Operate(..)
                | Msg::WallClock
                | Msg::Freeze(_)
                | Msg::Canary(_)
        )
    }

    /// Drain the batch's steps once, then answer its operators.
    async fn flush(&mut self, replies: &mut Vec<OperatorReply>) {
        self.drain().await;
        for (r, answer) in replies.drain(..) {
            let _ = r.send(answer);
        }
    }

    /// One input: to the engine, then drained (notices recorded, commands
    /// run), then the operator's reply.
    async fn handle_msg(&mut self, msg: Msg) {
        let reply = if Self::batchable(&msg) {
            self.apply(msg)
        } else {
            self.apply_other(msg).await;
            None
        };
        // Record and act before answering: the reply reflects what was done.
        self.drain().await;
        if let Some((r, answer)) = reply {
            let _ = r.send(answer);
        }
    }

    /// A batchable input to the engine, not drained; an operator command's
    /// reply is returned, to be sent after the drain.
    fn apply(&mut self, msg: Msg) -> Option<OperatorReply> {
        let now = self.clock.now();
        let mut reply = None;
        match msg {
            Msg::Probe(run) => {
                // A run an action on its service ended during or after:
                // it may come after the action's outcome, and it saw the
                // state before the action (probes.rs, `ProbeRun`).
                if run.is_stale() {
                    return None;
                }
                let r = run.report;
                self.console
                    .record_sample(&r.service, &r.probe, r.ok, r.latency);
                // Diagnose across services first, so that the probe's
                // decisions see it (issue 9).
                if let Some(d) = self.rca.as_mut().and_then(|s| s.observe(now, &r)) {
                    self.ask_ai(&d);
                    self.engine.handle_input(now, Input::Diagnosis(d));
                }
                self.engine.handle_input(now, Input::Probe(r))
            }
            Msg::Sample(s) => {
                let dir = match s.direction {
                    medic_signal::Badness::Up => medic_rca::Direction::Up,
                    medic_signal::Badness::Down => medic_rca::Direction::Down,
                    medic_signal::Badness::Both => medic_rca::Direction::Both,
                };
                let d = self
                    .rca
                    .as_mut()
                    .and_then(|r| r.sample(now, &s.service, &s.rule, s.value, dir));
                if let Some(d) = d {
                    self.ask_ai(&d);
                    self.engine.handle_input(now, Input::Diagnosis(d));
                }
            }
            Msg::Canary(s) => self.engine.handle_input(now, Input::CanarySamples(s)),
            Msg::Ai(generation, d) => self.ai_answered(now, generation, d),
            Msg::Outcome { id, result } => {
                self.running.remove(&id);
                if let Some(h) = self.ha.as_mut() {
                    h.unlock(id);
                }
                if let Some((action, stage)) = self.action_names.remove(&id) {
                    let status = if result.is_ok() {
                        ActionStatus::Succeeded
                    } else {
                        ActionStatus::Failed
                    };
                    self.metrics.inc_action(&action, stage, status);
                }
                self.engine
                    .handle_input(now, Input::ActionOutcome { id, result })
            }
            Msg::Operate(actor, cmd, r) => {
                // Operator commands change mode, pauses, approvals: fresh gauges.
                self.gauges_at = None;
                let answer = self.engine.operate(now, &actor, cmd);
                reply = Some((r, answer));
            }
            Msg::WallClock => self.engine.handle_input(now, wall_clock()),
            Msg::Freeze(w) => self.engine.handle_input(now, Input::FreezeWindows(w)),
            // `handle_msg` and the loop send only batchable inputs here.
            _ => tracing::error!("engine loop: a non-batchable input reached apply; ignored"),
        }
        reply
    }

    /// The inputs that are not batched: queries, drills, HA steps, the
    /// accepted patterns.
    async fn apply_other(&mut self, msg: Msg) {
        match msg {
            Msg::Query(q, r) => {
                let _ = r.send(self.answer(q));
            }
            Msg::DrillList(r) => {
                let _ = r.send(crate::drill::DrillsView {
                    in_window: self.drills.cfg.in_window(crate::drill::now_unix_ms()),
                    running: self.drills.running.clone(),
                    stopped_by: self.drills.stopped.clone(),
                    drills: self
                        .drills
                        .cfg
                        .drills
                        .iter()
                        .map(|d| d.name.clone())
                        .collect(),
                    recent: self.drills.recent.iter().cloned().collect(),
                });
            }
            Msg::Ha => self.ha_step().await,
            Msg::Change(change, r) => {
                let _ = r.send(self.record_change(change).await);
            }
            m @ (Msg::Drill(..)
            | Msg::DrillScheduled(..)
            | Msg::DrillDone(..)
            | Msg::DrillReset(..)) => self.drill_msg(m).await,
            Msg::Accepted(patterns) => {
                if let Some(r) = self.rca.as_mut() {
                    r.set_accepted(patterns);
                    tracing::info!(
                        "accepted candidate patterns loaded: [{}]",
                        r.accepted_names().join(", ")
                    );
                }
            }
            other => {
                let reply = self.apply(other);
                if let Some((r, answer)) = reply {
                    self.drain().await;
                    let _ = r.send(answer);
                }
            }
        }
    }

    async fn drill_msg(&mut self, m: Msg) {
        match m {
            Msg::Drill(name, by, r) => {
                let _ = r.send(self.start_drill(&name, &by).await);
            }
            Msg::DrillScheduled(by, r) => {
                let list = &self.drills.cfg.drills;
                if !list.is_empty()
                    && self.drills.running.is_none()
                    && self.drills.stopped.is_none()
                {
                    let name = list[self.drills.next % list.len()].name.clone();
                    self.drills.next += 1;
                    let _ = r.send(self.start_drill(&name, &by).await);
                }
            }
            Msg::DrillDone(o) => self.finish_drill(o).await,
            Msg::DrillReset(by, r) => {
                let was = self.drills.stopped.take();
                self.audit_kind(
                    "drill.reset",
                    serde_json::json!({"by": by, "stopped_by": was, "v": 1}),
                )
                .await;
                let _ = r.send(match was {
                    Some(d) => format!("drills resumed (they were stopped by {d})"),
                    None => "drills were not stopped".to_string(),
                });
            }
            _ => {}
        }
    }

    /// A change on a service (issue 9): evidence for the ranking (when
    /// there is one), audited `change.recorded`.
    async fn record_change(
        &mut self,
        c: medic_api::changes::Change,
    ) -> Result<medic_api::changes::ChangeReply, medic_api::changes::ChangeRefusal> {
        if !self.services_names.contains(&c.service) {
            return Err(medic_api::changes::ChangeRefusal::UnknownService(c.service));
        }
        let now = self.clock.now();
        let kind = c.kind.as_str();
        let diagnosis = self.rca.as_mut().is_some_and(|r| {
            r.note_change(
                now,
                &c.service,
                crate::rca::RecordedChange {
                    at_ms: 0, // note_change dates it
                    kind: kind.to_string(),
                    version: c.version.clone(),
                    note: c.note.clone(),
                    by: c.by.clone(),
                },
            )
        });
        self.audit_kind(
            "change.recorded",
            serde_json::json!({
                "service": c.service,
                "kind": kind,
                "version": c.version,
                "note": c.note,
                "by": c.by,
                "v": 1,
            }),
        )
        .await;
        tracing::info!(service = %c.service, kind, version = ?c.version, by = %c.by, "change recorded");
        let message = format!(
            "{kind} of {}{} recorded{}",
            c.service,
            c.version
                .as_deref()
                .map(|v| format!(" (version {v})"))
                .unwrap_or_default(),
            if diagnosis {
                ""
            } else {
                " (no depends_on: not used by the diagnosis)"
            }
        );
        Ok(medic_api::changes::ChangeReply {
            service: c.service,
            kind: kind.to_string(),
            version: c.version,
            by: c.by,
            diagnosis,
            message,
        })
    }

    /// An audit record written by the edge (drills), not from a notice.
    async fn audit_kind(&self, kind: &str, payload: serde_json::Value) {
        if !self.writes_allowed() {
            tracing::info!(target: "medic::audit", kind, payload = %payload, "audit (not leader: local only)");
            return;
        }
        match self
            .store
            .append_audit(&now_rfc3339(), kind, &payload.to_string())
            .await
        {
            Ok(_) => self.metrics.inc_audit(),
            Err(e) => tracing::error!(error = %e, kind, "audit append failed"),
        }
    }

    /// Judge and start drill `name` (see `crate::drill`).
    async fn start_drill(&mut self, name: &str, by: &str) -> Result<String, crate::drill::Refusal> {
        let Some(spec) = self.drills.cfg.get(name).cloned() else {
            return Err(crate::drill::Refusal {
                code: "unknown_drill".into(),
                message: format!("no drill named {name} in drills.list"),
                not_found: true,
            });
        };
        let refusal = if let Some(r) = &self.drills.running {
            Some(("drill_running", format!("drill {r} is still running")))
        } else if let Some(s) = &self.drills.stopped {
            Some((
                "drills_stopped",
                format!("drills are stopped after the failed drill {s}; `medic drill reset` resumes them"),
            ))
        } else if !self.drills.cfg.in_window(crate::drill::now_unix_ms()) {
            Some((
                "outside_window",
                "not inside a drill window (drills.windows)".to_string(),
            ))
        } else {
            match self.engine.judge_drill(&spec.service, &spec.inject) {
                Ok(()) => None,
                Err(b) => Some((
                    b.as_str(),
                    format!(
                        "governance blocks {} on {}: {}",
                        spec.inject,
                        spec.service,
                        b.as_str()
                    ),
                )),
            }
        };
        if let Some((code, message)) = refusal {
            self.audit_kind(
                "drill.refused",
                serde_json::json!({"drill": name, "service": spec.service, "fault": spec.fault,
                    "by": by, "reason_code": code, "reason": message, "v": 1}),
            )
            .await;
            return Err(crate::drill::Refusal {
                code: code.to_string(),
                message,
                not_found: false,
            });
        }
        self.audit_kind(
            "drill.started",
            serde_json::json!({"drill": name, "service": spec.service, "fault": spec.fault,
                "inject": spec.inject, "by": by, "v": 1}),
        )
        .await;
        tracing::warn!(drill = name, service = %spec.service, fault = %spec.fault, "drill: injecting a fault");
        self.drills.running = Some(name.to_string());
        let inject = self.actions.run_named(&spec.service, &spec.inject);
        let incidents = self.incidents.clone();
        let timeout = self.drills.cfg.timeout;
        let tx = self.tx.clone();
        let msg = format!(
            "drill {name}: {} injected into {} through {}",
            spec.fault, spec.service, spec.inject
        );
        tokio::spawn(async move {
            let t0 = Instant::now();
            let o = match inject.await {
                Ok(_) => crate::drill::watch(spec, t0, timeout, incidents).await,
                Err(e) => crate::drill::DrillOutcome {
                    drill: spec.name.clone(),
                    service: spec.service.clone(),
                    fault: spec.fault.clone(),
                    passed: false,
                    pattern: None,
                    actions: Vec::new(),
                    incident: None,
                    detect_ms: None,
                    heal_ms: None,
                    reason: format!("the fault action {} failed: {}", spec.inject, e.message),
                },
            };
            let _ = tx.send(Msg::DrillDone(o)).await;
        });
        Ok(msg)
    }

    async fn finish_drill(&mut self, o: crate::drill::DrillOutcome) {
        let kind = if o.passed {
            "drill.passed"
        } else {
            "drill.failed"
        };
        let learned = self.learn_from_drill(&o).await;
        let mut payload = crate::drill::outcome_payload(&o);
        if let (Some((pattern, action)), Some(obj)) = (learned, payload.as_object_mut()) {
            obj.insert(
                "learned".into(),
                serde_json::json!({"pattern": pattern, "action": action, "success": o.passed}),
            );
        }
        self.audit_kind(kind, payload).await;
        if !o.passed {
            self.notify(Notification {
                severity: medic_core::Severity::Critical,
                service: o.service.clone(),
                incident: o
                    .incident
                    .as_ref()
                    .map(|i| medic_core::IncidentId(i.clone())),
                title: format!("drill {} failed: drills stopped", o.drill),
                message: format!(
                    "{} on {}: {}; no further drill until `medic drill reset`",
                    o.fault, o.service, o.reason
                ),
            });
        }
        self.drills.finish(o);
    }

    fn answer(&self, q: Query) -> QueryAnswer {
        let clock = WallSync {
            mono: self.engine.now(),
            unix_ms: self.engine.wall_now(),
        };
        match q {
            Query::Approvals => QueryAnswer::Approvals {
                approvals: self.engine.pending_approvals(),
                pauses: self.engine.pauses(),
                mass_paused: self.engine.mass_paused(),
                clock,
            },
            Query::Explain { incident } => QueryAnswer::Explain {
                explanation: self.engine.explain(&incident).map(Box::new),
                clock,
            },
            Query::Status => QueryAnswer::Status {
                mode: self.engine.mode(),
                services: self
                    .engine
                    .service_names()
                    .map(|s| medic_api::governance::ServiceStatus {
                        name: s.to_string(),
                        mode: self.engine.effective_mode(s),
                        autoheal_disabled: self.engine.autoheal_disabled(s),
                    })
                    .collect(),
            },
            Query::Locks => QueryAnswer::Locks {
                held: self.engine.locks().held().to_vec(),
                waiting: self
                    .engine
                    .locks()
                    .waiting()
                    .map(|(r, t)| (r.clone(), t))
                    .collect(),
                clock,
            },
        }
    }

    /// The driving contract: record every notice of the step, persist the
    /// safety state if it moved, then execute the step's commands in order.
    /// An action whose intent could not be recorded is never run.
    async fn drain(&mut self) {
        let mut notices = Vec::new();
        while let Some(n) = self.engine.poll_notice() {
            notices.push(n);
        }
        // Polling is not executing: the commands run below, after the
        // step's records (and its notifications) are durable.
        let mut commands = Vec::new();
        while let Some(c) = self.engine.poll_command() {
            commands.push(c);
        }
        if notices
            .iter()
            .any(|n| matches!(n, Notice::ActionIntent { .. }))
        {
            failpoint::hit("before_intent");
        }
        let mut audit_ok = self.record(&notices, &commands).await;
        // The shared store stopped answering under this leader: stop acting
        // (nothing of this step runs), keep detecting as a follower's engine,
        // claim the store again with backoff (`ha_step`).
        if self
            .ha
            .as_ref()
            .is_some_and(|h| h.store_down && h.acting.is_some())
        {
            self.demote("store_unreachable").await;
            return;
        }
        // A canary stage changes its service: evidence for the diagnosis
        // (issue 9), like a deploy recorded through the API.
        if let Some(r) = self.rca.as_mut() {
            let now = self.clock.now();
            for (service, c) in notices.iter().filter_map(crate::rca::change_of_notice) {
                r.note_change(now, &service, c);
            }
        }
        let shared = self.writes_allowed();
        for n in notices.iter().filter(|_| shared) {
            if matches!(n, Notice::ActionOutcome { .. }) {
                failpoint::hit("after_outcome");
            }
            if let Notice::ActionReconciled {
                action_id, service, ..
            } = n
            {
                self.observe_reconciled(*action_id, service).await;
            }
            self.learn(n).await;
        }
        let generation = self.engine.safety_generation();
        if shared && self.saved_generation != Some(generation) {
            match self
                .store
                .save_snapshot(&self.engine.snapshot(), &now_rfc3339())
                .await
            {
                Ok(()) => self.saved_generation = Some(generation),
                Err(e) => {
                    // Acting on state that would not survive a restart could
                    // repeat the action after one: hold this step's actions.
                    audit_ok = false;
                    if e.is_fenced() {
                        self.fenced_off = true;
                    } else if let Some(h) = self.ha.as_mut() {
                        h.store_failed();
                    }
                    tracing::error!(error = %e, "saving the safety state failed");
                }
            }
        }
        // A batch may change one incident several times: each view is the
        // whole incident, so only its last one is stored.
        let mut last_view: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in commands.iter().enumerate() {
            if let Command::IncidentChanged(v) = c {
                last_view.insert(v.id.0.clone(), i);
            }
        }
        for (i, cmd) in commands.into_iter().enumerate() {
            if self.fenced_off {
                break;
            }
            match cmd {
                Command::IncidentChanged(v) if last_view.get(&v.id.0) != Some(&i) => {}
                Command::RunAction(req) => {
                    if !audit_ok {
                        let tx = self.tx.clone();
                        let id = req.id;
                        tokio::spawn(async move {
                            let _ = tx
                                .send(Msg::Outcome {
                                    id,
                                    result: Err(ActionFailure {
                                        kind: ActionFailureKind::Other,
                                        message: "not run: the audit log or the safety state \
                                                  could not be written"
                                            .into(),
                                    }),
                                })
                                .await;
                        });
                        continue;
                    }
                    if !self.journal(&req).await {
                        let tx = self.tx.clone();
                        let id = req.id;
                        tokio::spawn(async move {
                            let _ = tx
                                .send(Msg::Outcome {
                                    id,
                                    result: Err(ActionFailure {
                                        kind: ActionFailureKind::Other,
                                        message: "not run: its journal record could not be written"
                                            .into(),
                                    }),
                                })
                                .await;
                        });
                        continue;
                    }
                    failpoint::hit("after_intent");
                    let Some(h) = self.ha.as_ref() else {
                        self.spawn_action(req, None);
                        continue;
                    };
                    // The gate: a leader whose lease may have expired in
                    // etcd's view starts nothing (docs/ha.md).
                    let Some(token) = h.may_write() else {
                        tracing::warn!(id = %req.id, service = %req.service,
                            "not acting: this instance's lease is not confirmed; stepping down");
                        self.demote("lost_lease").await;
                        break;
                    };
                    crate::ha::stop_point("before_execute");
                    // The target's own check: the process executor's token
                    // file refuses a token older than the newest that acted.
                    if let Err(e) = h.fence(token) {
                        tracing::error!(id = %req.id, service = %req.service, token, error = %e,
                            "fenced off: a newer leader has acted; not running the action, stepping down");
                        self.demote("fenced").await;
                        break;
                    }
                    // The target's distributed locks (service, incident).
                    let (refusal, unsafe_no_fence) = match self.ha.as_mut() {
                        Some(h) => (h.lock(&req).await.err(), h.no_fence),
                        None => (None, false),
                    };
                    // The deliberate bug: a lost session (fenced, or its lease
                    // gone) does not stop the action.
                    let refusal = match refusal {
                        Some(
                            crate::ha::LockRefusal::Fenced(e)
                            | crate::ha::LockRefusal::Unavailable(e),
                        ) if unsafe_no_fence => {
                            tracing::error!(id = %req.id, error = %e,
                                "UNSAFE (fencing off): acting without the action's locks");
                            None
                        }
                        r => r,
                    };
                    match refusal {
                        None => self.spawn_action(req, Some(token)),
                        Some(crate::ha::LockRefusal::Fenced(e)) => {
                            tracing::error!(id = %req.id, error = %e,
                                "fenced off taking the action's locks; stepping down");
                            self.demote("fenced").await;
                            break;
                        }
                        Some(
                            crate::ha::LockRefusal::Busy(why)
                            | crate::ha::LockRefusal::Unavailable(why),
                        ) => {
                            tracing::warn!(id = %req.id, %why, "action not run: its locks were not taken");
                            let tx = self.tx.clone();
                            let id = req.id;
                            tokio::spawn(async move {
                                let _ = tx
                                    .send(Msg::Outcome {
                                        id,
                                        result: Err(ActionFailure {
                                            kind: ActionFailureKind::Other,
                                            message: format!("not run: target locked: {why}"),
                                        }),
                                    })
                                    .await;
                            });
                        }
                    }
                }
                Command::Notify(n) => self.notify(n),
                Command::IncidentChanged(v) => self.persist(v).await,
                Command::CollectCanary(w) => {
                    tracing::info!(service = %w.service, stage = w.stage, canary = ?w.canary, "canary judge window");
                    crate::canary::collect(
                        self.http.clone(),
                        self.canaries.get(&w.service).cloned(),
                        w,
                        self.tx.clone(),
                    );
                }
                Command::CancelAction {
                    id,
                    service,
                    by,
                    reason,
                } => {
                    // Aborting the task drops the executor's future: an exec
                    // action's child is killed (kill_on_drop); the outcome is
                    // reported as cancelled.
                    if let Some(h) = self.running.remove(&id) {
                        h.abort();
                        tracing::warn!(%service, %id, %by, %reason, "action cancelled");
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            let _ = tx
                                .send(Msg::Outcome {
                                    id,
                                    result: Err(ActionFailure {
                                        kind: ActionFailureKind::Cancelled,
                                        message: format!("cancelled by {by}: {reason}"),
                                    }),
                                })
                                .await;
                        });
                    }
                }
            }
        }
        if std::mem::take(&mut self.fenced_off) {
            self.demote("fenced off by the store").await;
        }
    }

    /// Without `ha:`, always; with it, only while this instance leads under
    /// the token its engine runs with and its lease is confirmed.
    fn writes_allowed(&self) -> bool {
        self.ha.as_ref().is_none_or(|h| h.may_write().is_some())
    }

    fn set_store_down(&mut self, down: bool) {
        if let Some(h) = self.ha.as_mut() {
            if h.store_down != down {
                h.store_down = down;
                h.publish();
            }
        }
    }

    /// The election state moved (or its periodic re-check): take over,
    /// step down, or stay; then publish what `/readyz` and `/metrics` say.
    async fn ha_step(&mut self) {
        let Some(h) = self.ha.as_ref() else {
            return;
        };
        match (h.verdict(), h.acting) {
            (medic_ha::Verdict::Act { token, .. }, Some(a)) if a == token => {}
            // While the store is unreachable: claim again after a backoff.
            (medic_ha::Verdict::Act { .. }, _)
                if h.retry_at.is_some_and(|t| Instant::now() < t) => {}
            (medic_ha::Verdict::Act { token, .. }, _) => self.promote(token).await,
            (medic_ha::Verdict::Hold(hold), Some(_)) => self.demote(hold.as_str()).await,
            (medic_ha::Verdict::Hold(_), None) => {}
        }
        if let Some(h) = self.ha.as_ref() {
            h.publish();
        }
    }

    /// Takeover: a fresh engine restores the durable safety state the last
    /// leader saved in the shared store and reconciles its in-flight actions
    /// from the journal (verify a heal, escalate a revert, never re-run: the
    /// crash-recovery path of docs/recovery.md).
    async fn promote(&mut self, token: u64) {
        self.abort_running();
        let Some(h) = self.ha.as_mut() else {
            return;
        };
        let member = h.state.borrow().member.clone();
        // Claim the shared store with the new token (compare-and-set): from
        // now on a stale leader's writes are rejected there, before this
        // leader writes anything else.
        self.store.set_fence(Some(token));
        let claimed = match self.store.prepare().await {
            Ok(()) => self.store.claim_fence(token).await,
            Err(e) => Err(e),
        };
        if let Err(e) = claimed {
            tracing::error!(%member, token, error = %e, "ha: claiming the store failed; not acting");
            self.store.set_fence(Some(0));
            if e.is_fenced() {
                h.store_down = false;
            } else {
                h.store_failed();
            }
            h.publish();
            return;
        }
        if h.store_down {
            tracing::warn!(%member, token, "ha: the shared store answers again");
        }
        h.store_down = false;
        h.retry_at = None;
        h.backoff = Duration::ZERO;
        // What this member recorded locally while cut off goes first.
        if let Err(e) = self.replay().await {
            tracing::error!(%member, token, error = %e, "ha: replaying the local journal failed; not acting");
            self.store.set_fence(Some(0));
            if let Some(h) = self.ha.as_mut() {
                if !e.is_fenced() {
                    h.store_failed();
                }
                h.publish();
            }
            return;
        }
        let Some(h) = self.ha.as_mut() else {
            return;
        };
        h.acting = Some(token);
        let _ = h.acting_tx.send(true);
        let now = self.clock.now();
        self.engine = build_engine(
            &self.store,
            &self.engine_cfg,
            &self.autostarted,
            self.start_mode,
            now,
        )
        .await;
        self.saved_generation = None;
        self.gauges_at = None;
        tracing::warn!(%member, token, "ha: leader; safety state restored from the store");
        // The changes the old leader recorded (only a leader records them).
        if let Some(r) = self.rca.as_mut() {
            restore_changes(&self.store, self.clock.wall, r, "takeover").await;
        }
        let open: Vec<String> = self
            .engine
            .open_incidents()
            .iter()
            .map(|v| v.id.0.clone())
            .collect();
        if let Err(e) = close_interrupted(&self.store, &open, &self.metrics).await {
            tracing::error!(error = %e, "closing interrupted incidents failed");
        }
        self.audit_kind(
            "ha.elected",
            serde_json::json!({"member": member, "token": token, "v": 1}),
        )
        .await;
    }

    /// Step down: actions in flight are aborted, the engine becomes a
    /// follower's again (dry-run, rebuilt from the shared store), nothing more
    /// is written to the shared store.
    async fn demote(&mut self, why: &str) {
        self.abort_running();
        let Some(h) = self.ha.as_mut() else {
            return;
        };
        let was = h.acting.take();
        let _ = h.acting_tx.send(false);
        self.store.set_fence(Some(0));
        tracing::warn!(token = ?was, why, "ha: stepping down; follower (no actions, no shared writes)");
        let now = self.clock.now();
        self.engine = build_engine(
            &self.store,
            &self.engine_cfg,
            &self.autostarted,
            Mode::DryRun,
            now,
        )
        .await;
        self.saved_generation = None;
        self.gauges_at = None;
        if let Some(h) = self.ha.as_ref() {
            h.publish();
        }
    }

    fn abort_running(&mut self) {
        for (id, h) in std::mem::take(&mut self.running) {
            tracing::warn!(%id, "ha: aborting an action in flight");
            h.abort();
            if let Some(ha) = self.ha.as_mut() {
                ha.unlock(id);
            }
        }
        self.action_names.clear();
    }

    /// The supervised process's identity (pid, start ticks) if it runs.
    fn identity(&self, service: &str) -> Option<(u32, u64)> {
        match self.supervisors.get(service)?.state() {
            ProcessState::Running { pid, .. } => Some((pid, procfs::stat(pid)?.start_ticks)),
            _ => None,
        }
    }

    /// Journal a restart's target before it runs (`action.journal`, after
    /// the `action.intent` and the saved in-flight state): its idempotency
    /// key and the supervised process's identity, so a medic restarted
    /// mid-action can tell whether the restart happened. Other kinds carry
    /// no identity medic can read back; the intent is their journal.
    async fn journal(&mut self, req: &ActionRequest) -> bool {
        if req.kind != medic_core::ActionKind::Restart {
            return true;
        }
        if !self.writes_allowed() {
            return false;
        }
        let target = self
            .identity(&req.service)
            .map(|(pid, start)| serde_json::json!({"pid": pid, "start_ticks": start}));
        let payload = serde_json::json!({
            "action_id": req.id.to_string(),
            "key": format!("{}/{}/{}", req.service, req.action, req.id),
            "service": req.service,
            "action": req.action,
            "target": target,
            "v": 1,
        });
        match self
            .store
            .append_audit(&now_rfc3339(), "action.journal", &payload.to_string())
            .await
        {
            Ok(_) => {
                self.metrics.inc_audit();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "journaling the action failed");
                if e.is_fenced() {
                    self.fenced_off = true;
                }
                false
            }
        }
    }

    /// An action found in flight at start: compare the target's identity
    /// now with the one journaled before the action ran, and record what
    /// that says (`action.observed`). The engine verifies the heal (and
    /// tries again only after verification fails) or escalates; it never
    /// re-runs the action blindly.
    async fn observe_reconciled(&self, id: ActionId, service: &str) {
        let key = id.to_string();
        let (tip, _) = self.store.audit_tip().await;
        let journal = match self.store.list_audit(tip.saturating_sub(5000), 5000).await {
            Ok(recs) => recs
                .into_iter()
                .rev()
                .filter(|r| r.kind == "action.journal")
                .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.payload).ok())
                .find(|v| v["action_id"] == key.as_str() && v["service"] == service),
            Err(e) => {
                tracing::warn!(error = %e, "reading the action journal failed");
                None
            }
        };
        let now = self.identity(service);
        let before = journal.as_ref().and_then(|j| {
            Some((
                j["target"]["pid"].as_u64()?,
                j["target"]["start_ticks"].as_u64()?,
            ))
        });
        let finding = match (&journal, before, now) {
            (None, _, _) => "no journal: the action had not started",
            (Some(_), _, None) => "the process is not running",
            (Some(_), None, Some(_)) => "the process runs; it did not before the action",
            (Some(_), Some(b), Some((pid, start))) if b == (u64::from(pid), start) => {
                "the same process as before the action: the restart did not happen"
            }
            (Some(_), Some(_), Some(_)) => {
                "a new process since the journal: the restart took effect"
            }
        };
        tracing::warn!(%service, action_id = %key, finding, "reconciling an action found in flight");
        let payload = serde_json::json!({
            "action_id": key,
            "service": service,
            "journaled": journal.as_ref().map(|j| j["target"].clone()),
            "now": now.map(|(pid, start)| serde_json::json!({"pid": pid, "start_ticks": start})),
            "finding": finding,
            "v": 1,
        });
        match self
            .store
            .append_audit(&now_rfc3339(), "action.observed", &payload.to_string())
            .await
        {
            Ok(_) => self.metrics.inc_audit(),
            Err(e) => tracing::error!(error = %e, "audit append failed"),
        }
    }

    /// Learning (issue 9): a verified outcome of an action on the diagnosed
    /// cause updates its (pattern, action) counts, durably, then in memory.
    async fn learn(&mut self, n: &Notice) {
        self.learn_candidate(n).await;
        let Some(rca) = self.rca.as_mut() else {
            return;
        };
        if let Notice::ActionIntent {
            service, action, ..
        } = n
        {
            rca.note_action(service, action);
            return;
        }
        let Some((service, success)) = crate::rca::outcome_of(n) else {
            return;
        };
        // A drill's incident is counted once, when the drill finishes.
        let drilled = self
            .drills
            .running
            .as_ref()
            .and_then(|d| self.drills.cfg.get(d))
            .is_some_and(|d| d.service == service);
        if drilled {
            return;
        }
        let Some((pattern, action)) = rca.outcome_pair(service) else {
            return;
        };
        match self
            .store
            .record_pattern_outcome(&pattern, &action, success)
            .await
        {
            Ok(()) => rca.learn(&pattern, &action, success),
            Err(e) => tracing::warn!(error = %e, "recording a pattern outcome failed"),
        }
    }

    /// A drill's outcome counts like a real incident's (issue 9): the
    /// (pattern, action) pair of the action that ran last for its incident,
    /// success when the drill passed. The pattern is the one diagnosed for
    /// the service if any, else the one the fault kind stands for
    /// ([`crate::drill::pattern_of_fault`]). The real incident's own
    /// verification is not counted while its drill runs, so a drill counts
    /// once. Returns the pair recorded.
    async fn learn_from_drill(
        &mut self,
        o: &crate::drill::DrillOutcome,
    ) -> Option<(String, String)> {
        let action = o.actions.last()?.clone();
        let diagnosed = self
            .rca
            .as_ref()
            .and_then(|r| r.outcome_pair(&o.service))
            .map(|(p, _)| p);
        let pattern =
            diagnosed.or_else(|| crate::drill::pattern_of_fault(&o.fault).map(String::from))?;
        match self
            .store
            .record_pattern_outcome(&pattern, &action, o.passed)
            .await
        {
            Ok(()) => {
                if let Some(r) = self.rca.as_mut() {
                    r.learn(&pattern, &action, o.passed);
                }
                Some((pattern, action))
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording a drill's pattern outcome failed");
                None
            }
        }
    }

    /// Asks the AI endpoint (if configured) in the background; its answer
    /// comes back as `Msg::Ai` and is dropped if a newer diagnosis came first.
    /// At most one request is in flight (`crate::ai::InFlight`).
    fn ask_ai(&mut self, d: &medic_core::DiagnosisReport) {
        self.diag_generation = self.diag_generation.wrapping_add(1);
        let Some(cfg) = self.ai.as_ref() else {
            return;
        };
        let give_up = cfg.timeout + Duration::from_secs(5);
        if let Some(d) = self.ai_flight.offer(d, Instant::now(), give_up) {
            self.spawn_ai(d);
        }
    }

    fn spawn_ai(&mut self, mut report: medic_core::DiagnosisReport) {
        let Some(cfg) = self.ai.clone() else {
            return;
        };
        let generation = self.diag_generation;
        let http = self.http.clone();
        let tx = self.tx.clone();
        let services = self.services_names.clone();
        let approve = self.approve_band;
        tokio::spawn(async move {
            let extra = match crate::ai::suggest(&http, &cfg, &report, &services, approve).await {
                Ok(extra) => {
                    tracing::info!(
                        url = %cfg.url,
                        suggested = extra.len(),
                        "AI suggestions received"
                    );
                    extra
                }
                Err(e) => {
                    tracing::warn!(url = %cfg.url, error = %e, "AI suggestions failed (ignored)");
                    Vec::new()
                }
            };
            let answer = (!extra.is_empty()).then(|| {
                crate::ai::merge(&mut report, extra);
                report
            });
            // Always answered, so that the next request may go.
            let _ = tx.send(Msg::Ai(generation, answer)).await;
        });
    }

    /// The answer of the request in flight: taken if no newer diagnosis came
    /// meanwhile; then the diagnosis that waited (if any) is asked about.
    fn ai_answered(
        &mut self,
        now: MonoTime,
        generation: u64,
        d: Option<medic_core::DiagnosisReport>,
    ) {
        if let Some(d) = d.filter(|_| self.diag_generation == generation) {
            self.engine.handle_input(now, Input::Diagnosis(d));
        }
        if let Some(next) = self.ai_flight.answered(Instant::now()) {
            self.spawn_ai(next);
        }
    }

    /// An incident no pattern matched, resolved by a human after an action
    /// they forced, becomes a candidate pattern (issue 9; never automatic).
    async fn learn_candidate(&mut self, n: &Notice) {
        const CAP: usize = 1024;
        match n {
            Notice::IncidentOpened {
                incident,
                service,
                trigger,
            } => {
                if self.opened.len() >= CAP {
                    self.opened.pop_first();
                }
                self.opened
                    .insert(incident.0.clone(), (service.clone(), trigger.clone()));
            }
            Notice::Override {
                service, action, ..
            } => {
                if self.human_action.len() >= CAP {
                    self.human_action.pop_first();
                }
                self.human_action.insert(service.clone(), action.clone());
            }
            Notice::IncidentResolvedByOperator {
                incident,
                by,
                reason,
            } => {
                let Some((service, trigger)) = self.opened.remove(&incident.0) else {
                    return;
                };
                let Some(action) = self.human_action.remove(&service) else {
                    return;
                };
                let matched = self.engine.explain(&incident.0).is_some_and(|e| {
                    e.hypotheses
                        .first()
                        .is_some_and(|h| h.pattern != "unmatched")
                });
                if matched {
                    return;
                }
                let c = medic_store::CandidatePattern {
                    id: 0,
                    incident: incident.0.clone(),
                    service,
                    trigger,
                    action,
                    by: by.clone(),
                    note: reason.clone(),
                    status: "candidate".into(),
                    created_at: now_rfc3339(),
                };
                if let Err(e) = self.store.add_candidate_pattern(&c).await {
                    tracing::warn!(error = %e, "recording a candidate pattern failed");
                }
            }
            _ => {}
        }
    }

    /// Append a step's notices to the audit log (and the structured log)
    /// and queue its notifications in the outbox, in one transaction.
    async fn record(&mut self, notices: &[Notice], commands: &[Command]) -> bool {
        let rendered: Vec<_> = notices.iter().map(medic_store::record::render).collect();
        for r in &rendered {
            tracing::info!(target: "medic::audit", kind = r.kind, payload = %r.payload, "audit");
        }
        for n in notices {
            self.metrics.observe_notice(n);
        }
        let notes: Vec<Notification> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Notify(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        if rendered.is_empty() && notes.is_empty() {
            return true;
        }
        // A follower (or a leader past its lease) records locally only: the
        // structured log above, never the shared store; cut off (store or
        // etcd unreachable), also in the bounded local journal.
        if !self.writes_allowed() {
            self.spool(&rendered);
            return false;
        }
        let audit: Vec<(&str, &str)> = rendered
            .iter()
            .map(|r| (r.kind, r.payload.as_str()))
            .collect();
        match self
            .outbox
            .record_step(&now_rfc3339(), &audit, &notes)
            .await
        {
            Ok(w) => {
                for _ in &w.records {
                    self.metrics.inc_audit();
                }
                if let Some(h) = &self.ha {
                    if h.store_down {
                        tracing::info!("ha: the store answers again");
                    }
                }
                self.set_store_down(false);
                true
            }
            Err(e) if e.is_fenced() => {
                tracing::error!(error = %e, "fenced off by the store: a newer leader exists; stepping down");
                self.fenced_off = true;
                false
            }
            Err(e) => {
                tracing::error!(error = %e, records = audit.len(),
                    "audit append failed: the shared store is unreachable; not acting (store_unreachable), recording locally");
                if let Some(h) = self.ha.as_mut() {
                    h.store_failed();
                }
                self.set_store_down(true);
                self.spool(&rendered);
                false
            }
        }
    }

    /// Keeps a step's records in the local journal while this member is cut
    /// off (a plain follower's are the leader's to record).
    fn spool(&mut self, rendered: &[medic_store::record::Rendered]) {
        let Some(h) = self.ha.as_mut() else {
            return;
        };
        let Some(reason) = h.cut_off() else {
            return;
        };
        let ts = now_rfc3339();
        for r in rendered {
            h.spool.push(crate::ha::Spooled {
                ts: ts.clone(),
                kind: r.kind.to_string(),
                payload: serde_json::from_str(&r.payload)
                    .unwrap_or_else(|_| serde_json::Value::String(r.payload.clone())),
                reason: reason.to_string(),
            });
        }
        h.publish();
    }

    /// Appends the local journal to the shared audit chain, in order, as
    /// `ha.replayed` records carrying the original time, kind and payload
    /// (fenced with this leader's token). Stops at the first failure.
    async fn replay(&mut self) -> Result<(), medic_store::StoreError> {
        let Some(h) = self.ha.as_mut() else {
            return Ok(());
        };
        let member = h.state.borrow().member.clone();
        let total = h.spool.len();
        while let Some(e) = h.spool.front() {
            let payload = serde_json::json!({
                "replayed": true,
                "member": member,
                "original_ts": e.ts,
                "kind": e.kind,
                "reason": e.reason,
                "payload": e.payload,
                "v": 1,
            });
            if let Err(err) = self
                .store
                .append_audit(&now_rfc3339(), "ha.replayed", &payload.to_string())
                .await
            {
                h.spool.rewrite();
                return Err(err);
            }
            h.spool.pop();
            h.replayed += 1;
            self.metrics.inc_audit();
        }
        if total > 0 {
            tracing::warn!(
                events = total,
                dropped = h.spool.dropped,
                "ha: the local journal was replayed into the shared audit chain"
            );
        }
        Ok(())
    }

    fn spawn_action(&mut self, req: ActionRequest, token: Option<u64>) {
        let run: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<String, ActionFailure>> + Send>,
        > = match token {
            Some(t) => Box::pin(self.actions.run_fenced(&req, t)),
            None => Box::pin(self.actions.run(&req)),
        };
        let tx = self.tx.clone();
        self.action_names
            .insert(req.id, (req.action.clone(), req.stage));
        tracing::info!(service = %req.service, action = %req.action, id = %req.id, attempt = req.attempt + 1, token = ?token, "running action");
        let id = req.id;
        let task = tokio::spawn(async move {
            let result = run.await;
            failpoint::hit("before_outcome");
            let _ = tx.send(Msg::Outcome { id: req.id, result }).await;
        });
        self.running.insert(id, task.abort_handle());
    }

    fn notify(&self, n: Notification) {
        let incident = n.incident.as_ref().map(|i| i.0.clone());
        match n.severity {
            medic_core::Severity::Critical => {
                tracing::error!(target: "medic::escalation", service = %n.service, incident = ?incident, title = %n.title, message = %n.message, "ESCALATION")
            }
            medic_core::Severity::Warning => {
                tracing::warn!(service = %n.service, incident = ?incident, title = %n.title, message = %n.message, "notification")
            }
            medic_core::Severity::Info => {
                tracing::info!(service = %n.service, incident = ?incident, title = %n.title, message = %n.message, "notification")
            }
        }
        // Delivery goes through the outbox (queued with the step's audit
        // records in `record`), never fire-and-forget.
    }

    async fn persist(&mut self, v: IncidentView) {
        let now = Instant::now();
        {
            let mut map = match self.incidents.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            let first_seen = match map.get(&v.id.0) {
                Some(s) => s.first_seen,
                None => {
                    self.metrics.inc_incident();
                    now
                }
            };
            map.insert(
                v.id.0.clone(),
                IncidentSnapshot {
                    view: v.clone(),
                    first_seen,
                },
            );
            // Bounded: keep the most recent 1000 incidents in memory.
            while map.len() > 1000 {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| s.first_seen)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => map.remove(&k),
                    None => break,
                };
            }
        }
        let rec = IncidentRecord {
            id: v.id.0.clone(),
            service: v.service.clone(),
            state: v.phase.as_str().to_string(),
            trigger: v.trigger.clone(),
            opened_at: self.clock.wall(v.opened_at),
            updated_at: self.clock.wall(v.updated_at),
            closed_at: v.closed_at.map(|t| self.clock.wall(t)),
            outcome: v.outcome.map(|o| o.as_str().to_string()),
            summary: format!(
                "{} (confidence {:.2}); actions: {}",
                v.cause,
                v.confidence,
                if v.actions.is_empty() {
                    "none".to_string()
                } else {
                    v.actions.join(", ")
                }
            ),
            timeline: v
                .timeline
                .iter()
                .map(|t| TimelineEntry {
                    ts: self.clock.wall(t.at),
                    kind: t.kind.clone(),
                    message: t.message.clone(),
                })
                .collect(),
            merged: v.merged.clone(),
            diagnosis: v
                .diagnosis
                .as_ref()
                .map(|(service, pattern)| medic_store::IncidentCause {
                    service: service.clone(),
                    pattern: pattern.clone(),
                }),
        };
        // A follower's incidents are its own view; the leader's are stored.
        if !self.writes_allowed() {
            return;
        }
        if let Err(e) = self.store.upsert_incident(&rec).await {
            tracing::error!(error = %e, incident = %rec.id, "storing incident failed");
        }
        if rec.closed_at.is_some() {
            self.outbox.incident_closed(&rec.id, &now_rfc3339()).await;
            if let Some(t) = &self.traces {
                let wall = self.clock.wall;
                t.incident_closed(&v, &|m: MonoTime| {
                    let at = wall + Duration::from_millis(m.as_millis());
                    u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0)
                });
            }
        }
    }
}
