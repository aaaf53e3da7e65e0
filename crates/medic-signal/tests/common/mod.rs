//! Helpers shared by the end-to-end tests: external binaries, process guards,
//! an in-process fixture and an engine driver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medic_core::{
    Command as EngineCommand, Engine, EngineConfig, Input, MonoTime, Notice, ProbeReport,
};

/// Find one of `names` on PATH. When none is found: under `CI` (set to
/// anything) the test fails; otherwise it prints why it skips and returns None.
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

/// A child process killed (by pid) and reaped when dropped, even on panic.
pub struct ProcGuard {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl ProcGuard {
    pub fn spawn(name: &str, bin: &Path, args: &[String], log: PathBuf) -> ProcGuard {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        ProcGuard {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The process's output so far (for failure messages).
    pub fn output(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = s.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ProcGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `url` until it answers 200, at most `limit`.
pub async fn wait_ready(http: &reqwest::Client, url: &str, limit: Duration, proc_: &mut ProcGuard) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = proc_.child.try_wait() {
            panic!("{} exited with {status}:\n{}", proc_.name, proc_.output());
        }
        assert!(
            Instant::now() < deadline,
            "{} not ready at {url} within {limit:?}:\n{}",
            proc_.name,
            proc_.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serve an axum router on a loopback port; returns its address.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Drives a real engine with reports, recording every command.
pub struct Driver {
    pub engine: Engine,
    pub start: Instant,
    pub commands: Vec<(Duration, EngineCommand)>,
    pub notices: Vec<(Duration, Notice)>,
}

impl Driver {
    pub fn new(cfg: EngineConfig) -> Driver {
        Driver {
            engine: Engine::new(cfg, MonoTime::ZERO),
            start: Instant::now(),
            commands: Vec::new(),
            notices: Vec::new(),
        }
    }

    pub fn now(&self) -> MonoTime {
        MonoTime::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn drain(&mut self) -> Vec<EngineCommand> {
        let mut new = Vec::new();
        while let Some(n) = self.engine.poll_notice() {
            self.notices.push((self.start.elapsed(), n));
        }
        while let Some(c) = self.engine.poll_command() {
            self.commands.push((self.start.elapsed(), c.clone()));
            new.push(c);
        }
        new
    }

    pub fn input(&mut self, input: Input) -> Vec<EngineCommand> {
        let now = self.now();
        self.engine.handle_input(now, input);
        self.drain()
    }

    pub fn report(&mut self, r: ProbeReport) -> Vec<EngineCommand> {
        self.input(Input::Probe(r))
    }

    pub fn tick(&mut self) -> Vec<EngineCommand> {
        let now = self.now();
        self.engine.handle_timeout(now);
        self.drain()
    }

    /// Notices of this audit kind (`incident.opened`, ...).
    pub fn audits(&self, kind: &str) -> Vec<&Notice> {
        self.notices
            .iter()
            .filter(|(_, n)| n.kind().as_str() == kind)
            .map(|(_, n)| n)
            .collect()
    }
}
