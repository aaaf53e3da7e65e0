//! Health probes. Each probe runs once per call and classifies the result
//! into a [`ProbeFailure`] the engine can diagnose; nothing here decides
//! whether a service is unhealthy (that is the engine's failure rule).
#![forbid(unsafe_code)]

use std::error::Error as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use medic_config::ProbeKind;
use medic_core::ProbeFailure;

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub ok: bool,
    pub latency: Duration,
    pub failure: Option<ProbeFailure>,
    pub detail: String,
}

impl ProbeOutcome {
    fn ok(latency: Duration, detail: String) -> Self {
        ProbeOutcome {
            ok: true,
            latency,
            failure: None,
            detail,
        }
    }

    fn fail(latency: Duration, failure: ProbeFailure, detail: String) -> Self {
        ProbeOutcome {
            ok: false,
            latency,
            failure: Some(failure),
            detail,
        }
    }
}

/// A probe ready to run many times: an HTTP probe's URL is parsed once
/// (parsing it was a tenth of medic's instructions per probe).
#[derive(Debug, Clone)]
pub struct Prepared {
    kind: ProbeKind,
    url: Option<reqwest::Url>,
}

impl Prepared {
    pub fn new(kind: ProbeKind) -> Prepared {
        let url = match &kind {
            // A URL that does not parse is left to the request, which
            // reports it as the probe's failure.
            ProbeKind::Http { url, .. } => reqwest::Url::parse(url).ok(),
            _ => None,
        };
        Prepared { kind, url }
    }
}

/// Runs HTTP, TCP and exec probes. Process liveness is answered by the
/// supervisor, not here.
#[derive(Clone)]
pub struct Prober {
    /// A new connection per run (it also tests that the service accepts).
    http: reqwest::Client,
    /// Connections kept open between runs, for `keep_alive` probes.
    keep: reqwest::Client,
}

impl Prober {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let keep = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("medic/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Prober { http, keep })
    }

    /// Run one probe. `Process` and `Docker` kinds return `None`: the caller
    /// asks its supervisor or the Docker Engine (medic-exec).
    pub async fn run(&self, kind: &ProbeKind, timeout: Duration) -> Option<ProbeOutcome> {
        self.run_prepared(&Prepared::new(kind.clone()), timeout)
            .await
    }

    /// [`Prober::run`] for a probe prepared once (its URL parsed once, not
    /// per run).
    pub async fn run_prepared(&self, p: &Prepared, timeout: Duration) -> Option<ProbeOutcome> {
        let kind = &p.kind;
        Some(match kind {
            ProbeKind::Http {
                url,
                expect_status,
                body_contains,
                keep_alive,
            } => {
                let client = if *keep_alive { &self.keep } else { &self.http };
                http(
                    client,
                    p.url.as_ref(),
                    url,
                    *expect_status,
                    body_contains.as_deref(),
                    timeout,
                )
                .await
            }
            ProbeKind::Tcp { address } => tcp(address, timeout).await,
            ProbeKind::Exec { command } => exec(command, timeout).await,
            ProbeKind::Process | ProbeKind::Docker { .. } => return None,
        })
    }
}

async fn http(
    client: &reqwest::Client,
    parsed: Option<&reqwest::Url>,
    url: &str,
    expect_status: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> ProbeOutcome {
    let start = Instant::now();
    let req = match parsed {
        Some(u) => client.get(u.clone()),
        None => client.get(url),
    };
    let resp = req.timeout(timeout).send().await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return classify_reqwest(start.elapsed(), &e),
    };
    let status = resp.status().as_u16();
    let body =
        match tokio::time::timeout(timeout.saturating_sub(start.elapsed()), resp.text()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return classify_reqwest(start.elapsed(), &e),
            Err(_) => {
                return ProbeOutcome::fail(
                    start.elapsed(),
                    ProbeFailure::Timeout,
                    format!("body not received within {}ms", timeout.as_millis()),
                )
            }
        };
    let latency = start.elapsed();
    if status != expect_status {
        return ProbeOutcome::fail(
            latency,
            ProbeFailure::BadStatus(status),
            format!("HTTP {status}, expected {expect_status}"),
        );
    }
    if let Some(needle) = body_contains {
        if !body.contains(needle) {
            return ProbeOutcome::fail(
                latency,
                ProbeFailure::BodyMismatch,
                format!("body does not contain `{needle}`"),
            );
        }
    }
    ProbeOutcome::ok(latency, format!("HTTP {status}"))
}

fn classify_reqwest(latency: Duration, e: &reqwest::Error) -> ProbeOutcome {
    if e.is_timeout() {
        return ProbeOutcome::fail(latency, ProbeFailure::Timeout, "timed out".into());
    }
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return ProbeOutcome::fail(
                    latency,
                    ProbeFailure::Refused,
                    "connection refused".into(),
                );
            }
        }
        src = s.source();
    }
    ProbeOutcome::fail(latency, ProbeFailure::Other, error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

async fn tcp(address: &str, timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => ProbeOutcome::ok(start.elapsed(), "connected".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeOutcome::fail(start.elapsed(), ProbeFailure::Refused, e.to_string())
        }
        Ok(Err(e)) => ProbeOutcome::fail(start.elapsed(), ProbeFailure::Other, e.to_string()),
        Err(_) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::Timeout,
            format!("no connection within {}ms", timeout.as_millis()),
        ),
    }
}

