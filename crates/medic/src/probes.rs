//! Probe loops: one task per configured probe, on a fixed schedule.
//!
//! Runs start at `start + offset + k·interval` (tokio interval, missed ticks
//! skipped, counted in `medic_probe_missed_intervals_total`). The offset is a
//! hash of the service and probe name within one interval, so thousands of
//! probes with the same interval are spread over it instead of all firing at
//! once; process probes (free, push-based) start at once. At most
//! [`MAX_CONCURRENT_PROBES`] network/exec probes run at the same time (one
//! shared HTTP client): a hung fleet cannot exhaust file descriptors.
//! Runs are on the grid:
//! a probe that takes its whole timeout does not push the next one back, so
//! `consecutive` failures are detected after `consecutive × interval`, not
//! `consecutive × (interval + timeout)`. A run still going when its next tick
//! comes is not doubled: the next run starts when it ends, and the schedule
//! after that stays on the grid. A process probe also reports every state
//! change of its supervisor at once. An HTTP probe with keep-alive (the
//! default) holds at most one connection (`medic_probe::Prepared`), reused
//! for at most `keep_alive_max_age`, closed after any failed run and not
//! reused after an action on its service ended.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medic_api::Metrics;
use medic_config::{Config, ProbeConfig, ProbeKind};
use medic_core::{ProbeFailure, ProbeReport};
use medic_exec::{DockerClient, ProcessState, Supervisor};
use medic_probe::{ProbeOutcome, Prober};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::MissedTickBehavior;

/// Most HTTP/TCP/exec probes in flight at once, all services together.
pub const MAX_CONCURRENT_PROBES: usize = 1024;

/// Where in its interval a probe runs: a stable hash (FNV-1a) of service
/// and probe name, spread over `[0, interval)`.
pub fn spread_offset(service: &str, probe: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.bytes().chain([0u8]).chain(probe.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_millis(h % ms)
}

use crate::lifecycle::{Hints, ProbeHint};

/// One probe run's report, with the count of actions ended on its service
/// when the run began. The daemon drops a run that an action on its service
/// ended during or after ([`ProbeRun::is_stale`]) when it takes the run from
/// its queue: the run saw the state before the action, and the action's
/// outcome may have reached the engine first (the report waits in two
/// queues, the outcome in one), where a stale failure would be taken as the
/// action's verification.
pub struct ProbeRun {
    pub report: ProbeReport,
    since: Option<(ProbeHint, u64)>,
}

impl std::fmt::Debug for ProbeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeRun")
            .field("report", &self.report)
            .field("actions_ended_before", &self.since.as_ref().map(|(_, n)| n))
            .finish()
    }
}

impl ProbeRun {
    /// A report with nothing to be stale against (signal rules, alerts).
    pub fn unstamped(report: ProbeReport) -> Self {
        ProbeRun {
            report,
            since: None,
        }
    }

    /// True when an action on the service ended after the run began.
    pub fn is_stale(&self) -> bool {
        self.since
            .as_ref()
            .is_some_and(|(hint, ended)| hint.actions_ended() != *ended)
    }
}

/// Spawn a loop for every probe of every service.
pub fn spawn_all(
    config: &Config,
    supervisors: &BTreeMap<String, Supervisor>,
    prober: &Prober,
    reports: &mpsc::Sender<ProbeRun>,
    metrics: &Arc<Metrics>,
    hints: &Hints,
    shutdown: &watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    for svc in &config.services {
        for probe in &svc.probes {
            tokio::spawn(probe_loop(
                svc.name.clone(),
                probe.clone(),
                prober.clone(),
                supervisors.get(&svc.name).cloned(),
                reports.clone(),
                metrics.clone(),
                hints.clone(),
                permits.clone(),
                shutdown.clone(),
            ));
        }
    }
}

