//! medic.yaml: parse, validate and turn into the engine's and adapters' configuration.
//!
//! Every problem is reported as `FILE:LINE:COL: message`. Syntax and type errors
//! stop parsing at the first one (YAML cannot be trusted past it); semantic
//! problems (undefined references, missing probe kinds, ...) are all collected.
#![forbid(unsafe_code)]

mod ai;
mod canary;
mod deps;
mod drills;
mod governance;
mod ha;
mod notify;
mod otlp;
mod patterns;
mod raw;
mod signals;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::{
    ActionKind, ActionSpec, Condition, EngineConfig, FailureRule, LatencyRule, Mode, ProbeSpec,
    RecoveryRule, Remediation, RetryPolicy, RevertSpec, Risk, ServicePolicy, ServiceSpec,
    StartupSpec,
};
use serde_saphyr::{Location, Spanned};

pub use ai::{AiConfig, MAX_AI_HYPOTHESES, MAX_AI_TIMEOUT};
pub use canary::CanaryConfig;
pub use deps::{DepKind, Dependency};
pub use drills::{DrillSpec, DrillsConfig, DEFAULT_DRILL_TIMEOUT};
pub use governance::FreezeSpec;
pub use ha::HaConfig;
pub use notify::{
    ChannelSpec, EscalationStep, NotifyConfig, NotifyRetry, RouteSpec, PAGERDUTY_EVENTS_URL,
};
pub use otlp::OtlpConfig;
pub use patterns::{
    load_patterns, parse_patterns, signal_fits, On, Pattern, PatternAction, Symptom, CHANGE_SIGNAL,
    DEFAULT_PATTERNS,
};
pub use raw::Dur;
use raw::*;
pub use signals::{
    valid_metric_name, AlertConfig, AlertmanagerConfig, BreakerConfig, Check, NoData, RuleConfig,
    Selector, SignalsConfig, SourceConfig, SourceKind, DEFAULT_SERVICE_LABEL,
    DEFAULT_SIGNAL_INTERVAL, DEFAULT_SIGNAL_TIMEOUT, MAX_PATTERN_LEN,
};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// All problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.file, p.message)?;
            } else {
                write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub stop_grace: Duration,
    /// Grace between SIGTERM and SIGKILL when the process is already judged
    /// unresponsive (stopped, or its probes time out).
    pub unresponsive_stop_grace: Duration,
    pub autostart: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    Http {
        url: String,
        expect_status: u16,
        body_contains: Option<String>,
        /// Reuse one connection from one run to the next, for at most this
        /// long (`http.keep_alive`, `http.keep_alive_max_age`); `None`: a
        /// new connection per run.
        keep_alive: Option<Duration>,
    },
    Tcp {
        address: String,
    },
    Exec {
        command: Vec<String>,
    },
    /// Liveness of the service's supervised process.
    Process,
    /// State and health status of the Docker containers carrying `label`:
    /// failing while any is not running or its healthcheck says unhealthy.
    Docker {
        label: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub kind: ProbeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionExec {
    Restart,
    /// Send `signal` (e.g. `SIGHUP`) to the supervised process (its leader).
    Signal {
        signal: String,
    },
    Exec {
        command: Vec<String>,
        timeout: Duration,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        method: String,
        body: Option<String>,
        expect_status: Option<u16>,
        timeout: Duration,
    },
    /// `op` on every container carrying `label` (`key=value`), one by one.
    Docker {
        op: DockerOp,
        label: String,
        /// SIGTERM → SIGKILL wait of stop and restart.
        grace: Duration,
        timeout: Duration,
    },
    /// `op` on a deployment, pod or node of a Kubernetes cluster.
    Kubernetes {
        op: KubeOp,
        /// Namespace of the deployment or pod (unused for a node).
        namespace: String,
        /// The deployment, pod or node name, as the op needs.
        target: String,
        /// A kubeconfig file; `None`: `KUBECONFIG`, `~/.kube/config`, or the
        /// in-cluster service account.
        kubeconfig: Option<PathBuf>,
        /// A context of the kubeconfig; `None`: its current context.
        context: Option<String>,
        /// Bounds the call and the wait for the rollout.
        timeout: Duration,
    },
    /// `systemctl [--user] <op> -- <unit>`.
    Systemd {
        op: SystemdOp,
        unit: String,
        /// The user's service manager (`--user`) instead of the system's.
        user: bool,
        timeout: Duration,
    },
}

/// A Kubernetes operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeOp {
    /// `kubectl rollout restart deployment/<name>`: patch the pod template's
    /// `kubectl.kubernetes.io/restartedAt` annotation, wait for the rollout.
    RolloutRestart,
    /// Set the deployment's replicas (scale subresource), wait for the rollout.
    Scale { replicas: u32 },
    /// `kubectl rollout undo`: the previous ReplicaSet's pod template back
    /// on the deployment, wait for the rollout.
    RolloutUndo,
    /// Delete one pod (its controller replaces it).
    DeletePod,
    /// Mark a node unschedulable.
    Cordon,
}

impl KubeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            KubeOp::RolloutRestart => "rollout-restart",
            KubeOp::Scale { .. } => "scale",
            KubeOp::RolloutUndo => "rollout-undo",
            KubeOp::DeletePod => "delete-pod",
            KubeOp::Cordon => "cordon",
        }
    }
}

