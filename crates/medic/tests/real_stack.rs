//! A real stack, end to end (issue 14). Everything is a Debian package or
//! medic's own fixture, started on loopback by the test:
//!
//! - nginx (a non-daemon master on a temp prefix and config) in front of two
//!   fixture instances, `web1` and `web2`, all three supervised by medic;
//! - redis, supervised by medic;
//! - Prometheus scraping medic, both fixtures and one fixture through nginx,
//!   with a latency alert rule on `web1`;
//! - Alertmanager routing that alert to medic's webhook.
//!
//! medic then restarts redis after a `kill -9`; reloads nginx after its
//! config was broken (and reloaded broken) and then restored on disk; and
//! sheds load on `web1` when its latency alert fires (Prometheus rule →
//! Alertmanager → medic's webhook → an http action on the fixture), then
//! restores it (the action's `revert`). Each is verified through Prometheus
//! data (the Prometheus query API), besides the service's own answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// The binary, or a failure naming the Debian package (.ci/run installs it).
fn need(bin: &str, package: &str) -> PathBuf {
    for d in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(d).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{bin}` not found: install the Debian package `{package}`");
}

fn redis_pid(cli: &Path, port: u16) -> Option<u64> {
    let out = Command::new(cli)
        .args(["-p", &port.to_string(), "info", "server"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Percent-encoding of a query parameter (everything but unreserved bytes).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of a PromQL instant query with one series.
fn prom_value(port: u16, query: &str) -> Option<f64> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        encode(query)
    );
    let v = get_json(&url)?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Wait until the PromQL query has a value satisfying `ok`; returns it.
fn prom_wait(port: u16, query: &str, within: Duration, ok: impl Fn(f64) -> bool) -> f64 {
    wait_for(&format!("Prometheus: {query}"), within, || {
        prom_value(port, query).filter(|v| ok(*v))
    })
}

/// GET `url`: the status (0 if no answer within 3 s).
fn status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

/// Steady traffic through nginx (4 clients in a loop) until `stop` is set.
fn load(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let http = reqwest::Client::new();
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (http, url, stop) = (http.clone(), url.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = http.get(&url).timeout(Duration::from_secs(3)).send().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    })
}

/// Wait up to 60 s for `f`; on timeout, fail with what Prometheus says about
/// the alert and the logs of medic and Alertmanager.
fn wait_logged<T>(dir: &Path, pport: u16, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let alerts = get_text(&format!("http://127.0.0.1:{pport}/api/v1/alerts"));
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    panic!(
        "timed out waiting for {what}\nPrometheus alerts: {alerts:?}\n--- medic.stderr\n{}\n--- alertmanager.log\n{}\n--- prometheus.log\n{}",
        log("medic.stderr"),
        log("alertmanager.log"),
        log("prometheus.log")
    );
}

/// nginx's config: a reverse proxy on `port` in front of `upstreams`.
fn nginx_conf(dir: &Path, port: u16, upstreams: &[u16]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        "worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 client_body_temp_path {d}/nginx-tmp/body;\n\
         \x20 proxy_temp_path {d}/nginx-tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/nginx-tmp/scgi;\n\
         \x20 upstream fixtures {{\n{servers}  }}\n\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port};\n\
         \x20   location / {{ proxy_pass http://fixtures; }}\n\
         \x20 }}\n\
         }}\n"
    )
}

#[test]
fn a_real_stack_is_healed_end_to_end_and_prometheus_sees_each_heal() {
    let redis = need("redis-server", "redis-server");
    let cli = need("redis-cli", "redis-tools");
    let prometheus = need("prometheus", "prometheus");
    let alertmanager = need("prometheus-alertmanager", "prometheus-alertmanager");
    let nginx = need("nginx", "nginx");
    let dir = TestDir::new();
    let d = dir.path().to_path_buf();
    let [rport, aport, pport, amport, nport, w1, w2] = [(); 7].map(|_| free_port());
    std::fs::create_dir_all(d.join("nginx-tmp")).unwrap();
    let nginx_file = write(&d, "nginx.conf", &nginx_conf(&d, nport, &[w1, w2]));
    let nginx_args = |extra: &str| {
        format!(
            r#""{nginx}", "-p", "{d}", "-c", "{conf}", "-e", "{d}/nginx-error.log", {extra}"#,
            nginx = nginx.display(),
            d = d.display(),
            conf = nginx_file.display()
        )
    };
    let cfg = write(
        &d,
        "medic.yaml",
        &format!(
            r#"mode: aggressive
listen: 127.0.0.1:{aport}
auth: none
database: medic.db
policy: {{ cooldown: 1s, verify_window: 30s }}
services:
  redis:
    process:
      command: ["{redis}", "--port", "{rport}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 500ms }}
      port: {{ tcp: {{ address: "127.0.0.1:{rport}" }}, interval: 1s }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
      - when: {{ probe: port }}
        action: restart
  web1:
    process: {{ command: [medic, fixture, --port, "{w1}"], stop_grace: 2s }}
    # The default start phase (30 s): an alert firing within it is acted on
    # (alerts are never excused: Alertmanager sends one only once).
    probes:
      alive: {{ process: {{}}, interval: 500ms }}
    actions:
      restart: {{ restart: {{}} }}
      shed:
        http: {{ url: "http://127.0.0.1:{w1}/admin/shed" }}
        revert: {{ action: unshed, after: 2s }}
      unshed:
        http: {{ url: "http://127.0.0.1:{w1}/admin/unshed" }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
      - when: {{ probe: FixtureSlow }}
        action: shed
  web2:
    process: {{ command: [medic, fixture, --port, "{w2}"], stop_grace: 2s }}
    probes:
      alive: {{ process: {{}}, interval: 500ms }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
  nginx:
    process:
      command: [{run}]
      stop_grace: 2s
    probes:
      alive: {{ process: {{}}, interval: 500ms }}
      through:
        http: {{ url: "http://127.0.0.1:{nport}/healthz", timeout: 2s }}
        interval: 1s
        failure: {{ consecutive: 3 }}
        recovery: {{ consecutive: 2 }}
    actions:
      restart: {{ restart: {{}} }}
      reload: {{ exec: {{ command: [{reload}], timeout: 10s }} }}
    remediate:
      - when: {{ probe: alive }}
        action: restart
      - when: {{ probe: through }}
        action: reload
signals:
  alertmanager:
    service_label: service
    alerts:
      FixtureSlow: {{ services: [web1] }}
"#,
            redis = redis.display(),
            run = nginx_args(r#""-g", "daemon off;""#),
            reload = nginx_args(r#""-s", "reload""#),
        ),
    );
    write(
        &d,
        "rules.yml",
        "groups:\n  - name: fixtures\n    interval: 1s\n    rules:\n      - alert: FixtureSlow\n        \
         expr: histogram_quantile(0.9, sum by (le) (rate(fixture_request_duration_seconds_bucket{job=\"web1\"}[3s]))) > 0.2\n        \
         labels: { service: web1, severity: page }\n",
    );
    let prom_cfg = write(
        &d,
        "prometheus.yml",
        &format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: ['{rules}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{amport}']\n\
             scrape_configs:\n\
             \x20 - job_name: medic\n    static_configs: [{{ targets: ['127.0.0.1:{aport}'] }}]\n\
             \x20 - job_name: web1\n    static_configs: [{{ targets: ['127.0.0.1:{w1}'] }}]\n\
             \x20 - job_name: web2\n    static_configs: [{{ targets: ['127.0.0.1:{w2}'] }}]\n\
             \x20 - job_name: nginx\n    static_configs: [{{ targets: ['127.0.0.1:{nport}'] }}]\n",
            rules = d.join("rules.yml").display()
        ),
    );
    let am_cfg = write(
        &d,
        "alertmanager.yml",
        &format!(
            "route:\n  receiver: medic\n  group_by: ['alertname', 'service']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 5m\n\
             receivers:\n  - name: medic\n    webhook_configs:\n      - url: 'http://127.0.0.1:{aport}/api/v1/alerts/alertmanager'\n        send_resolved: true\n"
        ),
    );
    let _daemon = dir.spawn_daemon(&cfg, None);
    // Prometheus and Alertmanager carry the test's tag: TestDir kills them
    // at the end (and the guards below stop them by pid before that).
    let spawn = |bin: &Path, args: Vec<String>, log: &str| {
        Command::new(bin)
            .args(args)
            .env(TAG_VAR, dir.tag())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(d.join(log)).unwrap()))
            .spawn()
            .unwrap()
    };
    let mut am = spawn(
        &alertmanager,
        vec![
            format!("--config.file={}", am_cfg.display()),
            format!("--storage.path={}", d.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{amport}"),
            "--cluster.listen-address=".into(),
        ],
        "alertmanager.log",
    );
    let mut prom = spawn(
        &prometheus,
        vec![
            format!("--config.file={}", prom_cfg.display()),
            format!("--storage.tsdb.path={}", d.join("prom").display()),
            format!("--web.listen-address=127.0.0.1:{pport}"),
        ],
        "prometheus.log",
    );

    // Everything up, as Prometheus sees it.
    let pid = wait_for("redis under medic", Duration::from_secs(20), || {
        redis_pid(&cli, rport)
    });
    for job in ["medic", "web1", "web2", "nginx"] {
        prom_wait(
            pport,
            &format!(r#"up{{job="{job}"}}"#),
            Duration::from_secs(60),
            |v| v == 1.0,
        );
    }

    // 1. redis: kill -9, medic restarts it.
    sigkill(pid);
    let new = wait_for("a new redis", Duration::from_secs(20), || {
        redis_pid(&cli, rport).filter(|p| *p != pid)
    });
    assert_ne!(new, pid);
    prom_wait(
        pport,
        r#"sum(medic_actions_total{action="restart",outcome="succeeded"})"#,
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    prom_wait(
        pport,
        r#"sum(medic_detections_total{service="redis"})"#,
        Duration::from_secs(30),
        |v| v >= 1.0,
    );

    // 2. nginx: a broken config is deployed and reloaded (every upstream on a
    // dead port: 502 through nginx), then the good file is restored on disk
    // without a reload. medic's probe through nginx fails and its action
    // (`nginx -s reload`) loads the restored config.
    let through = format!("http://127.0.0.1:{nport}/healthz");
    assert_eq!(status(&through), 200);
    std::fs::write(&nginx_file, nginx_conf(&d, nport, &[1])).unwrap();
    let out = Command::new(&nginx)
        .arg("-p")
        .arg(&d)
        .arg("-c")
        .arg(&nginx_file)
        .arg("-e")
        .arg(d.join("nginx-error.log"))
        .args(["-s", "reload"])
        .output()
        .unwrap();
    assert!(out.status.success(), "nginx -s reload: {out:?}");
    wait_for(
        "nginx serving the broken config",
        Duration::from_secs(10),
        || (status(&through) == 502).then_some(()),
    );
    std::fs::write(&nginx_file, nginx_conf(&d, nport, &[w1, w2])).unwrap();
    wait_for("medic to reload nginx", Duration::from_secs(30), || {
        (status(&through) == 200).then_some(())
    });
    // Through Prometheus: the scrape through nginx failed while it was
    // broken and works again; medic's reload ran, after the probe failures.
    prom_wait(
        pport,
        r#"sum(medic_actions_total{action="reload",outcome="succeeded"})"#,
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    prom_wait(
        pport,
        r#"sum(medic_probe_failures_total{service="nginx",probe="through"})"#,
        Duration::from_secs(30),
        |v| v >= 3.0,
    );
    prom_wait(
        pport,
        r#"min_over_time(up{job="nginx"}[5m])"#,
        Duration::from_secs(30),
        |v| v == 0.0,
    );
    prom_wait(pport, r#"up{job="nginx"}"#, Duration::from_secs(30), |v| {
        v == 1.0
    });

    // 3. Load shedding: traffic through nginx, then web1 turns slow. The
    // latency alert fires in Prometheus, Alertmanager sends it to medic's
    // webhook, medic sheds load on web1 (`POST /admin/shed`).
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(format!("http://127.0.0.1:{nport}/work"), stop.clone());
    let state = format!("http://127.0.0.1:{w1}/admin/state");
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{w1}/fault/slow?ms=500"),
            &serde_json::json!({})
        ),
        200
    );
    wait_logged(&d, pport, "medic to shed load on web1", || {
        get_json(&state).filter(|s| s["shedding"] == true)
    });
    // The operator fixes the cause; the alert resolves, the incident closes
    // and medic reverts the mitigation 2 s later.
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{w1}/fault/clear"),
            &serde_json::json!({})
        ),
        200
    );
    wait_logged(&d, pport, "medic to revert the shedding", || {
        get_json(&state).filter(|s| s["shedding"] == false)
    });
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    // Through Prometheus: the alert fired, web1 shed requests, medic's shed
    // ran for the alert and its revert ran after it.
    prom_wait(
        pport,
        r#"max_over_time(ALERTS{alertname="FixtureSlow",alertstate="firing"}[5m])"#,
        Duration::from_secs(30),
        |v| v == 1.0,
    );
    prom_wait(
        pport,
        r#"sum(fixture_shed_total{job="web1"})"#,
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    prom_wait(
        pport,
        r#"sum(medic_actions_total{action="shed",outcome="succeeded"})"#,
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    prom_wait(
        pport,
        r#"sum(medic_actions_total{action="unshed",reason="revert",outcome="succeeded"})"#,
        Duration::from_secs(30),
        |v| v >= 1.0,
    );
    prom_wait(
        pport,
        r#"sum(medic_verifications_total{outcome="passed"})"#,
        Duration::from_secs(30),
        |v| v >= 3.0,
    );

    for child in [&mut prom, &mut am] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
