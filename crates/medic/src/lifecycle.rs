//! Supervised processes and actions at the daemon's edge.
//!
//! - [`start_supervisors`]: one [`Supervisor`] per service with a `process:`
//!   section. A process recorded in the store by an earlier medic (killed
//!   before it could stop its services) is **adopted** if it is still the same
//!   live process, instead of starting a duplicate that cannot bind its port.
//!   Every start and deliberate stop is written to the store ([`StoreJournal`]).
//! - [`Actions`]: turns the core's `ActionRequest` into an [`ExecRequest`] and
//!   runs it on the executor registered for its kind.
//! - [`Hints`]: what the probes last saw (a timeout makes a restart treat the
//!   process as unresponsive: short stop grace).
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use medic_config::{ActionExec, Config, ProcessConfig};
use medic_core::{ActionFailure, ActionFailureKind, ActionRequest, ProbeFailure};
use medic_exec::{
    Adoption, BoxFuture, CancelToken, ExecRequest, ProcessJournal, ProcessRecord, Registry,
    Supervisor,
};
use medic_store::{Store, SupervisedProcess};

/// Request header of an HA leader's http action: its fencing token.
pub const FENCE_TOKEN_HEADER: &str = "X-Medic-Fence-Token";
/// Request header of an HA leader's http action: the action's id.
pub const ACTION_ID_HEADER: &str = "X-Medic-Action-Id";

/// Keeps `supervised_process` in the store in step with the supervisors.
pub struct StoreJournal(pub Store);

impl ProcessJournal for StoreJournal {
    fn record(&self, service: String, rec: Option<ProcessRecord>) -> BoxFuture<'static, ()> {
        let store = self.0.clone();
        Box::pin(async move {
            let r = match rec {
                Some(r) => store.put_supervised(&to_store(r)).await,
                None => store.delete_supervised(&service).await,
            };
            if let Err(e) = r {
                // Not fatal: at worst the next medic starts a duplicate.
                tracing::error!(service = %service, error = %e, "cannot record the supervised process");
            }
        })
    }
}

fn to_store(r: ProcessRecord) -> SupervisedProcess {
    SupervisedProcess {
        service: r.service,
        pid: r.pid,
        pgid: r.pgid,
        start_ticks: r.start_ticks,
        boot_id: r.boot_id,
        started_unix_ms: r.started_unix_ms,
        command: r.command,
    }
}

fn from_store(p: SupervisedProcess) -> ProcessRecord {
    ProcessRecord {
        service: p.service,
        pid: p.pid,
        pgid: p.pgid,
        start_ticks: p.start_ticks,
        boot_id: p.boot_id,
        started_unix_ms: p.started_unix_ms,
        command: p.command,
    }
}

async fn audit(store: &Store, kind: &str, payload: serde_json::Value) {
    let ts = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string());
    if let Err(e) = store.append_audit(&ts, kind, &payload.to_string()).await {
        tracing::error!(error = %e, kind, "audit append failed");
    }
}

/// A supervisor per service with a `process:` section; each recorded process
/// still alive is adopted, the others are started if `autostart`. Recorded
/// processes of services no longer configured are stopped.
pub async fn start_supervisors(
    config: &Config,
    store: &Store,
    log_dir: &Path,
    offline: bool,
) -> anyhow::Result<BTreeMap<String, Supervisor>> {
    let journal: Arc<dyn ProcessJournal> = Arc::new(StoreJournal(store.clone()));
    // `offline`: an HA member started while the shared store is unreachable
    // (the daemon refuses that when a service supervises a process).
    let mut recorded: BTreeMap<String, ProcessRecord> = if offline {
        BTreeMap::new()
    } else {
        store
            .list_supervised()
            .await
            .context("reading the supervised processes of the last run")?
            .into_iter()
            .map(|p| (p.service.clone(), from_store(p)))
            .collect()
    };
    let mut supervisors = BTreeMap::new();
    for svc in &config.services {
        let Some(p) = &svc.process else { continue };
        let log = log_dir.join(format!("{}.log", svc.name));
        let mut p = p.clone();
        p.command = resolve_self(&p.command);
        let sup = Supervisor::new(&svc.name, p.clone(), Some(log)).with_journal(journal.clone());
        let mut running = false;
        if let Some(rec) = recorded.remove(&svc.name) {
            let adoption = sup.adopt(&rec).await;
            let payload =
                serde_json::json!({"service": svc.name, "pid": rec.pid, "pgid": rec.pgid});
            match adoption {
                Adoption::Adopted {
                    pid,
                    command_changed: false,
                } => {
                    tracing::info!(service = %svc.name, pid, "adopted the running process of the last run");
                    audit(store, "process.adopted", payload).await;
                    running = true;
                }
                Adoption::Adopted {
                    pid,
                    command_changed: true,
                } => {
                    tracing::warn!(service = %svc.name, pid, "the process of the last run has another command line; stopping it");
                    audit(store, "process.replaced", payload).await;
                    sup.stop().await;
                }
                Adoption::AlreadyRunning { .. } => running = true,
                other => {
                    tracing::info!(service = %svc.name, pid = rec.pid, outcome = ?other, "the process of the last run is gone");
                    if let Err(e) = store.delete_supervised(&svc.name).await {
                        tracing::error!(service = %svc.name, error = %e, "cannot forget the old process");
                    }
                }
            }
        }
        if !running && p.autostart {
            sup.start()
                .await
                .with_context(|| format!("starting service {}", svc.name))?;
        }
        supervisors.insert(svc.name.clone(), sup);
    }
    for (service, rec) in recorded {
        // A service removed from the config: its process must not run on
        // unsupervised.
        let cfg = ProcessConfig {
            command: rec.command.clone(),
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_secs(10),
            unresponsive_stop_grace: Duration::from_secs(1),
            autostart: false,
        };
        let sup = Supervisor::new(&service, cfg, None).with_journal(journal.clone());
        if let Adoption::Adopted { pid, .. } = sup.adopt(&rec).await {
            tracing::warn!(service = %service, pid, "stopping the process of a service that is no longer configured");
            audit(
                store,
                "process.unconfigured_stopped",
                serde_json::json!({"service": service, "pid": pid}),
            )
            .await;
            sup.stop().await;
        }
        if let Err(e) = store.delete_supervised(&service).await {
            tracing::error!(service = %service, error = %e, "cannot forget the old process");
        }
    }
    Ok(supervisors)
}

