//! `medic bench failover` (issue 13): three `medic run` instances with `ha:`
//! on one etcd (the Debian binary on loopback, started here) and one shared
//! store, the fixture as the service; the leader is disturbed in the middle
//! of an action and the bench counts what happened.
//!
//! The action (`heal`, an exec) appends `<action id> <fencing token> start`
//! to `actions.log`, sleeps 1 s, clears the fixture's fault, then appends
//! `... done`. One action clears the fault, so:
//! - **duplicate**: more than one `start` line in a trial (an action run
//!   twice, or re-run by the new leader);
//! - **lost**: no action started, the first one never finished, the service
//!   not healthy with no open incident within 60 s, or an `action.intent`
//!   in the shared audit log with neither `action.outcome` nor
//!   `action.reconciled`;
//! - **takeover**: from the kill to the first other member whose `/readyz`
//!   says it acts, with a newer token.
//!
//! Scenarios: `kill` (SIGKILL the leader as soon as its action started, then
//! start it again; `--trials` times) and `pause` (the first leader stops
//! itself with SIGSTOP between its gate and its executor call, the others
//! take over and heal, then it is continued: with fencing it must refuse
//! the stale action and step down; `--unsafe-no-fence` shows the bug: the
//! stale leader calls its executor (`stale_executor_calls`), and whether the
//! action's first effect lands before the step-down aborts it
//! (`stale_actions`) is a race).
//! `partition` runs the first leader in a network namespace of its own
//! (`ip netns`, a veth pair; needs root) and cuts it from etcd with iptables
//! inside the namespace (it still reaches the service and the store): it
//! must stop acting, the majority side elects a leader that heals, and after
//! healing there is one leader and no duplicate action.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use medic_ha::local::LocalEtcd;
use tokio::process::{Child, Command};

use crate::bench::heal_trial::{
    medic_run, signal, terminate, unmatched_intents, wait_true, work_dir,
};
use crate::bench::{free_port, medic_exe};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Kill,
    Pause,
    Partition,
}

/// The shared store of the members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// Postgres for `kill` and `pause`, SQLite for `partition` (the
    /// namespaced member cannot reach a loopback server).
    Auto,
    /// A Postgres server of the bench's own (Debian's binaries, loopback).
    Postgres,
    /// One SQLite file shared by the members (one host).
    Sqlite,
}

#[derive(clap::Args, Debug)]
pub struct BenchFailoverArgs {
    /// Number of leader kills (scenario `kill`).
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// `ha.lease_ttl` of the members.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub lease_ttl: Duration,
    #[arg(long, value_enum, default_value = "kill")]
    pub scenario: Scenario,
    /// Run the members with `MEDIC_HA_UNSAFE_NO_FENCE=1` (the deliberate bug).
    #[arg(long)]
    pub unsafe_no_fence: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Keep everything under DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The shared store.
    #[arg(long, value_enum, default_value = "auto")]
    pub store: StoreKind,
    /// Use this Postgres database (`postgres://…`) as the shared store
    /// instead of starting one (scenarios kill and pause).
    #[arg(long)]
    pub store_url: Option<String>,
}

const MEMBERS: usize = 3;

struct Member {
    name: String,
    dir: PathBuf,
    /// The address it listens on (and is reached at).
    host: String,
    /// The address it reaches etcd and the fixture at.
    upstream: String,
    /// The network namespace it runs in (scenario `partition`).
    ns: Option<String>,
    port: u16,
    child: Option<Child>,
}

