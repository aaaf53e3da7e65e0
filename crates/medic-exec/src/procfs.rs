//! The few facts medic reads from `/proc` about a process: state, process
//! group and start time (to tell a live process from a reused pid), plus the
//! boot id (start times are only comparable within one boot).
use std::path::Path;

/// Fields of `/proc/<pid>/stat` medic cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// Field 3: `R`, `S`, `D`, `T` (stopped), `t` (traced), `Z` (zombie), `X`, ...
    pub state: char,
    /// Field 5.
    pub pgrp: u32,
    /// Field 22: start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Exited but not reaped yet (or being reaped): not running any more.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Stopped by a signal (SIGSTOP, SIGTSTP, ...) or by a tracer.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// Parse the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let pid = text[..open].trim().parse().ok()?;
    let close = text.rfind(')')?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3.
    let field = |n: usize| rest.get(n - 3).copied();
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat`, or `None` when there is no such process.
pub fn stat(pid: u32) -> Option<ProcStat> {
    read_stat(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

fn read_stat(path: &Path) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether signal number `signo` (1..=64) is ignored by this process: the
/// `SigIgn` mask of `/proc/self/status`. `None` when it cannot be read.
pub fn signal_ignored(signo: u32) -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_sig_ign(&status, signo)
}

/// The `SigIgn:` line of a `/proc/PID/status` text: is `signo` set in it?
pub fn parse_sig_ign(status: &str, signo: u32) -> Option<bool> {
    if !(1..=64).contains(&signo) {
        return None;
    }
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some((mask >> (signo - 1)) & 1 == 1)
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| read_stat(&e.path().join("stat")))
        .filter(|s| s.pgrp == pgid && !s.is_dead())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sig_ign_mask_bits_are_signal_numbers_minus_one() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\nSigCgt:\t0\n";
        assert_eq!(parse_sig_ign(status, 1), Some(true)); // SIGHUP
        assert_eq!(parse_sig_ign(status, 2), Some(false));
        assert_eq!(parse_sig_ign(status, 13), Some(true)); // SIGPIPE
        assert_eq!(parse_sig_ign(status, 0), None);
        assert_eq!(parse_sig_ign("SigIgn:\tzz\n", 1), None);
        assert_eq!(parse_sig_ign("Name: x\n", 1), None);
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let text = "4242 (odd ) name (x)) T 1 4240 4240 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 2 0 987654 1000 10 0";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                state: 'T',
                pgrp: 4240,
                start_ticks: 987_654
            }
        );
        assert!(s.is_stopped() && !s.is_dead());
        assert_eq!(parse_stat("12 (truncated) S 1"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = stat(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw() as u32);
        assert!(me.start_ticks > 0);
        assert!(!me.is_dead() && !me.is_stopped());
        assert!(boot_id().is_some_and(|b| b.len() >= 32));
    }
}