/// A command whose program is the bare name `medic` runs this very binary
/// (`std::env::current_exe`), so `medic fixture …` works without medic on
/// PATH. Any other command is returned unchanged.
pub fn resolve_self(command: &[String]) -> Vec<String> {
    match command.split_first() {
        Some((prog, args)) if prog == "medic" => match std::env::current_exe() {
            Ok(exe) => std::iter::once(exe.display().to_string())
                .chain(args.iter().cloned())
                .collect(),
            Err(_) => command.to_vec(),
        },
        _ => command.to_vec(),
    }
}

/// What the probes last saw and what the executors last did, per service:
/// the last failure class of each probe, and how many actions ended on
/// each service (a keep-alive probe dials anew when that moved).
///
/// A probe loop takes its [`ProbeHint`] once ([`Hints::probe`]) and writes
/// and reads it without a look-up, a lock or an allocation per run (at
/// 10,000 probes a second the string-keyed map this replaces was a visible
/// share of medic's CPU).
#[derive(Clone, Default)]
pub struct Hints {
    services: Arc<Mutex<BTreeMap<String, Arc<ServiceHints>>>>,
}

/// One service's hints, shared by its probe loops and the executors.
#[derive(Default)]
struct ServiceHints {
    /// Actions ended on the service so far.
    acted: AtomicU64,
    /// Per probe: whether its last run timed out.
    timed_out: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

/// One probe's handle on [`Hints`], held by its probe loop.
#[derive(Clone)]
pub struct ProbeHint {
    service: Arc<ServiceHints>,
    timed_out: Arc<AtomicBool>,
}

impl ProbeHint {
    /// Record one run's result.
    pub fn observe(&self, failure: Option<&ProbeFailure>) {
        let timed_out = matches!(failure, Some(ProbeFailure::Timeout));
        self.timed_out.store(timed_out, Ordering::Relaxed);
    }