/// A network namespace joined to the host by a veth pair (10.213.N.1 on the
/// host, 10.213.N.2 inside); deleted (with the pair) when dropped.
struct NetNs {
    name: String,
    host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetNs {
    fn create() -> anyhow::Result<NetNs> {
        let n = std::process::id() % 250 + 1;
        let name = format!("medic-ha-{}", std::process::id());
        let (h, p) = (format!("mha{n}h"), format!("mha{n}n"));
        let host_ip = format!("10.213.{n}.1");
        let ns_ip = format!("10.213.{n}.2");
        ip(&["netns", "add", &name])?;
        let ns = NetNs {
            name,
            host_ip,
            ns_ip,
        };
        ip(&["link", "add", &h, "type", "veth", "peer", "name", &p])?;
        ip(&["link", "set", &p, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{}/30", ns.host_ip), "dev", &h])?;
        ip(&["link", "set", &h, "up"])?;
        let exec = |a: &[&str]| {
            let mut v = vec!["netns", "exec", ns.name.as_str()];
            v.extend_from_slice(a);
            ip(&v)
        };
        exec(&["ip", "addr", "add", &format!("{}/30", ns.ns_ip), "dev", &p])?;
        exec(&["ip", "link", "set", &p, "up"])?;
        exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Cut (or heal) this namespace's traffic to etcd's client port, both
    /// ways, with iptables inside the namespace.
    fn cut_etcd(&self, port: u16, cut: bool) -> anyhow::Result<()> {
        let op = if cut { "-A" } else { "-D" };
        let port = port.to_string();
        for (chain, dir) in [("OUTPUT", "--dport"), ("INPUT", "--sport")] {
            let out = std::process::Command::new("ip")
                .args([
                    "netns", "exec", &self.name, "iptables", op, chain, "-p", "tcp",
                ])
                .args([dir, &port, "-j", "DROP"])
                .output()
                .context("running iptables")?;
            if !out.status.success() {
                bail!(
                    "iptables {op} {chain}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

struct Cluster {
    exe: PathBuf,
    base: PathBuf,
    etcd: LocalEtcd,
    fixture: Child,
    fport: u16,
    members: Vec<Member>,
    ttl: Duration,
    no_fence: bool,
    http: reqwest::Client,
    net: Option<NetNs>,
    store_url: Option<String>,
}

fn config(c: &Cluster, m: &Member) -> String {
    let log = c.base.join("actions.log");
    let script = format!(
        "echo \"$MEDIC_ACTION_ID $MEDIC_FENCE_TOKEN start\" >> '{log}'; sleep 1; \
         exec 3<>/dev/tcp/{up}/{fport}; \
         printf 'POST /fault/clear HTTP/1.0\\r\\nContent-Length: 0\\r\\n\\r\\n' >&3; \
         cat <&3 >/dev/null; echo \"$MEDIC_ACTION_ID $MEDIC_FENCE_TOKEN done\" >> '{log}'",
        log = log.display(),
        fport = c.fport,
        up = m.upstream,
    );
    let command = serde_json::to_string(&["bash", "-c", &script]).unwrap_or_default();
    format!(
        r#"mode: aggressive
auth: none
listen: {host}:{port}
{store}
policy: {{ cooldown: 1s, verify_window: 3s }}
# One incident and one action per trial: the bench's own rates, not a storm.
governance:
  limits: {{ max_actions_per_hour: 100000, max_consecutive_failures: 100 }}
  gates: {{ max_failed_actions_per_hour: 100000, max_incidents_per_hour: 100000 }}
ha:
  etcd: ['http://{up}:{etcd}']
  member: {name}
  lease_ttl: {ttl}ms
  fence_file: {fence}
services:
  web:
    probes:
      healthz:
        http: {{ url: "http://{up}:{fport}/healthz", timeout: 500ms }}
        interval: 200ms
        failure: {{ consecutive: 2 }}
        recovery: {{ consecutive: 2 }}
    actions:
      heal:
        exec: {{ command: {command}, timeout: 20s }}
        risk: low
    remediate:
      - when: {{ probe: healthz }}
        action: heal
"#,
        port = m.port,
        host = m.host,
        up = m.upstream,
        store = match &c.store_url {
            Some(u) => format!("store: {{ url: '{u}' }}"),
            None => format!(
                "database: {}",
                c.base.join("shared").join("medic.db").display()
            ),
        },
        fence = c.base.join("shared").join("fence.token").display(),
        etcd = c.etcd.port(),
        name = m.name,
        ttl = c.ttl.as_millis(),
        fport = c.fport,
    )
}

impl Cluster {
    async fn start(
        exe: &Path,
        base: &Path,
        ttl: Duration,
        no_fence: bool,
        net: Option<NetNs>,
        store_url: Option<String>,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(base.join("shared"))?;
        let extra: Vec<String> = net.iter().map(|n| n.host_ip.clone()).collect();
        let etcd = LocalEtcd::start_on(base, &extra).context("starting etcd")?;
        let fport = free_port()?;
        // A member in a namespace reaches the fixture over the veth.
        let bind = if net.is_some() {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        let fixture = Command::new(exe)
            .args(["fixture", "--port", &fport.to_string(), "--bind", bind])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the fixture")?;
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let name = format!("m{i}");
            let dir = base.join(&name);
            std::fs::create_dir_all(&dir)?;
            let (host, upstream, ns) = match (&net, i) {
                (Some(n), 0) => (n.ns_ip.clone(), n.host_ip.clone(), Some(n.name.clone())),
                _ => ("127.0.0.1".to_string(), "127.0.0.1".to_string(), None),
            };
            members.push(Member {
                name,
                dir,
                host,
                upstream,
                ns,
                port: free_port()?,
                child: None,
            });
        }
        let c = Cluster {
            exe: exe.to_path_buf(),
            base: base.to_path_buf(),
            etcd,
            fixture,
            fport,
            members,
            ttl,
            no_fence,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("building an HTTP client")?,
            net,
            store_url,
        };
        for m in &c.members {
            std::fs::write(m.dir.join("medic.yaml"), config(&c, m))?;
        }
        if !wait_true(Duration::from_secs(20), || async { c.healthy().await }).await {
            bail!("the fixture never answered");
        }
        Ok(c)
    }

    fn spawn(&mut self, i: usize, stop_at: Option<&str>) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let program = match &m.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        let mut cmd = medic_run(program, &m.dir)?;
        cmd.env_remove(crate::ha::STOP_AT)
            .env_remove(crate::ha::UNSAFE_NO_FENCE);
        if let Some(p) = stop_at {
            cmd.env(crate::ha::STOP_AT, p);
        }
        if self.no_fence {
            cmd.env(crate::ha::UNSAFE_NO_FENCE, "1");
        }
        m.child = Some(cmd.spawn().context("starting medic")?);
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<i32> {
        self.members[i]
            .child
            .as_ref()
            .and_then(Child::id)
            .and_then(|p| i32::try_from(p).ok())
    }

    /// GET `/readyz` of member `i` (500 ms timeout): any HTTP answer.
    async fn readyz(&self, i: usize) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(format!(
                "http://{}:{}/readyz",
                self.members[i].host, self.members[i].port
            ))
            .timeout(Duration::from_millis(500))
            .send()
            .await
    }

    /// `/readyz` of member `i`: `Some(token)` when it acts, `None` otherwise
    /// (follower, stopped, dead).
    async fn acting(&self, i: usize) -> Option<u64> {
        let r = self.readyz(i).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json::<serde_json::Value>().await.ok()?["token"].as_u64()
    }

    /// Member `i` answers `/readyz` at all (200 or 503).
    async fn answers(&self, i: usize) -> bool {
        self.readyz(i).await.is_ok()
    }

    async fn leader(&self, skip: Option<usize>, newer_than: u64) -> Option<(usize, u64)> {
        for i in 0..self.members.len() {
            if Some(i) == skip {
                continue;
            }
            if let Some(t) = self.acting(i).await {
                if t > newer_than {
                    return Some((i, t));
                }
            }
        }
        None
    }

    async fn leaders(&self) -> usize {
        let mut n = 0;
        for i in 0..self.members.len() {
            if self.acting(i).await.is_some() {
                n += 1;
            }
        }
        n
    }

    async fn healthy(&self) -> bool {
        self.http
            .get(format!("http://127.0.0.1:{}/healthz", self.fport))
            .timeout(Duration::from_millis(800))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    async fn fault(&self) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}/fault/error", self.fport))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .context("setting the error fault")?;
        if !r.status().is_success() {
            bail!("the fixture refused the error fault: {}", r.status());
        }
        Ok(())
    }

    /// Healthy, and the leader `i` has no open incident.
    async fn settled(&self, i: usize) -> bool {
        if !self.healthy().await {
            return false;
        }
        let Ok(r) = self
            .http
            .get(format!(
                "http://{}:{}/api/v1/incidents",
                self.members[i].host, self.members[i].port
            ))
            .timeout(Duration::from_millis(800))
            .send()
            .await
        else {
            return false;
        };
        let Ok(v) = r.json::<serde_json::Value>().await else {
            return false;
        };
        v["incidents"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|i| !i["closed_at"].is_null()))
    }

    fn actions(&self) -> Vec<(String, u64, bool)> {
        std::fs::read_to_string(self.base.join("actions.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let id = w.next()?.to_string();
                let token = w.next()?.parse().ok()?;
                let start = w.next()? == "start";
                Some((id, token, start))
            })
            .collect()
    }

    /// The members' shared store.
    fn store_target(&self) -> medic_store::StoreTarget {
        match &self.store_url {
            Some(u) => medic_store::StoreTarget::Postgres(u.clone()),
            None => medic_store::StoreTarget::Sqlite(self.base.join("shared").join("medic.db")),
        }
    }

    fn store_kind(&self) -> &'static str {
        if self.store_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    async fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                signal(c.id(), nix::sys::signal::Signal::SIGCONT);
                terminate(&mut c, Duration::from_secs(10)).await;
            }
        }
        let _ = self.fixture.kill().await;
    }
}

#[derive(Debug)]
struct Trial {
    takeover_ms: u64,
    duplicate: bool,
    lost: bool,
    why: String,
}

pub async fn run(args: &BenchFailoverArgs) -> anyhow::Result<bool> {
    let exe = medic_exe()?;
    let (base, _tmp) = work_dir(args.dir.as_deref())?;
    let net =
        match args.scenario {
            Scenario::Partition => Some(NetNs::create().context(
                "creating a network namespace with a veth pair (needs root and iproute2)",
            )?),
            _ => None,
        };
    let postgres = match (args.store, args.scenario) {
        _ if args.store_url.is_some() => false,
        (StoreKind::Auto, Scenario::Partition) | (StoreKind::Sqlite, _) => false,
        (StoreKind::Postgres, Scenario::Partition) => {
            bail!("--store postgres: the partition scenario runs on a shared SQLite file")
        }
        (StoreKind::Auto | StoreKind::Postgres, _) => true,
    };
    if args.store_url.is_some() && args.scenario == Scenario::Partition {
        bail!("--store-url: the partition scenario runs on a shared SQLite file");
    }
    // As root, Postgres runs as the `postgres` user: it must traverse `base`.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("making {} traversable", base.display()))?;
    }
    let pg = if postgres {
        Some(
            crate::pg_server::PgServer::start(&base.join("postgres"))
                .await
                .context("starting Postgres (Debian package postgresql)")?,
        )
    } else {
        None
    };
    let store_url = args
        .store_url
        .clone()
        .or_else(|| pg.as_ref().map(crate::pg_server::PgServer::url));
    let mut c = Cluster::start(
        &exe,
        &base,
        args.lease_ttl,
        args.unsafe_no_fence,
        net,
        store_url,
    )
    .await?;
    let r = match args.scenario {
        Scenario::Kill => kill_trials(&mut c, args).await,
        Scenario::Pause => pause(&mut c, args).await,
        Scenario::Partition => partition(&mut c, args).await,
    };
    c.stop_all().await;
    drop(pg);
    r
}

async fn kill_trials(c: &mut Cluster, args: &BenchFailoverArgs) -> anyhow::Result<bool> {
    for i in 0..MEMBERS {
        c.spawn(i, None)?;
    }
    let mut results = Vec::new();
    for n in 0..args.trials {
        let Some((leader, t0)) = wait_leader(c, None, 0, Duration::from_secs(30)).await else {
            bail!("trial {n}: no leader within 30s");
        };
        // Every member up (the one killed last trial restarted), past its
        // start phase.
        for i in 0..MEMBERS {
            if !wait_true(Duration::from_secs(30), || async { c.answers(i).await }).await {
                bail!("trial {n}: member m{i} does not answer");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = c.actions().len();
        c.fault().await?;
        if !wait_true(Duration::from_secs(30), || async {
            c.actions().len() > before
        })
        .await
        {
            bail!("trial {n}: the leader m{leader} started no action within 30s");
        }
        let killed = Instant::now();
        if let Some(mut child) = c.members[leader].child.take() {
            let _ = child.kill().await;
        }
        let Some((_, t1)) = wait_leader(c, Some(leader), t0, Duration::from_secs(30)).await else {
            bail!("trial {n}: no new leader within 30s of the kill");
        };
        let takeover_ms = u64::try_from(killed.elapsed().as_millis()).unwrap_or(u64::MAX);
        let new_leader = c.leader(None, 0).await.map_or(leader, |(i, _)| i);
        let settled = wait_true(Duration::from_secs(60), || async {
            c.settled(new_leader).await
        })
        .await;
        // A moment more: a duplicate would show up now.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let lines: Vec<_> = c.actions().into_iter().skip(before).collect();
        let starts: Vec<_> = lines.iter().filter(|l| l.2).collect();
        let first_done = starts
            .first()
            .is_some_and(|s| lines.iter().any(|l| !l.2 && l.0 == s.0));
        let unmatched = unmatched_intents(&c.store_target()).await?;
        let audit = verify(c).await;
        let mut why = Vec::new();
        if !settled {
            why.push("not settled (healthy, no open incident) within 60s".to_string());
        }
        if !first_done {
            why.push("the first action never finished".into());
        }
        if !unmatched.is_empty() {
            why.push(format!(
                "intents without outcome or reconciliation: {unmatched:?}"
            ));
        }
        if let Err(e) = &audit {
            why.push(format!("audit chain: {e}"));
        }
        let t = Trial {
            takeover_ms,
            duplicate: starts.len() > 1,
            lost: starts.is_empty() || !first_done || !settled || !unmatched.is_empty(),
            why: why.join("; "),
        };
        if !args.json {
            println!(
                "trial {n:>3} killed m{leader} (token {t0}) takeover {:>5} ms, token {t1}, actions {} {}{}{}",
                t.takeover_ms,
                starts.len(),
                if t.duplicate { "DUPLICATE " } else { "" },
                if t.lost { "LOST " } else { "" },
                t.why
            );
        }
        if audit.is_err() {
            results.push(t);
            break;
        }
        results.push(t);
        c.spawn(leader, None)?;
    }
    let mut times: Vec<u64> = results.iter().map(|t| t.takeover_ms).collect();
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or(0);
    let max = times.last().copied().unwrap_or(0);
    let duplicate = results.iter().filter(|t| t.duplicate).count();
    let lost = results.iter().filter(|t| t.lost).count();
    let audit_valid = verify(c).await.is_ok();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "trials": results.len(),
                "takeover_ms": {"median": median, "max": max},
                "duplicate": duplicate,
                "lost": lost,
                "audit_valid": audit_valid,
                "lease_ttl_ms": u64::try_from(args.lease_ttl.as_millis()).unwrap_or(u64::MAX),
                "store": c.store_kind(),
            })
        );
    } else {
        println!(
            "{} trials (lease_ttl {}, {} store): takeover median {median} ms, max {max} ms; {duplicate} duplicate, {lost} lost; audit chain {}",
            results.len(),
            humantime::format_duration(args.lease_ttl),
            c.store_kind(),
            if audit_valid { "valid" } else { "BROKEN" }
        );
    }
    Ok(duplicate == 0 && lost == 0 && audit_valid && results.len() == args.trials as usize)
}

