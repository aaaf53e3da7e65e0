//! `medic bench mttr`: the same fixture under medic, supervisord and monit,
//! one tool at a time, the same probe interval, faults injected from outside.
//!
//! MTTR is measured by the bench: from just before the fault is injected to
//! the first answer of `/healthz` that is `200`, faster than the slow
//! threshold, and from a **new pid** (every fault here is only cleared by a
//! restart: the fixture keeps its faults in memory). `/healthz` is polled by
//! a new request every 10 ms, each bounded by a 250 ms timeout, so a hung
//! request does not hide a recovery. Each trial is bounded by
//! `--trial-timeout`; a trial that does not recover in time counts as not
//! recovered, and the remaining trials of that tool and fault are skipped
//! (a peer that cannot see a fault would only burn the timeout again).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;
use tokio::task::JoinSet;

use super::{fmt_ms, free_port, kill_fixture_pid, median_max, medic_exe, wait_until, Group};

/// A healthy answer must be faster than this (also medic's slow threshold).
pub const SLOW_OVER: Duration = Duration::from_millis(250);
/// Probe timeout of the sensitive medic config.
pub const SENSITIVE_TIMEOUT: Duration = Duration::from_millis(300);
/// Extra latency of the slow fault.
pub const SLOW_FAULT_MS: u64 = 500;
/// monit's default timeout of a start or stop program.
pub const MONIT_DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// The start program's timeout of the tuned monit.
pub const MONIT_TUNED_START_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeout of each recovery poll.
const POLL_TIMEOUT: Duration = Duration::from_millis(250);
/// A new recovery poll is started this often.
const POLL_EVERY: Duration = Duration::from_millis(10);

#[derive(clap::Args, Debug, Clone)]
pub struct MttrArgs {
    /// Trials per tool and fault.
    #[arg(long, default_value_t = 5)]
    pub trials: u32,
    /// Probe interval, the same for every tool (monit: whole seconds, at least 1).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Tools to run (comma-separated): medic (sensitive and defaults),
    /// supervisord and monit (tuned and defaults each; or one of
    /// supervisord-tuned, supervisord-defaults, monit-tuned, monit-defaults).
    #[arg(long, value_delimiter = ',', default_value = "medic,supervisord,monit")]
    pub tools: Vec<String>,
    /// Faults to inject (comma-separated): kill, hang, sigstop, error, slow.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,hang,sigstop,error,slow"
    )]
    pub faults: Vec<String>,
    /// Longest wait for one recovery.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub trial_timeout: Duration,
    /// Keep configs and logs in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Hang,
    Sigstop,
    Error,
    Slow,
}

impl Fault {
    pub fn parse(s: &str) -> anyhow::Result<Fault> {
        Ok(match s.trim() {
            "kill" => Fault::Kill,
            "hang" => Fault::Hang,
            "sigstop" => Fault::Sigstop,
            "error" => Fault::Error,
            "slow" => Fault::Slow,
            other => bail!("unknown fault {other:?} (kill, hang, sigstop, error, slow)"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Hang => "hang",
            Fault::Sigstop => "sigstop",
            Fault::Error => "error",
            Fault::Slow => "slow",
        }
    }
}

/// One tool in one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// medic with `failure.consecutive: 3` (the safe default).
    MedicDefaults,
    /// medic with `failure.consecutive: 1` and a probe timeout just above
    /// the slow threshold ([`SENSITIVE_TIMEOUT`]).
    MedicSensitive,
    /// supervisord as its documentation's example: `autorestart` left at
    /// its default (`unexpected`: a `kill -9` is unexpected), the default
    /// `startsecs` (1 s).
    SupervisordDefaults,
    /// supervisord restarting on any exit as fast as it allows:
    /// `autorestart=true`, `startsecs=0`. No setting of it sees more than
    /// an exit.
    SupervisordTuned,
    /// monit as a user following its manual writes it: start and stop
    /// programs with the default timeouts (30 s), the stop a plain `kill`,
    /// the HTTP check with the default connection timeout (5 s).
    MonitDefaults,
    /// monit at its fastest: start timeout 1 s, stop by `kill -9`, the HTTP
    /// check's timeout one cycle.
    MonitTuned,
}

impl Setup {
    pub fn tool(self) -> &'static str {
        match self {
            Setup::MedicDefaults | Setup::MedicSensitive => "medic",
            Setup::SupervisordDefaults | Setup::SupervisordTuned => "supervisord",
            Setup::MonitDefaults | Setup::MonitTuned => "monit",
        }
    }

