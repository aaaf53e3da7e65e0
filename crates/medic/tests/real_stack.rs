//! A real stack, in part (issue 14): redis from Debian supervised by medic,
//! Prometheus from Debian scraping medic. medic restarts redis after a
//! `kill -9`, and the heal is verified through Prometheus data. (nginx in
//! front of two fixtures, load shedding on an Alertmanager latency alert and
//! the nginx reload are not built yet.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
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

fn redis_pid(cli: &std::path::Path, port: u16) -> Option<u64> {
    let out = Command::new(cli)
        .args(["-p", &port.to_string(), "info", "server"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of a PromQL instant query with one series.
fn prom_value(port: u16, query: &str) -> Option<f64> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        query
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace('=', "%3D")
            .replace(',', "%2C")
    );
    let v = get_json(&url)?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn medic_restarts_redis_after_a_kill_and_prometheus_sees_the_heal() {
    let redis = need("redis-server", "redis-server");
    let cli = need("redis-cli", "redis-tools");
    let prometheus = need("prometheus", "prometheus");
    let dir = TestDir::new();
    let (rport, aport, pport) = (free_port(), free_port(), free_port());
    let cfg = write(
        dir.path(),
        "medic.yaml",
        &format!(
            r#"mode: aggressive
listen: 127.0.0.1:{aport}
auth: none
database: medic.db
policy: {{ cooldown: 1s, verify_window: 5s }}
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
"#,
            redis = redis.display()
        ),
    );
    let prom_cfg = write(
        dir.path(),
        "prometheus.yml",
        &format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: medic\n    static_configs:\n      - targets: ['127.0.0.1:{aport}']\n"
        ),
    );
    let _daemon = dir.spawn_daemon(&cfg, None);
    // Prometheus carries the test's tag: TestDir kills it at the end.
    let mut prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .env(TAG_VAR, dir.tag())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("prometheus.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let pid = wait_for("redis under medic", Duration::from_secs(20), || {
        redis_pid(&cli, rport)
    });
    wait_for("Prometheus scraping medic", Duration::from_secs(60), || {
        (prom_value(pport, r#"up{job="medic"}"#)? == 1.0).then_some(())
    });
    sigkill(pid);
    let new = wait_for("a new redis", Duration::from_secs(20), || {
        redis_pid(&cli, rport).filter(|p| *p != pid)
    });
    assert_ne!(new, pid);
    // Through Prometheus: medic's restart succeeded and its incident was
    // counted.
    let restarts = wait_for("the restart in Prometheus", Duration::from_secs(60), || {
        prom_value(
            pport,
            r#"sum(medic_actions_total{action="restart",outcome="succeeded"})"#,
        )
        .filter(|v| *v >= 1.0)
    });
    assert!(restarts >= 1.0);
    let incidents = prom_value(pport, "medic_incidents_total").unwrap_or(0.0);
    assert!(incidents >= 1.0, "medic_incidents_total = {incidents}");
    let _ = prom.kill();
    let _ = prom.wait();
}
