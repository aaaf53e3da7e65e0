//! The Docker executor and probe against the machine's real Docker Engine.
//!
//! There is no image registry: the test builds a tiny image `FROM scratch`
//! out of medic's own binary (stripped) and the libraries `ldd` lists, runs
//! it with `docker run` (so medic did not start it) under a label, and lets a
//! `medic run` on the host heal it after a kill, a hang and an unhealthy
//! healthcheck. Every container and image it creates carries a unique name
//! and is removed on drop (also when the test panics).
//!
//! Without a Docker Engine the test fails under `CI=1` and is reported as not
//! run otherwise (with a message), since developers' machines may lack one.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        text.push_str(&err);
    }
    (out.status.success(), text)
}

/// True when an engine answers; panics under CI=1 when none does.
fn engine_available() -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok && std::env::var_os("CI").is_some() {
        panic!("CI=1 and no Docker Engine answers `docker info`");
    }
    if !ok {
        eprintln!("docker test NOT RUN: no Docker Engine (set CI=1 to make this a failure)");
    }
    ok
}

/// Removes the containers and the image this test created, by name.
struct Cleanup {
    image: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

/// Build `image` from the medic binary: `/medic` and its shared libraries,
/// a healthcheck that is `medic healthcheck` (exec form: no shell inside).
fn build_image(dir: &Path, image: &str) {
    let ctx = dir.join("image");
    let root = ctx.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let exe = assert_cmd::cargo::cargo_bin("medic");
    let st = Command::new("strip")
        .arg("-o")
        .arg(root.join("medic"))
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "strip failed");
    let ldd = Command::new("ldd").arg(&exe).output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    for line in ldd.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vdso has no file.
        let path = line
            .split("=>")
            .last()
            .and_then(|p| p.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        let Some(path) = path else { continue };
        let dest = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(path, &dest).unwrap();
    }
    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\n\
         COPY rootfs/ /\n\
         HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD [\"/medic\", \"healthcheck\", \"--port\", \"8080\", \"--timeout\", \"900ms\"]\n\
         ENTRYPOINT [\"/medic\"]\n\
         CMD [\"fixture\", \"--port\", \"8080\", \"--bind\", \"0.0.0.0\"]\n",
    );
    let out = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `started_at` of the fixture inside the container, over the published port.
fn started_at(health: &str) -> Option<String> {
    get_json(health)?["started_at"].as_str().map(str::to_string)
}

fn docker_health(name: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
        name,
    ])
    .1
}

/// Wait until the container answers healthz with a `started_at` other than
/// `old`, and Docker says running/healthy; returns the new start.
fn healed(health: &str, name: &str, old: &str, within: Duration) -> String {
    wait_for(&format!("{name} restarted and healthy"), within, || {
        let s = started_at(health)?;
        (s != old && docker_health(name) == "running/healthy").then_some(s)
    })
}

fn restarts(api: &str) -> usize {
    get_json(&format!("{api}/api/v1/incidents"))
        .and_then(|v| v["incidents"].as_array().cloned())
        .unwrap_or_default()
        .len()
}

