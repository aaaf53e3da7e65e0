//! The Kubernetes executor against recorded API conversations.
//!
//! No cluster runs here, so each test replays a recorded conversation
//! (`tests/k8s/*.json`: request/response pairs shaped as the API server's)
//! on a real loopback HTTP server. The server checks every request medic
//! sends (method, path, query, content type, patch body) against the
//! recording, in order, and answers with the recorded response; a request
//! that does not match is answered 599 and reported by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use medic_config::{ActionExec, KubeOp};
use medic_core::ActionFailureKind;
use medic_exec::kubernetes::KubernetesExecutor;
use medic_exec::{CancelToken, ExecError, ExecRequest, Executor};
use serde_json::Value;

struct Replay {
    exchanges: Vec<Value>,
    next: usize,
    served: usize,
    mismatches: Vec<String>,
}

/// Drop object fields whose value is null (the API server and Go clients
/// write `creationTimestamp: null` where k8s-openapi omits the field).
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// `expected` with `"<rfc3339>"` placeholders matching any RFC 3339 UTC time.
fn matches(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(p), Value::String(g)) if p == "<rfc3339>" => is_rfc3339_utc(g),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|g| matches(v, g)))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y))
        }
        (a, b) => a == b,
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = q
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| s.replace("%3D", "=").replace("%2C", ",").replace('+', " ");
            (dec(k), dec(v))
        })
        .collect();
    v.sort();
    v
}

impl Replay {
    fn check(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (u16, Value) {
        let Some(ex) = self.exchanges.get(self.next).cloned() else {
            let m = format!("unexpected request after the recording: {method} {uri}");
            self.mismatches.push(m.clone());
            return (599, Value::String(m));
        };
        let req = &ex["request"];
        let mut problems = Vec::new();
        if req["method"] != method.as_str() {
            problems.push(format!("method {method}, recorded {}", req["method"]));
        }
        if req["path"] != uri.path() {
            problems.push(format!("path {}, recorded {}", uri.path(), req["path"]));
        }
        let want_q: Vec<(String, String)> = {
            let mut v: Vec<_> = req["query"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        if query_pairs(uri.query()) != want_q {
            problems.push(format!("query {:?}, recorded {want_q:?}", uri.query()));
        }
        if let Some(ct) = req["content_type"].as_str() {
            let got = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if got != ct {
                problems.push(format!("content-type {got:?}, recorded {ct:?}"));
            }
        }
        if let Some(want) = req.get("body") {
            match serde_json::from_slice::<Value>(body) {
                Ok(got) if matches(&normalize(want), &normalize(&got)) => {}
                Ok(got) => problems.push(format!("body {got}, recorded {want}")),
                Err(e) => problems.push(format!(
                    "body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(body)
                )),
            }
        }
        if !problems.is_empty() {
            let m = format!(
                "exchange {}: {method} {uri}: {}",
                self.next,
                problems.join("; ")
            );
            self.mismatches.push(m.clone());
            return (599, Value::String(m));
        }
        self.served += 1;
        if ex["repeat"] != Value::Bool(true) {
            self.next += 1;
        }
        let status = ex["response"]["status"].as_u64().unwrap_or(200) as u16;
        (status, ex["response"]["body"].clone())
    }
}

/// A loopback API server replaying `tests/k8s/<name>.json`, and a
/// kubeconfig pointing at it.
struct Server {
    replay: Arc<Mutex<Replay>>,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(name: &str) -> Server {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/k8s")
            .join(format!("{name}.json"));
        let rec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let replay = Arc::new(Mutex::new(Replay {
            exchanges: rec["exchanges"].as_array().unwrap().clone(),
            next: 0,
            served: 0,
            mismatches: Vec::new(),
        }));
        let r = replay.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let (status, body) = r.lock().unwrap().check(&method, &uri, &headers, &body);
                    (
                        StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/json")],
                        body.to_string(),
                    )
                }
            },
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: replay\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: replay\n  context:\n    cluster: replay\n    user: medic\n    namespace: shop\ncurrent-context: replay\nusers:\n- name: medic\n  user:\n    token: recorded-conversation\n"
            ),
        )
        .unwrap();
        Server {
            replay,
            kubeconfig,
            _dir: dir,
            task,
        }
    }

    fn spec(&self, op: KubeOp, target: &str, timeout: Duration) -> ActionExec {
        ActionExec::Kubernetes {
            op,
            namespace: if op == KubeOp::Cordon {
                String::new()
            } else {
                "shop".into()
            },
            target: target.into(),
            kubeconfig: Some(self.kubeconfig.clone()),
            context: None,
            timeout,
        }
    }

    /// Every recorded exchange was asked for, and nothing else.
    fn assert_complete(&self) {
        let r = self.replay.lock().unwrap();
        assert!(r.mismatches.is_empty(), "{}", r.mismatches.join("\n"));
        let want = r.exchanges.len();
        let done = r.next
            + usize::from(
                r.exchanges.last().is_some_and(|e| e["repeat"] == true) && r.next + 1 == want,
            );
        assert_eq!(
            done, want,
            "only {done} of {want} recorded exchanges were requested"
        );
    }
}

fn executor() -> KubernetesExecutor {
    KubernetesExecutor {
        poll: Duration::from_millis(20),
    }
}

