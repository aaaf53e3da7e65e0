#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Governance routes against a real engine behind a stand-in control loop
//! that does what the daemon does: `Engine::operate` or a query, then drain.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use medic_api::governance::{Query, QueryAnswer, WallSync};
use medic_api::{router, ApiState, Auth, ControlRequest, Metrics, ROUTES};
use medic_core::*;
use medic_store::Store;
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn engine() -> Engine {
    let svc = ServiceSpec {
        name: "web".into(),
        startup: StartupSpec {
            grace: Duration::ZERO,
        },
        mode: None,
        probes: vec![ProbeSpec {
            name: "healthz".into(),
            failure: FailureRule {
                consecutive: 2,
                within: Duration::from_secs(60),
            },
            latency: None,
            recovery: RecoveryRule { consecutive: 2 },
            event: false,
        }],
        actions: vec![ActionSpec {
            name: "restart".into(),
            kind: ActionKind::Restart,
            risk: Some(Risk::Medium),
            revert: None,
            verify: None,
        }],
        remediations: vec![Remediation {
            probe: "healthz".into(),
            condition: Condition::Failing,
            action: "restart".into(),
        }],
        policy: ServicePolicy::default(),
    };
    let mut e = Engine::new(
        EngineConfig {
            instance: "t".into(),
            mode: Mode::Conservative,
            services: vec![svc],
            ..EngineConfig::default()
        },
        MonoTime::ZERO,
    );
    for t in 0..2 {
        e.handle_input(
            MonoTime(t * 1000),
            Input::Probe(ProbeReport {
                service: "web".into(),
                probe: "healthz".into(),
                ok: false,
                latency: Duration::ZERO,
                failure: Some(ProbeFailure::Exited),
                detail: String::new(),
            }),
        );
    }
    while e.poll_command().is_some() {}
    while e.poll_notice().is_some() {}
    e
}

type Step = (Vec<Notice>, Vec<Command>);

/// An HTTP client holding one token per name: `ops` (admin), `alice` and
/// `bob` (approvers), `oscar` (operator), `vera` (viewer).
struct Client {
    http: reqwest::Client,
    tokens: std::collections::BTreeMap<&'static str, String>,
}

impl Client {
    fn token(&self, who: &str) -> &str {
        &self.tokens[who]
    }
}

const PEOPLE: &[(&str, Role)] = &[
    ("ops", Role::Admin),
    ("alice", Role::Approver),
    ("bob", Role::Approver),
    ("oscar", Role::Operator),
    ("vera", Role::Viewer),
];

