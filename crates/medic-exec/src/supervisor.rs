//! Supervision of one service process.
//!
//! The process runs in its own process group, and the group is the unit:
//!
//! - **stop** sends SIGCONT (a stopped process cannot act on anything else),
//!   then SIGTERM, then SIGKILL after the grace period, always to the whole
//!   group. The grace is `stop_grace`, or the short `unresponsive_stop_grace`
//!   when a process of the group is stopped (state `T`) or the caller says the
//!   service is unresponsive.
//! - whenever the **leader exits** (stopped by medic or by itself), the rest of
//!   its group is killed with SIGKILL, before the leader is reaped, so the
//!   group id cannot have been reused. When `stop` returns, no live process of
//!   the group is left.
//! - a process started by an earlier medic (killed with SIGKILL, so it could
//!   not stop its service) can be **adopted** from its [`ProcessRecord`]: if
//!   the pid is alive with the same start time and boot id it is watched by
//!   polling `/proc` (it is not our child) and stopped like any other.
//!
//! A [`ProcessJournal`] hears about every started or adopted process and every
//! deliberate stop, so the daemon can keep the record in its database.
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use medic_config::ProcessConfig;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::{watch, Mutex};

use crate::procfs;

/// How often an adopted process (not our child) is checked for exit.
pub const ADOPTED_POLL: Duration = Duration::from_millis(150);
/// After SIGKILL, how long to wait for the leader to be reported gone.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// After the leader is gone, how long to wait for the rest of the group to die.
const GROUP_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// `why` says what went wrong once (for a program not found: the PATH
    /// searched); the OS error is not repeated as a source.
    #[error("cannot start `{command}`: {why}")]
    Spawn { command: String, why: String },
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
    /// The process ended without being asked to. `code` and `signal` are
    /// unknown (`None`) for an adopted process, which is not our child.
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

/// Identity of a supervised process, durable across medic restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub service: String,
    pub pid: u32,
    pub pgid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells the process from a reused pid.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was started.
    pub boot_id: String,
    pub started_unix_ms: i64,
    /// The argv it was started with.
    pub command: Vec<String>,
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Told about every process the supervisor starts or adopts (`Some`) and every
/// deliberate stop (`None`). Not told when a process exits by itself.
pub trait ProcessJournal: Send + Sync {
    fn record(&self, service: String, rec: Option<ProcessRecord>) -> BoxFuture<'static, ()>;
}

/// Why a recorded process was or was not adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// Alive and the same process: now supervised. `command_changed` is true
    /// when it runs another command line than the configured one.
    Adopted { pid: u32, command_changed: bool },
    /// The supervisor already runs a process; the record was not considered.
    AlreadyRunning { pid: u32 },
    /// The pid is not alive (or is a zombie).
    NotRunning,
    /// The pid is alive but it is another process (its start time differs).
    PidReused,
    /// Recorded in another boot (or the boot id is unreadable).
    OtherBoot,
}

struct Inner {
    current: Option<ProcessRecord>,
    generation: u64,
}

