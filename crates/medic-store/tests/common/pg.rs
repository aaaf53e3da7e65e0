//! A throwaway Postgres server for tests: `initdb` into a temp dir, `postgres`
//! on a free loopback port (socket in the same dir), one database `medic`,
//! stopped on Drop (SIGQUIT to the pid we started, then SIGKILL).
//!
//! Binaries: `$MEDIC_PG_BIN` or `/usr/lib/postgresql/<version>/bin` (the
//! Debian `postgresql` package). Postgres refuses to run as root, so when the
//! tests run as root the server runs as the `postgres` system user (created
//! by the package; `$MEDIC_TEST_PG_USER` overrides) through `setpriv`; the
//! temp dir is handed to that user, and its parent directories must be
//! traversable by it (`.ci/run` makes its `TMPDIR` so).
//!
//! Missing binaries: [`PgServer::start`] returns `None` and says so on
//! stderr, except under `CI` (set), where it panics: the test fails.
//!
//! Reused by medic's binary tests as `common::pg` (a `#[path]` module in
//! `crates/medic/tests/common/mod.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Postgres server, stopped when dropped.
pub struct PgServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The directory holding `initdb` and `postgres`, if any.
pub fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MEDIC_PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("postgres").is_file().then_some(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cmd` as the unprivileged user when we are root, else as is.
fn as_pg_user(bin: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let user = std::env::var("MEDIC_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={user}"))
            .arg(format!("--regid={user}"))
            .arg("--init-groups")
            .arg(bin)
            .args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(args);
        c
    }
}

impl PgServer {
    /// Starts a server, or `None` (with a note on stderr) when the Postgres
    /// binaries are not installed and `CI` is not set. Panics on any other
    /// failure, and on missing binaries under `CI`.
    pub async fn start() -> Option<PgServer> {
        let Some(bin) = pg_bin() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "Postgres binaries not found (/usr/lib/postgresql/*/bin or $MEDIC_PG_BIN) and CI is set: apt-get install -y postgresql"
                );
            }
            eprintln!("Postgres half NOT RUN: no /usr/lib/postgresql/*/bin (Debian package `postgresql`); set CI=1 to make this a failure");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("medic-pg")
            .tempdir()
            .unwrap();
        if running_as_root() {
            let user = std::env::var("MEDIC_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
            let st = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown {user} {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let out = as_pg_user(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = spawn_postgres(&bin, dir.path(), port);
            match wait_ready(&mut child, port, &dir.path().join("postgres.log")).await {
                Ok(()) => {
                    let server = PgServer {
                        child,
                        port,
                        dir,
                        bin,
                    };
                    server.create_db("medic").await;
                    return Some(server);
                }
                Err(e) => {
                    last_err = e;
                    stop(&mut child);
                }
            }
        }
        panic!("postgres did not start: {last_err}");
    }

    /// Stops the server (an outage); [`PgServer::restart`] brings it back
    /// with the same data on the same port.
    pub fn stop_now(&mut self) {
        stop(&mut self.child);
    }

    /// Starts the server again after [`PgServer::stop_now`].
    pub async fn restart(&mut self) {
        stop(&mut self.child);
        self.child = spawn_postgres(&self.bin, self.dir.path(), self.port);
        let log = self.dir.path().join("postgres.log");
        wait_ready(&mut self.child, self.port, &log)
            .await
            .unwrap_or_else(|e| panic!("postgres did not restart: {e}"));
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temp dir holding the data directory, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// URL of the `medic` database.
    pub fn url(&self) -> String {
        self.url_for("medic")
    }

    /// URL of database `db` as the superuser `postgres`.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (a plain identifier) and returns its URL.
    pub async fn create_db(&self, name: &str) -> String {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database name {name:?}"
        );
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url_for("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::Connection::close(c).await.unwrap();
        self.url_for(name)
    }

    /// Runs `sql` as the superuser on the `medic` database (tampering, checks).
    pub async fn exec(&self, sql: &str) {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url())
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        sqlx::Connection::close(c).await.unwrap();
    }
}

/// `postgres` on `port`, data in `dir/data`, socket in `dir`, log appended
/// to `dir/postgres.log`.
fn spawn_postgres(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("postgres.log"))
        .unwrap();
    let data = dir.join("data");
    let port_s = port.to_string();
    as_pg_user(
        &bin.join("postgres"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-k",
            dir.to_str().unwrap(),
            "-h",
            "127.0.0.1",
            "-p",
            &port_s,
            "-c",
            "fsync=off",
            "-c",
            "max_connections=60",
        ],
    )
    .stdin(Stdio::null())
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .spawn()
    .unwrap()
}

async fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "postgres exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
            Ok(c) => {
                let _ = sqlx::Connection::close(c).await;
                return Ok(());
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "not ready after 30 s: {e}; log: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Immediate shutdown (SIGQUIT) of the postmaster we started: it stops its
/// backends without a checkpoint (the data dir is thrown away anyway);
/// SIGKILL if it is still there after 5 s.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg("-QUIT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PgServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
