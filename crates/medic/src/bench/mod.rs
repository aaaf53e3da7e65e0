//! `medic bench mttr|scale|overhead`: figures measured from outside, on this
//! machine, against real processes.
//!
//! Every process a bench starts runs in a process group of its own, held by a
//! [`Group`] guard that stops the group (SIGTERM, then SIGKILL) when dropped,
//! also on error. Fixture pids seen during a run are killed at the end if
//! still alive (a peer may start them outside its own group).
pub mod concurrent;
pub mod flood;
pub mod heal_trial;
pub mod mttr;
pub mod overhead;
pub mod scale;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Run a bench until it ends or the user interrupts it (Ctrl-C, SIGTERM):
/// then the bench's future is dropped, and with it every [`Group`] it
/// started, so nothing it started outlives it.
pub async fn interruptible<T>(
    bench: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = bench => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; everything it started was stopped"),
        _ = term.recv() => bail!("terminated; everything it started was stopped"),
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// This medic binary.
pub fn medic_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the medic binary")
}

/// A spawned process in its own process group; the group is stopped on drop.
pub struct Group {
    child: Option<Child>,
    what: String,
    log: PathBuf,
}

impl Group {
    /// Spawn `cmd` in a new process group, stdout/stderr appended to `log`.
    pub fn spawn(mut cmd: Command, what: &str, log: &Path) -> anyhow::Result<Group> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {what} ({:?})", cmd.get_program()))?;
        Ok(Group {
            child: Some(child),
            what: what.to_string(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails if the process has already exited (it could not start).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                // The log may be in a temporary directory: say its end here.
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                bail!(
                    "{} exited early ({st}); the end of its log {}:\n{tail}",
                    self.what,
                    self.log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to the group, SIGKILL after `grace`; reaps the leader.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(raw) = i32::try_from(child.id()) else {
            return;
        };
        let pgid = Pid::from_raw(raw);
        let _ = killpg(pgid, Signal::SIGCONT);
        let _ = killpg(pgid, Signal::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// SIGKILL `pid` if it is still a live fixture process (its command line
/// names `fixture`), so a pid reused by another process is left alone.
pub fn kill_fixture_pid(pid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&cmdline).contains("fixture") {
        return;
    }
    if let Ok(raw) = i32::try_from(pid) {
        let p = Pid::from_raw(raw);
        let _ = nix::sys::signal::kill(p, Signal::SIGCONT);
        let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
    }
}

/// CPU time (user + system) and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct ProcUsage {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

pub fn proc_usage(pid: u32) -> anyhow::Result<ProcUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        f.get(i - 3)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("bad /proc stat number")
    };
    // /proc reports in USER_HZ, which Linux fixes at 100 for user space.
    let hz = 100;
    let total = ticks(14)? + ticks(15)?;
    let cpu = Duration::from_nanos(total.saturating_mul(1_000_000_000) / hz);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok(ProcUsage {
        cpu,
        rss_bytes: rss_kb * 1024,
    })
}

/// Median and maximum of `v` (sorted in place); `None` when empty.
pub fn median_max(v: &mut [u64]) -> Option<(u64, u64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    Some((median, v[n - 1]))
}

/// `q`-quantile (0..=1) of sorted `v`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// A duration in ms as a short human figure (`45 ms`, `1.06 s`).
pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// Poll `f` every 50 ms until it returns `Some` or `within` passes.
pub async fn wait_until<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn median_and_max() {
        assert_eq!(median_max(&mut []), None);
        assert_eq!(median_max(&mut [5]), Some((5, 5)));
        assert_eq!(median_max(&mut [9, 1, 5]), Some((5, 9)));
        assert_eq!(median_max(&mut [4, 1, 3, 2]), Some((2, 4)));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        assert_eq!(fmt_ms(45), "45 ms");
        assert_eq!(fmt_ms(1060), "1.06 s");
    }

    #[test]
    fn usage_of_this_process() {
        let u = proc_usage(std::process::id()).unwrap();
        assert!(u.rss_bytes > 0);
    }
}
