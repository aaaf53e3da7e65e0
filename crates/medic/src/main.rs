//! medic: a self-healing engine for running services.
#![forbid(unsafe_code)]

mod ai;
mod bench;
mod bench_api;
mod bench_canary;
mod bench_failover;
mod bench_recovery;
mod bench_store;
mod canary;
mod change;
mod client;
mod cluster;
mod codes;
mod daemon;
mod demo;
mod drill;
mod graph;
mod ha;
mod healthcheck;
mod init;
mod lifecycle;
mod notify;
mod notify_cli;
mod ops;
mod pg_server;
mod probes;
mod rca;
mod rca_scenario;
mod token;
mod trace;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use codes::{CliError, Code};
use medic_core::Mode;

#[derive(Parser)]
#[command(
    name = "medic",
    version,
    about = "A self-healing engine for running services"
)]
struct Cli {
    /// Log format on stderr: `text`, or `json` (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Same as `--log-format json` (kept for existing scripts).
    #[arg(long, global = true, hide = true)]
    log_json: bool,
    /// Base URL of a running medic's API (incidents, mode and operator commands).
    #[arg(
        long,
        global = true,
        env = "MEDIC_API",
        default_value = "http://127.0.0.1:9090"
    )]
    api: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Members (last renewal, lag), the leader and its fencing token, from etcd.
    Status {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Force-release a distributed lock (SCOPE/NAME, e.g. service/web) in etcd.
    Unlock {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// The lock: system|service|incident|deployment / name.
        lock: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon: supervise, probe, heal (dry-run unless told otherwise).
    Run {
        /// Config file.
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// Mode (overrides MEDIC_MODE and the config file).
        #[arg(long)]
        mode: Option<String>,
        /// Database file (overrides the config).
        #[arg(long)]
        db: Option<PathBuf>,
        /// API listen address (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// A high-availability cluster (`ha:`): members, leader, fencing token.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Validate a config file without side effects.
    Check {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
    },
    /// Write a commented starting config (the fixture example, or your service).
    Init {
        /// Where to write it.
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// Name of your service (with --url).
        #[arg(long, requires = "url")]
        service: Option<String>,
        /// Its health URL, probed over HTTP (with --service).
        #[arg(long, requires = "service")]
        url: Option<String>,
        /// Let medic start and supervise the service: its command line, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Show the `depends_on` graph of a config file (text, or Graphviz DOT with --dot).
    Graph {
        #[arg(short, long, default_value = "medic.yaml")]
        config: PathBuf,
        /// Print Graphviz DOT.
        #[arg(long)]
        dot: bool,
    },
    /// The failure-pattern library: shipped patterns plus the config's `patterns:` files.
    Patterns {
        #[command(subcommand)]
        cmd: PatternsCmd,
    },
    /// Run the self-contained demo: a supervised fixture, faults injected one after another.
    Demo {
        /// Keep everything in DIR (database at DIR/medic.db) instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// GET http://127.0.0.1:PORT/PATH once; exit 0 on a 2xx answer within
    /// the timeout, 1 otherwise (a container HEALTHCHECK needing no shell).
    Healthcheck {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "/healthz")]
        path: String,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
        timeout: std::time::Duration,
    },
    /// Run the fault-injectable fixture service used by the demo and tests.
    Fixture {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Exit at once with code 1 (a crash loop under supervision).
        #[arg(long)]
        crash_on_start: bool,
        /// Wait this long (e.g. 5s, 800ms) before binding and answering /healthz.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        startup_delay: std::time::Duration,
        /// Base URL of a service this one calls from `/work` (a chain of fixtures).
        #[arg(long)]
        downstream: Option<String>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// List incidents from a running medic.
    Incidents {
        /// Show one incident with its timeline.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change the mode of a running medic (globally or for one service).
    Mode {
        /// disabled | dry-run | conservative | aggressive
        mode: String,
        #[arg(long)]
        service: Option<String>,
    },
    /// Evaluations.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Operator controls of a running medic (all audited with who issued them).
    #[command(flatten)]
    Op(ops::OpCmd),
    /// Deterministic simulation of the engine under random faults and operator commands.
    Sim(medic_sim::cli::SimArgs),
    /// Replay recorded metrics (CSV files or Prometheus) through a config's signal rules,
    /// detectors and engine in dry-run: what it would have done.
    Backtest(medic_backtest::cli::BacktestArgs),
    /// API tokens: create (printed once), list, revoke.
    Token {
        #[command(subcommand)]
        cmd: token::TokenCmd,
    },
    /// Chaos drills: inject a declared fault, watch medic heal it (issue 14).
    Drill {
        #[command(subcommand)]
        cmd: drill::DrillCmd,
    },
    /// Record a deploy or config change on a service of a running medic
    /// (evidence for the root-cause diagnosis, issue 9).
    Change {
        #[command(subcommand)]
        cmd: change::ChangeCmd,
    },
    /// Acknowledge an incident: stops its escalation chain (PagerDuty gets `acknowledge`).
    Ack(notify_cli::AckArgs),
    /// Notification tools.
    Notify {
        #[command(subcommand)]
        cmd: notify_cli::NotifyCmd,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
}

#[derive(Subcommand)]
enum PatternsCmd {
    /// List every pattern with its prior, source and scope; with `--db` or
    /// `--url`, also the accepted candidates of that store (learned, scoped
    /// to their service).
    List {
        /// Also load the operator pattern files named by this config.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also list the accepted candidates of this SQLite store.
        #[arg(long, conflicts_with = "url")]
        db: Option<PathBuf>,
        /// Also list the accepted candidates of this Postgres store.
        #[arg(long)]
        url: Option<String>,
    },
    /// Show one pattern: symptoms, cause, actions with their tier, prior
    /// (an accepted candidate `candidate-ID` with `--db` or `--url`).
    Show {
        name: String,
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also look among the accepted candidates of this SQLite store.
        #[arg(long, conflicts_with = "url")]
        db: Option<PathBuf>,
        /// Also look among the accepted candidates of this Postgres store.
        #[arg(long)]
        url: Option<String>,
    },
    /// Candidate patterns learned from incidents resolved by a human, and the
    /// learned (pattern, action) success counts.
    Candidates {
        /// The SQLite database file.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        db: Option<PathBuf>,
        /// A Postgres store (`store.url`) instead.
        #[arg(long)]
        url: Option<String>,
    },
    /// Mark a candidate accepted (medic never does this by itself).
    Accept {
        id: i64,
        /// The SQLite database file.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        db: Option<PathBuf>,
        /// A Postgres store (`store.url`) instead.
        #[arg(long)]
        url: Option<String>,
    },
    /// Mark a candidate rejected.
    Reject {
        id: i64,
        /// The SQLite database file.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        db: Option<PathBuf>,
        /// A Postgres store (`store.url`) instead.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the audit hash chain; exit 1 naming the first bad seq.
    Verify {
        /// The SQLite database file.
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        db: Option<PathBuf>,
        /// A Postgres store (`store.url`), e.g. postgres://medic@db:5432/medic.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum EvalCmd {
    /// Score a detector on a NAB-layout corpus.
    Nab(medic_nab::cli::EvalNabArgs),
    /// Root-cause ranking on PetShop-layout data (--data) or generated topologies (--seed).
    Rca(medic_rca_eval::cli::EvalRcaArgs),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Detector throughput (samples/s per core).
    Detect(medic_nab::cli::BenchDetectArgs),
    /// Incident list latency through the HTTP API (p99 goal < 20 ms with 10,000 incidents).
    Api(bench_api::BenchApiArgs),
    /// Time to recover from injected faults: medic vs supervisord vs monit.
    Mttr(bench::mttr::MttrArgs),
    /// medic's CPU, RSS and probe latency for many targets, series and alerts.
    Scale(bench::scale::ScaleArgs),
    /// medic's idle CPU and RSS while it watches 10 services.
    Overhead(bench::overhead::OverheadArgs),
    /// Root-cause ranking time for one diagnosis (50 services, 1,000 signals by default).
    Rca(medic_rca_eval::cli::BenchRcaArgs),
    /// Notification delivery across kill/restart cycles of loopback receivers.
    Notify(notify_cli::BenchNotifyArgs),
    /// Kill medic at random failure points mid-heal; count duplicate and lost actions.
    Recovery(bench_recovery::BenchRecoveryArgs),
    /// N services healed at once (100 by default): completion, engine-loop latency
    /// while the executors run, probe rate, peak RSS.
    Concurrent(bench::concurrent::ConcurrentArgs),
    /// Three medics with `ha:` on a local etcd: kill (or pause) the leader mid-action; takeover time, duplicate and lost actions.
    Failover(bench_failover::BenchFailoverArgs),
    /// Time of N audit appends on SQLite vs Postgres (a server of its own), unfenced and fenced.
    Store(bench_store::BenchStoreArgs),
    /// 100× the normal alert rate for 60 s with a fault mid-flood: RSS, critical alerts, healing, API p99.
    Flood(bench::flood::FloodArgs),
    /// The canary judge: time per judgement, failure rates on seeded synthetic canaries.
    Canary(bench_canary::BenchCanaryArgs),
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = match &cli.cmd {
        Cmd::Demo { .. } => "warn",
        // The bench kills receivers on purpose: its retries are not news.
        Cmd::Bench {
            cmd: BenchCmd::Notify(_),
        } => "error",
        _ => "info",
    };
    init_tracing(cli.log_json || cli.log_format == LogFormat::Json, level);
    match run(cli.cmd, &cli.api) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDIC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Code::Io, format!("cannot start the async runtime: {e}")))
}

fn run(cmd: Cmd, api: &str) -> Result<ExitCode, CliError> {
    match cmd {
        Cmd::Cluster {
            cmd: ClusterCmd::Status { config, json },
        } => cluster::status(&config, json),
        Cmd::Cluster {
            cmd: ClusterCmd::Unlock { config, lock },
        } => cluster::unlock(&config, &lock),
        Cmd::Check { config } => {
            let cfg = medic_config::load(&config).map_err(CliError::config)?;
            println!(
                "{}: ok ({} service{}, {} probe{}, {} action{})",
                config.display(),
                cfg.services.len(),
                plural(cfg.services.len()),
                cfg.services.iter().map(|s| s.probes.len()).sum::<usize>(),
                plural(cfg.services.iter().map(|s| s.probes.len()).sum::<usize>()),
                cfg.services.iter().map(|s| s.actions.len()).sum::<usize>(),
                plural(cfg.services.iter().map(|s| s.actions.len()).sum::<usize>()),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Patterns {
            cmd: PatternsCmd::Candidates { db, url },
        } => {
            let target = store_arg(db, url)?;
            let rt = runtime()?;
            rt.block_on(async {
                let store = open_existing(&target).await?;
                let rows = store
                    .candidate_patterns()
                    .await
                    .map_err(|e| CliError::new(Code::Store, e.to_string()))?;
                println!(
                    "{:<4} {:<10} {:<10} {:<16} {:<12} {:<10} NOTE",
                    "ID", "STATUS", "SERVICE", "SYMPTOM", "ACTION", "BY"
                );
                for c in rows {
                    println!(
                        "{:<4} {:<10} {:<10} {:<16} {:<12} {:<10} {}",
                        c.id, c.status, c.service, c.trigger, c.action, c.by, c.note
                    );
                }
                let learned = store
                    .pattern_outcomes()
                    .await
                    .map_err(|e| CliError::new(Code::Store, e.to_string()))?;
                if !learned.is_empty() {
                    println!("learned (pattern, action): successes / failures");
                }
                for (p, a, s, f) in learned {
                    println!("  {p} {a}: {s} / {f}");
                }
                store.close().await;
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Patterns {
            cmd: cmd @ (PatternsCmd::Accept { .. } | PatternsCmd::Reject { .. }),
        } => {
            let (id, db, url, status) = match cmd {
                PatternsCmd::Accept { id, db, url } => (id, db, url, "accepted"),
                PatternsCmd::Reject { id, db, url } => (id, db, url, "rejected"),
                _ => return Err(CliError::new(Code::Usage, "unreachable")),
            };
            let target = store_arg(db, url)?;
            let rt = runtime()?;
            rt.block_on(async {
                let store = open_existing(&target).await?;
                let found = store
                    .set_candidate_status(id, status)
                    .await
                    .map_err(|e| CliError::new(Code::Store, e.to_string()))?;
                store.close().await;
                if !found {
                    return Err(CliError::new(
                        Code::CandidateNotFound,
                        format!("no candidate pattern with id {id}"),
                    ));
                }
                println!("candidate {id} {status}");
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Patterns { cmd } => {
            let (config, db, url) = match &cmd {
                PatternsCmd::List { config, db, url }
                | PatternsCmd::Show {
                    config, db, url, ..
                } => (config.clone(), db.clone(), url.clone()),
                _ => (None, None, None),
            };
            let mut patterns = match config {
                Some(c) => {
                    let cfg = medic_config::load(&c).map_err(CliError::config)?;
                    cfg.patterns(c.parent().unwrap_or(std::path::Path::new(".")))
                        .map_err(CliError::config)?
                }
                None => medic_config::load_patterns(&[]).map_err(CliError::config)?,
            };
            // The store's accepted candidates (learned patterns, issue 9);
            // pending and rejected ones stay in `medic patterns candidates`.
            if db.is_some() || url.is_some() {
                let target = store_arg(db, url)?;
                let all = runtime()?.block_on(async {
                    let store = open_existing(&target).await?;
                    let rows = store
                        .candidate_patterns()
                        .await
                        .map_err(|e| CliError::new(Code::Store, e.to_string()));
                    store.close().await;
                    rows
                })?;
                patterns.extend(rca::accepted_patterns(&all));
            }
            match cmd {
                PatternsCmd::List { .. } => print!("{}", graph::patterns_list(&patterns)),
                PatternsCmd::Candidates { .. }
                | PatternsCmd::Accept { .. }
                | PatternsCmd::Reject { .. } => {}
                PatternsCmd::Show { name, .. } => {
                    let p = patterns.iter().find(|p| p.name == name).ok_or_else(|| {
                        CliError::new(Code::PatternNotFound, format!("no pattern named `{name}`"))
                    })?;
                    print!("{}", graph::pattern_show(p));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Graph { config, dot } => {
            let cfg = medic_config::load(&config).map_err(CliError::config)?;
            print!(
                "{}",
                if dot {
                    graph::dot(&cfg)
                } else {
                    graph::text(&cfg)
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            mode,
            db,
            listen,
        } => {
            let cfg = medic_config::load(&config).map_err(CliError::config)?;
            let mode = resolve_mode(mode, std::env::var("MEDIC_MODE").ok(), cfg.mode)?;
            let db = db.unwrap_or_else(|| token::database_path(&config, &cfg));
            let log_dir = db
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            let listen = listen.unwrap_or(cfg.listen);
            let rt = runtime()?;
            rt.block_on(async move {
                // Before any service starts: a SIGTERM during startup must stop
                // them, not kill medic and orphan them.
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .map_err(|e| CliError::new(Code::Io, e.to_string()))?;
                // A hangup (the terminal medic was started from closed) stops
                // medic like SIGTERM: its services are stopped, not orphaned.
                // Started with SIGHUP ignored (nohup), medic keeps ignoring it.
                // Either way the handler is installed, so the services medic
                // starts get SIGHUP at its default, not inherited ignored.
                let hup_ignored = medic_exec::procfs::signal_ignored(1).unwrap_or(false);
                let mut hup =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                        .map_err(|e| CliError::new(Code::Io, e.to_string()))?;
                let d = daemon::start(daemon::DaemonOptions {
                    config: cfg,
                    mode,
                    db,
                    listen,
                    log_dir,
                    seed: std::process::id().into(),
                })
                .await
                .map_err(|e| CliError::new(Code::Startup, format!("{e:#}")))?;
                let handle = d.handle.clone();
                let mut join = d.join;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hangup(&mut hup, hup_ignored) => {}
                    r = &mut join => {
                        return match r {
                            Ok(Ok(())) => Ok(ExitCode::SUCCESS),
                            Ok(Err(e)) => Err(CliError::new(Code::Startup, format!("{e:#}"))),
                            Err(e) => Err(CliError::new(Code::Io, e.to_string())),
                        };
                    }
                }
                tracing::info!("shutting down: stopping supervised processes");
                handle.shutdown();
                let _ = join.await;
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Init {
            config,
            service,
            url,
            command,
            force,
        } => {
            let opts = init::InitOptions {
                service,
                url,
                command: (!command.is_empty()).then_some(command),
                force,
            };
            init::write(&config, &opts)?;
            println!(
                "wrote {0}; next: medic check -c {0} && medic run -c {0}",
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo { dir, json } => {
            let rt = runtime()?;
            let ok = rt
                .block_on(demo::run(dir, json))
                .map_err(|e| CliError::new(Code::Demo, format!("{e:#}")))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Healthcheck {
            port,
            path,
            timeout,
        } => {
            let rt = runtime()?;
            match rt.block_on(healthcheck::get(port, &path, timeout)) {
                Ok(status) if (200..300).contains(&status) => Ok(ExitCode::SUCCESS),
                Ok(status) => {
                    eprintln!("healthcheck: status {status}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => {
                    eprintln!("healthcheck: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Fixture {
            port,
            bind,
            crash_on_start,
            startup_delay,
            downstream,
        } => {
            let rt = runtime()?;
            rt.block_on(medic_fixture::run(medic_fixture::FixtureOptions {
                bind,
                port,
                crash_on_start,
                startup_delay,
                downstream,
            }))
            .map_err(|e| CliError::new(Code::Io, format!("fixture: {e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit {
            cmd: AuditCmd::Verify { db, url },
        } => {
            let target = store_arg(db, url)?;
            let rt = runtime()?;
            let report = rt
                .block_on(medic_store::verify_audit_target(&target))
                .map_err(|e| CliError::new(Code::Store, format!("{}: {e}", target.describe())))?;
            match report.first_bad {
                None => {
                    println!("audit chain ok: {} records", report.records);
                    Ok(ExitCode::SUCCESS)
                }
                Some(bad) => Err(CliError::new(
                    Code::AuditBroken,
                    format!(
                        "audit chain broken at seq {}: {} ({} records)",
                        bad.seq, bad.reason, report.records
                    ),
                )),
            }
        }
        Cmd::Incidents { id, json } => {
            let rt = runtime()?;
            rt.block_on(incidents(api, id.as_deref(), json))
        }
        Cmd::Mode { mode, service } => {
            mode.parse::<Mode>()
                .map_err(|e| CliError::new(Code::Usage, e.to_string()))?;
            let rt = runtime()?;
            rt.block_on(async {
                let body = medic_api::governance::ModeRequest { mode, service };
                let v = client::ApiClient::new(api)
                    .post("/api/v1/mode", &body)
                    .await?;
                println!("{}", v["message"].as_str().unwrap_or("ok"));
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Eval {
            cmd: EvalCmd::Nab(args),
        } => {
            medic_nab::cli::run(&args).map_err(|e| CliError::new(Code::Eval, format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval {
            cmd: EvalCmd::Rca(args),
        } if args.scenarios.is_some() => {
            let dir = args.scenarios.unwrap_or_default();
            rca_scenario::run_dir(&dir, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval {
            cmd: EvalCmd::Rca(args),
        } => {
            medic_rca_eval::cli::run(&args)
                .map_err(|e| CliError::new(Code::EvalRca, format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Op(cmd) => {
            let rt = runtime()?;
            rt.block_on(ops::run(api, cmd))
        }
        Cmd::Change { cmd } => {
            let rt = runtime()?;
            rt.block_on(change::run(api, cmd))
        }
        Cmd::Drill { cmd } => {
            let rt = runtime()?;
            rt.block_on(drill::cli(api, cmd))
        }
        Cmd::Sim(args) => {
            let code = medic_sim::cli::run(&args)
                .map_err(|e| CliError::new(Code::Eval, format!("{e:#}")))?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Cmd::Backtest(args) => backtest(&args),
        Cmd::Token { cmd } => {
            let rt = runtime()?;
            rt.block_on(token::run(cmd))
        }
        Cmd::Bench {
            cmd: BenchCmd::Api(args),
        } => {
            let rt = runtime()?;
            let ok = rt
                .block_on(bench_api::run(&args))
                .map_err(|e| CliError::new(Code::Eval, format!("{e:#}")))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Bench {
            cmd: BenchCmd::Mttr(args),
        } => {
            let rt = runtime()?;
            let results = rt
                .block_on(bench::interruptible(bench::mttr::run(&args)))
                .map_err(|e| CliError::new(Code::BenchFailed, format!("bench mttr: {e:#}")))?;
            if args.json {
                println!("{}", serde_json::json!({ "results": results }));
            } else {
                print!("{}", bench::mttr::render(&results, &args));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Scale(args),
        } => {
            let rt = runtime()?;
            let results = rt
                .block_on(bench::interruptible(bench::scale::run(&args)))
                .map_err(|e| CliError::new(Code::BenchFailed, format!("bench scale: {e:#}")))?;
            if args.json {
                println!("{}", serde_json::json!({ "results": results }));
            } else {
                print!("{}", bench::scale::render(&results, &args));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Concurrent(args),
        } => {
            let rt = runtime()?;
            let r = rt
                .block_on(bench::interruptible(bench::concurrent::run(&args)))
                .map_err(|e| {
                    CliError::new(Code::BenchFailed, format!("bench concurrent: {e:#}"))
                })?;
            if args.json {
                println!("{}", serde_json::json!(r));
            } else {
                print!("{}", bench::concurrent::render(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Flood(args),
        } => {
            let rt = runtime()?;
            let r = rt
                .block_on(bench::interruptible(bench::flood::run(&args)))
                .map_err(|e| CliError::new(Code::FloodFailed, format!("bench flood: {e:#}")))?;
            if args.json {
                println!("{}", serde_json::json!(r));
            } else {
                print!("{}", bench::flood::render(&r));
            }
            if !r.ok {
                return Err(CliError::new(
                    Code::FloodGoal,
                    format!(
                        "bench flood: a goal was missed (critical {}/{} and high {}/{} reached the engine, \
                         fault healed: {}, RSS peak {} MiB of {} MiB, {} API errors, {} refused batches)",
                        r.admitted.critical,
                        r.sent.critical,
                        r.admitted.high,
                        r.sent.high,
                        r.fault_healed,
                        r.rss_peak_mb,
                        r.rss_bound_mb,
                        r.api_errors,
                        r.refused_batches
                    ),
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Overhead(args),
        } => {
            let rt = runtime()?;
            let r = rt
                .block_on(bench::interruptible(bench::overhead::run(&args)))
                .map_err(|e| CliError::new(Code::BenchFailed, format!("bench overhead: {e:#}")))?;
            if args.json {
                println!("{}", serde_json::json!(r));
            } else {
                print!("{}", bench::overhead::render(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Rca(args),
        } => {
            medic_rca_eval::cli::run_bench(&args)
                .map_err(|e| CliError::new(Code::EvalRca, format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ack(args) => runtime()?.block_on(notify_cli::ack(api, &args)),
        Cmd::Notify { cmd } => runtime()?.block_on(notify_cli::notify(api, &cmd)),
        Cmd::Bench {
            cmd: BenchCmd::Notify(args),
        } => runtime()?.block_on(notify_cli::bench(&args)),
        Cmd::Bench {
            cmd: BenchCmd::Store(args),
        } => {
            let rt = runtime()?;
            rt.block_on(bench_store::run(&args))
                .map_err(|e| CliError::new(Code::BenchStore, format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Recovery(args),
        } => {
            let rt = runtime()?;
            let ok = rt
                .block_on(bench_recovery::run(&args))
                .map_err(|e| CliError::new(Code::BenchRecovery, format!("{e:#}")))?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Bench {
            cmd: BenchCmd::Canary(args),
        } => {
            bench_canary::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            cmd: BenchCmd::Failover(args),
        } => {
            let rt = runtime()?;
            let ok = rt
                .block_on(bench::interruptible(bench_failover::run(&args)))
                .map_err(|e| {
                    CliError::new(Code::BenchFailover, format!("bench failover: {e:#}"))
                })?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Bench {
            cmd: BenchCmd::Detect(args),
        } => {
            medic_nab::cli::run_bench(&args)
                .map_err(|e| CliError::new(Code::Eval, format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `medic backtest`: prints the report; errors carry codes E0050–E0054.
fn backtest(args: &medic_backtest::cli::BacktestArgs) -> Result<ExitCode, CliError> {
    use medic_backtest::cli::Failure;
    use medic_backtest::BacktestError as B;
    match medic_backtest::cli::render(args) {
        Ok((out, _)) => {
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Config(e)) => Err(CliError::config(e)),
        Err(Failure::Backtest(e)) => {
            let code = match &e {
                B::Usage(_) => Code::BacktestUsage,
                B::NotFound(_) => Code::NotFound,
                B::Data(_) => Code::BacktestData,
                B::Unreachable(_) => Code::BacktestUnreachable,
                B::Source(_) => Code::BacktestSource,
                B::Plot(_) => Code::BacktestPlot,
            };
            Err(CliError::new(code, e.to_string()))
        }
    }
}

/// `--db FILE` (an existing SQLite file) or `--url URL` (a Postgres store).
fn store_arg(
    db: Option<PathBuf>,
    url: Option<String>,
) -> Result<medic_store::StoreTarget, CliError> {
    match (db, url) {
        (_, Some(url)) => {
            medic_store::check_postgres_url(&url).map_err(|e| CliError::new(Code::StoreUrl, e))?;
            Ok(medic_store::StoreTarget::Postgres(url))
        }
        (Some(db), None) => {
            if !db.exists() {
                return Err(CliError::new(
                    Code::NotFound,
                    format!("{}: no such database", db.display()),
                ));
            }
            Ok(medic_store::StoreTarget::Sqlite(db))
        }
        (None, None) => Err(CliError::new(Code::Usage, "give --db FILE or --url URL")),
    }
}

async fn open_existing(target: &medic_store::StoreTarget) -> Result<medic_store::Store, CliError> {
    medic_store::Store::open_target(target)
        .await
        .map_err(|e| CliError::new(Code::Store, format!("{}: {e}", target.describe())))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `--mode` beats `MEDIC_MODE`, which beats the config file; dry-run otherwise.
fn resolve_mode(
    flag: Option<String>,
    env: Option<String>,
    file: Option<Mode>,
) -> Result<Mode, CliError> {
    if let Some(m) = flag {
        return m
            .parse()
            .map_err(|e| CliError::new(Code::Usage, format!("--mode: {e}")));
    }
    if let Some(m) = env.filter(|s| !s.trim().is_empty()) {
        return m
            .trim()
            .parse()
            .map_err(|e| CliError::new(Code::Usage, format!("MEDIC_MODE: {e}")));
    }
    Ok(file.unwrap_or(Mode::DryRun))
}

async fn incidents(api: &str, id: Option<&str>, json: bool) -> Result<ExitCode, CliError> {
    let path = match id {
        Some(id) => format!("/api/v1/incidents/{id}"),
        None => "/api/v1/incidents".to_string(),
    };
    let v = client::ApiClient::new(api).get(&path).await?;
    if json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("-").to_string();
    if id.is_some() {
        println!(
            "{} {} [{}] outcome={}",
            s(&v, "id"),
            s(&v, "service"),
            s(&v, "state"),
            s(&v, "outcome")
        );
        println!("  trigger: {}", s(&v, "trigger"));
        println!("  {}", s(&v, "summary"));
        for t in v["timeline"].as_array().into_iter().flatten() {
            println!("  {}  {:<16} {}", s(t, "ts"), s(t, "kind"), s(t, "message"));
        }
    } else {
        println!(
            "{:<28} {:<10} {:<20} {:<12} {:<20} OPENED",
            "ID", "SERVICE", "STATE", "OUTCOME", "TRIGGER"
        );
        for i in v["incidents"].as_array().into_iter().flatten() {
            println!(
                "{:<28} {:<10} {:<20} {:<12} {:<20} {}",
                s(i, "id"),
                s(i, "service"),
                s(i, "state"),
                s(i, "outcome"),
                s(i, "trigger"),
                s(i, "opened_at")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on a SIGHUP that should stop `medic run`: never when medic was
/// started with SIGHUP ignored (each one is logged and ignored).
async fn hangup(hup: &mut tokio::signal::unix::Signal, ignored: bool) {
    loop {
        match hup.recv().await {
            Some(()) if !ignored => return,
            Some(()) => tracing::info!("SIGHUP ignored: medic was started with SIGHUP ignored"),
            None => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_precedence() {
        assert_eq!(resolve_mode(None, None, None).unwrap(), Mode::DryRun);
        assert_eq!(
            resolve_mode(None, None, Some(Mode::Aggressive)).unwrap(),
            Mode::Aggressive
        );
        assert_eq!(
            resolve_mode(None, Some("disabled".into()), Some(Mode::Aggressive)).unwrap(),
            Mode::Disabled
        );
        assert_eq!(
            resolve_mode(Some("conservative".into()), Some("disabled".into()), None).unwrap(),
            Mode::Conservative
        );
        let e = resolve_mode(None, Some("yolo".into()), None).unwrap_err();
        assert!(e.to_string().contains("MEDIC_MODE"), "{e}");
    }
}