fn process_outcome(state: &ProcessState) -> Option<ProbeOutcome> {
    match state {
        ProcessState::Running { pid, .. } => Some(ProbeOutcome {
            ok: true,
            latency: Duration::ZERO,
            failure: None,
            detail: format!("pid {pid} running"),
        }),
        ProcessState::Exited {
            pid, code, signal, ..
        } => Some(ProbeOutcome {
            ok: false,
            latency: Duration::ZERO,
            failure: Some(ProbeFailure::Exited),
            detail: format!("pid {pid} exited (code {code:?}, signal {signal:?})"),
        }),
        // Not started or deliberately stopped: nothing to judge.
        ProcessState::NotStarted | ProcessState::Stopped => None,
    }
}

/// The Docker group `label` as a probe result: failing when it is empty,
/// when a container is not running (`Exited`) or when a healthcheck says
/// unhealthy (`ExecFailed`: the healthcheck is a command in the container).
async fn docker_outcome(
    cell: &tokio::sync::OnceCell<DockerClient>,
    label: &str,
    timeout: Duration,
) -> ProbeOutcome {
    let started = std::time::Instant::now();
    let run = async {
        let client = cell.get_or_try_init(DockerClient::connect).await?;
        client.group(label).await
    };
    let fail = |failure, detail: String| ProbeOutcome {
        ok: false,
        latency: started.elapsed(),
        failure: Some(failure),
        detail,
    };
    let group = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return fail(
                ProbeFailure::Timeout,
                format!("docker: no answer within {}ms", timeout.as_millis()),
            )
        }
        Ok(Err(e)) => return fail(ProbeFailure::Other, e.to_string()),
        Ok(Ok(g)) => g,
    };
    if group.is_empty() {
        return fail(
            ProbeFailure::Other,
            format!("no container carries the label {label}"),
        );
    }
    if let Some(c) = group.iter().find(|c| !c.running()) {
        return fail(
            ProbeFailure::Exited,
            format!("container {} is {}", c.name, c.state),
        );
    }
    if let Some(c) = group
        .iter()
        .find(|c| c.health.as_deref() == Some("unhealthy"))
    {
        return fail(
            ProbeFailure::ExecFailed(None),
            format!("container {} is unhealthy", c.name),
        );
    }
    ProbeOutcome {
        ok: true,
        latency: started.elapsed(),
        failure: None,
        detail: format!(
            "{} container(s) running: {}",
            group.len(),
            group
                .iter()
                .map(|c| format!(
                    "{} ({})",
                    c.name,
                    c.health.as_deref().unwrap_or("no healthcheck")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn probe_loop(
    service: String,
    probe: ProbeConfig,
    prober: Prober,
    sup: Option<Supervisor>,
    tx: mpsc::Sender<ProbeRun>,
    metrics: Arc<Metrics>,
    hints: Hints,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state_rx = match (&probe.kind, &sup) {
        (ProbeKind::Process, Some(s)) => Some(s.watch()),
        _ => None,
    };
    // Connected on first use and again after an error.
    let docker = tokio::sync::OnceCell::<DockerClient>::new();
    let interval = probe.interval.max(Duration::from_millis(1));
    let offset = match probe.kind {
        ProbeKind::Process => Duration::ZERO,
        _ => spread_offset(&service, &probe.name, interval),
    };
    let mut prepared = medic_probe::Prepared::new(probe.kind.clone());
    // This probe's hints, looked up once.
    let hint = hints.probe(&service, &probe.name);
    drop(hints);
    // Actions ended on this service when the kept connection was dialled.
    let mut acted = hint.actions_ended();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next_due: Option<tokio::time::Instant> = None;
    // This probe's series, looked up once (at its first run).
    let mut observer: Option<medic_api::ProbeObserver> = None;
    loop {
        // The first tick is at the probe's offset, then on the grid.
        tokio::select! {
            at = ticks.tick() => {
                if let Some(due) = next_due {
                    // Skipped ticks: the scheduler or the last run was late.
                    let late = at.saturating_duration_since(due);
                    let n = (late.as_millis() / interval.as_millis().max(1)) as u64;
                    if n > 0 {
                        metrics.inc_probe_missed(n);
                    }
                }
                next_due = Some(at + interval);
            }
            r = async {
                match state_rx.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => if r.is_err() { return; },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        // Actions ended on the service before this run (see below).
        let ended_before = hint.actions_ended();
        let outcome = match (&probe.kind, &sup) {
            (ProbeKind::Process, Some(s)) => process_outcome(&s.state()),
            (ProbeKind::Process, None) => None,
            (ProbeKind::Docker { label }, _) => {
                tokio::select! {
                    o = docker_outcome(&docker, label, probe.timeout) => Some(o),
                    _ = shutdown.changed() => return,
                }
            }
            _ => {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                if prepared.has_connection() {
                    // medic acted on the service (e.g. restarted it) since
                    // this connection was dialled: probe it through a new one.
                    let now = hint.actions_ended();
                    if now != acted {
                        prepared.forget_connection();
                    }
                    acted = now;
                } else {
                    acted = hint.actions_ended();
                }
                let o = tokio::select! {
                    o = prober.run_prepared(&mut prepared, probe.timeout) => o,
                    _ = shutdown.changed() => return,
                };
                o
            }
        };
        let Some(o) = outcome else { continue };
        if probe.kind != ProbeKind::Process {
            hint.observe(o.failure.as_ref());
        }
        observer
            .get_or_insert_with(|| metrics.probe_observer(&service, &probe.name))
            .observe(o.ok, o.latency);
        // An action on the service ended while this run was under way: the
        // run saw (part of) the state before the action, so it is no
        // evidence of the state after it. Reported, it would reach the
        // engine after the action's outcome and be taken as the verification
        // of the change (a stale failure: "failing again after the action",
        // a rollback of a change that worked). The next tick probes afresh.
        if hint.actions_ended() != ended_before {
            continue;
        }
        let report = ProbeReport {
            service: service.clone(),
            probe: probe.name.clone(),
            ok: o.ok,
            latency: o.latency,
            failure: o.failure,
            detail: o.detail,
        };
        let run = ProbeRun {
            report,
            since: Some((hint.clone(), ended_before)),
        };
        if tx.send(run).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::time::Instant;

    /// With paused time: an HTTP probe that always times out (1s timeout,
    /// 1s interval) still runs once per second, on the grid.
    #[tokio::test(start_paused = true)]
    async fn probes_that_time_out_stay_on_a_fixed_schedule() {
        // A listener that accepts and never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let probe = ProbeConfig {
            name: "healthz".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            kind: ProbeKind::Http {
                url: format!("http://{addr}/healthz"),
                expect_status: 200,
                body_contains: None,
                keep_alive: None,
            },
        };
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop, shutdown) = watch::channel(false);
        let hints = Hints::default();
        let offset = spread_offset("web", "healthz", Duration::from_secs(1));
        let start = Instant::now() + offset;
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(probe_loop(
            "web".into(),
            probe,
            Prober::new().unwrap(),
            None,
            tx,
            metrics.clone(),
            hints.clone(),
            Arc::new(Semaphore::new(4)),
            shutdown,
        ));
        let mut at = Vec::new();
        for _ in 0..4 {
            let r = rx.recv().await.unwrap().report;
            assert_eq!(r.failure, Some(ProbeFailure::Timeout), "{r:?}");
            at.push(Instant::now().saturating_duration_since(start));
        }
        // Reports at ~1s, 2s, 3s, 4s (each run ends at its timeout, the next
        // starts on its tick); a drifting loop would report at 1, 3, 5, 7.
        for (k, t) in at.iter().enumerate() {
            let want = Duration::from_secs(k as u64 + 1);
            assert!(
                *t >= want && *t < want + Duration::from_millis(500),
                "report {k} at {t:?}: {at:?}"
            );
        }
        assert!(hints.unresponsive("web"));
        let text = metrics.encode();
        assert!(
            text.contains(r#"medic_probe_duration_seconds_count{service="web",probe="healthz"} 4"#),
            "{text}"
        );
        assert!(
            text.contains("medic_probe_missed_intervals_total 0"),
            "{text}"
        );
    }

    /// A kept connection is not reused once an action on the service has
    /// ended (medic may have restarted it): the next run dials.
    #[tokio::test]
    async fn an_action_on_the_service_makes_the_next_run_dial_again() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(k) = s.read(&mut chunk).await {
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let probe = ProbeConfig {
            name: "healthz".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(2),
            kind: ProbeKind::Http {
                url: format!("http://{addr}/healthz"),
                expect_status: 200,
                body_contains: None,
                keep_alive: Some(Duration::from_secs(600)),
            },
        };
        let hints = Hints::default();
        let (mut rx, _stop) = spawn_web_loop(probe, &hints);
        for _ in 0..3 {
            assert!(rx.recv().await.unwrap().report.ok);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        hints.acted("other-service");
        for _ in 0..3 {
            assert!(rx.recv().await.unwrap().report.ok);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        hints.acted("web");
        for _ in 0..3 {
            assert!(rx.recv().await.unwrap().report.ok);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// `probe` of service `web` in its loop, with `hints`: its reports, and
    /// the shutdown sender (the loop stops when it is dropped).
    fn spawn_web_loop(
        probe: ProbeConfig,
        hints: &Hints,
    ) -> (mpsc::Receiver<ProbeRun>, watch::Sender<bool>) {
        let (tx, rx) = mpsc::channel(16);
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(probe_loop(
            "web".into(),
            probe,
            Prober::new().unwrap(),
            None,
            tx,
            Arc::new(Metrics::new()),
            hints.clone(),
            Arc::new(Semaphore::new(4)),
            shutdown,
        ));
        (rx, stop)
    }

    /// A run that an action on the service ended during is not reported:
    /// it saw the state before the action, and would be taken as the
    /// verification of it (the canary test's stale "verify.failed").
    #[tokio::test]
    async fn a_run_an_action_ended_during_is_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        // The first run fails slowly; every later run passes at once.
        let script = format!(
            "if [ -e {f} ]; then exit 0; fi; touch {f}; sleep 0.5; exit 1",
            f = first.display()
        );
        let probe = ProbeConfig {
            name: "release".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            kind: ProbeKind::Exec {
                command: vec!["sh".into(), "-c".into(), script],
            },
        };
        let hints = Hints::default();
        let (mut rx, _stop) = spawn_web_loop(probe, &hints);
        for _ in 0..500 {
            if first.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(first.exists(), "the first run never started");
        // An action on another service does not matter; one on web does.
        hints.acted("other-service");
        hints.acted("web");
        let r = rx.recv().await.unwrap().report;
        assert!(r.ok, "the first report is a fresh run: {r:?}");
    }

    /// A run that was sent before an action on its service ended is stale
    /// when the daemon takes it (after the action's outcome, which travels
    /// through fewer queues); an action elsewhere, or a report without a
    /// probe run behind it, is not.
    #[tokio::test]
    async fn a_run_sent_before_an_action_ended_is_stale_when_taken() {
        let probe = ProbeConfig {
            name: "release".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            kind: ProbeKind::Exec {
                command: vec!["true".into()],
            },
        };
        let hints = Hints::default();
        let (mut rx, stop) = spawn_web_loop(probe, &hints);
        let sent = rx.recv().await.unwrap();
        drop(stop);
        assert!(!sent.is_stale(), "{sent:?}");
        hints.acted("other-service");
        assert!(!sent.is_stale(), "{sent:?}");
        hints.acted("web");
        assert!(sent.is_stale(), "{sent:?}");
        let signal = ProbeRun::unstamped(sent.report.clone());
        assert!(!signal.is_stale());
    }

    #[test]
    fn offsets_are_stable_and_spread_over_the_interval() {
        let i = Duration::from_secs(1);
        assert_eq!(spread_offset("a", "h", i), spread_offset("a", "h", i));
        let offs: std::collections::BTreeSet<u128> = (0..1000)
            .map(|k| spread_offset(&format!("t{k}"), "h", i).as_millis() / 100)
            .collect();
        // 1000 probes land in every tenth of the interval.
        assert_eq!(offs.len(), 10);
        assert!((0..1000).all(|k| spread_offset(&format!("t{k}"), "h", i) < i));
    }
}