async fn run(
    server: &Server,
    op: KubeOp,
    target: &str,
    timeout: Duration,
) -> Result<String, ExecError> {
    let req = ExecRequest::new("web", "k8s", server.spec(op, target, timeout), timeout);
    executor()
        .execute(req, CancelToken::new())
        .await
        .map(|o| o.detail)
}

#[tokio::test]
async fn rollout_restart_patches_restarted_at_and_waits_for_the_rollout() {
    let s = Server::start("rollout-restart").await;
    let out = run(&s, KubeOp::RolloutRestart, "web", Duration::from_secs(10))
        .await
        .unwrap();
    s.assert_complete();
    assert!(out.starts_with("rollout restart (restartedAt "), "{out}");
    assert!(
        out.ends_with("deployment shop/web: generation 8 observed 8, updated 3/3, available 3/3, replicas 3, Available=True (MinimumReplicasAvailable), Progressing=True (NewReplicaSetAvailable)"),
        "{out}"
    );
}

#[tokio::test]
async fn scale_patches_the_scale_subresource_and_waits() {
    let s = Server::start("scale").await;
    let out = run(
        &s,
        KubeOp::Scale { replicas: 5 },
        "web",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    s.assert_complete();
    assert!(
        out.starts_with(
            "scaled to 5: deployment shop/web: generation 9 observed 9, updated 5/5, available 5/5"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn rollout_undo_restores_the_previous_replicaset_template() {
    let s = Server::start("rollout-undo").await;
    let out = run(&s, KubeOp::RolloutUndo, "web", Duration::from_secs(10))
        .await
        .unwrap();
    // The PATCH body (the template of revision 2, web:1.4.1, without its
    // pod-template-hash; not the other owner's "revision 2") was checked by
    // the server.
    s.assert_complete();
    assert!(
        out.starts_with(
            "rolled back to revision 2: deployment shop/web: generation 11 observed 11"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_fails() {
    let s = Server::start("rollout-deadline").await;
    let e = run(&s, KubeOp::RolloutRestart, "web", Duration::from_secs(10))
        .await
        .unwrap_err();
    s.assert_complete();
    assert_eq!(e.kind(), ActionFailureKind::Other, "{e}");
    assert!(
        e.to_string()
            .contains("Progressing=False (ProgressDeadlineExceeded)"),
        "{e}"
    );
    assert!(e.to_string().contains("progress deadline exceeded"), "{e}");
}

#[tokio::test]
async fn a_stuck_rollout_times_out_and_can_be_cancelled() {
    let s = Server::start("rollout-stuck").await;
    let e = run(
        &s,
        KubeOp::RolloutRestart,
        "web",
        Duration::from_millis(600),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ActionFailureKind::Timeout, "{e}");
    s.assert_complete();
    assert!(s.replay.lock().unwrap().served > 3, "the status was polled");

    let s = Server::start("rollout-stuck").await;
    let token = CancelToken::new();
    let req = ExecRequest::new(
        "web",
        "k8s",
        s.spec(KubeOp::RolloutRestart, "web", Duration::from_secs(60)),
        Duration::from_secs(60),
    );
    let task = tokio::spawn(executor().execute(req, token.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel();
    let e = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel ends the wait")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ActionFailureKind::Cancelled, "{e}");
}

#[tokio::test]
async fn delete_pod_and_a_missing_pod() {
    let s = Server::start("delete-pod").await;
    let out = run(
        &s,
        KubeOp::DeletePod,
        "web-8e7f6a5b4-x2x1q",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "pod shop/web-8e7f6a5b4-x2x1q deleting (uid 5e6f7a8b-1c2d-4e3f-9a0b-c1d2e3f4a5b6, deletionTimestamp 2026-11-27T20:16:30Z)"
    );
    let e = run(&s, KubeOp::DeletePod, "web-gone", Duration::from_secs(10))
        .await
        .unwrap_err();
    s.assert_complete();
    assert_eq!(e.kind(), ActionFailureKind::Http, "{e}");
    assert!(
        e.to_string()
            .contains("404 NotFound (pods \"web-gone\" not found)"),
        "{e}"
    );
}

#[tokio::test]
async fn cordon_marks_the_node_unschedulable() {
    let s = Server::start("cordon").await;
    let out = run(&s, KubeOp::Cordon, "worker-2", Duration::from_secs(10))
        .await
        .unwrap();
    s.assert_complete();
    assert_eq!(out, "node worker-2 cordoned (unschedulable)");
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_typed_failure() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    std::fs::write(
        &kc,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    let spec = ActionExec::Kubernetes {
        op: KubeOp::Cordon,
        namespace: String::new(),
        target: "worker-2".into(),
        kubeconfig: Some(kc),
        context: None,
        timeout: Duration::from_secs(5),
    };
    let e = executor()
        .execute(
            ExecRequest::new("web", "k8s", spec, Duration::from_secs(5)),
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ActionFailureKind::Http, "{e}");
    // A missing kubeconfig file.
    let spec = ActionExec::Kubernetes {
        op: KubeOp::Cordon,
        namespace: String::new(),
        target: "worker-2".into(),
        kubeconfig: Some(dir.path().join("missing")),
        context: None,
        timeout: Duration::from_secs(5),
    };
    let e = executor()
        .execute(
            ExecRequest::new("web", "k8s", spec, Duration::from_secs(5)),
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ActionFailureKind::Other, "{e}");
    assert!(e.to_string().contains("kubeconfig"), "{e}");
}
