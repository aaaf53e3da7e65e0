//! One interface for everything medic can do to a service, and a registry of
//! executors keyed by action kind.
//!
//! An [`Executor`] takes an [`ExecRequest`] and a [`CancelToken`] and returns
//! an [`ExecResult`]: captured output on success, a typed [`ExecError`]
//! otherwise. [`Registry::execute`] looks the executor up by the request's
//! kind and bounds it by the request's timeout and the token.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medic_config::ActionExec;
use medic_core::{ActionFailure, ActionFailureKind, ActionKind};
use tokio::sync::watch;

use crate::supervisor::{BoxFuture, Supervisor};

/// Extra time the registry allows past the request's timeout before it gives
/// up on an executor, so the executor's own timeout (and cleanup) comes first.
pub const TIMEOUT_SLACK: Duration = Duration::from_secs(1);

/// Cooperative cancellation: cloned into an executor, fired by its owner.
#[derive(Clone, Debug)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken(Arc::new(watch::channel(false).0))
    }
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`CancelToken::cancel`] has been called.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// A guard that cancels the token when dropped (e.g. when the task
    /// waiting for an executor is aborted).
    pub fn drop_guard(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Cancels its token on drop.
#[derive(Debug)]
pub struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One action to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub service: String,
    /// The action's name in the config.
    pub action: String,
    pub spec: ActionExec,
    /// The whole execution is bounded by this (plus [`TIMEOUT_SLACK`]).
    pub timeout: Duration,
    /// For restarts: the service is already judged unresponsive (its probes
    /// time out), so the short `unresponsive_stop_grace` applies.
    pub unresponsive: bool,
    /// Extra request headers of an http action: with `ha:`, the leader's
    /// fencing token and the action id (`X-Medic-Fence-Token`,
    /// `X-Medic-Action-Id`) so the target can check them.
    pub headers: Vec<(String, String)>,
}

impl ExecRequest {
    /// A request bounded by the spec's own timeout (exec, http) or `default`.
    pub fn new(service: &str, action: &str, spec: ActionExec, default: Duration) -> Self {
        let timeout = match &spec {
            ActionExec::Exec { timeout, .. }
            | ActionExec::Http { timeout, .. }
            | ActionExec::Docker { timeout, .. }
            | ActionExec::Systemd { timeout, .. }
            | ActionExec::Kubernetes { timeout, .. } => *timeout,
            ActionExec::Restart | ActionExec::Signal { .. } => default,
        };
        ExecRequest {
            service: service.to_string(),
            action: action.to_string(),
            spec,
            timeout,
            unresponsive: false,
            headers: Vec::new(),
        }
    }

    pub fn kind(&self) -> ActionKind {
        match self.spec {
            ActionExec::Restart => ActionKind::Restart,
            ActionExec::Signal { .. } => ActionKind::Signal,
            ActionExec::Exec { .. } => ActionKind::Exec,
            ActionExec::Http { .. } => ActionKind::Http,
            ActionExec::Docker { .. } => ActionKind::Docker,
            ActionExec::Systemd { .. } => ActionKind::Systemd,
            ActionExec::Kubernetes { .. } => ActionKind::Kubernetes,
        }
    }
}

/// What a successful execution produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Captured output or a one-line description, at most
    /// [`crate::MAX_OUTPUT_BYTES`] of command output.
    pub detail: String,
}

/// Why an execution failed. Each variant maps to one [`ActionFailureKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Timeout(String),
    /// `status` as printed by the OS (`exit status: 4`), then the output.
    #[error("{status}: {output}")]
    NonZeroExit { status: String, output: String },
    #[error("{0}")]
    Spawn(String),
    #[error("{0}")]
    Http(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
    #[error("no executor for {service}/{action}: {why}")]
    NoExecutor {
        service: String,
        action: String,
        why: String,
    },
    #[error("{0}")]
    Other(String),
}

impl ExecError {
    pub fn kind(&self) -> ActionFailureKind {
        match self {
            ExecError::Timeout(_) => ActionFailureKind::Timeout,
            ExecError::NonZeroExit { .. } => ActionFailureKind::NonZeroExit,
            ExecError::Spawn(_) => ActionFailureKind::Spawn,
            ExecError::Http(_) => ActionFailureKind::Http,
            ExecError::Cancelled(_) => ActionFailureKind::Cancelled,
            ExecError::NoExecutor { .. } | ExecError::Other(_) => ActionFailureKind::Other,
        }
    }
}

