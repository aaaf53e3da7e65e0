//! `medic bench api`: the incident list's latency through the real HTTP API
//! (router, token auth, SQLite store) with many incidents stored. Prints
//! p50/p99/max; the goal is p99 < 20 ms with 10,000 incidents.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use medic_store::{IncidentRecord, Store, TimelineEntry};

#[derive(clap::Args, Debug)]
pub struct BenchApiArgs {
    /// Incidents stored before measuring.
    #[arg(long, default_value_t = 10_000)]
    pub incidents: u32,
    /// `GET /api/v1/incidents` requests measured (after 20 warm-up requests).
    #[arg(long, default_value_t = 1_000)]
    pub requests: u32,
    /// The `limit` of each request (the API's default is 50).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Keep the database in DIR instead of a temporary directory.
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// p99 goal, milliseconds.
const GOAL_P99_MS: f64 = 20.0;

fn incident(i: u32) -> IncidentRecord {
    let day = i / 86_400;
    let s = i % 86_400;
    let ts = format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        1 + (day / 28) % 12,
        1 + day % 28,
        s / 3600,
        (s / 60) % 60,
        s % 60
    );
    IncidentRecord {
        id: format!("inc-bench-{i}"),
        service: format!("svc-{}", i % 20),
        state: "resolved".into(),
        trigger: "healthz failing".into(),
        opened_at: ts.clone(),
        updated_at: ts.clone(),
        closed_at: Some(ts.clone()),
        outcome: Some("healed".into()),
        summary: "application errors (HTTP 500) (confidence 0.80); actions: restart".into(),
        merged: Vec::new(),
        diagnosis: None,
        timeline: (0..6)
            .map(|k| TimelineEntry {
                ts: ts.clone(),
                kind: format!("step-{k}"),
                message: "healthz failing; restart succeeded; watching for 60000ms".into(),
            })
            .collect(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

pub async fn run(args: &BenchApiArgs) -> anyhow::Result<bool> {
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("bench-api.db");
    let store = Store::open(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let have = store.list_incidents(1).await?.len();
    let fill = Instant::now();
    if have == 0 {
        // Four writers at a time; SQLite serialises them, the pool overlaps
        // the round trips.
        let mut next = 0u32;
        while next < args.incidents {
            let batch: Vec<_> = (next..args.incidents.min(next + 4))
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move { store.upsert_incident(&incident(i)).await })
                })
                .collect();
            for t in batch {
                t.await.context("a writer task failed")??;
            }
            next += 4;
        }
    }
    let filled = if have == 0 {
        format!("filled in {:.1}s", fill.elapsed().as_secs_f64())
    } else {
        "reusing the incidents already in the database".to_string()
    };
    let token = store
        .create_token(
            &format!("bench-{}", std::process::id()),
            medic_core::Role::Viewer,
            "2026-01-01T00:00:00Z",
        )
        .await?;
    let (control, _rx) = tokio::sync::mpsc::channel(1);
    let app = medic_api::router(medic_api::ApiState {
        store: store.clone(),
        metrics: Arc::new(medic_api::Metrics::new()),
        ready: Arc::new(AtomicBool::new(true)),
        control,
        auth: medic_api::Auth::Tokens,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/incidents?limit={}", args.limit);
    let mut samples = Vec::with_capacity(args.requests as usize);
    for i in 0..(args.requests + 20) {
        let t = Instant::now();
        let resp = http.get(&url).bearer_auth(&token).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let took = t.elapsed();
        anyhow::ensure!(
            status.is_success(),
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if i == 0 {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let n = v["incidents"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                n == args.limit.min(args.incidents) as usize,
                "expected {} incidents in the answer, got {n}",
                args.limit.min(args.incidents)
            );
        }
        if i >= 20 {
            samples.push(took);
        }
    }
    server.abort();
    store.close().await;
    samples.sort();
    let (p50, p99, max) = (pct(&samples, 0.50), pct(&samples, 0.99), pct(&samples, 1.0));
    let ok = p99 < GOAL_P99_MS;
    println!(
        "medic bench api: GET /api/v1/incidents?limit={} with {} incidents stored ({filled}), {} requests over loopback with a bearer token",
        args.limit, args.incidents, args.requests
    );
    println!("  p50 {p50:.2} ms   p99 {p99:.2} ms   max {max:.2} ms");
    println!(
        "  goal p99 < {GOAL_P99_MS} ms: {}",
        if ok { "met" } else { "NOT met" }
    );
    Ok(ok)
}