    pub fn config(self) -> &'static str {
        match self {
            Setup::MedicDefaults | Setup::SupervisordDefaults | Setup::MonitDefaults => "defaults",
            Setup::MedicSensitive => "sensitive",
            Setup::MonitTuned | Setup::SupervisordTuned => "tuned",
        }
    }

    /// How long after it (re)started the fixture the tool is left alone
    /// before the next fault, so the fault finds it watching as it would
    /// long after a start. monit holds off its tests of a process for the
    /// start program's timeout after starting it (30 s by default: a fault
    /// in that window waits for its end); supervisord and monit tuned
    /// get one cycle to see the new process as up. medic watches a new
    /// process at once (its start phase ends with the first healthy run).
    fn settle(self, interval: Duration) -> Duration {
        let cycle = interval.max(Duration::from_secs(1));
        match self {
            Setup::MedicDefaults | Setup::MedicSensitive => Duration::ZERO,
            Setup::SupervisordDefaults | Setup::SupervisordTuned => cycle,
            Setup::MonitTuned => MONIT_TUNED_START_TIMEOUT + cycle,
            Setup::MonitDefaults => MONIT_DEFAULT_EXEC_TIMEOUT + cycle,
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct MttrResult {
    pub tool: &'static str,
    pub config: &'static str,
    pub fault: &'static str,
    pub trials: u32,
    pub recovered: u32,
    pub median_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

/// The medic config of `setup` (YAML text).
pub fn medic_config(
    setup: Setup,
    exe: &Path,
    port: u16,
    api_port: u16,
    interval: Duration,
) -> String {
    let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
    // The safe defaults are medic's own: 3 failures and the default probe
    // timeout (5 s, at most the interval).
    let (consecutive, timeout) = match setup {
        // The most sensitive: the probe timeout just above the slow
        // threshold. With `latency.consecutive: 1` an answer later than
        // that is a restart anyway, so waiting longer for it only delays
        // the restart of a hung process.
        Setup::MedicSensitive => (
            1,
            format!(", timeout: {}", ms(SENSITIVE_TIMEOUT.min(interval))),
        ),
        _ => (3, String::new()),
    };
    format!(
        r#"# medic bench mttr: {config}
mode: aggressive
listen: 127.0.0.1:{api_port}
# a bench on loopback, read by the bench itself
auth: none
database: medic.db
policy: {{ cooldown: 0s, restart_budget: 100000, budget_window: 1h, max_failed_heals: 100000, verify_window: 10s }}
governance:
  limits: {{ max_actions_per_hour: 100000, max_consecutive_failures: 100 }}
  gates: {{ max_failed_actions_per_hour: 100000, max_incidents_per_hour: 100000 }}
services:
  fixture:
    process:
      command: [{exe}, "fixture", "--port", "{port}"]
      stop_grace: 2s
    startup: {{ grace: 5s }}
    probes:
      alive: {{ process: {{}}, interval: {interval} }}
      healthz:
        http: {{ url: "http://127.0.0.1:{port}/healthz"{timeout} }}
        interval: {interval}
        failure: {{ consecutive: {consecutive} }}
        latency: {{ over: {over}, consecutive: {consecutive} }}
        recovery: {{ consecutive: 1 }}
    actions:
      restart: {{ restart: {{}} }}
    remediate:
      - when: {{ probe: alive, condition: failing }}
        action: restart
      - when: {{ probe: healthz, condition: failing }}
        action: restart
      - when: {{ probe: healthz, condition: slow }}
        action: restart
"#,
        config = setup.config(),
        exe = serde_json::Value::String(exe.display().to_string()),
        interval = ms(interval),
        over = ms(SLOW_OVER),
    )
}

/// supervisord's config: the program with supervisord's defaults (it
/// restarts a process that exits unexpectedly, `kill -9` included, after
/// its main loop notices; `startsecs`, `startretries`, `autorestart` as
/// shipped), only the paths set; `tuned`: restart on any exit, as fast as
/// it allows.
pub fn supervisord_config(exe: &Path, port: u16, dir: &Path, tuned: bool) -> String {
    let tuning = if tuned {
        "autorestart=true\nstartsecs=0\nstartretries=100000\nstopasgroup=true\nkillasgroup=true\nstopwaitsecs=2\n"
    } else {
        ""
    };
    format!(
        "[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\npidfile={d}/supervisord.pid\n\
         childlogdir={d}\n\n\
         [program:fixture]\ncommand={exe} fixture --port {port}\n{tuning}\
         stdout_logfile={d}/fixture.log\nredirect_stderr=true\n",
        d = dir.display(),
        exe = exe.display(),
    )
}

/// monit's control file: the process by pidfile plus an HTTP check of
/// `/healthz` (status < 400 within the timeout) each cycle, restart on
/// failure, at the same cycle as the other tools (`set daemon`).
///
/// - `tuned`: start timeout 1 s (monit's default, 30 s, also holds off
///   its tests of the process while a start may still be going on), stop
///   by `kill -9` (a stopped or hung process dies at once), the check's
///   timeout one cycle: monit's fastest settings.
/// - defaults: as its manual's examples, every timeout left at monit's
///   default (start and stop 30 s, connection 5 s), the stop a plain
///   `kill` (SIGTERM).
pub fn monit_config(exe: &Path, port: u16, dir: &Path, interval: Duration, tuned: bool) -> String {
    let secs = interval.as_secs().max(1);
    let d = dir.display();
    let (start_timeout, stop, check_timeout) = if tuned {
        (
            " with timeout 1 seconds".to_string(),
            format!("kill -CONT $(cat {d}/fixture.pid); kill -9 $(cat {d}/fixture.pid)"),
            format!(" with timeout {secs} seconds"),
        )
    } else {
        (
            String::new(),
            format!("kill $(cat {d}/fixture.pid)"),
            String::new(),
        )
    };
    format!(
        "set daemon {secs}\nset logfile {d}/monit.log\nset pidfile {d}/monit.pid\n\
         set idfile {d}/monit.id\nset statefile {d}/monit.state\n\n\
         check process fixture with pidfile {d}/fixture.pid\n\
         \x20 start program = \"/bin/sh -c '{exe} fixture --port {port} </dev/null >>{d}/fixture.log 2>&1 & echo $! > {d}/fixture.pid'\"{start_timeout}\n\
         \x20 stop program = \"/bin/sh -c '{stop}'\"\n\
         \x20 if failed host 127.0.0.1 port {port} protocol http request \"/healthz\"{check_timeout} then restart\n",
        exe = exe.display(),
    )
}

/// A tool running the fixture.
struct Running {
    group: Group,
    port: u16,
    /// medic's API, for its incidents.
    api: Option<String>,
    /// Every fixture pid seen, killed at the end if still alive.
    seen: BTreeSet<u32>,
    /// medic: incidents its API must list (all closed) before the next
    /// trial, so that the last trial's incident is known to be over.
    min_incidents: usize,
    /// monit writes the pid of the fixture it started here.
    pidfile: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.group.stop(Duration::from_secs(5));
        // A peer may start the fixture outside its own process group.
        for pid in &self.seen {
            kill_fixture_pid(*pid);
        }
        if let Ok(p) = std::fs::read_to_string(&self.pidfile) {
            if let Ok(pid) = p.trim().parse::<u32>() {
                kill_fixture_pid(pid);
            }
        }
    }
}

fn start(setup: Setup, dir: &Path, exe: &Path, interval: Duration) -> anyhow::Result<Running> {
    let port = free_port()?;
    let log = dir.join(format!("{}.out", setup.tool()));
    match setup {
        Setup::MedicDefaults | Setup::MedicSensitive => {
            let api_port = free_port()?;
            let cfg = dir.join("medic.yaml");
            std::fs::write(&cfg, medic_config(setup, exe, port, api_port, interval))?;
            let mut cmd = Command::new(exe);
            cmd.args(["run", "-c"])
                .arg(&cfg)
                .env("MEDIC_LOG", "warn")
                .current_dir(dir);
            Ok(Running {
                group: Group::spawn(cmd, "medic", &log)?,
                port,
                api: Some(format!("http://127.0.0.1:{api_port}")),
                seen: BTreeSet::new(),
                min_incidents: 0,
                pidfile: dir.join("fixture.pid"),
            })
        }
        Setup::SupervisordDefaults | Setup::SupervisordTuned => {
            let bin = which("supervisord")?;
            let cfg = dir.join("supervisord.conf");
            std::fs::write(
                &cfg,
                supervisord_config(exe, port, dir, setup == Setup::SupervisordTuned),
            )?;
            let mut cmd = Command::new(bin);
            cmd.arg("-c").arg(&cfg).current_dir(dir);
            Ok(Running {
                group: Group::spawn(cmd, "supervisord", &log)?,
                port,
                api: None,
                seen: BTreeSet::new(),
                min_incidents: 0,
                pidfile: dir.join("fixture.pid"),
            })
        }
        Setup::MonitDefaults | Setup::MonitTuned => {
            let bin = which("monit")?;
            let cfg = dir.join("monitrc");
            std::fs::write(
                &cfg,
                monit_config(exe, port, dir, interval, setup == Setup::MonitTuned),
            )?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600))?;
            }
            let mut cmd = Command::new(bin);
            cmd.arg("-c").arg(&cfg).arg("-I").current_dir(dir);
            Ok(Running {
                group: Group::spawn(cmd, "monit", &log)?,
                port,
                api: None,
                seen: BTreeSet::new(),
                min_incidents: 0,
                pidfile: dir.join("fixture.pid"),
            })
        }
    }
}