/// What a systemd action asks the service manager to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdOp {
    Restart,
    Reload,
    Start,
    Stop,
}

impl SystemdOp {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemdOp::Restart => "restart",
            SystemdOp::Reload => "reload",
            SystemdOp::Start => "start",
            SystemdOp::Stop => "stop",
        }
    }
}

/// What a docker action does to each container of its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerOp {
    Restart,
    Stop,
    Start,
    /// Send `signal` (e.g. `SIGKILL`, `SIGHUP` for a reload).
    Kill {
        signal: String,
    },
}

impl DockerOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            DockerOp::Restart => "restart",
            DockerOp::Stop => "stop",
            DockerOp::Start => "start",
            DockerOp::Kill { .. } => "kill",
        }
    }
}

/// Everything the daemon needs to run one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    pub process: Option<ProcessConfig>,
    pub probes: Vec<ProbeConfig>,
    pub actions: BTreeMap<String, ActionExec>,
    /// The instances a staged canary samples (issue 10), when configured.
    pub canary: Option<CanaryConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The engine's configuration (seed and instance are set by the driver).
    pub engine: EngineConfig,
    /// `None` when the file does not set a mode (the CLI then decides).
    pub mode: Option<Mode>,
    pub listen: SocketAddr,
    /// How API callers are authenticated (`auth:`; tokens unless the file
    /// says `none`).
    pub auth: AuthMode,
    pub database: PathBuf,
    /// `store.url`: a Postgres database instead of the SQLite `database`
    /// (validated; shared by several instances).
    pub store_url: Option<String>,
    pub notify: Option<NotifyConfig>,
    /// Incident traces over OTLP (issue 12), when configured.
    pub otlp: Option<OtlpConfig>,
    /// Optional AI hypotheses (`ai:`, issue 9); the environment overrides it.
    pub ai: Option<AiConfig>,
    pub services: Vec<ServiceConfig>,
    /// Metric, log and alert signals (empty when the file has no `signals:`).
    /// Their rules are already virtual probes in `engine.services`.
    pub signals: SignalsConfig,
    /// Cron-scheduled freeze windows; the daemon expands them with
    /// [`FreezeSpec::windows`] and passes the intervals to the engine.
    pub freeze_windows: Vec<FreezeSpec>,
    /// Chaos drills (`drills:`), see [`DrillsConfig`].
    pub drills: DrillsConfig,
    /// Leader election and fencing (`ha:`, issue 13); `None`: one instance.
    pub ha: Option<HaConfig>,
    /// `depends_on` edges (caller → callee), validated: known names, no cycles.
    pub dependencies: Vec<Dependency>,
    /// Operator pattern files: as written by [`parse`], resolved against the
    /// config file's directory by [`load`] (which also checks them).
    pub pattern_files: Vec<PathBuf>,
}

impl Config {
    /// The shipped patterns plus the operator's files, resolved against `dir`
    /// (the config file's directory).
    ///
    /// # Errors
    /// An unreadable or invalid pattern file.
    pub fn patterns(&self, dir: &Path) -> Result<Vec<Pattern>, ConfigError> {
        let files: Vec<PathBuf> = self.pattern_files.iter().map(|f| dir.join(f)).collect();
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        load_patterns(&refs)
    }
}

/// `auth:` at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Bearer tokens from `medic token create` (the default).
    #[default]
    Tokens,
    /// No authentication: every caller acts as `anonymous` with the admin
    /// role. Only with an explicit `auth: none`; the daemon logs a warning.
    None,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";
pub const DEFAULT_DATABASE: &str = "medic.db";
/// How long an HTTP probe reuses one connection by default
/// (`http.keep_alive_max_age`): after that the next run dials again, so a
/// service that stopped accepting new connections is seen within this
/// plus one interval.
pub const DEFAULT_KEEP_ALIVE_MAX_AGE: Duration = Duration::from_secs(30);

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: file.clone(),
        problems: vec![Problem {
            line: 0,
            column: 0,
            message: format!("cannot read config: {e}"),
        }],
    })?;
    let mut cfg = parse_bytes(&file, &bytes)?;
    // Pattern files are relative to the config file; resolve them once here.
    let dir = path.parent().unwrap_or(Path::new("."));
    cfg.pattern_files = cfg.pattern_files.iter().map(|f| dir.join(f)).collect();
    cfg.patterns(Path::new(""))?;
    Ok(cfg)
}