async fn wait_leader(
    c: &Cluster,
    skip: Option<usize>,
    newer_than: u64,
    within: Duration,
) -> Option<(usize, u64)> {
    crate::bench::wait_until(within, || c.leader(skip, newer_than)).await
}

fn stopped(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

async fn pause(c: &mut Cluster, args: &BenchFailoverArgs) -> anyhow::Result<bool> {
    // m0 leads first and will stop itself between its gate and its action.
    c.spawn(0, Some("before_execute"))?;
    let Some((_, t0)) = wait_leader(c, None, 0, Duration::from_secs(30)).await else {
        bail!("m0 did not lead within 30s");
    };
    for i in 1..MEMBERS {
        c.spawn(i, None)?;
        if !wait_true(Duration::from_secs(30), || async { c.answers(i).await }).await {
            bail!("member m{i} does not answer");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.fault().await?;
    let pid0 = c.pid(0).context("m0 has no pid")?;
    if !wait_true(Duration::from_secs(30), || async { stopped(pid0) }).await {
        bail!("m0 did not reach its action (stop point) within 30s");
    }
    let paused = Instant::now();
    let Some((l1, t1)) = wait_leader(c, Some(0), t0, Duration::from_secs(30)).await else {
        bail!("no member took over from the paused leader within 30s");
    };
    let takeover_ms = u64::try_from(paused.elapsed().as_millis()).unwrap_or(u64::MAX);
    let settled = wait_true(Duration::from_secs(60), || async { c.settled(l1).await }).await;
    // The stale leader resumes where it stopped: right before its executor.
    signal(u32::try_from(pid0).ok(), nix::sys::signal::Signal::SIGCONT);
    tokio::time::sleep(Duration::from_secs(3) + c.ttl).await;
    let lines = c.actions();
    let stale: Vec<_> = lines.iter().filter(|l| l.2 && l.1 == t0).collect();
    let stepped_down = c.answers(0).await && c.acting(0).await.is_none();
    let log0 = std::fs::read_to_string(c.members[0].dir.join("medic.stderr")).unwrap_or_default();
    let fenced_off = log0.contains("fenced off");
    // m0 reached no executor before its pause (the stop point is before its
    // first one): every executor call it logs is a stale leader's.
    let stale_calls = log0
        .lines()
        .filter(|l| l.contains("running action"))
        .count();
    let leaders = c.leaders().await;
    let unmatched = unmatched_intents(&c.store_target()).await?;
    let audit_valid = verify(c).await.is_ok();
    let starts_new = lines.iter().filter(|l| l.2 && l.1 == t1).count();
    let v = serde_json::json!({
        "scenario": "pause",
        "store": c.store_kind(),
        "unsafe_no_fence": args.unsafe_no_fence,
        "stale_token": t0,
        "new_token": t1,
        "takeover_ms": takeover_ms,
        "settled": settled,
        "stale_executor_calls": stale_calls,
        "stale_actions": stale.len(),
        "new_leader_actions": starts_new,
        "fenced_off": fenced_off,
        "stepped_down": stepped_down,
        "leaders": leaders,
        "unmatched_intents": unmatched.len(),
        "audit_valid": audit_valid,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(stale.is_empty()
        && stale_calls == 0
        && stepped_down
        && fenced_off
        && leaders == 1
        && settled
        && unmatched.is_empty()
        && audit_valid)
}

/// `/readyz`'s `reason_code` of member `i` when it does not act.
async fn not_acting_reason(c: &Cluster, i: usize) -> Option<String> {
    let r = c.readyz(i).await.ok()?;
    let v = r.json::<serde_json::Value>().await.ok()?;
    v["error"]["reason_code"].as_str().map(str::to_string)
}

async fn partition(c: &mut Cluster, args: &BenchFailoverArgs) -> anyhow::Result<bool> {
    // m0, in its own network namespace, leads first.
    c.spawn(0, None)?;
    let Some((_, t0)) = wait_leader(c, None, 0, Duration::from_secs(30)).await else {
        bail!("m0 (in the namespace) did not lead within 30s");
    };
    for i in 1..MEMBERS {
        c.spawn(i, None)?;
        if !wait_true(Duration::from_secs(30), || async { c.answers(i).await }).await {
            bail!("member m{i} does not answer");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let net = c.net.as_ref().context("no namespace")?;
    net.cut_etcd(c.etcd.port(), true)?;
    let cut = Instant::now();
    // The majority side elects a new leader once m0's lease expires.
    let Some((l1, t1)) = wait_leader(c, Some(0), t0, Duration::from_secs(30)).await else {
        bail!("no leader on the majority side within 30s of the cut");
    };
    let takeover_ms = u64::try_from(cut.elapsed().as_millis()).unwrap_or(u64::MAX);
    // The cut-off leader still reaches the service and the store, not etcd:
    // it must not act. A fault now is for the new leader alone.
    let m0_acting_during = c.acting(0).await.is_some();
    let m0_reason = not_acting_reason(c, 0).await;
    let before = c.actions().len();
    c.fault().await?;
    let settled = wait_true(Duration::from_secs(60), || async { c.settled(l1).await }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m0_acting_late = c.acting(0).await.is_some();
    // Heal the partition.
    c.net
        .as_ref()
        .context("no namespace")?
        .cut_etcd(c.etcd.port(), false)?;
    tokio::time::sleep(c.ttl * 2 + Duration::from_secs(1)).await;
    let leaders = c.leaders().await;
    let lines: Vec<_> = c.actions().into_iter().skip(before).collect();
    let starts: Vec<_> = lines.iter().filter(|l| l.2).collect();
    let cut_off_actions = starts.iter().filter(|l| l.1 == t0).count();
    let by_new = starts.iter().filter(|l| l.1 == t1).count();
    let unmatched = unmatched_intents(&c.store_target()).await?;
    let audit_valid = verify(c).await.is_ok();
    let v = serde_json::json!({
        "scenario": "partition",
        "cut_off_token": t0,
        "new_token": t1,
        "takeover_ms": takeover_ms,
        "cut_off_acting": m0_acting_during || m0_acting_late,
        "cut_off_reason": m0_reason,
        "cut_off_actions": cut_off_actions,
        "new_leader_actions": by_new,
        "duplicate": starts.len().saturating_sub(1),
        "settled": settled,
        "leaders_after_heal": leaders,
        "unmatched_intents": unmatched.len(),
        "audit_valid": audit_valid,
    });
    if args.json {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(!(m0_acting_during || m0_acting_late)
        && cut_off_actions == 0
        && by_new == 1
        && starts.len() == 1
        && settled
        && leaders == 1
        && unmatched.is_empty()
        && audit_valid)
}

/// The shared store's audit chain verifies: `Err` says why not (it could
/// not be read, or the first bad record).
async fn verify(c: &Cluster) -> Result<(), String> {
    let report = medic_store::verify_audit_target(&c.store_target())
        .await
        .map_err(|e| e.to_string())?;
    match report.first_bad {
        None => Ok(()),
        Some(bad) => Err(format!("broken at seq {}: {}", bad.seq, bad.reason)),
    }
}