/// The full path of `prog` on PATH, or an error naming the Debian package.
pub fn which(prog: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    for d in path.split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(d).join(prog);
        if p.is_file() {
            return Ok(p);
        }
    }
    let pkg = match prog {
        "supervisord" => "supervisor",
        other => other,
    };
    bail!("`{prog}` not found in PATH ({path}); install the Debian package `{pkg}`")
}

/// One `/healthz` answer: pid and when it arrived, if 200 within the poll timeout.
async fn health(http: &reqwest::Client, port: u16) -> Option<(u32, Instant, Duration)> {
    let t = Instant::now();
    let r = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(POLL_TIMEOUT)
        .send()
        .await
        .ok()?;
    if r.status() != reqwest::StatusCode::OK {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    let pid = u32::try_from(v["pid"].as_u64()?).ok()?;
    Some((pid, Instant::now(), t.elapsed()))
}

/// A healthy, fast answer; for medic also no open incident and at least
/// `min_incidents` listed. Returns the pid and the number of incidents.
async fn baseline(
    http: &reqwest::Client,
    run: &mut Running,
    within: Duration,
) -> anyhow::Result<(u32, usize)> {
    let port = run.port;
    let api = run.api.clone();
    let min_incidents = run.min_incidents;
    let got = wait_until(within, || {
        let api = api.clone();
        async move {
            let (pid, _, lat) = health(http, port).await?;
            if lat >= SLOW_OVER {
                return None;
            }
            if let Some(api) = api {
                let v: serde_json::Value = http
                    .get(format!("{api}/api/v1/incidents"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let list = v["incidents"].as_array()?;
                let open = list.iter().any(|i| i["closed_at"].is_null());
                if open || list.len() < min_incidents {
                    return None;
                }
                return Some((pid, list.len()));
            }
            Some((pid, 0))
        }
    })
    .await;
    match got {
        Some((pid, n)) => {
            run.seen.insert(pid);
            Ok((pid, n))
        }
        None => {
            run.group.check_alive()?;
            bail!(
                "the fixture did not answer healthy within {}s",
                within.as_secs()
            )
        }
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig);
    }
}

async fn post(http: &reqwest::Client, port: u16, path: &str) -> anyhow::Result<()> {
    let r = http
        .post(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    if !r.status().is_success() {
        bail!("POST {path}: {}", r.status());
    }
    Ok(())
}

async fn inject(http: &reqwest::Client, fault: Fault, port: u16, pid: u32) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    match fault {
        Fault::Kill => signal(pid, Signal::SIGKILL),
        Fault::Sigstop => signal(pid, Signal::SIGSTOP),
        Fault::Hang => post(http, port, "/fault/hang").await?,
        Fault::Error => post(http, port, "/fault/error").await?,
        Fault::Slow => post(http, port, &format!("/fault/slow?ms={SLOW_FAULT_MS}")).await?,
    }
    Ok(())
}

/// Undo a fault nobody healed, so the next trial starts healthy.
async fn undo(http: &reqwest::Client, port: u16, pid: u32) {
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let _ = post(http, port, "/fault/clear").await;
}

/// Time from `t0` to the first healthy, fast answer from a pid other than `old`.
async fn recovery(
    http: &reqwest::Client,
    port: u16,
    old: u32,
    t0: Instant,
    timeout: Duration,
    seen: &mut BTreeSet<u32>,
) -> Option<Duration> {
    let mut polls = JoinSet::new();
    let mut tick = tokio::time::interval(POLL_EVERY);
    let found = loop {
        tokio::select! {
            _ = tick.tick() => {
                if t0.elapsed() > timeout {
                    break None;
                }
                let http = http.clone();
                polls.spawn(async move { health(&http, port).await });
            }
            Some(r) = polls.join_next(), if !polls.is_empty() => {
                if let Ok(Some((pid, at, lat))) = r {
                    seen.insert(pid);
                    if pid != old && lat < SLOW_OVER {
                        break Some(at.saturating_duration_since(t0));
                    }
                }
            }
        }
    };
    polls.abort_all();
    found
}

/// Random delays in `0..interval` (xorshift, seeded from the clock: the
/// bench measures the world, it is not a deterministic simulation).
struct Phase(u64);

impl Phase {
    fn seeded() -> Phase {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Phase(t | 1)
    }

    fn next(&mut self, interval: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let ms = u64::try_from(interval.as_millis()).unwrap_or(1000).max(1);
        Duration::from_millis(self.0 % ms)
    }
}

/// Run every selected tool and fault; the results in tool order.
pub async fn run(args: &MttrArgs) -> anyhow::Result<Vec<MttrResult>> {
    let faults = args
        .faults
        .iter()
        .map(|f| Fault::parse(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut setups = Vec::new();
    for t in &args.tools {
        match t.trim() {
            "medic" => setups.extend([Setup::MedicSensitive, Setup::MedicDefaults]),
            "supervisord" => {
                setups.extend([Setup::SupervisordTuned, Setup::SupervisordDefaults]);
            }
            "supervisord-tuned" => setups.push(Setup::SupervisordTuned),
            "supervisord-defaults" => setups.push(Setup::SupervisordDefaults),
            "monit" => setups.extend([Setup::MonitTuned, Setup::MonitDefaults]),
            "monit-tuned" => setups.push(Setup::MonitTuned),
            "monit-defaults" => setups.push(Setup::MonitDefaults),
            other => bail!(
                "unknown tool {other:?} (medic, supervisord = supervisord-tuned,supervisord-defaults, monit = monit-tuned,monit-defaults)"
            ),
        }
    }
    if args.trials == 0 {
        bail!("--trials must be at least 1");
    }
    if args.interval < Duration::from_millis(100) {
        bail!("--interval must be at least 100ms");
    }
    // Peers must exist before anything starts.
    for s in &setups {
        match s {
            Setup::SupervisordDefaults | Setup::SupervisordTuned => {
                which("supervisord")?;
            }
            Setup::MonitDefaults | Setup::MonitTuned => {
                which("monit")?;
            }
            _ => {}
        }
    }
    let exe = medic_exe()?;
    let tmp;
    let root = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("medic-bench-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client")?;
    let mut results = Vec::new();
    for setup in setups {
        let dir = root.join(format!("{}-{}", setup.tool(), setup.config()));
        std::fs::create_dir_all(&dir)?;
        if !args.json {
            eprintln!("mttr: {} ({})", setup.tool(), setup.config());
        }
        let mut run = start(setup, &dir, &exe, args.interval)?;
        let r = run_setup(&http, setup, &mut run, &faults, args).await;
        // Stops the tool and every fixture it started (also when interrupted).
        drop(run);
        results.extend(r?);
    }
    Ok(results)
}

async fn run_setup(
    http: &reqwest::Client,
    setup: Setup,
    run: &mut Running,
    faults: &[Fault],
    args: &MttrArgs,
) -> anyhow::Result<Vec<MttrResult>> {
    let settle = Duration::from_secs(30).max(args.trial_timeout);
    baseline(http, run, settle)
        .await
        .with_context(|| format!("starting the fixture under {}", setup.tool()))?;
    // When the tool last (re)started the fixture (about now: it just
    // started it).
    let mut started = Instant::now();
    let mut out = Vec::new();
    let mut phase = Phase::seeded();
    for &fault in faults {
        let mut times = Vec::new();
        let mut trials = 0;
        for _ in 0..args.trials {
            let (pid, incidents) = baseline(http, run, settle).await.with_context(|| {
                format!(
                    "{} ({}) before a {} trial",
                    setup.tool(),
                    setup.config(),
                    fault.as_str()
                )
            })?;
            trials += 1;
            // A random phase against the tools' probe schedules: a fault
            // right after a healthy check is the worst case, not the usual one.
            let settled = started + setup.settle(args.interval);
            tokio::time::sleep_until(settled.into()).await;
            tokio::time::sleep(phase.next(args.interval)).await;
            let t0 = Instant::now();
            inject(http, fault, run.port, pid).await?;
            let got = recovery(http, run.port, pid, t0, args.trial_timeout, &mut run.seen).await;
            match got {
                Some(d) => {
                    started = t0 + d;
                    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                    if !args.json {
                        eprintln!("  {:<8} {}", fault.as_str(), fmt_ms(ms));
                    }
                    times.push(ms);
                    // The next trial waits for this one's incident to close.
                    run.min_incidents = incidents + 1;
                }
                None => {
                    if !args.json {
                        eprintln!(
                            "  {:<8} not recovered within {}s",
                            fault.as_str(),
                            args.trial_timeout.as_secs()
                        );
                    }
                    undo(http, run.port, pid).await;
                    started = Instant::now();
                    break;
                }
            }
        }
        let recovered = times.len() as u32;
        let mm = median_max(&mut times);
        out.push(MttrResult {
            tool: setup.tool(),
            config: setup.config(),
            fault: fault.as_str(),
            trials,
            recovered,
            median_ms: mm.map(|m| m.0),
            max_ms: mm.map(|m| m.1),
        });
    }
    Ok(out)
}

/// The tables: per fault, each tool's median, max and recovered/trials, then
/// medic's ratio to each peer.
pub fn render(results: &[MttrResult], args: &MttrArgs) -> String {
    let mut s = format!(
        "medic bench mttr: {} trial(s) per tool and fault, probe interval {}, trial timeout {}s\n\
         (MTTR = fault injected -> first healthy /healthz answer from a new pid, measured by the bench)\n\n",
        args.trials,
        humantime::format_duration(args.interval),
        args.trial_timeout.as_secs()
    );
    s.push_str(&format!(
        "{:<8} {:<12} {:<10} {:>9} {:>9} {:>10}\n",
        "FAULT", "TOOL", "CONFIG", "MEDIAN", "MAX", "RECOVERED"
    ));
    let mut faults: Vec<&str> = Vec::new();
    for r in results {
        if !faults.contains(&r.fault) {
            faults.push(r.fault);
        }
    }
    for f in &faults {
        for r in results.iter().filter(|r| r.fault == *f) {
            let (med, max) = match (r.median_ms, r.max_ms) {
                (Some(m), Some(x)) => (fmt_ms(m), fmt_ms(x)),
                _ => ("never".to_string(), "-".to_string()),
            };
            s.push_str(&format!(
                "{:<8} {:<12} {:<10} {:>9} {:>9} {:>10}\n",
                r.fault,
                r.tool,
                r.config,
                med,
                max,
                format!("{}/{}", r.recovered, r.trials)
            ));
        }
    }
    s.push_str("\nmedic's median MTTR as a fraction of each peer's (lower is better)\n");
    for f in &faults {
        for m in results
            .iter()
            .filter(|r| r.fault == *f && r.tool == "medic")
        {
            let mut parts = Vec::new();
            for p in results
                .iter()
                .filter(|r| r.fault == *f && r.tool != "medic")
            {
                let peer = format!("{} {}", p.tool, p.config);
                let txt = match (m.median_ms, p.median_ms) {
                    (Some(a), Some(b)) if b > 0 => {
                        format!("{:.2}x {peer}", a as f64 / b as f64)
                    }
                    (Some(_), None) => format!("{peer} never recovers"),
                    (None, Some(_)) => format!("medic never recovers, {peer} does"),
                    _ => format!("neither recovers ({peer})"),
                };
                parts.push(txt);
            }
            if !parts.is_empty() {
                s.push_str(&format!(
                    "  {:<8} medic {:<10} {}\n",
                    f,
                    m.config,
                    parts.join(", ")
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_medic_configs_are_valid() {
        let dir = tempfile::tempdir().unwrap();
        for setup in [Setup::MedicDefaults, Setup::MedicSensitive] {
            let p = dir.path().join("m.yaml");
            let text = medic_config(
                setup,
                Path::new("/usr/bin/medic"),
                18080,
                19090,
                Duration::from_secs(1),
            );
            std::fs::write(&p, &text).unwrap();
            let cfg = medic_config::load(&p).unwrap();
            let probe = &cfg.services[0].probes;
            assert_eq!(probe.len(), 2, "{text}");
        }
    }

    #[test]
    fn peers_at_their_defaults_leave_every_timeout_to_the_tool() {
        let exe = Path::new("/usr/bin/medic");
        let dir = Path::new("/tmp/x");
        let i = Duration::from_secs(1);
        let defaults = monit_config(exe, 18080, dir, i, false);
        assert!(!defaults.contains("timeout"), "{defaults}");
        assert!(
            defaults.contains("stop program = \"/bin/sh -c 'kill $(cat"),
            "{defaults}"
        );
        assert!(!defaults.contains("kill -9"), "{defaults}");
        let tuned = monit_config(exe, 18080, dir, i, true);
        assert!(tuned.contains("with timeout 1 seconds"), "{tuned}");
        assert!(tuned.contains("kill -9"), "{tuned}");
        let sd = supervisord_config(exe, 18080, dir, false);
        assert!(
            !sd.contains("autorestart") && !sd.contains("startsecs"),
            "{sd}"
        );
        let st = supervisord_config(exe, 18080, dir, true);
        assert!(
            st.contains("autorestart=true") && st.contains("startsecs=0"),
            "{st}"
        );
        assert_eq!(Setup::MonitDefaults.settle(i), Duration::from_secs(31));
        assert_eq!(Setup::MedicSensitive.settle(i), Duration::ZERO);
    }

    #[test]
    fn ratios_say_never_for_a_peer_that_cannot_recover() {
        let r = |tool, config, median: Option<u64>| MttrResult {
            tool,
            config,
            fault: "error",
            trials: 1,
            recovered: u32::from(median.is_some()),
            median_ms: median,
            max_ms: median,
        };
        let args = MttrArgs {
            trials: 1,
            interval: Duration::from_secs(1),
            json: false,
            tools: vec![],
            faults: vec![],
            trial_timeout: Duration::from_secs(30),
            dir: None,
        };
        let out = render(
            &[
                r("medic", "sensitive", Some(500)),
                r("supervisord", "defaults", None),
                r("monit", "tuned", Some(2000)),
                r("monit", "defaults", Some(10000)),
            ],
            &args,
        );
        assert!(out.contains("supervisord defaults never recovers"), "{out}");
        assert!(
            out.contains("0.25x monit tuned, 0.05x monit defaults"),
            "{out}"
        );
        assert!(out.contains("never"), "{out}");
    }
}