/// Starts, stops, restarts and adopts one service's process.
#[derive(Clone)]
pub struct Supervisor {
    name: String,
    cfg: ProcessConfig,
    log: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
    state_tx: Arc<watch::Sender<ProcessState>>,
    journal: Option<Arc<dyn ProcessJournal>>,
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
                current: None,
                generation: 0,
            })),
            state_tx: Arc::new(tx),
            journal: None,
        }
    }

    /// Report starts, adoptions and deliberate stops to `journal`.
    pub fn with_journal(mut self, journal: Arc<dyn ProcessJournal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ProcessConfig {
        &self.cfg
    }

    pub fn state(&self) -> ProcessState {
        self.state_tx.borrow().clone()
    }

    /// Subscribe to state changes (exits are reported as they happen).
    pub fn watch(&self) -> watch::Receiver<ProcessState> {
        self.state_tx.subscribe()
    }

    /// The record of the current (or last) process, if any.
    pub async fn record(&self) -> Option<ProcessRecord> {
        self.inner.lock().await.current.clone()
    }

    /// Send `signal` (a name like `SIGHUP`) to the running process (the
    /// group's leader only: a reload, not a stop). Returns its pid.
    pub async fn signal(&self, signal: &str) -> Result<u32, String> {
        let sig: Signal = signal
            .parse()
            .map_err(|_| format!("unknown signal `{signal}`"))?;
        let inner = self.inner.lock().await;
        let Some(rec) = inner.current.as_ref().filter(|_| self.state().is_running()) else {
            return Err(format!("{}: no running process to signal", self.name));
        };
        // The pid must still name the process we started (not a reused pid).
        if procfs::stat(rec.pid).is_none_or(|s| s.start_ticks != rec.start_ticks || s.is_dead()) {
            return Err(format!("{}: process {} is gone", self.name, rec.pid));
        }
        let raw = i32::try_from(rec.pid).map_err(|_| format!("bad pid {}", rec.pid))?;
        nix::sys::signal::kill(Pid::from_raw(raw), sig)
            .map_err(|e| format!("{signal} to pid {}: {e}", rec.pid))?;
        Ok(rec.pid)
    }

    /// Upper bound for a restart: SIGTERM grace, SIGKILL wait, group wait, start.
    pub fn restart_timeout(&self) -> Duration {
        self.cfg.stop_grace.max(self.cfg.unresponsive_stop_grace)
            + KILL_WAIT
            + GROUP_WAIT
            + Duration::from_secs(5)
    }

    async fn journal(&self, rec: Option<ProcessRecord>) {
        if let Some(j) = &self.journal {
            j.record(self.name.clone(), rec).await;
        }
    }

    /// Start the process if it is not running. Returns its pid.
    pub async fn start(&self) -> Result<u32, SupervisorError> {
        let mut inner = self.inner.lock().await;
        if let ProcessState::Running { pid, .. } = self.state() {
            return Ok(pid);
        }
        let (prog, args) = self
            .cfg
            .command
            .split_first()
            .ok_or(SupervisorError::EmptyCommand)?;
        let mut cmd = std::process::Command::new(prog);
        {
            use std::os::unix::process::CommandExt;
            cmd.args(args)
                .envs(&self.cfg.env)
                .stdin(Stdio::null())
                .process_group(0);
        }
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
        let child = cmd.spawn().map_err(|e| SupervisorError::Spawn {
            command: self.cfg.command.join(" "),
            why: spawn_failure(prog, &e),
        })?;
        let pid = child.id();
        // Not reaped before the waiter says so: /proc/<pid> exists.
        let start_ticks = procfs::stat(pid).map_or(0, |s| s.start_ticks);
        inner.generation += 1;
        let generation = inner.generation;
        let rec = ProcessRecord {
            service: self.name.clone(),
            pid,
            pgid: pid,
            start_ticks,
            boot_id: procfs::boot_id().unwrap_or_default(),
            started_unix_ms: unix_ms(),
            command: self.cfg.command.clone(),
        };
        inner.current = Some(rec.clone());
        self.state_tx
            .send_replace(ProcessState::Running { pid, generation });
        spawn_child_waiter(
            child,
            self.name.clone(),
            start_ticks,
            generation,
            self.state_tx.clone(),
        );
        tracing::info!(service = %self.name, pid, "started supervised process");
        self.journal(Some(rec)).await;
        drop(inner);
        Ok(pid)
    }

    /// Take over a process recorded by an earlier medic, if it is still the
    /// same live process. It is then watched by polling `/proc` every
    /// [`ADOPTED_POLL`] and stopped by process group like any other.
    pub async fn adopt(&self, rec: &ProcessRecord) -> Adoption {
        let mut inner = self.inner.lock().await;
        if let ProcessState::Running { pid, .. } = self.state() {
            return Adoption::AlreadyRunning { pid };
        }
        match procfs::boot_id() {
            Some(b) if b == rec.boot_id => {}
            _ => return Adoption::OtherBoot,
        }
        match procfs::stat(rec.pid) {
            Some(s) if s.start_ticks != rec.start_ticks && !s.is_dead() => {
                return Adoption::PidReused
            }
            Some(s) if !s.is_dead() => {}
            _ => {
                kill_leftovers(&self.name, rec);
                return Adoption::NotRunning;
            }
        }
        inner.generation += 1;
        let generation = inner.generation;
        inner.current = Some(ProcessRecord {
            service: self.name.clone(),
            ..rec.clone()
        });
        self.state_tx.send_replace(ProcessState::Running {
            pid: rec.pid,
            generation,
        });
        tokio::spawn(watch_adopted(
            rec.clone(),
            self.name.clone(),
            generation,
            self.state_tx.clone(),
        ));
        tracing::info!(service = %self.name, pid = rec.pid, "adopted the process started by an earlier medic");
        Adoption::Adopted {
            pid: rec.pid,
            command_changed: rec.command != self.cfg.command,
        }
    }

    /// Stop the process group (see [`Supervisor::stop_with`]).
    pub async fn stop(&self) {
        self.stop_with(false).await;
    }

    /// SIGCONT + SIGTERM to the process group, SIGKILL after the grace
    /// (`unresponsive_stop_grace` when `unresponsive` or a process of the group
    /// is stopped, `stop_grace` otherwise). Returns once the leader is gone and
    /// no live process of the group is left (or after bounded waits).
    pub async fn stop_with(&self, unresponsive: bool) {
        let mut inner = self.inner.lock().await;
        let Some(rec) = inner.current.take() else {
            return;
        };
        let (pid, pgid) = (rec.pid, rec.pgid);
        let mut rx = self.state_tx.subscribe();
        let running =
            |s: &ProcessState| matches!(s, ProcessState::Running { pid: p, .. } if *p == pid);
        let t0 = Instant::now();
        if running(&rx.borrow()) {
            let stopped = procfs::group_members(pgid).iter().any(|p| p.is_stopped());
            let (grace, why) = if stopped {
                (self.cfg.unresponsive_stop_grace, "stopped")
            } else if unresponsive {
                (self.cfg.unresponsive_stop_grace, "unresponsive")
            } else {
                (self.cfg.stop_grace, "running")
            };
            tracing::info!(service = %self.name, pid, pgid, state = why, grace_ms = grace.as_millis() as u64, "stopping: SIGCONT, SIGTERM to the process group");
            signal_group(pgid, rec.start_ticks, Signal::SIGCONT);
            signal_group(pgid, rec.start_ticks, Signal::SIGTERM);
            let exited = tokio::time::timeout(grace, rx.wait_for(|s| !running(s)))
                .await
                .is_ok();
            if !exited {
                tracing::warn!(service = %self.name, pid, "did not exit after SIGTERM; sending SIGKILL to the process group");
                signal_group(pgid, rec.start_ticks, Signal::SIGKILL);
                let _ = tokio::time::timeout(KILL_WAIT, rx.wait_for(|s| !running(s))).await;
            }
        }
        // The waiter killed the group when the leader exited; members may
        // still be on their way out.
        let deadline = Instant::now() + GROUP_WAIT;
        let mut killed_again = false;
        loop {
            let left = procfs::group_members(pgid);
            if left.is_empty() {
                break;
            }
            if !killed_again {
                signal_group(pgid, rec.start_ticks, Signal::SIGKILL);
                killed_again = true;
            }
            if Instant::now() >= deadline {
                tracing::error!(service = %self.name, pgid, left = left.len(), "processes of the group survived SIGKILL");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.state_tx.send_replace(ProcessState::Stopped);
        tracing::info!(service = %self.name, pid, took_ms = t0.elapsed().as_millis() as u64, "supervised process stopped");
        self.journal(None).await;
        drop(inner);
    }

    /// Stop (if running) then start. Returns the new pid.
    pub async fn restart(&self) -> Result<u32, SupervisorError> {
        self.restart_with(false).await
    }

    /// [`Supervisor::stop_with`] then [`Supervisor::start`].
    pub async fn restart_with(&self, unresponsive: bool) -> Result<u32, SupervisorError> {
        self.stop_with(unresponsive).await;
        crate::failpoint::hit("mid_execution");
        self.start().await
    }
}

/// One sentence on why `prog` could not be started: for a bare name that is
/// not found, the PATH that was searched.
pub fn spawn_failure(prog: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && !prog.contains('/') {
        let path = std::env::var("PATH").unwrap_or_default();
        format!("program `{prog}` not found in PATH ({path}); give its full path")
    } else if e.kind() == std::io::ErrorKind::NotFound {
        format!("`{prog}` does not exist")
    } else {
        format!("`{prog}`: {e}")
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Signal process group `pgid`, unless that id now names another process
/// (the leader was reaped and its pid reused: then our group is empty).
fn signal_group(pgid: u32, leader_start: u64, sig: Signal) {
    if let Some(s) = procfs::stat(pgid) {
        if s.start_ticks != leader_start && !s.is_dead() {
            return;
        }
    }
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 {
        return;
    }
    let _ = killpg(Pid::from_raw(raw), sig);
}

/// The recorded leader is gone while no medic watched: kill what is left of
/// its group. Only if every live member started after the leader (else the
/// group id is not the recorded group's).
fn kill_leftovers(service: &str, rec: &ProcessRecord) {
    let left = procfs::group_members(rec.pgid);
    if left.is_empty() || left.iter().any(|p| p.start_ticks < rec.start_ticks) {
        return;
    }
    signal_group(rec.pgid, rec.start_ticks, Signal::SIGKILL);
    tracing::warn!(
        service,
        pgid = rec.pgid,
        left = left.len(),
        "the recorded process is gone; killed what was left of its process group"
    );
}

/// Kill what is left of a group whose leader just exited; log if anything was.
fn kill_rest_of_group(service: &str, pgid: u32, leader_start: u64) {
    let left = procfs::group_members(pgid);
    signal_group(pgid, leader_start, Signal::SIGKILL);
    if !left.is_empty() {
        tracing::warn!(
            service,
            pgid,
            left = left.len(),
            "leader exited; killed the rest of its process group"
        );
    }
}

fn report_exit(
    tx: &watch::Sender<ProcessState>,
    generation: u64,
    pid: u32,
    code: Option<i32>,
    signal: Option<i32>,
) {
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
}

/// A thread per child: wait until the leader has exited without reaping it
/// (`waitid(WNOWAIT)`), kill the rest of its group while the zombie still
/// holds the group id, then reap and report.
fn spawn_child_waiter(
    mut child: std::process::Child,
    service: String,
    start_ticks: u64,
    generation: u64,
    tx: Arc<watch::Sender<ProcessState>>,
) {
    let pid = child.id();
    let body = move || {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(0));
        while let Err(nix::errno::Errno::EINTR) =
            waitid(Id::Pid(raw), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
        {}
        kill_rest_of_group(&service, pid, start_ticks);
        let (code, signal) = match child.wait() {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                (s.code(), s.signal())
            }
            Err(_) => (None, None),
        };
        tracing::info!(service = %service, pid, ?code, ?signal, "supervised process exited");
        report_exit(&tx, generation, pid, code, signal);
    };
    let spawned = std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(body);
    if let Err(e) = spawned {
        // Without a waiter the exit would go unnoticed; say so loudly.
        tracing::error!(pid, error = %e, "cannot spawn the process waiter thread");
    }
}

/// Poll an adopted process (not our child: no waitpid) until it is gone.
async fn watch_adopted(
    rec: ProcessRecord,
    service: String,
    generation: u64,
    tx: Arc<watch::Sender<ProcessState>>,
) {
    loop {
        match procfs::stat(rec.pid) {
            Some(s) if s.start_ticks == rec.start_ticks && !s.is_dead() => {}
            _ => break,
        }
        tokio::time::sleep(ADOPTED_POLL).await;
    }
    kill_rest_of_group(&service, rec.pgid, rec.start_ticks);
    tracing::info!(service = %service, pid = rec.pid, "adopted process exited");
    report_exit(&tx, generation, rec.pid, None, None);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn cfg(cmd: &str, grace_ms: u64) -> ProcessConfig {
        ProcessConfig {
            command: vec!["sh".into(), "-c".into(), cmd.into()],
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_millis(grace_ms),
            unresponsive_stop_grace: Duration::from_millis(200),
            autostart: true,
        }
    }

    async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        for _ in 0..250 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Live processes of a group (and a guard that kills it, also on panic).
    struct Group(u32);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = killpg(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
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
        let _g1 = Group(pid1);
        assert!(s.state().is_running());
        started(1).await;
        let pid2 = s.restart().await.unwrap();
        let _g2 = Group(pid2);
        started(2).await;
        assert_ne!(pid1, pid2);
        assert!(procfs::stat(pid1).is_none_or(|p| p.is_dead()));
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
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        s.stop().await;
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(s.state(), ProcessState::Stopped);
        assert!(procfs::group_members(pid).is_empty());
    }

    #[tokio::test]
    async fn a_stopped_process_is_stopped_with_the_short_grace() {
        // SIGTERM is ignored, so only SIGKILL ends it: the stop takes the grace
        // in force, 200ms (unresponsive) instead of 30s.
        let s = Supervisor::new("frozen", cfg("trap '' TERM; exec sleep 30", 30_000), None);
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        wait_until("sh to exec sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .await;
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        wait_until("the process to be stopped", || {
            procfs::stat(pid).is_some_and(|p| p.is_stopped())
        })
        .await;
        let t = Instant::now();
        s.stop().await;
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(procfs::group_members(pid).is_empty());
    }

    #[tokio::test]
    async fn a_stopped_process_that_honours_sigterm_exits_at_once() {
        // Both graces are long: only SIGCONT before SIGTERM makes this quick.
        let c = ProcessConfig {
            unresponsive_stop_grace: Duration::from_secs(30),
            ..cfg("exec sleep 30", 30_000)
        };
        let s = Supervisor::new("frozen", c, None);
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        wait_until("sh to exec sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .await;
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        wait_until("the process to be stopped", || {
            procfs::stat(pid).is_some_and(|p| p.is_stopped())
        })
        .await;
        let t = Instant::now();
        s.stop().await;
        // SIGCONT lets it act on SIGTERM: well before even the short grace.
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(procfs::stat(pid).is_none_or(|p| p.is_dead()));
    }

    #[tokio::test]
    async fn unresponsive_hint_uses_the_short_grace() {
        let s = Supervisor::new(
            "hung",
            cfg("trap '' TERM; while true; do sleep 0.1; done", 30_000),
            None,
        );
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let new = s.restart_with(true).await.unwrap();
        let _g2 = Group(new);
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(procfs::group_members(pid).is_empty());
        s.stop_with(true).await;
        assert!(procfs::group_members(new).is_empty());
    }

    /// A wrapper that exits on SIGTERM, with a child that ignores it.
    const WRAPPER: &str = "(trap '' TERM; exec sleep 300) & echo $! > \"$CHILD_PID\"; wait";

    fn wrapper(dir: &std::path::Path) -> (ProcessConfig, PathBuf) {
        let file = dir.join("child.pid");
        let mut c = cfg(WRAPPER, 30_000);
        c.env.insert("CHILD_PID".into(), file.display().to_string());
        (c, file)
    }

    async fn child_pid(file: &std::path::Path) -> u32 {
        let mut pid = 0;
        wait_until("the child pid file", || {
            pid = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            pid != 0
        })
        .await;
        pid
    }

    #[tokio::test]
    async fn stop_leaves_no_process_of_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let (c, file) = wrapper(dir.path());
        let s = Supervisor::new("wrapped", c, None);
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        let child = child_pid(&file).await;
        assert_eq!(procfs::stat(child).unwrap().pgrp, pid);
        let t = Instant::now();
        s.stop().await;
        // The leader exits on SIGTERM at once; the child is SIGKILLed with it,
        // not after the 30s grace.
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(procfs::stat(child).is_none_or(|p| p.is_dead()));
        assert!(procfs::group_members(pid).is_empty());
    }

    #[tokio::test]
    async fn a_leader_that_dies_by_itself_takes_its_group_along() {
        let dir = tempfile::tempdir().unwrap();
        let (c, file) = wrapper(dir.path());
        let s = Supervisor::new("wrapped", c, None);
        let pid = s.start().await.unwrap();
        let _g = Group(pid);
        let child = child_pid(&file).await;
        let mut rx = s.watch();
        nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|st| matches!(st, ProcessState::Exited { .. })),
        )
        .await
        .unwrap()
        .unwrap();
        // The group is killed before the exit is reported.
        wait_until("the child to die", || {
            procfs::stat(child).is_none_or(|p| p.is_dead())
        })
        .await;
        assert!(procfs::group_members(pid).is_empty());
    }

    #[derive(Default)]
    struct Journal(std::sync::Mutex<Vec<(String, Option<ProcessRecord>)>>);
    impl ProcessJournal for Journal {
        fn record(&self, service: String, rec: Option<ProcessRecord>) -> BoxFuture<'static, ()> {
            self.0.lock().unwrap().push((service, rec));
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn adopt_takes_over_a_live_process_and_refuses_a_reused_pid() {
        let journal = Arc::new(Journal::default());
        let first =
            Supervisor::new("svc", cfg("exec sleep 300", 2000), None).with_journal(journal.clone());
        let pid = first.start().await.unwrap();
        let _g = Group(pid);
        let rec = first.record().await.unwrap();
        assert_eq!((rec.pid, rec.pgid), (pid, pid));
        assert!(rec.start_ticks > 0 && !rec.boot_id.is_empty());
        assert_eq!(journal.0.lock().unwrap().len(), 1);

        // A second supervisor (a restarted medic) adopts it.
        let second =
            Supervisor::new("svc", cfg("exec sleep 300", 2000), None).with_journal(journal.clone());
        let other_boot = ProcessRecord {
            boot_id: "not-this-boot".into(),
            ..rec.clone()
        };
        assert_eq!(second.adopt(&other_boot).await, Adoption::OtherBoot);
        let reused = ProcessRecord {
            start_ticks: rec.start_ticks + 1,
            ..rec.clone()
        };
        assert_eq!(second.adopt(&reused).await, Adoption::PidReused);
        assert_eq!(
            second.adopt(&rec).await,
            Adoption::Adopted {
                pid,
                command_changed: false
            }
        );
        assert_eq!(second.state(), ProcessState::Running { pid, generation: 1 });
        assert_eq!(second.adopt(&rec).await, Adoption::AlreadyRunning { pid });
        // Its exit is seen by polling /proc.
        let mut rx = second.watch();
        killpg(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|st| matches!(st, ProcessState::Exited { pid: p, .. } if *p == pid)),
        )
        .await
        .unwrap()
        .unwrap();
        // A dead pid is not adopted.
        let third = Supervisor::new("svc", cfg("exec sleep 300", 2000), None);
        // (the first supervisor's waiter reaps it; wait for that)
        wait_until("the first supervisor to see the exit", || {
            !first.state().is_running()
        })
        .await;
        assert_eq!(third.adopt(&rec).await, Adoption::NotRunning);
    }

    #[tokio::test]
    async fn an_adopted_process_is_stopped_by_group() {
        let dir = tempfile::tempdir().unwrap();
        let (c, file) = wrapper(dir.path());
        let journal = Arc::new(Journal::default());
        let first = Supervisor::new("wrapped", c.clone(), None);
        let pid = first.start().await.unwrap();
        let _g = Group(pid);
        let child = child_pid(&file).await;
        let rec = first.record().await.unwrap();
        let second = Supervisor::new("wrapped", c, None).with_journal(journal.clone());
        assert!(matches!(second.adopt(&rec).await, Adoption::Adopted { .. }));
        second.stop().await;
        assert_eq!(second.state(), ProcessState::Stopped);
        assert!(procfs::stat(child).is_none_or(|p| p.is_dead()));
        assert!(procfs::group_members(pid).is_empty());
        // The deliberate stop is journaled as a removal.
        assert_eq!(
            journal.0.lock().unwrap().last(),
            Some(&("wrapped".to_string(), None))
        );
    }

    #[tokio::test]
    async fn a_recorded_group_whose_leader_died_unwatched_is_cleaned_up() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("child.pid");
        // A group whose leader exits and leaves a child behind, with nobody
        // supervising it (as when medic was killed).
        let mut leader = std::process::Command::new("sh")
            .args(["-c", &format!("sleep 300 & echo $! > {}", file.display())])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = leader.id();
        let _g = Group(pid);
        let start_ticks = procfs::stat(pid).unwrap().start_ticks;
        let child = child_pid(&file).await;
        leader.wait().unwrap();
        assert!(procfs::stat(child).is_some_and(|p| !p.is_dead() && p.pgrp == pid));
        let rec = ProcessRecord {
            service: "svc".into(),
            pid,
            pgid: pid,
            start_ticks,
            boot_id: procfs::boot_id().unwrap(),
            started_unix_ms: 0,
            command: vec!["sh".into()],
        };
        let s = Supervisor::new("svc", cfg("true", 100), None);
        assert_eq!(s.adopt(&rec).await, Adoption::NotRunning);
        wait_until("the left-over child to be killed", || {
            procfs::stat(child).is_none_or(|p| p.is_dead())
        })
        .await;
        assert!(!s.state().is_running());
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

    #[tokio::test]
    async fn a_missing_program_is_named_with_the_path_searched_once() {
        let s = Supervisor::new(
            "bad",
            ProcessConfig {
                command: vec!["no-such-program-medic-test".into(), "x".into()],
                ..cfg("", 100)
            },
            None,
        );
        let e = s.start().await.unwrap_err();
        // The cause is said once: not repeated as an error source.
        assert!(std::error::Error::source(&e).is_none());
        let msg = e.to_string();
        assert!(
            msg.contains("`no-such-program-medic-test` not found in PATH ("),
            "{msg}"
        );
        assert!(msg.contains(&std::env::var("PATH").unwrap()), "{msg}");
        assert_eq!(msg.matches("not found").count(), 1, "{msg}");
        assert!(!msg.contains("os error"), "{msg}");
    }
}
