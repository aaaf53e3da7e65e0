//! A Postgres server of medic's own for benchmarks (`medic bench store`):
//! `initdb` into a directory, `postgres` on a free loopback port with its
//! socket in the same directory, one database `medic`; stopped on drop
//! (SIGINT to the pid medic started, SIGKILL after 5 s).
//!
//! Binaries: `$MEDIC_PG_BIN` or the newest `/usr/lib/postgresql/<v>/bin`
//! (Debian package `postgresql`). Postgres refuses to run as root, so as root
//! the server runs as the package's `postgres` user (`$MEDIC_PG_USER`
//! overrides) through `setpriv`, and the directory is handed to that user.
//! Durability settings are Postgres's defaults (`fsync`, `synchronous_commit`
//! on), so figures compare with SQLite's `synchronous=FULL`.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

pub struct PgServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The directory holding `initdb` and `postgres`.
pub fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MEDIC_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("postgres").is_file() {
            return Ok(dir);
        }
        bail!("$MEDIC_PG_BIN={}: no postgres binary there", dir.display());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").is_file() && b.join("postgres").is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().context(
        "no Postgres binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql) and $MEDIC_PG_BIN is not set",
    )
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn pg_user() -> String {
    std::env::var("MEDIC_PG_USER").unwrap_or_else(|_| "postgres".into())
}

fn as_pg_user(bin: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let user = pg_user();
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

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn utf8(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

impl PgServer {
    /// Starts a server whose files live in `dir` (created; must be empty or
    /// missing, and traversable by the `postgres` user when run as root).
    pub async fn start(dir: &Path) -> anyhow::Result<PgServer> {
        let bin = pg_bin()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if running_as_root() {
            let st = Command::new("chown")
                .arg(format!("{}:", pg_user()))
                .arg(dir)
                .status()
                .context("running chown")?;
            if !st.success() {
                bail!("chown {} {} failed", pg_user(), dir.display());
            }
        }
        let data = dir.join("data");
        let out = as_pg_user(
            &bin.join("initdb"),
            &[
                "-D",
                utf8(&data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )
        .output()
        .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log_path = dir.join("postgres.log");
        let port = free_port()?;
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = as_pg_user(
            &bin.join("postgres"),
            &[
                "-D",
                utf8(&data)?,
                "-k",
                utf8(dir)?,
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ],
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting postgres")?;
        let mut server = PgServer {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        server.wait_ready().await?;
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&server.url_for("postgres"))
            .await
            .context("connecting to postgres")?;
        sqlx::raw_sql("CREATE DATABASE medic")
            .execute(&mut c)
            .await
            .context("creating database medic")?;
        sqlx::Connection::close(c).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url_for("postgres");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("postgres exited ({status}): {}", self.log());
            }
            match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
                Ok(c) => {
                    let _ = sqlx::Connection::close(c).await;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    bail!("postgres not ready after 30 s: {e}; log: {}", self.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// URL of the `medic` database.
    pub fn url(&self) -> String {
        self.url_for("medic")
    }

    /// URL of database `db` as the superuser `postgres`.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
