//! Supervision of one service process.
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use medic_config::ProcessConfig;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{watch, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot open log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("empty command")]
    EmptyCommand,
}

/// What the supervisor knows about its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    NotStarted,
    Running {
        pid: u32,
        generation: u64,
    },
    Exited {
        pid: u32,
        generation: u64,
        code: Option<i32>,
        signal: Option<i32>,
    },
    Stopped,
}

impl ProcessState {
    pub fn is_running(&self) -> bool {
        matches!(self, ProcessState::Running { .. })
    }
}

struct Inner {
    pid: Option<u32>,
    generation: u64,
}

/// Starts, stops and restarts one service's process.
#[derive(Clone)]
pub struct Supervisor {
    name: String,
    cfg: ProcessConfig,
    log: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
    state_tx: Arc<watch::Sender<ProcessState>>,
}

impl Supervisor {
    /// `log`: file the process's stdout and stderr are appended to (`None`: discarded).
    pub fn new(name: &str, cfg: ProcessConfig, log: Option<PathBuf>) -> Self {
        let (tx, _rx) = watch::channel(ProcessState::NotStarted);
        Supervisor {
            name: name.to_string(),
            cfg,
            log,
            inner: Arc::new(Mutex::new(Inner {
                pid: None,
                generation: 0,
            })),
            state_tx: Arc::new(tx),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> ProcessState {
        self.state_tx.borrow().clone()
    }

    /// Subscribe to state changes (exits are reported as they happen).
    pub fn watch(&self) -> watch::Receiver<ProcessState> {
        self.state_tx.subscribe()
    }

    /// Start the process if it is not running. Returns its pid.
    pub async fn start(&self) -> Result<u32, SupervisorError> {
        let mut inner = self.inner.lock().await;
        if let (Some(pid), true) = (inner.pid, self.state().is_running()) {
            return Ok(pid);
        }
        let (prog, args) = self
            .cfg
            .command
            .split_first()
            .ok_or(SupervisorError::EmptyCommand)?;
        let mut cmd = tokio::process::Command::new(prog);
        cmd.args(args)
            .envs(&self.cfg.env)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &self.cfg.cwd {
            cmd.current_dir(dir);
        }
        match &self.log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SupervisorError::Log {
                        path: path.clone(),
                        source,
                    })?;
                let f2 = f.try_clone().map_err(|source| SupervisorError::Log {
                    path: path.clone(),
                    source,
                })?;
                cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut child = cmd.spawn().map_err(|source| SupervisorError::Spawn {
            command: self.cfg.command.join(" "),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        inner.generation += 1;
        let generation = inner.generation;
        inner.pid = Some(pid);
        self.state_tx
            .send_replace(ProcessState::Running { pid, generation });
        let tx = self.state_tx.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let (code, signal) = match &status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    (s.code(), s.signal())
                }
                Err(_) => (None, None),
            };
            tracing::info!(service = %name, pid, ?code, ?signal, "supervised process exited");
            tx.send_if_modified(|st| match st {
                ProcessState::Running { generation: g, .. } if *g == generation => {
                    *st = ProcessState::Exited {
                        pid,
                        generation,
                        code,
                        signal,
                    };
                    true
                }
                _ => false,
            });
        });
        tracing::info!(service = %self.name, pid, "started supervised process");
        Ok(pid)
    }

    /// SIGTERM the process group, SIGKILL after the grace period. Waits for exit.
    pub async fn stop(&self) {
        let mut inner = self.inner.lock().await;
        let Some(pid) = inner.pid.take() else {
            return;
        };
        let mut rx = self.state_tx.subscribe();
        let running =
            |s: &ProcessState| matches!(s, ProcessState::Running { pid: p, .. } if *p == pid);
        if running(&rx.borrow()) {
            let group = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
            let _ = killpg(group, Signal::SIGTERM);
            let exited = tokio::time::timeout(self.cfg.stop_grace, rx.wait_for(|s| !running(s)))
                .await
                .is_ok();
            if !exited {
                tracing::warn!(service = %self.name, pid, "did not exit after SIGTERM; sending SIGKILL");
                let _ = killpg(group, Signal::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| !running(s)))
                    .await;
            }
        } else {
            // The leader is gone; make sure nothing is left in its group.
            let _ = killpg(
                Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                Signal::SIGKILL,
            );
        }
        self.state_tx.send_replace(ProcessState::Stopped);
        drop(inner);
    }

    /// Stop (if running) then start. Returns the new pid.
    pub async fn restart(&self) -> Result<u32, SupervisorError> {
        self.stop().await;
        self.start().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cfg(cmd: &str, grace_ms: u64) -> ProcessConfig {
        ProcessConfig {
            command: vec!["sh".into(), "-c".into(), cmd.into()],
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_millis(grace_ms),
            autostart: true,
        }
    }

    #[tokio::test]
    async fn start_detects_exit_and_restart_gives_a_new_pid() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        let s = Supervisor::new(
            "svc",
            cfg("echo started; exec sleep 30", 2000),
            Some(log.clone()),
        );
        let started = |n: usize| {
            let log = log.clone();
            async move {
                for _ in 0..100 {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.matches("started").count() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                panic!("process never logged start #{n}");
            }
        };
        let pid1 = s.start().await.unwrap();
        assert!(s.state().is_running());
        started(1).await;
        let pid2 = s.restart().await.unwrap();
        started(2).await;
        assert_ne!(pid1, pid2);
        // kill -9 is noticed as an exit.
        let mut rx = s.watch();
        killpg(Pid::from_raw(pid2 as i32), Signal::SIGKILL).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|st| matches!(st, ProcessState::Exited { .. })),
        )
        .await
        .unwrap()
        .unwrap();
        match s.state() {
            ProcessState::Exited { signal, .. } => assert_eq!(signal, Some(9)),
            other => panic!("unexpected {other:?}"),
        }
        s.stop().await;
        let text = std::fs::read_to_string(log).unwrap();
        assert_eq!(text.matches("started").count(), 2);
    }

    #[tokio::test]
    async fn stop_escalates_to_sigkill_when_sigterm_is_ignored() {
        let s = Supervisor::new(
            "stubborn",
            cfg("trap '' TERM; while true; do sleep 0.1; done", 300),
            None,
        );
        s.start().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        s.stop().await;
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(s.state(), ProcessState::Stopped);
    }

    #[tokio::test]
    async fn spawn_failure_is_an_error_not_a_panic() {
        let s = Supervisor::new(
            "bad",
            ProcessConfig {
                command: vec!["/nonexistent/bin".into()],
                ..cfg("", 100)
            },
            None,
        );
        assert!(matches!(
            s.start().await,
            Err(SupervisorError::Spawn { .. })
        ));
    }
}