/// Validate config bytes: text that is not UTF-8 is reported at its first bad byte
/// (`FILE:LINE:COL: invalid UTF-8 ...`), then as [`parse`].
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Config, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(file, text),
        Err(e) => Err(ConfigError {
            file: file.to_string(),
            problems: vec![invalid_utf8(bytes, &e)],
        }),
    }
}

/// Locates the first invalid byte: the line (1-based) and the column (1-based, in characters,
/// as the YAML errors count them) of that byte, from the valid text before it.
fn invalid_utf8(bytes: &[u8], e: &std::str::Utf8Error) -> Problem {
    let at = e.valid_up_to();
    // `from_utf8` promises that everything before `valid_up_to` is valid.
    let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let shown: Vec<String> = bytes[at..]
        .iter()
        .take(e.error_len().unwrap_or(bytes.len() - at).max(1))
        .map(|b| format!("0x{b:02X}"))
        .collect();
    let what = if e.error_len().is_some() {
        "invalid"
    } else {
        "incomplete"
    };
    Problem {
        line: u64::try_from(line).unwrap_or(u64::MAX),
        column: u64::try_from(column).unwrap_or(u64::MAX),
        message: format!(
            "invalid UTF-8: {what} byte sequence {} at byte offset {at}; the config must be UTF-8 text",
            shown.join(" ")
        ),
    }
}

/// Validate config text; `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        let msg = strip_location(&e.without_snippet().to_string());
        ConfigError {
            file: file.to_string(),
            problems: vec![Problem {
                line: loc.map(|l| l.line()).unwrap_or(0),
                column: loc.map(|l| l.column()).unwrap_or(0),
                message: msg,
            }],
        }
    })?;
    let mut v = Validator::default();
    let cfg = v.config(raw);
    if v.problems.is_empty() {
        if let Some(cfg) = cfg {
            return Ok(cfg);
        }
    }
    v.problems.sort_by_key(|p| (p.line, p.column));
    Err(ConfigError {
        file: file.to_string(),
        problems: v.problems,
    })
}

