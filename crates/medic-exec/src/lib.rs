//! Executors: the only place medic changes the world.
//!
//! - [`Supervisor`] starts a service's process in its own process group,
//!   stops it by group (SIGCONT, SIGTERM, SIGKILL after a grace period), kills
//!   what is left of the group when its leader exits, and adopts a process an
//!   earlier medic started.
//! - [`Executor`]s behind a [`Registry`] keyed by action kind: restart of the
//!   supervised process, exec ([`exec_command`]: timeout, output captured and
//!   bounded, process group killed on timeout or cancel) and http
//!   ([`http_call`]).
//!
//! Failures are typed ([`ExecError`]) and convert into the core's
//! [`ActionFailure`] with a closed kind, which the daemon feeds back to the
//! engine unchanged.
#![forbid(unsafe_code)]

pub mod docker;
mod executor;
pub mod failpoint;
pub mod kubernetes;
pub mod procfs;
mod supervisor;
pub mod systemd;

use std::process::Stdio;
use std::time::Duration;

use medic_core::ActionFailure;
use tokio::io::AsyncReadExt;

pub use docker::{ContainerInfo, DockerClient, DockerExecutor};
pub use executor::{
    CancelOnDrop, CancelToken, CommandExecutor, ExecError, ExecOutput, ExecRequest, ExecResult,
    Executor, HttpExecutor, Registry, RestartExecutor, TIMEOUT_SLACK,
};
pub use supervisor::{
    Adoption, BoxFuture, ProcessJournal, ProcessRecord, ProcessState, Supervisor, SupervisorError,
    ADOPTED_POLL,
};

/// Most bytes of command output kept for the audit record.
pub const MAX_OUTPUT_BYTES: usize = 4096;

/// SIGKILLs a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take().filter(|p| *p > 1) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run `command` (argv) with a timeout; on timeout its whole process group is killed.
pub async fn run_exec(
    command: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<String, ActionFailure> {
    exec_command(command, env, cwd, timeout, &CancelToken::new())
        .await
        .map(|o| o.detail)
        .map_err(ActionFailure::from)
}

/// Run `command` (argv) in its own process group with a timeout; stdout and
/// stderr are captured (the first [`MAX_OUTPUT_BYTES`] each, the rest
/// drained). On timeout, on `cancel` or when the future is dropped, the whole
/// process group is killed.
pub async fn exec_command(
    command: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&std::path::Path>,
    timeout: Duration,
    cancel: &CancelToken,
) -> ExecResult {
    let Some((prog, args)) = command.split_first() else {
        return Err(ExecError::Spawn("empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| {
        ExecError::Spawn(format!(
            "cannot run: {}",
            supervisor::spawn_failure(prog, &e)
        ))
    })?;
    let mut group = GroupGuard(child.id().and_then(|p| i32::try_from(p).ok()));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_all = async {
        let (out, err, status) = tokio::join!(
            read_capped(stdout.as_mut()),
            read_capped(stderr.as_mut()),
            child.wait()
        );
        (status, out, err)
    };
    let finished = tokio::select! {
        r = tokio::time::timeout(timeout, read_all) => r,
        _ = cancel.cancelled() => {
            group.kill();
            return Err(ExecError::Cancelled(format!("{prog} killed")));
        }
    };
    match finished {
        Ok((Ok(status), out, err)) => {
            // Finished and its pipes are closed: nothing of it is left to kill.
            group.0 = None;
            let mut text = String::from_utf8_lossy(&out).trim_end().to_string();
            let err = String::from_utf8_lossy(&err);
            if !err.trim().is_empty() {
                text.push_str(&format!("\n[stderr] {}", err.trim()));
            }
            let text = truncate(text.trim());
            if status.success() {
                Ok(ExecOutput { detail: text })
            } else {
                Err(ExecError::NonZeroExit {
                    status: status.to_string(),
                    output: text,
                })
            }
        }
        Ok((Err(e), _, _)) => Err(ExecError::Other(e.to_string())),
        Err(_) => {
            group.kill();
            Err(ExecError::Timeout(format!(
                "{prog} did not finish within {}ms; killed",
                timeout.as_millis()
            )))
        }
    }
}

/// Keep the first [`MAX_OUTPUT_BYTES`] of a pipe and drain the rest, so a
/// chatty command never blocks on a full pipe.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(MAX_OUTPUT_BYTES as u64).read_to_end(&mut buf).await;
        let _ = tokio::io::copy(r, &mut tokio::io::sink()).await;
    }
    buf
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_OUTPUT_BYTES {
        return s.to_string();
    }
    let mut end = MAX_OUTPUT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated]", &s[..end])
}