#[test]
fn a_labelled_container_medic_did_not_start_is_healed_after_kill_hang_and_unhealthy() {
    if !engine_available() {
        return;
    }
    let dir = TestDir::new();
    let tag = dir.tag().replace(['.', '_'], "-").to_lowercase();
    let image = format!("medic-test-fixture:{tag}");
    let name = format!("medic-test-web-{tag}");
    let label = format!("medic.service=web-{tag}");
    let mut cleanup = Cleanup {
        image: image.clone(),
        containers: Vec::new(),
    };
    build_image(dir.path(), &image);

    let fport = free_port();
    cleanup.containers.push(name.clone());
    let (ok, out) = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        "--label",
        "medic.test=1",
        "-p",
        &format!("127.0.0.1:{fport}:8080"),
        &image,
    ]);
    assert!(ok, "docker run: {out}");
    let health = format!("http://127.0.0.1:{fport}/healthz");
    let first = wait_for("the container answering", Duration::from_secs(30), || {
        started_at(&health)
    });
    wait_for(
        "Docker's healthcheck green",
        Duration::from_secs(30),
        || (docker_health(&name) == "running/healthy").then_some(()),
    );

    let aport = free_port();
    let cfg = write(
        dir.path(),
        "medic.yaml",
        &format!(
            r#"mode: aggressive
listen: 127.0.0.1:{aport}
database: medic.db
policy: {{ cooldown: 1s, verify_window: 5s, restart_budget: 10 }}
services:
  web:
    probes:
      container:
        docker: {{ label: "{label}", timeout: 5s }}
        interval: 500ms
        failure: {{ consecutive: 2 }}
    actions:
      restart:
        docker: {{ op: restart, label: "{label}", grace: 1s, timeout: 30s }}
    remediate:
      - when: {{ probe: container }}
        action: restart
"#
        ),
    );
    let (ok, out) = {
        let o = medic().args(["check", "-c"]).arg(&cfg).output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    assert!(ok, "medic check: {out}");
    let _daemon = dir.spawn_daemon(&cfg, None);
    let api = format!("http://127.0.0.1:{aport}");
    wait_for("the API", Duration::from_secs(30), || {
        get_json(&format!("{api}/api/v1/incidents"))
    });
    // Healthy at start: no incident, the container untouched.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(restarts(&api), 0, "no incident while healthy");
    assert_eq!(started_at(&health).as_deref(), Some(first.as_str()));

    // 1. Killed: the container exits; medic starts it again.
    let (ok, out) = docker(&["kill", &name]);
    assert!(ok, "docker kill: {out}");
    let second = healed(&health, &name, &first, Duration::from_secs(60));

    // 2. Hung: healthz never answers; Docker's healthcheck times out and
    //    marks it unhealthy; medic restarts it (which clears the fault).
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{fport}/fault/hang"),
            &serde_json::json!({})
        ),
        200
    );
    wait_for(
        "Docker's healthcheck red (hang)",
        Duration::from_secs(30),
        || docker_health(&name).ends_with("unhealthy").then_some(()),
    );
    let third = healed(&health, &name, &second, Duration::from_secs(60));

    // 3. Unhealthy: healthz answers 500.
    assert_eq!(
        post_json(
            &format!("http://127.0.0.1:{fport}/fault/error"),
            &serde_json::json!({})
        ),
        200
    );
    wait_for(
        "Docker's healthcheck red (error)",
        Duration::from_secs(30),
        || docker_health(&name).ends_with("unhealthy").then_some(()),
    );
    healed(&health, &name, &third, Duration::from_secs(60));

    // Three incidents, each healed by the docker executor (audited).
    let incidents = wait_for("three incidents", Duration::from_secs(30), || {
        let n = restarts(&api);
        (n >= 3).then_some(n)
    });
    assert_eq!(incidents, 3, "one incident per fault");
    let outcomes: Vec<String> = audit(&api)
        .into_iter()
        .filter(|(k, _)| k == "action.outcome")
        .map(|(_, p)| p.to_string())
        .collect();
    let by_docker = outcomes
        .iter()
        .filter(|p| p.contains("docker restart on 1 of 1 container(s)"))
        .count();
    assert_eq!(by_docker, 3, "three docker restarts audited: {outcomes:#?}");
}

/// Every audit record as `(kind, payload)`.
fn audit(api: &str) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = get_json(&format!("{api}/api/v1/audit?after={after}&limit=1000")).unwrap();
        let recs = page["records"].as_array().unwrap().clone();
        if recs.is_empty() {
            return out;
        }
        for r in recs {
            after = r["seq"].as_u64().unwrap();
            out.push((
                r["kind"].as_str().unwrap().to_string(),
                r["payload"].clone(),
            ));
        }
    }
}

