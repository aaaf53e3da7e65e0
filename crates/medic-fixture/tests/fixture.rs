#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medic_fixture::{router, FixtureHandle, FixtureState};
use serde_json::Value;

struct Server {
    base: String,
    handle: FixtureHandle,
    client: reqwest::Client,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (app, handle) = router();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        handle,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

impl Server {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
    async fn get_timeout(&self, path: &str, t: Duration) -> reqwest::Result<reqwest::Response> {
        self.client
            .get(format!("{}{path}", self.base))
            .timeout(t)
            .send()
            .await
    }
    async fn post(&self, path: &str) -> Value {
        let start = Instant::now();
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{path} must answer promptly"
        );
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn healthz_reports_ok_with_pid_and_start_time() {
    let s = start().await;
    let resp = s.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["pid"], std::process::id());
    assert!(body["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s.get("/readyz").await.status(), 200);
    let work = s.get("/work").await;
    assert_eq!(work.status(), 200);
    let state: Value = s.get("/admin/state").await.json().await.unwrap();
    assert_eq!(
        state,
        serde_json::json!({"hang": false, "error": false, "slow_ms": null, "shedding": false})
    );
}

#[tokio::test]
async fn error_fault_makes_healthz_and_work_fail_and_clear_restores() {
    let s = start().await;
    let st = s.post("/fault/error").await;
    assert_eq!(st["error"], true);
    let resp = s.get("/healthz").await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(s.get("/work").await.status(), 500);
    assert_eq!(s.get("/readyz").await.status(), 503);

    let st = s.post("/fault/clear").await;
    assert_eq!(st["error"], false);
    assert_eq!(s.get("/healthz").await.status(), 200);
    assert_eq!(s.get("/work").await.status(), 200);
}

#[tokio::test]
async fn hang_fault_makes_healthz_time_out_until_cleared() {
    let s = start().await;
    s.post("/fault/hang").await;
    assert!(s.handle.state().hang);
    for path in ["/healthz", "/readyz", "/work"] {
        let err = s
            .get_timeout(path, Duration::from_millis(300))
            .await
            .expect_err("hung endpoint must not answer");
        assert!(err.is_timeout(), "{path}: {err}");
    }
    // A request in flight is released by clear.
    let base = s.base.clone();
    let client = s.client.clone();
    let pending = tokio::spawn(async move {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    s.post("/fault/clear").await;
    let status = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(s.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn slow_fault_delays_healthz_and_shed_cancels_it() {
    let s = start().await;
    let st = s.post("/fault/slow?ms=1000").await;
    assert_eq!(st["slow_ms"], 1000);
    let t = Instant::now();
    assert_eq!(s.get("/healthz").await.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(s.get("/work").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(1000));

    let st = s.post("/admin/shed").await;
    assert_eq!(st["shedding"], true);
    assert_eq!(st["slow_ms"], 1000);
    let t = Instant::now();
    assert_eq!(s.get("/healthz").await.status(), 200);
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );

    s.post("/admin/unshed").await;
    let t = Instant::now();
    s.get("/healthz").await;
    assert!(t.elapsed() >= Duration::from_millis(1000));

    s.post("/fault/clear").await;
    let t = Instant::now();
    s.get("/healthz").await;
    assert!(t.elapsed() < Duration::from_millis(700));
}

#[tokio::test]
async fn slow_fault_defaults_to_2000ms_and_rejects_bad_ms() {
    let s = start().await;
    let st = s.post("/fault/slow").await;
    assert_eq!(st["slow_ms"], 2000);
    let resp = s
        .client
        .post(format!("{}/fault/slow?ms=abc", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = s
        .client
        .post(format!("{}/fault/slow?ms=99999999999", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(s.handle.state().slow_ms, Some(2000));
}

#[tokio::test]
async fn shedding_rejects_every_second_work_request_and_counts_it() {
    let s = start().await;
    s.post("/admin/shed").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(s.get("/work").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503, 200, 503]);
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("fixture_shed_total 3"), "{text}");
    s.post("/admin/unshed").await;
    for _ in 0..3 {
        assert_eq!(s.get("/work").await.status(), 200);
    }
}

#[tokio::test]
async fn metrics_expose_requests_duration_and_errors() {
    let s = start().await;
    s.get("/healthz").await;
    s.get("/healthz").await;
    s.post("/fault/error").await;
    s.get("/work").await;
    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(r#"fixture_requests_total{path="/healthz"} 2"#),
        "{text}"
    );
    assert!(text.contains(r#"fixture_requests_total{path="/work"} 1"#));
    assert!(text.contains("fixture_request_duration_seconds_bucket"));
    assert!(text.contains("fixture_request_duration_seconds_count"));
    assert!(text.contains("fixture_errors_total 1"), "{text}");
    // Unknown paths share one label value.
    assert_eq!(s.get("/nope/123").await.status(), 404);
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"fixture_requests_total{path="unmatched"} 1"#));
}

#[tokio::test]
async fn crash_fault_replies_then_signals_crash() {
    let s = start().await;
    assert!(!s.handle.crash_was_requested());
    let body = s.post("/fault/crash").await;
    assert_eq!(body["status"], "crashing");
    tokio::time::timeout(Duration::from_secs(1), s.handle.crash_requested())
        .await
        .unwrap();
    assert!(s.handle.crash_was_requested());
}

#[tokio::test]
async fn admin_state_reflects_handle_changes() {
    let s = start().await;
    s.handle.set_state(FixtureState {
        hang: false,
        error: true,
        slow_ms: Some(5),
        shedding: true,
    });
    let body: Value = s.get("/admin/state").await.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"hang": false, "error": true, "slow_ms": 5, "shedding": true})
    );
}

/// Spawns the real binary on port 0 and returns (child, base URL).
fn spawn_binary(extra: &[&str]) -> (std::process::Child, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medic-fixture"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .nth(3)
        .map(|addr| format!("http://{addr}"));
    (child, base)
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn binary_crash_fault_exits_with_code_1_after_replying() {
    let (mut child, base) = spawn_binary(&[]);
    let base = base.expect("listening line");
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["pid"], child.id());
    let resp = client
        .post(format!("{base}/fault/crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(1));
}

#[tokio::test]
async fn binary_crash_on_start_exits_with_code_1_and_says_why() {
    let (mut child, base) = spawn_binary(&["--crash-on-start"]);
    assert_eq!(base, None, "must not print a listening line");
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("crash_on_start"), "{err}");
}

/// Kills the child on drop (also when the test panics).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_startup_delay_binds_and_answers_only_after_the_delay() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_medic-fixture"))
            .args(["--port", &port.to_string(), "--startup-delay", "1500ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut refused_while_starting = 0;
    let answered = loop {
        match client.get(&url).send().await {
            Ok(r) => break r.json::<Value>().await.unwrap(),
            Err(e) => {
                assert!(e.is_connect(), "{e}");
                refused_while_starting += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(refused_while_starting > 0);
    assert_eq!(answered["pid"], child.0.id());
    assert_eq!(answered["status"], "ok");
}

#[tokio::test]
async fn pool_fault_exhausts_the_pool_and_a_reset_frees_it() {
    let s = start().await;
    assert_eq!(s.get("/work").await.status(), 200);
    let p: Value = s.get("/admin/pool").await.json().await.unwrap();
    assert_eq!(
        (p["in_use"].as_u64(), p["size"].as_u64()),
        (Some(0), Some(4))
    );
    let p = s.post("/fault/pool").await;
    assert_eq!(p["leaking"], true);
    // Each request now holds its connection: four are served, then the
    // pool is empty and requests wait, then time out.
    for _ in 0..4 {
        assert_eq!(s.get("/work").await.status(), 200);
    }
    let t = std::time::Instant::now();
    let r = s.get("/healthz").await;
    assert_eq!(r.status(), 503);
    assert!(t.elapsed() >= medic_fixture::POOL_WAIT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "pool_timeout");
    let p: Value = s.get("/admin/pool").await.json().await.unwrap();
    assert_eq!(
        (p["in_use"].as_u64(), p["timeouts"].as_u64()),
        (Some(4), Some(1))
    );
    let m = s.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("fixture_pool_in_use 4"), "{m}");
    let p = s.post("/admin/pool/reset").await;
    assert_eq!(
        (p["in_use"].as_u64(), p["leaking"].as_bool()),
        (Some(0), Some(false))
    );
    for _ in 0..6 {
        assert_eq!(s.get("/work").await.status(), 200);
    }
}

/// The `fixture_queue_depth` gauge as `/metrics` shows it.
async fn queue_gauge(s: &Server) -> u64 {
    let m = s.get("/metrics").await.text().await.unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix("fixture_queue_depth "))
        .unwrap_or_else(|| panic!("no fixture_queue_depth: {m}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn queue_fault_fills_the_queue_slows_callers_and_clear_empties_it() {
    use medic_fixture::{NORMAL_QUEUE_DEPTH, QUEUE_NOISE};
    let s = start().await;
    let normal = (NORMAL_QUEUE_DEPTH - QUEUE_NOISE)..=(NORMAL_QUEUE_DEPTH + QUEUE_NOISE);
    // Without the fault: a small depth that varies, in /metrics and /admin/queue.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        seen.insert(queue_gauge(&s).await);
    }
    assert!(seen.iter().all(|d| normal.contains(d)), "{seen:?}");
    assert!(seen.len() > 1, "no noise: {seen:?}");
    let q: Value = s.get("/admin/queue").await.json().await.unwrap();
    assert!(q["per_s"].is_null(), "{q}");

    let q = s.post("/fault/queue?per_s=2000").await;
    assert_eq!(q["per_s"], 2000, "{q}");
    // The backlog grows while the fault is on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let depth = loop {
        let d = queue_gauge(&s).await;
        if d >= 300 {
            break d;
        }
        assert!(Instant::now() < deadline, "the queue did not fill: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Callers wait behind it: at least the depth seen before (less noise)
    // times the per-item wait.
    let least = medic_fixture::queue_wait(depth - 2 * QUEUE_NOISE);
    for path in ["/work", "/healthz"] {
        let t = Instant::now();
        assert_eq!(s.get(path).await.status(), 200, "{path}");
        assert!(
            t.elapsed() >= least,
            "{path}: {:?} < {least:?}",
            t.elapsed()
        );
    }
    // A new rate keeps the backlog.
    let q = s.post("/fault/queue?per_s=1").await;
    assert!(
        q["depth"].as_u64().unwrap() >= depth - 2 * QUEUE_NOISE,
        "{q}"
    );

    let st = s.post("/fault/clear").await;
    assert_eq!(st["hang"], false);
    assert!(normal.contains(&queue_gauge(&s).await));
    let q: Value = s.get("/admin/queue").await.json().await.unwrap();
    assert!(q["per_s"].is_null(), "{q}");
}

#[tokio::test]
async fn queue_fault_rejects_a_bad_rate() {
    let s = start().await;
    for bad in ["per_s=abc", "per_s=0", "per_s=100001"] {
        let resp = s
            .client
            .post(format!("{}/fault/queue?{bad}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("per_s"), "{body}");
    }
    let q: Value = s.get("/admin/queue").await.json().await.unwrap();
    assert!(q["per_s"].is_null(), "{q}");
    let q = s.post("/fault/queue").await;
    assert_eq!(q["per_s"], medic_fixture::DEFAULT_QUEUE_PER_S, "{q}");
}
