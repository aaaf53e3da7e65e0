//! A single-node etcd from the Debian binary on loopback ports in a
//! directory of its own, for tests and `medic bench failover`. Stopped (by
//! its pid) when dropped.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary: `MEDIC_ETCD` or `/usr/bin/etcd`.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("MEDIC_ETCD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

pub struct LocalEtcd {
    child: Child,
    pub client_url: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalEtcd {
    /// Start etcd with its data under `dir` and wait until it answers.
    pub fn start(dir: &Path) -> std::io::Result<LocalEtcd> {
        LocalEtcd::start_on(dir, &[])
    }

    /// [`LocalEtcd::start`], also listening for clients on `extra` addresses
    /// (same port), e.g. a veth address for a member in a network namespace.
    pub fn start_on(dir: &Path, extra: &[String]) -> std::io::Result<LocalEtcd> {
        let bin = etcd_binary();
        if !bin.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} not found (Debian package etcd-server)", bin.display()),
            ));
        }
        let (cp, pp) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{cp}");
        let listen: Vec<String> = std::iter::once(client_url.clone())
            .chain(extra.iter().map(|h| format!("http://{h}:{cp}")))
            .collect();
        let listen = listen.join(",");
        let peer_url = format!("http://127.0.0.1:{pp}");
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new(bin)
            .arg("--name")
            .arg("medic-test")
            .arg("--data-dir")
            .arg(dir.join("etcd-data"))
            .arg("--listen-client-urls")
            .arg(&listen)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("medic-test={peer_url}"))
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        let etcd = LocalEtcd { child, client_url };
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = format!("127.0.0.1:{cp}");
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                // Listening is not serving: give the single member a moment
                // to elect itself.
                std::thread::sleep(Duration::from_millis(300));
                return Ok(etcd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("etcd did not listen on {addr} within 20s"),
        ))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.client_url
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
