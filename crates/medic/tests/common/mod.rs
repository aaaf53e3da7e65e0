//! Helpers shared by the binary-level tests: the real `medic` binary, the
//! real fixture, a temp dir with a SQLite file, loopback HTTP.
//!
//! Nothing a test starts may outlive it. Every `medic` a test spawns gets
//! `MEDIC_TEST_TAG=<unique>` in its environment, which the processes it
//! supervises inherit; [`TestDir`] kills every process carrying its tag when
//! it is dropped (also when the test panics), after the daemons' own guards
//! had their chance to stop gracefully.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A throwaway Postgres server (medic-store's test helper, shared).
#[path = "../../../medic-store/tests/common/pg.rs"]
pub mod pg;

pub const TAG_VAR: &str = "MEDIC_TEST_TAG";

pub fn medic() -> Command {
    Command::cargo_bin("medic").unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temp dir for one test; on drop, kills every process tagged with it.
pub struct TestDir {
    dir: tempfile::TempDir,
    tag: String,
}

impl TestDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        TestDir { dir, tag }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `medic run -c CFG`, with MEDIC_MODE set to `mode` (or removed).
    pub fn spawn_daemon(&self, cfg: &Path, mode: Option<&str>) -> Daemon {
        self.spawn_daemon_env(cfg, mode, &[])
    }

    /// [`Self::spawn_daemon`] with more environment variables.
    pub fn spawn_daemon_env(&self, cfg: &Path, mode: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = medic();
        cmd.args(["run", "-c"])
            .arg(cfg)
            .envs(env.iter().copied())
            .env(TAG_VAR, &self.tag)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path().join("medic.stderr"))
                    .unwrap(),
            ));
        match mode {
            Some(m) => cmd.env("MEDIC_MODE", m),
            None => cmd.env_remove("MEDIC_MODE"),
        };
        reader_token(cfg);
        Daemon(Some(cmd.spawn().unwrap()))
    }

    /// Live processes carrying this test's tag.
    pub fn tagged(&self) -> Vec<u32> {
        tagged(&self.tag)
    }

    /// The daemons' log outlives the temp dir: copied to
    /// `$MEDIC_TEST_KEEP_LOGS/<tag>.stderr` when that is set, and its tail
    /// printed when the test failed (CI shows it).
    fn keep_log(&self) {
        let log = self.path().join("medic.stderr");
        let Ok(text) = std::fs::read_to_string(&log) else {
            return;
        };
        if let Some(keep) = std::env::var_os("MEDIC_TEST_KEEP_LOGS") {
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(&log, Path::new(&keep).join(format!("{}.stderr", self.tag)));
        }
        if std::thread::panicking() {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("--- last {} lines of medic.stderr ---", tail.len());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        self.keep_log();
        for _ in 0..100 {
            let left = tagged(&self.tag);
            if left.is_empty() {
                return;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: processes tagged {} survived SIGKILL", self.tag);
    }
}

/// Live (not zombie) processes whose environment holds `MEDIC_TEST_TAG=tag`.
pub fn tagged(tag: &str) -> Vec<u32> {
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// A `medic run`: on drop, SIGTERM (it stops its services), SIGKILL after 10 s.
pub struct Daemon(Option<Child>);

impl Daemon {
    /// Spawn `cmd` (a prepared `medic run`) under this guard.
    pub fn spawn(mut cmd: Command) -> Daemon {
        Daemon(Some(cmd.spawn().unwrap()))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// `kill -9` medic (its services keep running) and reap it.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `medic token create -c CFG --role ROLE --name NAME`: the printed token.
pub fn create_token(cfg: &Path, role: &str, name: &str) -> String {
    let out = medic()
        .args(["token", "create", "-c"])
        .arg(cfg)
        .args(["--role", role, "--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "medic token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("medic_"), "{token}");
    token
}

/// API base URL → (config file, a viewer token) of the daemons the tests
/// started with `auth: tokens` (the default); [`get_json`] sends it.
static READERS: std::sync::Mutex<std::collections::BTreeMap<String, (PathBuf, String)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Before a daemon starts on `cfg`: a viewer token `test-reader` for its API
/// (once per config file), so the tests' reads are authenticated.
fn reader_token(cfg: &Path) {
    let Ok(c) = medic_config::load(cfg) else {
        return;
    };
    if c.auth != medic_config::AuthMode::Tokens {
        return;
    }
    let base = format!("http://{}", c.listen);
    let mut map = READERS.lock().unwrap_or_else(|p| p.into_inner());
    if map.get(&base).is_some_and(|(p, _)| p == cfg) {
        return;
    }
    let token = create_token(cfg, "viewer", "test-reader");
    map.insert(base, (cfg.to_path_buf(), token));
}

/// (API base, name) → token, for [`token_as`].
static NAMED: std::sync::Mutex<std::collections::BTreeMap<(String, PathBuf, String), String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// A token named `name` with `role` for the daemon serving `api` (created
/// with `medic token create` on its config the first time).
pub fn token_as(api: &str, name: &str, role: &str) -> String {
    let cfg = {
        let map = READERS.lock().unwrap_or_else(|p| p.into_inner());
        map.get(api.trim_end_matches('/'))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| panic!("no daemon with tokens started for {api}"))
    };
    let key = (api.to_string(), cfg.clone(), name.to_string());
    let mut named = NAMED.lock().unwrap_or_else(|p| p.into_inner());
    named
        .entry(key)
        .or_insert_with(|| create_token(&cfg, role, name))
        .clone()
}

/// The viewer token registered for the API that `url` is on.
fn reader_for(url: &str) -> Option<String> {
    let map = READERS.lock().unwrap_or_else(|p| p.into_inner());
    map.iter()
        .find(|(base, _)| {
            url.strip_prefix(base.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .map(|(_, (_, t))| t.clone())
}

pub fn get_json(url: &str) -> Option<serde_json::Value> {
    runtime().block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = reader_for(url) {
            req = req.bearer_auth(t);
        }
        let r = req.timeout(Duration::from_secs(2)).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    })
}

pub fn get_text(url: &str) -> Option<String> {
    runtime().block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(t) = reader_for(url) {
            req = req.bearer_auth(t);
        }
        let r = req.timeout(Duration::from_secs(2)).send().await.ok()?;
        r.text().await.ok()
    })
}

/// POST `body` with `Authorization: Bearer token`; the status (0 if no answer).
pub fn post_json_as(url: &str, body: &serde_json::Value, token: &str) -> u16 {
    runtime().block_on(async {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

pub fn post_json(url: &str, body: &serde_json::Value) -> u16 {
    runtime().block_on(async {
        reqwest::Client::new()
            .post(url)
            .json(body)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    })
}

pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The pid the fixture reports on `/healthz`, once it answers.
pub fn fixture_pid(health: &str) -> u64 {
    wait_for("the fixture to answer", Duration::from_secs(20), || {
        get_json(health).and_then(|v| v["pid"].as_u64())
    })
}

/// The fixture answering `/healthz` with a pid other than `old`.
pub fn new_fixture_pid(health: &str, old: u64, within: Duration) -> u64 {
    wait_for("a new fixture process", within, || {
        get_json(health)
            .filter(|v| v["status"] == "ok")
            .and_then(|v| v["pid"].as_u64())
            .filter(|p| *p != old)
    })
}

/// Exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    medic_exec::procfs::stat(pid).is_some_and(|s| !s.is_dead())
}

pub fn sigkill(pid: u64) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

/// Wait for the fixture, `kill -9` it, and return the pid it had.
pub fn kill_fixture(health: &str) -> u64 {
    let pid = fixture_pid(health);
    sigkill(pid);
    pid
}

/// The old fixture is gone and the new one answers `/healthz` as healthy.
pub fn assert_replaced(health: &str, old: u64, new: u64) {
    wait_for("the old fixture to be gone", Duration::from_secs(5), || {
        (!alive(old as u32)).then_some(())
    });
    let now = get_json(health).expect("the new fixture answers");
    assert_eq!(now["status"], "ok", "{now}");
    assert_eq!(now["pid"].as_u64(), Some(new), "{now}");
    assert!(alive(new as u32), "new fixture {new} is not alive");
}

/// How many `/healthz` requests the fixture on `port` has served.
pub fn healthz_count(port: u16) -> Option<u64> {
    let text = get_text(&format!("http://127.0.0.1:{port}/metrics"))?;
    text.lines()
        .find(|l| l.starts_with("fixture_requests_total{") && l.contains("path=\"/healthz\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map(|n| n as u64)
}

/// Wait until medic's next HTTP probe reaches the fixture and return when it
/// was seen: the probe schedule's phase. (Must not be called while anything
/// else requests `/healthz`.)
pub fn probe_phase(port: u16) -> Instant {
    let before = wait_for("the fixture metrics", Duration::from_secs(10), || {
        healthz_count(port)
    });
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if healthz_count(port).is_some_and(|n| n > before) {
            return Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no probe reached the fixture");
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Find one of `names` on PATH. When none is found: under `CI` (set to
/// anything) the test fails; otherwise it says why it skips and returns None.
pub fn require_binary(names: &[&str], package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "none of {names:?} found on PATH and CI is set: install the Debian package `{package}` (apt-get install -y {package})"
        );
    }
    eprintln!(
        "SKIPPED: none of {names:?} found on PATH (Debian package `{package}`); set CI=1 to make this a failure"
    );
    None
}

/// `promtool check metrics` on `text` (stdin): (success, its output).
pub fn promtool_check_metrics(promtool: &Path, text: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
