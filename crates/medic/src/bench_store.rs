//! `medic bench store`: time of N audit appends on SQLite and on Postgres,
//! each append its own durable transaction (as the daemon writes them), first
//! without and then with a fencing token. Postgres is a server of its own
//! (`pg_server`, the Debian binaries, default durability) on loopback; SQLite
//! a file with `synchronous=FULL`. After the runs the chain is verified.
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use medic_store::{Store, StoreTarget};

#[derive(clap::Args, Debug)]
pub struct BenchStoreArgs {
    /// Audit appends timed per backend and mode (after 10 warm-up appends).
    #[arg(long, default_value_t = 1_000)]
    pub appends: u32,
    /// Keep the SQLite file and the Postgres data in DIR instead of a
    /// temporary directory (must be new or empty).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Print JSON: {"appends","results":[{"backend","unfenced_ms","fenced_ms"}]}.
    #[arg(long)]
    pub json: bool,
}

const WARMUP: u32 = 10;

async fn timed(store: &Store, n: u32, kind: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        store
            .append_audit(
                "2026-01-01T00:00:00Z",
                kind,
                &format!("{{\"i\":{i},\"service\":\"web\",\"action\":\"restart\"}}"),
            )
            .await?;
    }
    Ok(start.elapsed())
}

struct Row {
    backend: &'static str,
    unfenced: Duration,
    fenced: Duration,
}

async fn measure(target: &StoreTarget, n: u32) -> anyhow::Result<Row> {
    let store = Store::open_target(target)
        .await
        .with_context(|| format!("opening {}", target.describe()))?;
    timed(&store, WARMUP, "bench.warmup").await?;
    let unfenced = timed(&store, n, "bench.unfenced").await?;
    store.set_fence(Some(1));
    let fenced = timed(&store, n, "bench.fenced").await?;
    let backend = store.backend();
    store.close().await;
    let report = medic_store::verify_audit_target(target).await?;
    let want = u64::from(WARMUP) + 2 * u64::from(n);
    if !report.is_ok() || report.records != want {
        bail!(
            "{backend}: the chain does not verify after the run: {} records (want {want}), first bad {:?}",
            report.records,
            report.first_bad
        );
    }
    Ok(Row {
        backend,
        unfenced,
        fenced,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(args: &BenchStoreArgs) -> anyhow::Result<()> {
    if args.appends == 0 {
        bail!("--appends must be at least 1");
    }
    let tmp = tempfile::Builder::new()
        .prefix("medic-bench-store")
        .tempdir()
        .context("creating a temporary directory")?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::read_dir(&dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    let sqlite = measure(
        &StoreTarget::Sqlite(dir.join("bench-store.db")),
        args.appends,
    )
    .await?;
    let pg = crate::pg_server::PgServer::start(&dir.join("postgres")).await?;
    let postgres = measure(&StoreTarget::Postgres(pg.url()), args.appends).await?;
    drop(pg);
    let rows = [sqlite, postgres];
    let n = f64::from(args.appends);
    if args.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "backend": r.backend,
                    "unfenced_ms": (ms(r.unfenced) * 10.0).round() / 10.0,
                    "fenced_ms": (ms(r.fenced) * 10.0).round() / 10.0,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "appends": args.appends, "results": results })
        );
    } else {
        println!(
            "{} sequential audit appends per run, each its own durable transaction (after {WARMUP} warm-up appends)",
            args.appends
        );
        println!(
            "{:<9} {:>12} {:>12} {:>12} {:>12}",
            "backend", "unfenced ms", "ms/append", "fenced ms", "ms/append"
        );
        for r in &rows {
            println!(
                "{:<9} {:>12.1} {:>12.3} {:>12.1} {:>12.3}",
                r.backend,
                ms(r.unfenced),
                ms(r.unfenced) / n,
                ms(r.fenced),
                ms(r.fenced) / n
            );
        }
        println!("audit chains verified on both backends");
    }
    Ok(())
}