async fn start() -> (String, Client, tempfile::TempDir, mpsc::Receiver<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("medic.db")).await.unwrap();
    let (tx, mut rx) = mpsc::channel::<ControlRequest>(8);
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let state = ApiState {
        store,
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(true)),
        control: tx,
        auth: Auth::Tokens,
    };
    let mut tokens = std::collections::BTreeMap::new();
    for (name, role) in PEOPLE {
        let t = state
            .store
            .create_token(name, *role, "2026-01-01T00:00:00Z")
            .await
            .unwrap();
        tokens.insert(*name, t);
    }
    tokio::spawn(async move {
        let mut e = engine();
        let mut now = 10_000u64;
        while let Some(req) = rx.recv().await {
            now += 1000;
            let clock = WallSync {
                mono: e.now(),
                unix_ms: e.wall_now(),
            };
            match req {
                ControlRequest::Operate { actor, cmd, reply } => {
                    let r = e.operate(MonoTime(now), &actor, cmd);
                    let notices: Vec<Notice> = std::iter::from_fn(|| e.poll_notice()).collect();
                    let cmds: Vec<Command> = std::iter::from_fn(|| e.poll_command()).collect();
                    let _ = cmd_tx.send((notices, cmds)).await;
                    let _ = reply.send(r);
                }
                ControlRequest::Query { query, reply } => {
                    let a = match query {
                        Query::Approvals => QueryAnswer::Approvals {
                            approvals: e.pending_approvals(),
                            pauses: e.pauses(),
                            mass_paused: e.mass_paused(),
                            clock,
                        },
                        Query::Explain { incident } => QueryAnswer::Explain {
                            explanation: e.explain(&incident).map(Box::new),
                            clock,
                        },
                        Query::Status => QueryAnswer::Status {
                            mode: e.mode(),
                            services: Vec::new(),
                        },
                        Query::Locks => QueryAnswer::Locks {
                            held: e.locks().held().to_vec(),
                            waiting: Vec::new(),
                            clock,
                        },
                    };
                    let _ = reply.send(a);
                }
                ControlRequest::RecordChange { change, reply } => {
                    let r = if change.service == "web" {
                        Ok(medic_api::changes::ChangeReply {
                            service: change.service,
                            kind: change.kind.as_str().into(),
                            version: change.version,
                            by: change.by,
                            diagnosis: false,
                            message: "recorded".into(),
                        })
                    } else {
                        Err(medic_api::changes::ChangeRefusal::UnknownService(
                            change.service,
                        ))
                    };
                    let _ = reply.send(r);
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let console = Arc::new(medic_api::ui::Console::new(
        vec!["web".into()],
        vec![
            medic_api::ui::RuleRow {
                name: "error-rate".into(),
                service: "web".into(),
                source: "prom".into(),
                check: "threshold above 0.05".into(),
            },
            medic_api::ui::RuleRow {
                name: "latency-anomaly".into(),
                service: "web".into(),
                source: "prom".into(),
                check: "detector ensemble ≥ 0.9".into(),
            },
        ],
        Some(medic_store::StoreTarget::Sqlite(
            dir.path().join("medic.db"),
        )),
    ));
    // The noisy-rule breaker muted one of them (the daemon reports this).
    console.set_muted("latency-anomaly", Some("2026-01-01T01:00:00Z".into()));
    let app = router(state.clone()).merge(medic_api::ui::router(state, console));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (
        format!("http://{addr}"),
        Client {
            http: reqwest::Client::new(),
            tokens,
        },
        dir,
        cmd_rx,
    )
}

/// POST with the token of `who`.
async fn post_as(c: &Client, who: &str, url: String, body: Value) -> (u16, Value) {
    let r = c
        .http
        .post(url)
        .bearer_auth(c.token(who))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn post(c: &Client, url: String, body: Value) -> (u16, Value) {
    let r = c
        .http
        .post(url)
        .bearer_auth(c.token("ops"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(c: &Client, url: String) -> (u16, Value) {
    let r = c
        .http
        .get(url)
        .bearer_auth(c.token("vera"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn approvals_explain_pause_and_override_over_http() {
    let (base, c, _dir, mut cmds) = start().await;

    // The medium-risk restart waits for a human in conservative mode.
    let (st, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(st, 200, "{list}");
    let a = &list["approvals"][0];
    assert_eq!(a["id"], "apr-1");
    assert_eq!(a["reason_code"], "risk_tier");
    assert_eq!(a["risk"], "medium");
    assert_eq!(list["mass_incident_pause"], false);

    // Explain shows the decision and its machine-readable reason.
    let (st, ex) = get(&c, format!("{base}/api/v1/explain/inc-t-1")).await;
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["decisions"][0]["verdict"], "pending-approval");
    assert_eq!(ex["decisions"][0]["reason_code"], "risk_tier");
    assert_eq!(ex["pending_approval"]["id"], "apr-1");

    // The body cannot name the approver: identity comes from the edge.
    let (st, err) = post(
        &c,
        format!("{base}/api/v1/approvals/apr-1/approve"),
        json!({"by": "mallory"}),
    )
    .await;
    assert_eq!((st, err["error"]["field"].clone()), (422, json!("by")));
    let (st, ok) = post_as(
        &c,
        "alice",
        format!("{base}/api/v1/approvals/apr-1/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["message"], "apr-1 granted");
    assert_eq!(ok["actor"], "alice");
    let (notices, sent) = cmds.recv().await.unwrap();
    let granted = notices
        .iter()
        .find_map(|n| match n {
            Notice::ApprovalGranted { approvers, .. } => Some(approvers.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(granted, vec!["alice".to_string()]);
    assert!(sent
        .iter()
        .any(|c| matches!(c, Command::RunAction(r) if r.action == "restart")));

    // A second approval of the same id conflicts, with the engine's code.
    let (st, err) = post_as(
        &c,
        "bob",
        format!("{base}/api/v1/approvals/apr-1/approve"),
        json!({}),
    )
    .await;
    assert_eq!(st, 409);
    assert_eq!(err["error"]["reason_code"], "approval_not_found");
    let (notices, _) = cmds.recv().await.unwrap();
    assert!(notices.iter().any(|n| matches!(
        n,
        Notice::OperatorRejected { by, error: OperatorErrorCode::ApprovalNotFound, .. } if by == "bob"
    )));

    // Pause and resume round-trip and show up in the list.
    let (st, _) = post(
        &c,
        format!("{base}/api/v1/pause"),
        json!({"service": "web", "kind": "restart", "duration_s": 600}),
    )
    .await;
    assert_eq!(st, 200);
    let _ = cmds.recv().await;
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"][0]["service"], "web");
    assert_eq!(list["pauses"][0]["kind"], "restart");
    assert_eq!(list["pauses"][0]["by"], "ops");
    let (st, r) = post(
        &c,
        format!("{base}/api/v1/resume"),
        json!({"service": "web", "kind": "restart"}),
    )
    .await;
    assert_eq!((st, r["message"].clone()), (200, json!("1 pauses lifted")));
    let _ = cmds.recv().await;
    let (st, err) = post(
        &c,
        format!("{base}/api/v1/pause"),
        json!({"kind": "reboot"}),
    )
    .await;
    assert_eq!((st, err["error"]["field"].clone()), (422, json!("kind")));

    // An override needs a reason; the target is busy with the approved restart.
    let (st, err) = post(
        &c,
        format!("{base}/api/v1/actions/force"),
        json!({"service": "web", "action": "restart", "reason": ""}),
    )
    .await;
    assert_eq!((st, err["error"]["field"].clone()), (422, json!("reason")));
    let (st, err) = post(
        &c,
        format!("{base}/api/v1/actions/force"),
        json!({"service": "web", "action": "restart", "reason": "db wedged"}),
    )
    .await;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["error"]["reason_code"], "target_busy");
    let _ = cmds.recv().await;

    // Cancel the running action: the driver gets Command::CancelAction.
    let (st, _) = post(
        &c,
        format!("{base}/api/v1/actions/act-1/cancel"),
        json!({"reason": "wrong box"}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, sent) = cmds.recv().await.unwrap();
    assert!(sent
        .iter()
        .any(|c| matches!(c, Command::CancelAction { id, by, .. } if id.0 == 1 && by == "ops")));

    let (st, err) = get(&c, format!("{base}/api/v1/explain/inc-nope")).await;
    assert_eq!((st, err["error"]["code"].clone()), (404, json!("E0404")));
}

/// The 401/403 matrix: every route of `ROUTES`, with no token, a bad token,
/// a revoked token and a token of every role. Below the route's role → 403
/// `E0403`; no, unknown or revoked token → 401 `E0406` with
/// `WWW-Authenticate`; at or above it → neither (the request reaches the
/// handler and the engine).
#[tokio::test]
async fn every_route_and_role_401_403_matrix() {
    let (base, c, dir, _cmds) = start().await;
    // A token revoked after creation no longer works.
    let store = Store::open(&dir.path().join("medic.db")).await.unwrap();
    let revoked = store
        .create_token("gone", Role::Admin, "2026-01-01T00:00:00Z")
        .await
        .unwrap();
    assert!(store
        .revoke_token("gone", "2026-01-01T00:00:01Z")
        .await
        .unwrap());
    let roles = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];
    let mut checked = 0;
    for route in ROUTES {
        let path = route
            .path
            .replace("{id}", "x-1")
            .replace("{incident}", "inc-x")
            .replace("{name}", "web");
        let url = format!("{base}{path}");
        let send = |token: Option<&str>| {
            let mut req = match route.method {
                "GET" => c.http.get(&url),
                "POST" => c.http.post(&url).json(&json!({})),
                m => panic!("method {m} not covered"),
            };
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let Some(needed) = route.role else {
            let r = send(None).await.unwrap();
            assert!(
                r.status().is_success(),
                "{} {}: {}",
                route.method,
                path,
                r.status()
            );
            continue;
        };
        for token in [
            None,
            Some("medic_0000000000000000000000000000000000000000000000000000000000000000"),
            Some(revoked.as_str()),
        ] {
            let r = send(token).await.unwrap();
            assert_eq!(r.status(), 401, "{} {} token={token:?}", route.method, path);
            assert!(r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "E0406", "{v}");
            assert_eq!(v["error"]["name"], "unauthenticated", "{v}");
            checked += 1;
        }
        for role in roles {
            let who = PEOPLE.iter().find(|(_, r)| *r == role).unwrap().0;
            let r = send(Some(c.token(who))).await.unwrap();
            let st = r.status().as_u16();
            if role < needed {
                assert_eq!(st, 403, "{} {} as {who}", route.method, path);
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "E0403", "{v}");
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(needed.as_str()),
                    "{v}"
                );
            } else {
                assert!(
                    st != 401 && st != 403 && st < 500,
                    "{} {} as {who} ({}): {st}",
                    route.method,
                    path,
                    role.as_str()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 16 * 7, "{checked}");
}

/// `docs/api.md` documents every route (method and path) and the new code.
#[test]
fn docs_api_md_documents_every_route() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    for r in ROUTES {
        let heading = format!("### `{} {}`", r.method, r.path);
        assert!(doc.contains(&heading), "docs/api.md lacks {heading}");
        let role = r.role.map_or("public", |x| x.as_str());
        let line = format!("Role: **{role}**");
        let section = doc.split(&heading).nth(1).unwrap();
        let section = section.split("\n### ").next().unwrap();
        assert!(section.contains(&line), "{heading}: expected {line}");
    }
}

/// `GET /api/v1/whoami` answers the token's name and role.
#[tokio::test]
async fn whoami_names_the_token() {
    let (base, c, _dir, _cmds) = start().await;
    for (who, role) in PEOPLE {
        let r = c
            .http
            .get(format!("{base}/api/v1/whoami"))
            .bearer_auth(c.token(who))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, json!({"name": who, "role": role.as_str()}));
    }
}

/// `GET /ui/login`: the login form's CSRF cookie (`name=value`, checked to
/// be HttpOnly and SameSite=Strict) and the token in its hidden field.
async fn login_form(http: &reqwest::Client, base: &str) -> (String, String) {
    let r = http.get(format!("{base}/ui/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.starts_with("medic_login_csrf=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

/// The web console goes through the same roles as the API, its session
/// cookie is HttpOnly and SameSite=Strict, and a form without the session's
/// CSRF token is refused.
#[tokio::test]
async fn console_sessions_csrf_and_roles() {
    let (base, c, _dir, _cmds) = start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: to the login page.
    let r = http.get(format!("{base}/ui/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    // A bad token: back to the login page, no session cookie.
    let (form_cookie, form_csrf) = login_form(&http, &base).await;
    let r = http
        .post(format!("{base}/ui/login"))
        .header("cookie", form_cookie)
        .form(&[("token", "medic_nope"), ("csrf", form_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/ui/login?"));
    // A good one: the session cookie.
    let login = |who: &'static str| {
        let http = http.clone();
        let token = c.token(who).to_string();
        let base = base.clone();
        async move {
            let (form_cookie, form_csrf) = login_form(&http, &base).await;
            let r = http
                .post(format!("{base}/ui/login"))
                .header("cookie", form_cookie)
                .form(&[("token", token.as_str()), ("csrf", form_csrf.as_str())])
                .send()
                .await
                .unwrap();
            let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
            assert!(
                cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
                "{cookie}"
            );
            cookie.split(';').next().unwrap().to_string()
        }
    };
    let page = |cookie: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let html = http
                .get(format!("{base}/ui/"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let csrf = html
                .split("name=\"csrf\" value=\"")
                .nth(1)
                .map(|r| r.split('"').next().unwrap().to_string());
            (html, csrf)
        }
    };
    let vera = login("vera").await;
    let (html, vera_csrf) = page(vera.clone()).await;
    assert!(html.contains("vera (viewer)"), "{html}");
    assert!(html.contains("apr-1"), "{html}");
    assert!(
        !html.contains("id=\"pause-all\""),
        "a viewer sees no kill switch button"
    );
    // Rules and detectors, with the breaker's mute; the audit chain status.
    let rules = html.split("Signal rules and detectors").nth(1).unwrap();
    assert!(
        rules.contains("error-rate") && rules.contains("threshold above 0.05"),
        "{rules}"
    );
    let muted = rules.split("latency-anomaly").nth(1).unwrap();
    assert!(muted.contains("detector ensemble"), "{rules}");
    assert!(
        muted.contains("muted</span> until 2026-01-01T01:00:00Z"),
        "{rules}"
    );
    assert!(!rules
        .split("latency-anomaly")
        .next()
        .unwrap()
        .contains("muted</span>"));
    assert!(html.contains("id=\"audit\">chain ok: "), "{html}");
    // A viewer's form (built by hand) is refused by role, like the API.
    let post_form = |cookie: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.post(format!("{base}/ui/action"))
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    // A viewer's page has no operator forms (only the logout form, with
    // the session's token); a hand-made one with the right token
    // (sha256("medic-csrf:" + token), as documented) is refused by role.
    assert!(!html.contains("action=\"/ui/action\""), "{html}");
    let csrf = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!(
            "medic-csrf:{}",
            c.token("vera")
        )))
    };
    assert_eq!(vera_csrf.as_deref(), Some(csrf.as_str()));
    let r = post_form(
        vera.clone(),
        vec![("csrf", csrf.clone()), ("op", "pause".into())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("needs+operator"), "{loc}");
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"], json!([]), "{list}");
    // Without the session's CSRF token: 403, nothing done.
    let ops = login("ops").await;
    let (html, ops_csrf) = page(ops.clone()).await;
    assert!(html.contains("id=\"pause-all\""));
    let r = post_form(
        ops.clone(),
        vec![("csrf", "0".repeat(64)), ("op", "pause".into())],
    )
    .await;
    assert_eq!(r.status(), 403);
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"], json!([]), "{list}");
    // Another session's CSRF token does not work either.
    let r = post_form(ops.clone(), vec![("csrf", csrf), ("op", "pause".into())]).await;
    assert_eq!(r.status(), 403);
    // With it: the kill switch, recorded as the token's name.
    let r = post_form(
        ops.clone(),
        vec![
            ("csrf", ops_csrf.unwrap()),
            ("op", "pause".into()),
            ("reason", "drill".into()),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"][0]["by"], "ops", "{list}");
    assert_eq!(list["pauses"][0]["reason"], "drill", "{list}");
    let (html, _) = page(ops).await;
    assert!(html.contains("ALL AUTOMATION PAUSED"), "{html}");
}

/// An admin manages tokens over the API: the new token works at once, the
/// audit log names who created and revoked it, and a revoked token is 401.
#[tokio::test]
async fn admin_creates_and_revokes_tokens_over_the_api() {
    let (base, c, _dir, _cmds) = start().await;
    let (st, created) = post(
        &c,
        format!("{base}/api/v1/tokens"),
        json!({"name": "carol", "role": "operator"}),
    )
    .await;
    assert_eq!(st, 200, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("medic_"));
    let who = |t: String| {
        let http = c.http.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}/api/v1/whoami"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        who(token.clone()).await,
        (200, json!({"name": "carol", "role": "operator"}))
    );
    // Taken name, bad role, bad name.
    let (st, e) = post(
        &c,
        format!("{base}/api/v1/tokens"),
        json!({"name": "carol", "role": "viewer"}),
    )
    .await;
    assert_eq!((st, e["error"]["code"].clone()), (409, json!("E0409")));
    let (st, e) = post(
        &c,
        format!("{base}/api/v1/tokens"),
        json!({"name": "dan", "role": "root"}),
    )
    .await;
    assert_eq!((st, e["error"]["field"].clone()), (422, json!("role")));
    let (st, e) = post(
        &c,
        format!("{base}/api/v1/tokens"),
        json!({"name": "Dan", "role": "viewer"}),
    )
    .await;
    assert_eq!((st, e["error"]["field"].clone()), (422, json!("name")));
    // The list never shows a token.
    let r = c
        .http
        .get(format!("{base}/api/v1/tokens"))
        .bearer_auth(c.token("ops"))
        .send()
        .await
        .unwrap();
    let list = r.text().await.unwrap();
    assert!(
        list.contains("\"carol\"") && !list.contains("medic_"),
        "{list}"
    );
    let (st, _) = post(&c, format!("{base}/api/v1/tokens/carol/revoke"), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(who(token).await.0, 401);
    let (st, _) = post(&c, format!("{base}/api/v1/tokens/carol/revoke"), json!({})).await;
    assert_eq!(st, 409);
    // Both are in the audit log with the admin's name.
    let r = c
        .http
        .get(format!("{base}/api/v1/audit"))
        .bearer_auth(c.token("vera"))
        .send()
        .await
        .unwrap();
    let audit: Value = r.json().await.unwrap();
    let kinds: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["payload"]["by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("token.created".into(), "ops".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("token.revoked".into(), "ops".into())),
        "{kinds:?}"
    );
}

/// Login CSRF: the login form is refused (403 E0480, no session) without
/// its double-submit token, with a wrong one, or with the token of another
/// form; any console form posted from another site is refused (403 E0481)
/// even with the right token; the console's own forms work. Logout needs
/// the session's token too. Bearer-token API calls are not concerned.
#[tokio::test]
async fn console_forms_refuse_forged_and_cross_site_posts() {
    let (base, c, _dir, _cmds) = start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let host = base.trim_start_matches("http://").to_string();
    let ops = c.token("ops").to_string();
    let post_login = |cookie: Option<String>,
                      form: Vec<(&'static str, String)>,
                      extra: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let mut rq = http.post(format!("{base}/ui/login")).form(&form);
            if let Some(cookie) = cookie {
                rq = rq.header("cookie", cookie);
            }
            for (k, v) in extra {
                rq = rq.header(k, v);
            }
            rq.send().await.unwrap()
        }
    };
    let assert_refused = |r: reqwest::Response, code: &'static str| async move {
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("set-cookie").is_none(), "no session");
        let body = r.text().await.unwrap();
        assert!(body.contains(code), "{body}");
        body
    };
    let (cookie, csrf) = login_form(&http, &base).await;
    let (other_cookie, other_csrf) = login_form(&http, &base).await;
    assert_ne!(csrf, other_csrf, "every form gets its own token");
    // No token, no cookie: refused.
    let r = post_login(None, vec![("token", ops.clone())], vec![]).await;
    let page = assert_refused(r, "E0480 csrf_token_invalid").await;
    assert!(page.contains("reload the login page"), "{page}");
    // The token without its cookie (what a forged form can send).
    let r = post_login(
        None,
        vec![("token", ops.clone()), ("csrf", csrf.clone())],
        vec![],
    )
    .await;
    assert_refused(r, "E0480").await;
    // The cookie with a wrong token, or with another form's token.
    let r = post_login(
        Some(cookie.clone()),
        vec![
            ("token", ops.clone()),
            ("csrf", "medic_".to_string() + &"0".repeat(64)),
        ],
        vec![],
    )
    .await;
    assert_refused(r, "E0480").await;
    let r = post_login(
        Some(cookie.clone()),
        vec![("token", ops.clone()), ("csrf", other_csrf.clone())],
        vec![],
    )
    .await;
    assert_refused(r, "E0480").await;
    // A client asking for JSON gets the JSON error.
    let r = post_login(
        None,
        vec![("token", ops.clone())],
        vec![("accept", "application/json".into())],
    )
    .await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "E0480", "{v}");
    assert_eq!(v["error"]["name"], "csrf_token_invalid", "{v}");
    // The right pair, but posted from another site (Origin, or Referer
    // without Origin; `null` is another site too): refused.
    for (h, v) in [
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
        ("origin", format!("http://{host}.evil.example")),
        ("referer", "https://evil.example/x".to_string()),
    ] {
        let r = post_login(
            Some(cookie.clone()),
            vec![("token", ops.clone()), ("csrf", csrf.clone())],
            vec![(h, v.clone())],
        )
        .await;
        let page = assert_refused(r, "E0481 cross_origin_refused").await;
        assert!(page.contains("another site"), "{h}: {v}: {page}");
    }
    // The right pair from the console's own page: logged in, the form's
    // cookie is cleared.
    let r = post_login(
        Some(other_cookie),
        vec![("token", ops.clone()), ("csrf", other_csrf)],
        vec![
            ("origin", format!("http://{host}")),
            ("referer", format!("http://{host}/ui/login")),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/");
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("medic_session={ops};"))),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("medic_login_csrf=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    let session = format!("medic_session={ops}");
    let session_csrf = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!("medic-csrf:{ops}")))
    };
    // An action with the session's token but from another site: refused,
    // nothing done.
    let r = http
        .post(format!("{base}/ui/action"))
        .header("cookie", session.clone())
        .header("origin", "http://evil.example")
        .form(&[("csrf", session_csrf.as_str()), ("op", "pause")])
        .send()
        .await
        .unwrap();
    assert_refused(r, "E0481").await;
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"], json!([]), "{list}");
    // From its own page it works (the browser sends Origin).
    let r = http
        .post(format!("{base}/ui/action"))
        .header("cookie", session.clone())
        .header("origin", format!("http://{host}"))
        .form(&[
            ("csrf", session_csrf.as_str()),
            ("op", "pause"),
            ("reason", "csrf test"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"][0]["by"], "ops", "{list}");
    // Logout: without the session's token, or from another site, refused
    // (the session cookie is not cleared); with it, the cookie is cleared.
    let logout = |form: Vec<(&'static str, String)>, origin: Option<String>| {
        let http = http.clone();
        let base = base.clone();
        let session = session.clone();
        async move {
            let mut rq = http
                .post(format!("{base}/ui/logout"))
                .header("cookie", session)
                .form(&form);
            if let Some(o) = origin {
                rq = rq.header("origin", o);
            }
            rq.send().await.unwrap()
        }
    };
    assert_refused(logout(vec![], None).await, "E0480").await;
    assert_refused(logout(vec![("csrf", "0".repeat(64))], None).await, "E0480").await;
    assert_refused(
        logout(
            vec![("csrf", session_csrf.clone())],
            Some("http://evil.example".into()),
        )
        .await,
        "E0481",
    )
    .await;
    let r = logout(vec![("csrf", session_csrf)], Some(format!("http://{host}"))).await;
    assert_eq!(r.status(), 303);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("medic_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // Bearer-token API calls carry no cookie and are not concerned, even
    // with a foreign Origin.
    let r = c
        .http
        .post(format!("{base}/api/v1/resume"))
        .bearer_auth(&ops)
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, list) = get(&c, format!("{base}/api/v1/approvals")).await;
    assert_eq!(list["pauses"], json!([]), "{list}");
}

/// The console's "Changes" view (issue 9): the recorded changes from the
/// audit, newest first, per service with `?service=`, every text escaped;
/// the index links to it; without a session it sends to the login page.
#[tokio::test]
async fn console_lists_recorded_changes_newest_first_escaped() {
    let (base, c, dir, _cmds) = start().await;
    let store = Store::open(&dir.path().join("medic.db")).await.unwrap();
    for (ts, service, version, note) in [
        ("2026-01-01T00:00:01Z", "web", "v1", "first"),
        ("2026-01-01T00:00:02Z", "db", "v9", "other"),
        (
            "2026-01-01T00:00:03Z",
            "web",
            "v2",
            "<img src=x onerror=alert(1)>",
        ),
    ] {
        let payload = serde_json::json!({"service": service, "kind": "deploy",
            "version": version, "note": note, "by": "ci", "v": 1});
        store
            .append_audit(ts, "change.recorded", &payload.to_string())
            .await
            .unwrap();
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(format!("{base}/ui/changes")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let (form_cookie, form_csrf) = login_form(&http, &base).await;
    let r = http
        .post(format!("{base}/ui/login"))
        .header("cookie", form_cookie)
        .form(&[("token", c.token("vera")), ("csrf", form_csrf.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let page = |path: &str| {
        let (http, url, cookie) = (http.clone(), format!("{base}{path}"), cookie.clone());
        async move {
            let r = http.get(url).header("cookie", cookie).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    assert!(page("/ui/").await.contains("href=\"/ui/changes\""));
    let html = page("/ui/changes").await;
    let rows: Vec<&str> = html.split("<tr class=\"change\"").skip(1).collect();
    assert_eq!(rows.len(), 3, "{html}");
    assert!(rows[0].contains("v2") && rows[1].contains("v9") && rows[2].contains("v1"));
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("onerror=alert(1)"),
        "the note is shown, escaped: {html}"
    );
    let html = page("/ui/changes?service=web").await;
    let rows: Vec<&str> = html.split("<tr class=\"change\"").skip(1).collect();
    assert_eq!(rows.len(), 2, "{html}");
    assert!(!html.contains("v9"), "{html}");
}