/// serde-saphyr appends " at line L, column C"; we print the location first.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn at(&mut self, loc: Location, message: impl Into<String>) {
        self.problems.push(Problem {
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        });
    }

    fn mode(&mut self, m: &Spanned<String>) -> Option<Mode> {
        match m.value.parse::<Mode>() {
            Ok(mode) => Some(mode),
            Err(e) => {
                self.at(m.referenced, e.to_string());
                None
            }
        }
    }

    fn config(&mut self, mut raw: RawConfig) -> Option<Config> {
        let mode = raw.mode.as_ref().and_then(|m| self.mode(m));
        let listen = match &raw.listen {
            Some(l) => match l.value.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(e) => {
                    self.at(
                        l.referenced,
                        format!("invalid listen address `{}`: {e}", l.value),
                    );
                    SocketAddr::from(([127, 0, 0, 1], 9090))
                }
            },
            None => SocketAddr::from(([127, 0, 0, 1], 9090)),
        };
        let auth = match raw.auth.as_ref().map(|a| (a, a.value.trim())) {
            None | Some((_, "tokens")) => AuthMode::Tokens,
            Some((_, "none")) => AuthMode::None,
            Some((a, other)) => {
                self.at(
                    a.referenced,
                    format!("invalid auth `{other}`: expected `tokens` or `none`"),
                );
                AuthMode::Tokens
            }
        };
        let store_url = raw.store.as_ref().map(|st| {
            if let Err(e) = store::check_postgres_url(&st.url.value) {
                self.at(st.url.referenced, e);
            }
            if raw.database.is_some() {
                self.at(
                    st.url.referenced,
                    "set either `database` (SQLite) or `store.url` (Postgres), not both",
                );
            }
            st.url.value.clone()
        });
        let notify = raw.notify.map(|n| self.notify(n));
        let otlp = raw.otlp.map(|o| self.otlp(o));
        let ai = raw.ai.map(|a| self.ai(a));
        let base = policy(&ServicePolicy::default(), raw.policy.as_ref());
        if raw.services.is_empty() {
            self.problems.push(Problem {
                line: 0,
                column: 0,
                message: "no services configured (`services:` is empty)".into(),
            });
        }
        let known: BTreeMap<String, BTreeSet<String>> = raw
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.value.probes.keys().cloned().collect()))
            .collect();
        let (signals, virt) = self.signals(raw.signals, &known);
        let actions_by_service: BTreeMap<String, BTreeSet<String>> = raw
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.value.actions.keys().cloned().collect()))
            .collect();
        let (governance, freeze_windows) = self.governance(raw.governance, &actions_by_service);
        let drills = self.drills(raw.drills, &actions_by_service);
        let ha = raw.ha.map(|h| self.ha(h));
        let raw_deps: BTreeMap<String, Vec<Spanned<deps::RawDep>>> = raw
            .services
            .iter_mut()
            .map(|(n, s)| (n.clone(), std::mem::take(&mut s.value.depends_on)))
            .collect();
        let dependencies = deps::validate(&raw_deps, |loc, msg| self.at(loc, msg));
        // Conflict detection (issue 10) reads the same edges.
        let mut governance = governance;
        governance.topology =
            medic_core::Topology::new(dependencies.iter().map(|d| (d.from.clone(), d.to.clone())));
        let mut specs = Vec::new();
        let mut services = Vec::new();
        for (name, mut svc) in raw.services {
            let extra = virt.get(&name).map(Vec::as_slice).unwrap_or(&[]);
            let canary = svc.value.canary.take().map(|c| {
                let (plan, cfg) = self.canary(&name, c);
                // The canary's instances are the service's instances.
                governance
                    .services
                    .entry(name.clone())
                    .or_default()
                    .instances = u32::try_from(plan.instances.len()).unwrap_or(u32::MAX);
                governance.canaries.insert(name.clone(), plan);
                cfg
            });
            if let Some((spec, mut svc_cfg)) = self.service(&name, svc, &base, extra) {
                svc_cfg.canary = canary;
                specs.push(spec);
                services.push(svc_cfg);
            }
        }
        Some(Config {
            engine: EngineConfig {
                mode: mode.unwrap_or(Mode::DryRun),
                services: specs,
                governance,
                ..EngineConfig::default()
            },
            mode,
            listen,
            auth,
            database: PathBuf::from(raw.database.unwrap_or_else(|| DEFAULT_DATABASE.into())),
            store_url,
            notify,
            otlp,
            ai,
            services,
            signals,
            freeze_windows,
            drills,
            ha,
            dependencies,
            pattern_files: raw.patterns.iter().map(PathBuf::from).collect(),
        })
    }

    fn url(&mut self, u: &Spanned<String>) {
        if !(u.value.starts_with("http://") || u.value.starts_with("https://")) {
            self.at(
                u.referenced,
                format!(
                    "invalid URL `{}`: must start with http:// or https://",
                    u.value
                ),
            );
        }
    }

    /// A `kubernetes:` action; problems are collected, `None` when invalid.
    fn kubernetes_action(&mut self, k: &RawKubernetesAction) -> Option<ActionExec> {
        // RFC 1123 names: what the API server accepts for deployments, pods, nodes.
        fn dns_name(s: &str) -> bool {
            !s.is_empty()
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        }
        let op = match k.op.value.as_str() {
            "rollout-restart" => Some(KubeOp::RolloutRestart),
            "scale" => match &k.replicas {
                Some(r) => Some(KubeOp::Scale { replicas: r.value }),
                None => {
                    self.at(k.op.referenced, "op: scale needs `replicas`");
                    None
                }
            },
            "rollout-undo" => Some(KubeOp::RolloutUndo),
            "delete-pod" => Some(KubeOp::DeletePod),
            "cordon" => Some(KubeOp::Cordon),
            other => {
                self.at(
                    k.op.referenced,
                    format!("unknown kubernetes op `{other}` (expected rollout-restart, scale, rollout-undo, delete-pod or cordon)"),
                );
                None
            }
        };
        if let (Some(r), false) = (&k.replicas, matches!(op, Some(KubeOp::Scale { .. }))) {
            self.at(r.referenced, "replicas is only used by op: scale");
        }
        let op = op?;
        // Which target field the op needs; the others must be absent.
        let (field, target, others) = match op {
            KubeOp::RolloutRestart | KubeOp::Scale { .. } | KubeOp::RolloutUndo => (
                "deployment",
                &k.deployment,
                [("pod", &k.pod), ("node", &k.node)],
            ),
            KubeOp::DeletePod => (
                "pod",
                &k.pod,
                [("deployment", &k.deployment), ("node", &k.node)],
            ),
            KubeOp::Cordon => (
                "node",
                &k.node,
                [("deployment", &k.deployment), ("pod", &k.pod)],
            ),
        };
        let mut ok = true;
        for (name, v) in others {
            if let Some(v) = v {
                self.at(
                    v.referenced,
                    format!("{name} is not used by op: {}", op.as_str()),
                );
                ok = false;
            }
        }
        let Some(target) = target else {
            self.at(
                k.op.referenced,
                format!("op: {} needs `{field}`", op.as_str()),
            );
            return None;
        };
        if !dns_name(&target.value) {
            self.at(
                target.referenced,
                format!(
                    "invalid {field} name `{}` (lowercase letters, digits, '-' and '.')",
                    target.value
                ),
            );
            ok = false;
        }
        let namespace = match &k.namespace {
            Some(ns) if op == KubeOp::Cordon => {
                self.at(
                    ns.referenced,
                    "namespace is not used by op: cordon (nodes are cluster-wide)",
                );
                ok = false;
                String::new()
            }
            Some(ns) => {
                if !dns_name(&ns.value) || ns.value.contains('.') || ns.value.len() > 63 {
                    self.at(ns.referenced, format!("invalid namespace `{}`", ns.value));
                    ok = false;
                }
                ns.value.clone()
            }
            None if op == KubeOp::Cordon => String::new(),
            None => "default".to_string(),
        };
        ok.then(|| ActionExec::Kubernetes {
            op,
            namespace,
            target: target.value.clone(),
            kubeconfig: k.kubeconfig.as_ref().map(PathBuf::from),
            context: k.context.clone(),
            timeout: k.timeout.map_or(Duration::from_secs(300), |t| t.0),
        })
    }

    fn command(&mut self, c: &Spanned<Vec<String>>, what: &str) {
        if c.value.is_empty() || c.value[0].trim().is_empty() {
            self.at(c.referenced, format!("{what}: command must not be empty"));
        }
    }

    fn service(
        &mut self,
        name: &str,
        svc: Spanned<RawService>,
        base: &ServicePolicy,
        virtual_probes: &[ProbeSpec],
    ) -> Option<(ServiceSpec, ServiceConfig)> {
        let loc = svc.referenced;
        let svc = svc.value;
        let mode = svc.mode.as_ref().and_then(|m| self.mode(m));
        let process = svc.process.map(|p| {
            self.command(&p.command, &format!("service {name} process"));
            ProcessConfig {
                command: p.command.value,
                env: p.env,
                cwd: p.cwd.map(PathBuf::from),
                stop_grace: p.stop_grace.map_or(Duration::from_secs(10), |d| d.0),
                unresponsive_stop_grace: p
                    .unresponsive_stop_grace
                    .map_or(Duration::from_secs(1), |d| d.0),
                autostart: p.autostart.unwrap_or(true),
            }
        });
        if svc.probes.is_empty() && virtual_probes.is_empty() {
            self.at(
                loc,
                format!("service {name} has no probes (and no signal rules or alerts)"),
            );
        }
        let mut probe_specs = Vec::new();
        let mut probes = Vec::new();
        for (pname, p) in &svc.probes {
            let ploc = p.referenced;
            let p = &p.value;
            let mut kinds = Vec::new();
            if let Some(h) = &p.http {
                self.url(&h.url);
                if h.keep_alive_max_age.as_ref().is_some_and(|d| d.0.is_zero()) {
                    self.at(
                        ploc,
                        format!("probe {name}.{pname}: http.keep_alive_max_age must be more than 0 (use `keep_alive: false` for a new connection per run)"),
                    );
                }
                kinds.push(ProbeKind::Http {
                    url: h.url.value.clone(),
                    expect_status: h.expect_status.unwrap_or(200),
                    body_contains: h.body_contains.clone(),
                    keep_alive: h.keep_alive.unwrap_or(true).then(|| {
                        h.keep_alive_max_age
                            .as_ref()
                            .map_or(DEFAULT_KEEP_ALIVE_MAX_AGE, |d| d.0)
                    }),
                });
            }
            if let Some(t) = &p.tcp {
                if !t.address.value.contains(':') {
                    self.at(
                        t.address.referenced,
                        format!(
                            "invalid tcp address `{}`: expected host:port",
                            t.address.value
                        ),
                    );
                }
                kinds.push(ProbeKind::Tcp {
                    address: t.address.value.clone(),
                });
            }
            if let Some(e) = &p.exec {
                self.command(&e.command, &format!("probe {name}.{pname}"));
                kinds.push(ProbeKind::Exec {
                    command: e.command.value.clone(),
                });
            }
            if p.process.is_some() {
                if process.is_none() {
                    self.at(
                        ploc,
                        format!("probe {name}.{pname}: a process probe needs the service's `process:` section"),
                    );
                }
                kinds.push(ProbeKind::Process);
            }
            if let Some(d) = &p.docker {
                let label = d.label.value.trim();
                if label.is_empty() || label.starts_with('=') {
                    self.at(d.label.referenced, "label must be `key` or `key=value`");
                }
                kinds.push(ProbeKind::Docker {
                    label: label.to_string(),
                });
            }
            let interval = p.interval.map_or(Duration::from_secs(10), |d| d.0);
            let timeout = p
                .http
                .as_ref()
                .and_then(|h| h.timeout)
                .or(p.tcp.as_ref().and_then(|t| t.timeout))
                .or(p.exec.as_ref().and_then(|e| e.timeout))
                .or(p.docker.as_ref().and_then(|d| d.timeout))
                .map_or(default_probe_timeout(interval), |d| d.0);
            if kinds.len() != 1 {
                self.at(
                    ploc,
                    format!(
                        "probe {name}.{pname}: exactly one of http, tcp, exec, process or docker is required (found {})",
                        kinds.len()
                    ),
                );
            }
            let failure = match &p.failure {
                Some(f) => {
                    if f.consecutive.value == 0 {
                        self.at(
                            f.consecutive.referenced,
                            "failure.consecutive must be at least 1",
                        );
                    }
                    FailureRule {
                        consecutive: f.consecutive.value.max(1),
                        within: f.within.map_or(FailureRule::default().within, |d| d.0),
                    }
                }
                None if matches!(kinds.first(), Some(ProbeKind::Process)) => FailureRule {
                    consecutive: 1,
                    within: FailureRule::default().within,
                },
                None => FailureRule::default(),
            };
            let latency = p.latency.as_ref().map(|l| {
                if l.consecutive.value == 0 {
                    self.at(
                        l.consecutive.referenced,
                        "latency.consecutive must be at least 1",
                    );
                }
                LatencyRule {
                    over: l.over.0,
                    consecutive: l.consecutive.value.max(1),
                }
            });
            let recovery = match &p.recovery {
                Some(r) => {
                    if r.consecutive.value == 0 {
                        self.at(
                            r.consecutive.referenced,
                            "recovery.consecutive must be at least 1",
                        );
                    }
                    RecoveryRule {
                        consecutive: r.consecutive.value.max(1),
                    }
                }
                None => RecoveryRule::default(),
            };
            probe_specs.push(ProbeSpec {
                name: pname.clone(),
                failure,
                latency,
                recovery,
                event: false,
            });
            if let Some(kind) = kinds.into_iter().next() {
                probes.push(ProbeConfig {
                    name: pname.clone(),
                    interval,
                    timeout,
                    kind,
                });
            }
        }
        let mut action_specs = Vec::new();
        let mut actions = BTreeMap::new();
        for (aname, a) in &svc.actions {
            let aloc = a.referenced;
            let a = &a.value;
            let mut kinds = Vec::new();
            if a.restart.is_some() {
                if process.is_none() {
                    self.at(
                        aloc,
                        format!(
                            "action {name}.{aname}: restart needs the service's `process:` section"
                        ),
                    );
                }
                kinds.push((ActionKind::Restart, ActionExec::Restart));
            }
            if let Some(sg) = &a.signal {
                if process.is_none() {
                    self.at(
                        aloc,
                        format!(
                            "action {name}.{aname}: signal needs the service's `process:` section"
                        ),
                    );
                }
                let v = &sg.signal.value;
                let ok = v.starts_with("SIG")
                    && v.len() > 3
                    && v[3..]
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                if !ok {
                    self.at(
                        sg.signal.referenced,
                        format!("unknown signal `{v}` (expected a name like SIGHUP or SIGUSR1)"),
                    );
                }
                kinds.push((ActionKind::Signal, ActionExec::Signal { signal: v.clone() }));
            }
            if let Some(e) = &a.exec {
                self.command(&e.command, &format!("action {name}.{aname}"));
                kinds.push((
                    ActionKind::Exec,
                    ActionExec::Exec {
                        command: e.command.value.clone(),
                        timeout: e.timeout.map_or(Duration::from_secs(30), |d| d.0),
                        env: e.env.clone(),
                        cwd: e.cwd.as_ref().map(PathBuf::from),
                    },
                ));
            }
            if let Some(h) = &a.http {
                self.url(&h.url);
                let method = h
                    .method
                    .as_ref()
                    .map_or("POST".to_string(), |m| m.value.to_uppercase());
                if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
                    if let Some(m) = &h.method {
                        self.at(
                            m.referenced,
                            format!("unsupported HTTP method `{}`", m.value),
                        );
                    }
                }
                kinds.push((
                    ActionKind::Http,
                    ActionExec::Http {
                        url: h.url.value.clone(),
                        method,
                        body: h.body.clone(),
                        expect_status: h.expect_status,
                        timeout: h.timeout.map_or(Duration::from_secs(10), |d| d.0),
                    },
                ));
            }
            if let Some(d) = &a.docker {
                let op = match d.op.value.as_str() {
                    "restart" => Some(DockerOp::Restart),
                    "stop" => Some(DockerOp::Stop),
                    "start" => Some(DockerOp::Start),
                    "kill" => Some(DockerOp::Kill {
                        signal: d
                            .signal
                            .as_ref()
                            .map_or("SIGKILL".to_string(), |s| s.value.clone()),
                    }),
                    other => {
                        self.at(
                            d.op.referenced,
                            format!("unknown docker op `{other}` (expected restart, stop, start or kill)"),
                        );
                        None
                    }
                };
                if let Some(s) = &d.signal {
                    let ok = s.value.starts_with("SIG")
                        && s.value.len() > 3
                        && s.value[3..]
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                    if !ok {
                        self.at(
                            s.referenced,
                            format!(
                                "bad signal `{}` (expected a name like SIGKILL or SIGHUP)",
                                s.value
                            ),
                        );
                    } else if !matches!(op, Some(DockerOp::Kill { .. })) {
                        self.at(s.referenced, "signal is only used by op: kill");
                    }
                }
                let label = d.label.value.trim();
                if label.is_empty() || label.starts_with('=') {
                    self.at(d.label.referenced, "label must be `key` or `key=value`");
                }
                if let Some(op) = op {
                    kinds.push((
                        ActionKind::Docker,
                        ActionExec::Docker {
                            op,
                            label: label.to_string(),
                            grace: d.grace.map_or(Duration::from_secs(10), |g| g.0),
                            timeout: d.timeout.map_or(Duration::from_secs(60), |t| t.0),
                        },
                    ));
                }
            }
            if let Some(sd) = &a.systemd {
                let op = match sd.op.value.as_str() {
                    "restart" => Some(SystemdOp::Restart),
                    "reload" => Some(SystemdOp::Reload),
                    "start" => Some(SystemdOp::Start),
                    "stop" => Some(SystemdOp::Stop),
                    other => {
                        self.at(
                            sd.op.referenced,
                            format!("unknown systemd op `{other}` (expected restart, reload, start or stop)"),
                        );
                        None
                    }
                };
                let unit = sd.unit.value.trim();
                let ok = !unit.is_empty()
                    && !unit.starts_with('-')
                    && unit
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
                if !ok {
                    self.at(
                        sd.unit.referenced,
                        format!("invalid unit name `{}` (letters, digits and :_.@-\\ only, not starting with -)", sd.unit.value),
                    );
                }
                if let Some(op) = op {
                    kinds.push((
                        ActionKind::Systemd,
                        ActionExec::Systemd {
                            op,
                            unit: unit.to_string(),
                            user: sd.user,
                            timeout: sd.timeout.map_or(Duration::from_secs(90), |t| t.0),
                        },
                    ));
                }
            }
            if let Some(k) = &a.kubernetes {
                if let Some(exec) = self.kubernetes_action(k) {
                    kinds.push((ActionKind::Kubernetes, exec));
                }
            }
            if kinds.len() != 1
                && !(kinds.is_empty()
                    && (a.docker.is_some() || a.systemd.is_some() || a.kubernetes.is_some()))
            {
                self.at(
                    aloc,
                    format!(
                        "action {name}.{aname}: exactly one of restart, signal, exec, http, docker, systemd or kubernetes is required (found {})",
                        kinds.len()
                    ),
                );
            }
            let Some((kind, exec)) = kinds.into_iter().next() else {
                continue;
            };
            let risk = match &a.risk {
                Some(r) => match r.value.as_str() {
                    "low" => Risk::Low,
                    "medium" => Risk::Medium,
                    "high" => Risk::High,
                    "critical" => Risk::Critical,
                    other => {
                        self.at(
                            r.referenced,
                            format!(
                                "unknown risk `{other}` (expected low, medium, high or critical)"
                            ),
                        );
                        Risk::Critical
                    }
                }
                .into(),
                // The class's default tier, resolved by the core from
                // governance's class (or the kind's): one table, one place.
                None => None,
            };
            let revert = a.revert.as_ref().map(|r| {
                if !svc.actions.contains_key(&r.action.value) {
                    self.at(
                        r.action.referenced,
                        format!(
                            "revert names undefined action `{}` in service {name}",
                            r.action.value
                        ),
                    );
                }
                if let Some(g) = r.green_checks.as_ref().filter(|g| g.value == 0) {
                    self.at(g.referenced, "revert.green_checks must be at least 1");
                }
                if let Some(p) = &r.probe {
                    if !svc.probes.contains_key(&p.value) {
                        self.at(
                            p.referenced,
                            format!(
                                "revert.probe names undefined probe `{}` in service {name}",
                                p.value
                            ),
                        );
                    }
                }
                RevertSpec {
                    action: r.action.value.clone(),
                    after: r.after.0,
                    green_checks: r.green_checks.as_ref().map(|g| g.value),
                    green_probe: r.probe.as_ref().map(|p| p.value.clone()),
                }
            });
            let verify = a.verify.as_ref().map(|v| {
                let d = medic_core::VerifySpec::default();
                let r = &v.value;
                let spec = medic_core::VerifySpec {
                    window: r.window.as_ref().map(|w| w.0),
                    max_latency_ratio: r.max_latency_ratio.unwrap_or(d.max_latency_ratio),
                    max_failure_increase: r
                        .max_failure_increase
                        .unwrap_or(d.max_failure_increase),
                    better_latency_ratio: r
                        .better_latency_ratio
                        .unwrap_or(d.better_latency_ratio),
                    latency_slack: r.latency_slack.as_ref().map_or(d.latency_slack, |s| s.0),
                    min_samples: r.min_samples.unwrap_or(d.min_samples),
                };
                let ok = spec.window.is_none_or(|w| !w.is_zero())
                    && spec.max_latency_ratio >= 1.0
                    && (0.0..=1.0).contains(&spec.max_failure_increase)
                    && spec.better_latency_ratio > 0.0
                    && spec.better_latency_ratio <= 1.0
                    && spec.min_samples >= 1;
                if !ok {
                    self.at(
                        v.referenced,
                        format!(
                            "action {name}.{aname}: verify needs window > 0, max_latency_ratio >= 1, \
                             max_failure_increase in [0, 1], better_latency_ratio in (0, 1], \
                             min_samples >= 1"
                        ),
                    );
                }
                spec
            });
            action_specs.push(ActionSpec {
                name: aname.clone(),
                kind,
                risk,
                revert,
                verify,
            });
            actions.insert(aname.clone(), exec);
        }
        let mut remediations = Vec::new();
        for r in &svc.remediate {
            let probe = svc.probes.get(&r.when.probe.value);
            let is_signal = virtual_probes.iter().any(|p| p.name == r.when.probe.value);
            if probe.is_none() && !is_signal {
                self.at(
                    r.when.probe.referenced,
                    format!(
                        "remediation names undefined probe `{}` in service {name} (not a probe, signal rule or alert of it)",
                        r.when.probe.value
                    ),
                );
            }
            if !svc.actions.contains_key(&r.action.value) {
                self.at(
                    r.action.referenced,
                    format!(
                        "remediation names undefined action `{}` in service {name}",
                        r.action.value
                    ),
                );
            }
            let condition = match &r.when.condition {
                None => Condition::Failing,
                Some(c) => match c.value.as_str() {
                    "failing" => Condition::Failing,
                    "slow" => {
                        if is_signal || probe.is_some_and(|p| p.value.latency.is_none()) {
                            self.at(
                                c.referenced,
                                format!(
                                    "condition `slow` needs a `latency:` rule on probe `{}`",
                                    r.when.probe.value
                                ),
                            );
                        }
                        Condition::Slow
                    }
                    other => {
                        self.at(
                            c.referenced,
                            format!("unknown condition `{other}` (expected failing or slow)"),
                        );
                        Condition::Failing
                    }
                },
            };
            remediations.push(Remediation {
                probe: r.when.probe.value.clone(),
                condition,
                action: r.action.value.clone(),
            });
        }
        probe_specs.extend(virtual_probes.iter().cloned());
        let pol = policy(base, svc.policy.as_ref());
        Some((
            ServiceSpec {
                name: name.to_string(),
                startup: StartupSpec {
                    grace: svc
                        .startup
                        .as_ref()
                        .and_then(|s| s.grace)
                        .map_or(StartupSpec::default().grace, |d| d.0),
                },
                mode,
                probes: probe_specs,
                actions: action_specs,
                remediations,
                policy: pol,
            },
            ServiceConfig {
                name: name.to_string(),
                process,
                probes,
                actions,
                canary: None,
            },
        ))
    }
}