impl From<ExecError> for ActionFailure {
    fn from(e: ExecError) -> Self {
        ActionFailure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

pub type ExecResult = Result<ExecOutput, ExecError>;

/// Something medic can do to a service.
pub trait Executor: Send + Sync {
    /// The action kind this executor runs.
    fn kind(&self) -> ActionKind;

    /// Run `req`. Stop soon after `cancel` fires, cleaning up what was started
    /// (an exec action's process group is killed); a restart already begun
    /// runs to its end, since a half-done one would be worse than either.
    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult>;
}

/// Executors by action kind.
#[derive(Clone, Default)]
pub struct Registry {
    executors: BTreeMap<ActionKind, Arc<dyn Executor>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restart (for `supervisors`), exec, http and docker (which connects to
    /// the engine on its first action).
    pub fn standard(supervisors: BTreeMap<String, Supervisor>, http: reqwest::Client) -> Self {
        let mut r = Registry::new();
        r.register(Arc::new(SignalExecutor {
            supervisors: supervisors.clone(),
        }));
        r.register(Arc::new(RestartExecutor { supervisors }));
        r.register(Arc::new(CommandExecutor));
        r.register(Arc::new(HttpExecutor { client: http }));
        r.register(Arc::new(crate::docker::DockerExecutor::new()));
        r.register(Arc::new(crate::systemd::SystemdExecutor::default()));
        r.register(Arc::new(crate::kubernetes::KubernetesExecutor::default()));
        r
    }

    /// Add (or replace, returning the old one) the executor for its kind.
    pub fn register(&mut self, e: Arc<dyn Executor>) -> Option<Arc<dyn Executor>> {
        self.executors.insert(e.kind(), e)
    }

    pub fn get(&self, kind: ActionKind) -> Option<&Arc<dyn Executor>> {
        self.executors.get(&kind)
    }

    /// Run `req` on the executor for its kind, bounded by `req.timeout`
    /// (+ [`TIMEOUT_SLACK`]) and `cancel`.
    pub fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let Some(ex) = self.get(req.kind()) else {
            let err = ExecError::NoExecutor {
                service: req.service.clone(),
                action: req.action.clone(),
                why: format!("no {:?} executor registered", req.kind()),
            };
            return Box::pin(async move { Err(err) });
        };
        let timeout = req.timeout;
        let what = format!("{}/{}", req.service, req.action);
        let run = ex.execute(req, cancel.clone());
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(ExecError::Cancelled(format!("{what} not started")));
            }
            tokio::select! {
                r = tokio::time::timeout(timeout + TIMEOUT_SLACK, run) => r.unwrap_or_else(|_| {
                    Err(ExecError::Timeout(format!(
                        "{what} did not finish within {}ms",
                        timeout.as_millis()
                    )))
                }),
                _ = cancel.cancelled() => Err(ExecError::Cancelled(what)),
            }
        })
    }
}

/// Restarts a service's supervised process.
pub struct RestartExecutor {
    pub supervisors: BTreeMap<String, Supervisor>,
}

impl Executor for RestartExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Restart
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let sup = self.supervisors.get(&req.service).cloned();
        Box::pin(async move {
            let Some(sup) = sup else {
                return Err(ExecError::NoExecutor {
                    service: req.service,
                    action: req.action,
                    why: "the service has no supervised process".into(),
                });
            };
            if cancel.is_cancelled() {
                return Err(ExecError::Cancelled("restart not started".into()));
            }
            // Detached: dropping this future does not interrupt the restart.
            let unresponsive = req.unresponsive;
            let task = tokio::spawn(async move { sup.restart_with(unresponsive).await });
            match task.await {
                Ok(Ok(pid)) => Ok(ExecOutput {
                    detail: format!("restarted; new pid {pid}"),
                }),
                Ok(Err(e)) => Err(ExecError::Spawn(e.to_string())),
                Err(e) => Err(ExecError::Other(format!("restart task failed: {e}"))),
            }
        })
    }
}

/// Sends a signal (a reload: `SIGHUP`) to a service's supervised process.
pub struct SignalExecutor {
    pub supervisors: BTreeMap<String, Supervisor>,
}

impl Executor for SignalExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Signal
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let sup = self.supervisors.get(&req.service).cloned();
        Box::pin(async move {
            let Some(sup) = sup else {
                return Err(ExecError::NoExecutor {
                    service: req.service,
                    action: req.action,
                    why: "the service has no supervised process".into(),
                });
            };
            let ActionExec::Signal { signal } = &req.spec else {
                return Err(ExecError::Other("not a signal action".into()));
            };
            if cancel.is_cancelled() {
                return Err(ExecError::Cancelled("signal not sent".into()));
            }
            match sup.signal(signal).await {
                Ok(pid) => Ok(ExecOutput {
                    detail: format!("sent {signal} to pid {pid}"),
                }),
                Err(why) => Err(ExecError::Spawn(why)),
            }
        })
    }
}

/// Runs an exec action's command (see [`crate::exec_command`]).
pub struct CommandExecutor;

impl Executor for CommandExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Exec
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        Box::pin(async move {
            let ActionExec::Exec {
                command, env, cwd, ..
            } = req.spec
            else {
                return Err(ExecError::Other("not an exec action".into()));
            };
            crate::exec_command(&command, &env, cwd.as_deref(), req.timeout, &cancel).await
        })
    }
}

/// Calls an http action's endpoint (see [`crate::run_http`]).
pub struct HttpExecutor {
    pub client: reqwest::Client,
}

impl Executor for HttpExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Http
    }

    fn execute(&self, req: ExecRequest, _cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        // Dropping a reqwest future abandons the request: the registry's
        // cancellation is all an HTTP call needs.
        let client = self.client.clone();
        Box::pin(async move {
            let ActionExec::Http {
                url,
                method,
                body,
                expect_status,
                ..
            } = req.spec
            else {
                return Err(ExecError::Other("not an http action".into()));
            };
            crate::http_call_with(
                &client,
                &method,
                &url,
                body.as_deref(),
                expect_status,
                req.timeout,
                &req.headers,
            )
            .await
        })
    }
}