/// Call an HTTP endpoint. Success is `expect_status`, or any 2xx when unset.
pub async fn run_http(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&str>,
    expect_status: Option<u16>,
    timeout: Duration,
) -> Result<String, ActionFailure> {
    http_call(client, method, url, body, expect_status, timeout)
        .await
        .map(|o| o.detail)
        .map_err(ActionFailure::from)
}

/// [`run_http`] with a typed result.
pub async fn http_call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&str>,
    expect_status: Option<u16>,
    timeout: Duration,
) -> ExecResult {
    http_call_with(client, method, url, body, expect_status, timeout, &[]).await
}

/// [`http_call`] with extra request headers (the fencing token and action
/// id of an HA leader's action).
pub async fn http_call_with(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<&str>,
    expect_status: Option<u16>,
    timeout: Duration,
    headers: &[(String, String)],
) -> ExecResult {
    let m = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| ExecError::Other(format!("bad method {method}: {e}")))?;
    let mut req = client.request(m, url).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.map_err(|e| {
        let msg = format!("{method} {url}: {e}");
        if e.is_timeout() {
            ExecError::Timeout(msg)
        } else {
            ExecError::Http(msg)
        }
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let ok = match expect_status {
        Some(s) => status.as_u16() == s,
        None => status.is_success(),
    };
    let detail = format!("{method} {url} -> {status} {}", truncate(text.trim()));
    if ok {
        Ok(ExecOutput { detail })
    } else {
        Err(ExecError::Http(detail))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use medic_config::ActionExec;
    use medic_core::{ActionFailureKind, ActionKind};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn exec_spec(script: &str, timeout: Duration) -> ActionExec {
        ActionExec::Exec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout,
            env: BTreeMap::new(),
            cwd: None,
        }
    }

    async fn read_pid(file: &std::path::Path) -> u32 {
        for _ in 0..250 {
            if let Some(p) = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no pid in {}", file.display());
    }

    fn gone(pid: u32) -> bool {
        procfs::stat(pid).is_none_or(|p| p.is_dead())
    }

    async fn wait_gone(pid: u32) {
        for _ in 0..250 {
            if gone(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("pid {pid} is still alive");
    }

    #[tokio::test]
    async fn registry_runs_by_kind_with_typed_errors() {
        let reg = Registry::standard(BTreeMap::new(), reqwest::Client::new());
        let t = Duration::from_secs(5);
        let ok = reg
            .execute(
                ExecRequest::new("svc", "hello", exec_spec("echo hello", t), t),
                CancelToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(ok.detail, "hello");
        let bad = reg
            .execute(
                ExecRequest::new("svc", "fail", exec_spec("echo no; exit 4", t), t),
                CancelToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            bad,
            ExecError::NonZeroExit {
                status: "exit status: 4".into(),
                output: "no".into()
            }
        );
        assert_eq!(
            ActionFailure::from(bad).kind,
            ActionFailureKind::NonZeroExit
        );
        // Restart of a service without a supervisor, and an empty registry.
        let req = ExecRequest::new("svc", "restart", ActionExec::Restart, t);
        assert_eq!(req.kind(), ActionKind::Restart);
        let e = reg
            .execute(req.clone(), CancelToken::new())
            .await
            .unwrap_err();
        assert!(matches!(e, ExecError::NoExecutor { .. }), "{e}");
        let e = Registry::new()
            .execute(req, CancelToken::new())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no Restart executor"), "{e}");
        // An already cancelled token runs nothing.
        let token = CancelToken::new();
        token.cancel();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let e = reg
            .execute(
                ExecRequest::new(
                    "svc",
                    "touch",
                    exec_spec(&format!("touch {}", marker.display()), t),
                    t,
                ),
                token,
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ActionFailureKind::Cancelled);
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn registry_bounds_an_executor_that_never_finishes() {
        struct Stuck;
        impl Executor for Stuck {
            fn kind(&self) -> ActionKind {
                ActionKind::Http
            }
            fn execute(&self, _: ExecRequest, _: CancelToken) -> BoxFuture<'static, ExecResult> {
                Box::pin(std::future::pending())
            }
        }
        let mut reg = Registry::new();
        assert!(reg.register(Arc::new(Stuck)).is_none());
        let spec = ActionExec::Http {
            url: "http://127.0.0.1:9/".into(),
            method: "POST".into(),
            body: None,
            expect_status: None,
            timeout: Duration::from_millis(100),
        };
        let e = reg
            .execute(
                ExecRequest::new("svc", "call", spec, Duration::ZERO),
                CancelToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ActionFailureKind::Timeout, "{e}");
    }

    #[tokio::test]
    async fn cancel_and_abort_kill_the_exec_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::standard(BTreeMap::new(), reqwest::Client::new());
        let t = Duration::from_secs(60);
        // A command whose background child would outlive a plain kill of sh.
        let script = |f: &std::path::Path| {
            exec_spec(&format!("sleep 300 & echo $! > {}; wait", f.display()), t)
        };
        // Cancelled by its token.
        let f1 = dir.path().join("one");
        let token = CancelToken::new();
        let run = tokio::spawn(reg.execute(
            ExecRequest::new("svc", "long", script(&f1), t),
            token.clone(),
        ));
        let child = read_pid(&f1).await;
        token.cancel();
        let e = run.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ActionFailureKind::Cancelled);
        wait_gone(child).await;
        // The waiting task is aborted: its drop guard cancels the executor.
        let f2 = dir.path().join("two");
        let token = CancelToken::new();
        let inner = tokio::spawn(reg.execute(
            ExecRequest::new("svc", "long", script(&f2), t),
            token.clone(),
        ));
        let guard = token.drop_guard();
        let outer = tokio::spawn(async move {
            let _guard = guard;
            inner.await
        });
        let child = read_pid(&f2).await;
        outer.abort();
        assert!(outer.await.unwrap_err().is_cancelled());
        wait_gone(child).await;
    }

    /// Kills the process group of a supervisor's running process on drop,
    /// so a test that fails (panics) before its `stop()` leaves nothing behind.
    struct StopOnDrop(Supervisor);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            if let ProcessState::Running { pid, .. } = self.0.state() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// A reload: SIGHUP reaches the supervised process, which lives on.
    #[tokio::test]
    async fn signal_executor_sends_a_reload_signal_to_the_supervised_process() {
        // A signal ignored on entry cannot be trapped by a shell (POSIX), and
        // an ignored disposition is inherited through exec: run under `nohup`
        // (as CI may be), SIGHUP would reach the child ignored. A handled
        // signal is reset to its default at exec, so handle it here.
        let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hups");
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'echo hup >> {}' HUP; touch {}; while :; do sleep 0.05; done",
            f.display(),
            ready.display()
        );
        let cfg = medic_config::ProcessConfig {
            command: vec!["sh".into(), "-c".into(), script],
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_secs(5),
            unresponsive_stop_grace: Duration::from_secs(1),
            autostart: true,
        };
        let sup = Supervisor::new("svc", cfg, None);
        let _stop = StopOnDrop(sup.clone());
        let pid = sup.start().await.unwrap();
        // Wait until the shell has installed its trap (it then touches `ready`).
        for _ in 0..500 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ready.exists(), "the shell never installed its trap");
        let reg = Registry::standard(
            BTreeMap::from([("svc".to_string(), sup.clone())]),
            reqwest::Client::new(),
        );
        let req = ExecRequest::new(
            "svc",
            "reload",
            ActionExec::Signal {
                signal: "SIGHUP".into(),
            },
            Duration::from_secs(5),
        );
        assert_eq!(req.kind(), ActionKind::Signal);
        let out = reg.execute(req, CancelToken::new()).await.unwrap();
        assert_eq!(out.detail, format!("sent SIGHUP to pid {pid}"));
        let mut seen = String::new();
        for _ in 0..100 {
            seen = std::fs::read_to_string(&f).unwrap_or_default();
            if !seen.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, "hup\n");
        let ProcessState::Running { pid: now, .. } = sup.state() else {
            panic!("not running after the reload: {:?}", sup.state());
        };
        assert_eq!(now, pid);
        // A bad signal name and a stopped process fail, typed.
        let bad = ExecRequest::new(
            "svc",
            "reload",
            ActionExec::Signal {
                signal: "SIGNOPE".into(),
            },
            Duration::from_secs(5),
        );
        assert!(reg.execute(bad, CancelToken::new()).await.is_err());
        sup.stop().await;
        let again = ExecRequest::new(
            "svc",
            "reload",
            ActionExec::Signal {
                signal: "SIGHUP".into(),
            },
            Duration::from_secs(5),
        );
        let err = reg.execute(again, CancelToken::new()).await.unwrap_err();
        assert!(err.to_string().contains("no running process"), "{err}");
    }

    #[tokio::test]
    async fn restart_executor_restarts_the_supervised_process() {
        let cfg = medic_config::ProcessConfig {
            command: vec!["sleep".into(), "300".into()],
            env: BTreeMap::new(),
            cwd: None,
            stop_grace: Duration::from_secs(5),
            unresponsive_stop_grace: Duration::from_secs(1),
            autostart: true,
        };
        let sup = Supervisor::new("svc", cfg, None);
        let _stop = StopOnDrop(sup.clone());
        let old = sup.start().await.unwrap();
        let reg = Registry::standard(
            BTreeMap::from([("svc".to_string(), sup.clone())]),
            reqwest::Client::new(),
        );
        let out = reg
            .execute(
                ExecRequest::new("svc", "restart", ActionExec::Restart, sup.restart_timeout()),
                CancelToken::new(),
            )
            .await
            .unwrap();
        let ProcessState::Running { pid, .. } = sup.state() else {
            panic!("not running: {:?}", sup.state());
        };
        assert_ne!(pid, old);
        assert_eq!(out.detail, format!("restarted; new pid {pid}"));
        assert!(gone(old));
        sup.stop().await;
        assert!(gone(pid));
    }

    #[tokio::test]
    async fn exec_captures_output_and_classifies() {
        let env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        let ok = run_exec(
            &sh("echo $GREETING; echo oops >&2"),
            &env,
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(ok, "hi\n[stderr] oops");
        let bad = run_exec(&sh("exit 4"), &env, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(bad.kind, ActionFailureKind::NonZeroExit);
        let slow = run_exec(&sh("sleep 10"), &env, None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(slow.kind, ActionFailureKind::Timeout);
        let missing = run_exec(
            &["/nonexistent/x".to_string()],
            &env,
            None,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(missing.kind, ActionFailureKind::Spawn);
        let big = run_exec(
            &sh("head -c 100000 /dev/zero | tr '\\0' a"),
            &env,
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(big.len() <= MAX_OUTPUT_BYTES + 20);
    }

    #[tokio::test]
    async fn http_action_checks_status() {
        use axum::{routing::post, Router};
        let app = Router::new()
            .route("/shed", post(|| async { "shedding" }))
            .route(
                "/fail",
                post(|| async { (axum::http::StatusCode::BAD_GATEWAY, "no") }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let c = reqwest::Client::new();
        let t = Duration::from_secs(2);
        let ok = run_http(&c, "POST", &format!("http://{addr}/shed"), None, None, t)
            .await
            .unwrap();
        assert!(ok.contains("200"), "{ok}");
        let bad = run_http(&c, "POST", &format!("http://{addr}/fail"), None, None, t)
            .await
            .unwrap_err();
        assert_eq!(bad.kind, ActionFailureKind::Http);
        let wrong = run_http(
            &c,
            "POST",
            &format!("http://{addr}/shed"),
            None,
            Some(204),
            t,
        )
        .await
        .unwrap_err();
        assert_eq!(wrong.kind, ActionFailureKind::Http);
    }
}
