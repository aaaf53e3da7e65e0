//! Docker executor over the Engine API (bollard).
//!
//! Targets are found by label (`key=value`), so medic acts on containers it
//! did not start: every container carrying the label is one replica of the
//! group. Operations: restart, stop, start, kill with a signal; reads: the
//! group's containers with their state, health status and start time.
//!
//! The client negotiates the API version with the engine on connect, so an
//! older engine (e.g. 20.10, API 1.41) works with bollard's newer default.
use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use medic_config::{ActionExec, DockerOp};
use medic_core::ActionKind;

use crate::executor::{CancelToken, ExecError, ExecOutput, ExecRequest, ExecResult, Executor};
use crate::supervisor::BoxFuture;

/// Most containers one labelled group may have; beyond it the action is
/// refused rather than fanned out without bound.
pub const MAX_GROUP: usize = 64;

/// One container of a labelled group, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// `running`, `exited`, `restarting`, ... as the engine says.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `None` without a healthcheck.
    pub health: Option<String>,
    /// RFC 3339 start time; changes with every (re)start.
    pub started_at: Option<String>,
    pub pid: Option<i64>,
}

impl ContainerInfo {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// Running, and healthy when it has a healthcheck.
    pub fn ready(&self) -> bool {
        self.running() && matches!(self.health.as_deref(), None | Some("healthy"))
    }
}

/// A connection to the local Docker Engine.
#[derive(Clone, Debug)]
pub struct DockerClient {
    docker: Docker,
}

fn engine_err(what: &str, e: bollard::errors::Error) -> ExecError {
    ExecError::Other(format!("docker {what}: {e}"))
}

/// `key=value` (or a bare `key`) as a label filter.
fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![label.to_string()])])
}

impl DockerClient {
    /// Connect to `DOCKER_HOST` or the local socket and negotiate the API version.
    pub async fn connect() -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| engine_err("connect", e))?
            .negotiate_version()
            .await
            .map_err(|e| engine_err("version negotiation", e))?;
        Ok(DockerClient { docker })
    }

    /// Every container (running or not) carrying `label`, by name.
    pub async fn group(&self, label: &str) -> Result<Vec<ContainerInfo>, ExecError> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(label_filter(label)),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_err("list", e))?;
        if list.len() > MAX_GROUP {
            return Err(ExecError::Other(format!(
                "label {label} selects {} containers (at most {MAX_GROUP})",
                list.len()
            )));
        }
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            let Some(id) = c.id else { continue };
            out.push(self.inspect(&id).await?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One container's state, health and start time.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInfo, ExecError> {
        let c = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| engine_err("inspect", e))?;
        let state = c.state.unwrap_or_default();
        let health = state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none");
        Ok(ContainerInfo {
            id: c.id.unwrap_or_else(|| id.to_string()),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            health,
            started_at: state.started_at,
            pid: state.pid,
        })
    }

    /// Apply `op` to one container. `grace` bounds stop/restart's SIGTERM wait.
    pub async fn apply_one(
        &self,
        id: &str,
        op: &DockerOp,
        grace: Duration,
    ) -> Result<(), ExecError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let r = match op {
            DockerOp::Restart => {
                self.docker
                    .restart_container(
                        id,
                        Some(RestartContainerOptions {
                            t: Some(t),
                            signal: None,
                        }),
                    )
                    .await
            }
            DockerOp::Stop => {
                self.docker
                    .stop_container(
                        id,
                        Some(StopContainerOptions {
                            t: Some(t),
                            signal: None,
                        }),
                    )
                    .await
            }
            DockerOp::Start => {
                self.docker
                    .start_container(id, None::<StartContainerOptions>)
                    .await
            }
            DockerOp::Kill { signal } => {
                self.docker
                    .kill_container(
                        id,
                        Some(KillContainerOptions {
                            signal: signal.clone(),
                        }),
                    )
                    .await
            }
        };
        r.map_err(|e| engine_err(op.as_str(), e))
    }

    /// Apply `op` to every container of the group `label`, one after the
    /// other (a rolling restart keeps the others serving). `start` skips
    /// running containers and `stop` stopped ones, so both are idempotent.
    pub async fn apply(
        &self,
        label: &str,
        op: &DockerOp,
        grace: Duration,
        cancel: &CancelToken,
    ) -> ExecResult {
        let group = self.group(label).await?;
        if group.is_empty() {
            return Err(ExecError::NoExecutor {
                service: label.to_string(),
                action: op.as_str().to_string(),
                why: format!("no container carries the label {label}"),
            });
        }
        let mut done = Vec::new();
        for c in &group {
            if cancel.is_cancelled() {
                return Err(ExecError::Cancelled(format!(
                    "docker {} stopped after {}",
                    op.as_str(),
                    names(&done)
                )));
            }
            let skip = match op {
                DockerOp::Start => c.running(),
                DockerOp::Stop | DockerOp::Kill { .. } => !c.running(),
                DockerOp::Restart => false,
            };
            if skip {
                continue;
            }
            self.apply_one(&c.id, op, grace).await?;
            done.push(c.name.clone());
        }
        Ok(ExecOutput {
            detail: format!(
                "docker {} on {} of {} container(s) labelled {label}: {}",
                op.as_str(),
                done.len(),
                group.len(),
                names(&done)
            ),
        })
    }
}

fn names(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// Runs `docker:` actions. Connects lazily (and again after an error), so a
/// daemon whose config has docker actions starts even while the engine is down.
#[derive(Default)]
pub struct DockerExecutor {
    client: std::sync::Arc<tokio::sync::OnceCell<DockerClient>>,
}

impl DockerExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for DockerExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Docker
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let ActionExec::Docker {
            op, label, grace, ..
        } = req.spec.clone()
        else {
            return Box::pin(async { Err(ExecError::Other("not a docker action".into())) });
        };
        let cell = self.client.clone();
        Box::pin(async move {
            let client = cell.get_or_try_init(DockerClient::connect).await?.clone();
            let timeout = req.timeout;
            // Not interrupted by `cancel` once an engine call is in flight: the
            // engine finishes a restart it accepted either way.
            match tokio::time::timeout(timeout, client.apply(&label, &op, grace, &cancel)).await {
                Ok(r) => r,
                Err(_) => Err(ExecError::Timeout(format!(
                    "docker {} on {label} did not finish within {}ms",
                    op.as_str(),
                    timeout.as_millis()
                ))),
            }
        })
    }
}
