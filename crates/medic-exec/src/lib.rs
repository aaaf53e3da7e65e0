//! Executors: the only place medic changes the world.
//!
//! - [`Supervisor`] starts a service's process in its own process group and
//!   stops it with SIGTERM, then SIGKILL after a grace period.
//! - [`run_exec`] runs a command with a timeout, output captured (bounded).
//! - [`run_http`] calls an endpoint.
//!
//! Each returns `Ok(detail)` or an [`ActionFailure`] with a closed kind, which
//! the daemon feeds back to the engine unchanged.
#![forbid(unsafe_code)]

mod supervisor;

use std::process::Stdio;
use std::time::Duration;

use medic_core::{ActionFailure, ActionFailureKind};
use tokio::io::AsyncReadExt;

pub use supervisor::{ProcessState, Supervisor, SupervisorError};

/// Most bytes of command output kept for the audit record.
pub const MAX_OUTPUT_BYTES: usize = 4096;

fn failure(kind: ActionFailureKind, message: impl Into<String>) -> ActionFailure {
    ActionFailure {
        kind,
        message: message.into(),
    }
}

/// Run `command` (argv) with a timeout; on timeout its whole process group is killed.
pub async fn run_exec(
    command: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<String, ActionFailure> {
    let Some((prog, args)) = command.split_first() else {
        return Err(failure(ActionFailureKind::Spawn, "empty command"));
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
    let mut child = cmd
        .spawn()
        .map_err(|e| failure(ActionFailureKind::Spawn, format!("cannot run {prog}: {e}")))?;
    let pid = child.id();
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
    match tokio::time::timeout(timeout, read_all).await {
        Ok((Ok(status), out, err)) => {
            let mut text = String::from_utf8_lossy(&out).trim_end().to_string();
            let err = String::from_utf8_lossy(&err);
            if !err.trim().is_empty() {
                text.push_str(&format!("\n[stderr] {}", err.trim()));
            }
            let text = truncate(text.trim());
            if status.success() {
                Ok(text)
            } else {
                Err(failure(
                    ActionFailureKind::NonZeroExit,
                    format!("{status}: {text}"),
                ))
            }
        }
        Ok((Err(e), _, _)) => Err(failure(ActionFailureKind::Other, e.to_string())),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(failure(
                ActionFailureKind::Timeout,
                format!(
                    "{prog} did not finish within {}ms; killed",
                    timeout.as_millis()
                ),
            ))
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
    let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| {
        failure(
            ActionFailureKind::Other,
            format!("bad method {method}: {e}"),
        )
    })?;
    let mut req = client.request(m, url).timeout(timeout);
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.map_err(|e| {
        let kind = if e.is_timeout() {
            ActionFailureKind::Timeout
        } else {
            ActionFailureKind::Http
        };
        failure(kind, format!("{method} {url}: {e}"))
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let ok = match expect_status {
        Some(s) => status.as_u16() == s,
        None => status.is_success(),
    };
    let detail = format!("{method} {url} -> {status} {}", truncate(text.trim()));
    if ok {
        Ok(detail)
    } else {
        Err(failure(ActionFailureKind::Http, detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