    /// How many actions on the probe's service have ended so far.
    pub fn actions_ended(&self) -> u64 {
        self.service.acted.load(Ordering::Acquire)
    }
}

fn relock<T>(r: std::sync::LockResult<T>) -> T {
    match r {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Hints {
    fn service(&self, service: &str) -> Arc<ServiceHints> {
        let mut m = relock(self.services.lock());
        match m.get(service) {
            Some(s) => s.clone(),
            None => m.entry(service.to_string()).or_default().clone(),
        }
    }

    /// The handle of `probe` of `service` (the same flag for the same
    /// names): what its loop records and reads.
    pub fn probe(&self, service: &str, probe: &str) -> ProbeHint {
        let svc = self.service(service);
        let timed_out = {
            let mut m = relock(svc.timed_out.lock());
            m.entry(probe.to_string()).or_default().clone()
        };
        ProbeHint {
            service: svc,
            timed_out,
        }
    }

    /// An action on `service` ended (whatever its outcome): it may have
    /// restarted it, so kept probe connections to it are not reused.
    pub fn acted(&self, service: &str) {
        self.service(service).acted.fetch_add(1, Ordering::AcqRel);
    }

    /// True when a probe of `service` last timed out: the service does not
    /// answer, so a restart need not wait the full `stop_grace`.
    pub fn unresponsive(&self, service: &str) -> bool {
        let Some(svc) = relock(self.services.lock()).get(service).cloned() else {
            return false;
        };
        let probes = relock(svc.timed_out.lock());
        probes.values().any(|t| t.load(Ordering::Relaxed))
    }
}

struct Named {
    service: String,
    action: String,
}

/// Runs the engine's actions on the executor registry.
pub struct Actions {
    registry: Registry,
    /// Instance name → URL per service, for per-instance actions (issue 10).
    instances: BTreeMap<String, BTreeMap<String, String>>,
    specs: BTreeMap<String, BTreeMap<String, ActionExec>>,
    restart_timeouts: BTreeMap<String, Duration>,
    hints: Hints,
}

impl Actions {
    pub fn new(
        config: &Config,
        supervisors: &BTreeMap<String, Supervisor>,
        http: reqwest::Client,
        hints: Hints,
    ) -> Self {
        Actions {
            registry: Registry::standard(supervisors.clone(), http),
            instances: config
                .services
                .iter()
                .filter_map(|s| {
                    let c = s.canary.as_ref()?;
                    Some((s.name.clone(), c.instances.iter().cloned().collect()))
                })
                .collect(),
            specs: config
                .services
                .iter()
                .map(|s| {
                    let mut actions = s.actions.clone();
                    for a in actions.values_mut() {
                        if let ActionExec::Exec { command, .. } = a {
                            *command = resolve_self(command);
                        }
                    }
                    (s.name.clone(), actions)
                })
                .collect(),
            restart_timeouts: supervisors
                .iter()
                .map(|(n, s)| (n.clone(), s.restart_timeout()))
                .collect(),
            hints,
        }
    }

    /// The outcome of `req`, as a future that owns what it needs. The
    /// executor runs in its own task; dropping (aborting) the returned future
    /// cancels it, so an exec action's process group is killed.
    pub fn run(
        &self,
        req: &ActionRequest,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<String, ActionFailure>> + Send + 'static>>
    {
        if req.instances.is_empty() {
            return Box::pin(self.run_named(&req.service, &req.action));
        }
        Box::pin(self.run_instances(req))
    }

    /// A stage of a staged canary or its rollback (issue 10): the `exec`
    /// action once per instance, in order, with `MEDIC_INSTANCE` and
    /// `MEDIC_INSTANCE_URL` set; the first failure stops it (naming the
    /// instance). Other kinds cannot address one instance: they fail.
    fn run_instances(
        &self,
        req: &ActionRequest,
    ) -> impl Future<Output = Result<String, ActionFailure>> + Send + 'static {
        let spec = self
            .specs
            .get(&req.service)
            .and_then(|m| m.get(&req.action))
            .cloned();
        let urls = self
            .instances
            .get(&req.service)
            .cloned()
            .unwrap_or_default();
        let what = format!("{}/{}", req.service, req.action);
        let instances = req.instances.clone();
        let registry = self.registry.clone();
        let service = req.service.clone();
        let action = req.action.clone();
        let hints = self.hints.clone();
        async move {
            let r = async {
                let Some(spec @ ActionExec::Exec { .. }) = spec else {
                    return Err(ActionFailure {
                        kind: ActionFailureKind::Other,
                        message: format!(
                            "{what}: acting on single instances ({}) needs an exec action",
                            instances.join(",")
                        ),
                    });
                };
                let mut out = Vec::new();
                for inst in &instances {
                    let mut s = spec.clone();
                    if let ActionExec::Exec { env, .. } = &mut s {
                        env.insert("MEDIC_INSTANCE".into(), inst.clone());
                        if let Some(u) = urls.get(inst) {
                            env.insert("MEDIC_INSTANCE_URL".into(), u.clone());
                        }
                    }
                    let exec = ExecRequest::new(&service, &action, s, Duration::from_secs(60));
                    let token = CancelToken::new();
                    let _guard = token.drop_guard();
                    match tokio::spawn(registry.execute(exec, token)).await {
                        Ok(Ok(o)) => out.push(format!("{inst}: {}", o.detail.trim())),
                        Ok(Err(e)) => {
                            let f = ActionFailure::from(e);
                            return Err(ActionFailure {
                                kind: f.kind,
                                message: format!("instance {inst}: {}", f.message),
                            });
                        }
                        Err(e) => {
                            return Err(ActionFailure {
                                kind: ActionFailureKind::Other,
                                message: format!("executor for {what} on {inst} failed: {e}"),
                            })
                        }
                    }
                }
                Ok(out.join("; "))
            }
            .await;
            hints.acted(&service);
            r
        }
    }

    /// [`Actions::run`] carrying the leader's fencing token (issue 13): an
    /// exec action gets `MEDIC_FENCE_TOKEN` and `MEDIC_ACTION_ID` in its
    /// environment, an http action the headers [`FENCE_TOKEN_HEADER`] and
    /// [`ACTION_ID_HEADER`], so the target can refuse a stale token itself.
    pub fn run_fenced(
        &self,
        req: &ActionRequest,
        token: u64,
    ) -> impl Future<Output = Result<String, ActionFailure>> + Send + 'static {
        let extra = [
            ("MEDIC_FENCE_TOKEN".to_string(), token.to_string()),
            ("MEDIC_ACTION_ID".to_string(), req.id.to_string()),
        ];
        let headers = vec![
            (FENCE_TOKEN_HEADER.to_string(), token.to_string()),
            (ACTION_ID_HEADER.to_string(), req.id.to_string()),
        ];
        self.run_with_env(&req.service, &req.action, &extra, headers)
    }

    /// [`Actions::run`] by service and action name (a drill's fault action).
    pub fn run_named(
        &self,
        service: &str,
        action: &str,
    ) -> impl Future<Output = Result<String, ActionFailure>> + Send + 'static {
        self.run_with_env(service, action, &[], Vec::new())
    }

    fn run_with_env(
        &self,
        service: &str,
        action: &str,
        extra_env: &[(String, String)],
        headers: Vec<(String, String)>,
    ) -> impl Future<Output = Result<String, ActionFailure>> + Send + 'static {
        let req = (service.to_string(), action.to_string());
        let req = Named {
            service: req.0,
            action: req.1,
        };
        let spec = self
            .specs
            .get(&req.service)
            .and_then(|m| m.get(&req.action))
            .cloned()
            .map(|mut spec| {
                if let ActionExec::Exec { env, .. } = &mut spec {
                    env.extend(extra_env.iter().cloned());
                }
                spec
            });
        let prepared = spec.map(|spec| {
            let restart_timeout = self
                .restart_timeouts
                .get(&req.service)
                .copied()
                .unwrap_or(Duration::from_secs(60));
            let mut exec = ExecRequest::new(&req.service, &req.action, spec, restart_timeout);
            exec.unresponsive = self.hints.unresponsive(&req.service);
            if matches!(exec.spec, ActionExec::Http { .. }) {
                exec.headers = headers;
            }
            let token = CancelToken::new();
            let guard = token.drop_guard();
            (tokio::spawn(self.registry.execute(exec, token)), guard)
        });
        let what = format!("{}/{}", req.service, req.action);
        let hints = self.hints.clone();
        let service = req.service;
        async move {
            let Some((task, _cancel_on_drop)) = prepared else {
                return Err(ActionFailure {
                    kind: ActionFailureKind::Other,
                    message: format!("no executor for {what}"),
                });
            };
            let r = match task.await {
                Ok(r) => r.map(|o| o.detail).map_err(ActionFailure::from),
                Err(e) => Err(ActionFailure {
                    kind: ActionFailureKind::Other,
                    message: format!("executor for {what} failed: {e}"),
                }),
            };
            hints.acted(&service);
            r
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_command_named_medic_runs_this_binary() {
        let exe = std::env::current_exe().unwrap().display().to_string();
        let got = resolve_self(&["medic".into(), "fixture".into()]);
        assert_eq!(got, vec![exe, "fixture".to_string()]);
        let other = vec!["/usr/bin/medic".to_string(), "x".to_string()];
        assert_eq!(resolve_self(&other), other);
        assert!(resolve_self(&[]).is_empty());
    }

    #[test]
    fn a_timeout_of_any_probe_marks_the_service_unresponsive_until_it_answers() {
        let h = Hints::default();
        assert!(!h.unresponsive("web"));
        let healthz = h.probe("web", "healthz");
        let alive = h.probe("web", "alive");
        healthz.observe(Some(&ProbeFailure::Timeout));
        alive.observe(None);
        assert!(h.unresponsive("web"));
        assert!(!h.unresponsive("db"));
        healthz.observe(Some(&ProbeFailure::Refused));
        assert!(!h.unresponsive("web"));
        healthz.observe(Some(&ProbeFailure::Timeout));
        // The same names are the same flag.
        h.probe("web", "healthz").observe(None);
        assert!(!h.unresponsive("web"));
    }

    #[test]
    fn a_probe_sees_the_actions_ended_on_its_service_only() {
        let h = Hints::default();
        let web = h.probe("web", "healthz");
        let db = h.probe("db", "healthz");
        h.acted("web");
        h.acted("web");
        // A service acted on before any probe handle was taken counts too.
        h.acted("cache");
        assert_eq!(web.actions_ended(), 2);
        assert_eq!(db.actions_ended(), 0);
        assert_eq!(h.probe("cache", "h").actions_ended(), 1);
    }
}