async fn exec(command: &[String], timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    let Some((prog, args)) = command.split_first() else {
        return ProbeOutcome::fail(start.elapsed(), ProbeFailure::Other, "empty command".into());
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return ProbeOutcome::fail(
                start.elapsed(),
                ProbeFailure::ExecFailed(None),
                format!("cannot run {prog}: {e}"),
            )
        }
    };
    // A check that times out (or whose probe is dropped) is killed with
    // everything it started: its whole process group.
    let _group = KillGroupOnDrop(child.id());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => ProbeOutcome::ok(start.elapsed(), "exit 0".into()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr.chars().take(200).collect();
            ProbeOutcome::fail(
                start.elapsed(),
                ProbeFailure::ExecFailed(out.status.code()),
                format!("{}: {}", out.status, tail.trim()),
            )
        }
        Ok(Err(e)) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::ExecFailed(None),
            e.to_string(),
        ),
        Err(_) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::Timeout,
            format!("check did not finish within {}ms", timeout.as_millis()),
        ),
    }
}

/// SIGKILLs a process group on drop (no-op when it has already exited).
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{routing::get, Router};

    async fn server() -> String {
        let app = Router::new()
            .route("/ok", get(|| async { "status ok" }))
            .route(
                "/err",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        a.to_string()
    }

    #[tokio::test]
    async fn http_probe_classifies_results() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let t = Duration::from_millis(500);
        let http = |path: &str, body: Option<&str>| ProbeKind::Http {
            url: format!("{base}{path}"),
            expect_status: 200,
            body_contains: body.map(str::to_string),
            keep_alive: false,
        };
        let ok = p.run(&http("/ok", Some("ok")), t).await.unwrap();
        assert!(ok.ok, "{ok:?}");
        let mismatch = p.run(&http("/ok", Some("nope")), t).await.unwrap();
        assert_eq!(mismatch.failure, Some(ProbeFailure::BodyMismatch));
        let err = p.run(&http("/err", None), t).await.unwrap();
        assert_eq!(err.failure, Some(ProbeFailure::BadStatus(500)));
        let hang = p.run(&http("/hang", None), t).await.unwrap();
        assert_eq!(hang.failure, Some(ProbeFailure::Timeout));
        assert!(hang.latency >= t);
        let refused = ProbeKind::Http {
            url: format!("http://{}/", closed_port()),
            expect_status: 200,
            body_contains: None,
            keep_alive: false,
        };
        let r = p.run(&refused, t).await.unwrap();
        assert_eq!(r.failure, Some(ProbeFailure::Refused), "{r:?}");
    }

    /// A server answering every request with 200 on the same connection,
    /// counting the connections it accepted.
    async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = n.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(k) = s.read(&mut chunk).await else {
                            return;
                        };
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
        (format!("http://{addr}/healthz"), n)
    }

    #[tokio::test]
    async fn keep_alive_reuses_the_connection_and_the_default_does_not() {
        let p = Prober::new().unwrap();
        let t = Duration::from_secs(2);
        for (keep_alive, connections) in [(false, 3), (true, 1)] {
            let (url, accepted) = counting_server().await;
            let kind = ProbeKind::Http {
                url,
                expect_status: 200,
                body_contains: None,
                keep_alive,
            };
            for _ in 0..3 {
                let o = p.run(&kind, t).await.unwrap();
                assert!(o.ok, "{o:?}");
            }
            assert_eq!(
                accepted.load(std::sync::atomic::Ordering::SeqCst),
                connections,
                "keep_alive: {keep_alive}"
            );
        }
    }

    #[tokio::test]
    async fn tcp_and_exec_probes() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let t = Duration::from_millis(500);
        let up = p
            .run(
                &ProbeKind::Tcp {
                    address: base.trim_start_matches("http://").into(),
                },
                t,
            )
            .await
            .unwrap();
        assert!(up.ok);
        let down = p
            .run(
                &ProbeKind::Tcp {
                    address: closed_port(),
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(down.failure, Some(ProbeFailure::Refused));
        let yes = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["true".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert!(yes.ok);
        let no = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(no.failure, Some(ProbeFailure::ExecFailed(Some(3))));
        let slow = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["sleep".into(), "5".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(slow.failure, Some(ProbeFailure::Timeout));
        // What a timed-out check started is killed with it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bg.pid");
        let bg = p
            .run(
                &ProbeKind::Exec {
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        format!("sleep 300 & echo $! > {}; wait", file.display()),
                    ],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(bg.failure, Some(ProbeFailure::Timeout));
        let pid = std::fs::read_to_string(&file).unwrap();
        let stat = |pid: &str| std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        let mut gone = false;
        for _ in 0..100 {
            // Gone, or a zombie waiting for a reaper.
            gone = stat(&pid).map_or(true, |s| s.contains(") Z "));
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the check's background child {pid} survived");
        let missing = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["/nonexistent/medic-check".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(missing.failure, Some(ProbeFailure::ExecFailed(None)));
        assert!(p.run(&ProbeKind::Process, t).await.is_none());
    }
}