/// The executor's operations on a group of two replicas found by label:
/// kill with a signal, start, stop, restart, idempotent start/stop, and a
/// label that selects nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_client_acts_on_every_replica_of_a_labelled_group() {
    use medic_config::DockerOp;
    use medic_exec::{CancelToken, DockerClient, ExecError};
    if !engine_available() {
        return;
    }
    let dir = TestDir::new();
    let tag = dir.tag().replace(['.', '_'], "-").to_lowercase();
    let image = format!("medic-test-fixture:{tag}");
    let label = format!("medic.service=group-{tag}");
    let mut cleanup = Cleanup {
        image: image.clone(),
        containers: Vec::new(),
    };
    build_image(dir.path(), &image);
    for i in 0..2 {
        let name = format!("medic-test-group-{i}-{tag}");
        cleanup.containers.push(name.clone());
        let (ok, out) = docker(&["run", "-d", "--name", &name, "--label", &label, &image]);
        assert!(ok, "docker run: {out}");
    }
    let client = DockerClient::connect().await.unwrap();
    let cancel = CancelToken::new();
    let grace = Duration::from_secs(1);
    let group = client.group(&label).await.unwrap();
    assert_eq!(group.len(), 2);
    assert!(group.iter().all(|c| c.running()), "{group:?}");
    let starts: Vec<_> = group.iter().map(|c| c.started_at.clone()).collect();

    // PID 1 in a container ignores SIGTERM it has no handler for; SIGKILL ends it.
    let out = client
        .apply(
            &label,
            &DockerOp::Kill {
                signal: "SIGKILL".into(),
            },
            grace,
            &cancel,
        )
        .await
        .unwrap();
    assert!(out.detail.contains("kill on 2 of 2"), "{}", out.detail);
    let group = client.group(&label).await.unwrap();
    assert!(group.iter().all(|c| !c.running()), "{group:?}");
    // Killing a stopped group touches nothing.
    let out = client
        .apply(
            &label,
            &DockerOp::Kill {
                signal: "SIGKILL".into(),
            },
            grace,
            &cancel,
        )
        .await
        .unwrap();
    assert!(out.detail.contains("kill on 0 of 2"), "{}", out.detail);

    let out = client
        .apply(&label, &DockerOp::Start, grace, &cancel)
        .await
        .unwrap();
    assert!(out.detail.contains("start on 2 of 2"), "{}", out.detail);
    let group = client.group(&label).await.unwrap();
    assert!(group.iter().all(|c| c.running()), "{group:?}");
    for (c, old) in group.iter().zip(&starts) {
        assert_ne!(&c.started_at, old, "{} started again", c.name);
    }
    // Starting a running group touches nothing.
    let out = client
        .apply(&label, &DockerOp::Start, grace, &cancel)
        .await
        .unwrap();
    assert!(out.detail.contains("start on 0 of 2"), "{}", out.detail);

    let before: Vec<_> = group.iter().map(|c| c.started_at.clone()).collect();
    let out = client
        .apply(&label, &DockerOp::Restart, grace, &cancel)
        .await
        .unwrap();
    assert!(out.detail.contains("restart on 2 of 2"), "{}", out.detail);
    let group = client.group(&label).await.unwrap();
    for (c, old) in group.iter().zip(&before) {
        assert!(c.running(), "{c:?}");
        assert_ne!(&c.started_at, old, "{} restarted", c.name);
    }

    // Stop: SIGTERM is ignored by PID 1, so SIGKILL follows after `grace`.
    let out = client
        .apply(&label, &DockerOp::Stop, grace, &cancel)
        .await
        .unwrap();
    assert!(out.detail.contains("stop on 2 of 2"), "{}", out.detail);
    let group = client.group(&label).await.unwrap();
    assert!(group.iter().all(|c| !c.running()), "{group:?}");

    // A label nobody carries is an error, not a silent success.
    let none = format!("medic.service=nobody-{tag}");
    let err = client
        .apply(&none, &DockerOp::Restart, grace, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::NoExecutor { .. }), "{err:?}");
    // A cancelled token stops before the first container.
    let cancelled = CancelToken::new();
    cancelled.cancel();
    let err = client
        .apply(&label, &DockerOp::Start, grace, &cancelled)
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Cancelled(_)), "{err:?}");
    assert!(client
        .group(&label)
        .await
        .unwrap()
        .iter()
        .all(|c| !c.running()));
}