/// A probe's timeout when none is given: 5 s, but never longer than its
/// interval. A run still going at its next tick delays that tick, so a
/// timeout longer than the interval would stretch `consecutive` failures of
/// a hung service to `consecutive × timeout` (15 s at a 1 s interval).
pub fn default_probe_timeout(interval: Duration) -> Duration {
    Duration::from_secs(5).min(interval)
}

fn policy(base: &ServicePolicy, raw: Option<&RawPolicy>) -> ServicePolicy {
    let Some(r) = raw else {
        return base.clone();
    };
    let d = |v: Option<Dur>, b: Duration| v.map_or(b, |d| d.0);
    ServicePolicy {
        cooldown: d(r.cooldown, base.cooldown),
        restart_budget: r.restart_budget.unwrap_or(base.restart_budget),
        budget_window: d(r.budget_window, base.budget_window),
        max_failed_heals: r.max_failed_heals.unwrap_or(base.max_failed_heals),
        failed_window: d(r.failed_heal_window, base.failed_window),
        verify_window: d(r.verify_window, base.verify_window),
        retry: RetryPolicy {
            base: d(r.retry_base, base.retry.base),
            cap: d(r.retry_cap, base.retry.cap),
            jitter: d(r.retry_jitter, base.retry.jitter),
            max_attempts: r.max_attempts.unwrap_or(base.retry.max_attempts).max(1),
        },
    }
}
