//! medic-trace: each closed incident becomes one OTLP trace (OTLP/HTTP with
//! the JSON encoding, `POST {endpoint}/v1/traces`): a root span `incident`
//! and one child span per stage it went through — `detect`, `diagnose`,
//! `decide`, `act`, `verify` — derived from the incident's timeline.
//!
//! Export is durable and bounded: a trace is first written to a disk buffer
//! (one file per trace, in order), then sent to the first collector that
//! accepts it (primary, then the secondaries: failover). A file is deleted
//! only once a collector answered 2xx; when no collector accepts, the buffer
//! keeps it and later flushes replay the files in order. The buffer holds at
//! most `max_bytes`; beyond that the oldest traces are dropped and counted.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use medic_core::{IncidentOutcome, IncidentView, MonoTime};
use sha2::{Digest, Sha256};

/// The stages, in order, and the timeline kinds that belong to each.
pub const STAGES: &[(&str, &[&str])] = &[
    ("detect", &["detected"]),
    ("diagnose", &["diagnosed"]),
    (
        "decide",
        &[
            "run",
            "run-canary",
            "would-act",
            "held",
            "skipped",
            "deferred",
            "pending-approval",
            "escalate",
        ],
    ),
    (
        "act",
        &[
            "action",
            "action_failed",
            "retry_scheduled",
            "cancelled",
            "canary_ok",
            "canary_judging",
            "canary_verdict",
        ],
    ),
    (
        "verify",
        &["verifying", "resolved", "heal_failed", "escalated"],
    ),
];

fn stage_of(kind: &str) -> Option<usize> {
    STAGES.iter().position(|(_, kinds)| kinds.contains(&kind))
}

fn id_hex(parts: &[&str], bytes: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..bytes])
}

fn attr(key: &str, value: &str) -> serde_json::Value {
    serde_json::json!({"key": key, "value": {"stringValue": value}})
}

/// The OTLP/JSON `ExportTraceServiceRequest` for one incident. `unix_ns`
/// turns the engine's monotonic time into wall-clock nanoseconds. Trace and
/// span ids derive from the incident id, so a replayed export is the same
/// trace (collectors dedupe by id).
pub fn incident_trace(v: &IncidentView, unix_ns: &dyn Fn(MonoTime) -> u64) -> serde_json::Value {
    let trace_id = id_hex(&["trace", &v.id.0], 16);
    let root_id = id_hex(&["span", &v.id.0, "incident"], 8);
    let end = v.closed_at.unwrap_or(v.updated_at);
    // First time each stage appears.
    let mut firsts: Vec<(usize, MonoTime)> = Vec::new();
    for t in &v.timeline {
        if let Some(s) = stage_of(&t.kind) {
            if !firsts.iter().any(|(x, _)| *x == s) {
                firsts.push((s, t.at));
            }
        }
    }
    firsts.sort_by_key(|(s, at)| (*at, *s));
    let mut spans = vec![serde_json::json!({
        "traceId": trace_id,
        "spanId": root_id,
        "name": "incident",
        "kind": 1,
        "startTimeUnixNano": unix_ns(v.opened_at).to_string(),
        "endTimeUnixNano": unix_ns(end).to_string(),
        "attributes": [
            attr("medic.incident", &v.id.0),
            attr("medic.service", &v.service),
            attr("medic.trigger", &v.trigger),
            attr("medic.cause", &v.cause),
            attr("medic.outcome", v.outcome.map_or("open", |o| o.as_str())),
        ],
        "status": {"code": if matches!(v.outcome, Some(IncidentOutcome::Healed | IncidentOutcome::Recovered | IncidentOutcome::ResolvedByOperator | IncidentOutcome::Merged)) { 1 } else { 2 }},
    })];
    for (i, (stage, start)) in firsts.iter().enumerate() {
        let stop = firsts.get(i + 1).map_or(end, |(_, at)| *at).max(*start);
        let name = STAGES[*stage].0;
        let events: Vec<serde_json::Value> = v
            .timeline
            .iter()
            .filter(|t| stage_of(&t.kind) == Some(*stage))
            .map(|t| {
                serde_json::json!({
                    "timeUnixNano": unix_ns(t.at).to_string(),
                    "name": t.kind,
                    "attributes": [attr("message", &t.message)],
                })
            })
            .collect();
        spans.push(serde_json::json!({
            "traceId": trace_id,
            "spanId": id_hex(&["span", &v.id.0, name], 8),
            "parentSpanId": root_id,
            "name": name,
            "kind": 1,
            "startTimeUnixNano": unix_ns(*start).to_string(),
            "endTimeUnixNano": unix_ns(stop).to_string(),
            "attributes": [attr("medic.incident", &v.id.0), attr("medic.stage", name)],
            "events": events,
        }));
    }
    serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [attr("service.name", "medic")]},
            "scopeSpans": [{"scope": {"name": "medic"}, "spans": spans}],
        }]
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("otlp buffer {path}: {source}")]
    Buffer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("otlp: HTTP client: {0}")]
    Client(String),
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct TraceStats {
    pub exported: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dropped: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

/// Where traces go.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Collector base URLs, primary first (`/v1/traces` is appended).
    pub endpoints: Vec<String>,
    pub timeout: Duration,
    pub buffer_dir: PathBuf,
    pub max_bytes: u64,
}

/// The exporter. Cheap to clone (shares the buffer lock and counters).
#[derive(Clone)]
pub struct Exporter {
    cfg: Arc<ExporterConfig>,
    http: reqwest::Client,
    lock: Arc<tokio::sync::Mutex<u64>>, // next file number
    stats: Arc<TraceStats>,
}

impl Exporter {
    pub fn new(cfg: ExporterConfig) -> Result<Exporter, TraceError> {
        std::fs::create_dir_all(&cfg.buffer_dir).map_err(|source| TraceError::Buffer {
            path: cfg.buffer_dir.clone(),
            source,
        })?;
        let next = list(&cfg.buffer_dir)
            .map_err(|source| TraceError::Buffer {
                path: cfg.buffer_dir.clone(),
                source,
            })?
            .last()
            .map_or(0, |(n, _, _)| n + 1);
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| TraceError::Client(e.to_string()))?;
        Ok(Exporter {
            cfg: Arc::new(cfg),
            http,
            lock: Arc::new(tokio::sync::Mutex::new(next)),
            stats: Arc::new(TraceStats::default()),
        })
    }

    pub fn stats(&self) -> Arc<TraceStats> {
        self.stats.clone()
    }

    /// Buffers one export request on disk (dropping the oldest buffered
    /// traces beyond `max_bytes`), then flushes.
    pub async fn export(&self, body: &serde_json::Value) -> Result<usize, TraceError> {
        let dir = &self.cfg.buffer_dir;
        let err = |source| TraceError::Buffer {
            path: dir.clone(),
            source,
        };
        {
            let mut next = self.lock.lock().await;
            let path = dir.join(format!("{:020}.json", *next));
            let tmp = dir.join(format!("{:020}.tmp", *next));
            std::fs::write(&tmp, body.to_string()).map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            *next += 1;
            let files = list(dir).map_err(err)?;
            let mut total: u64 = files.iter().map(|(_, _, len)| len).sum();
            for (_, p, len) in &files {
                if total <= self.cfg.max_bytes || files.len() <= 1 {
                    break;
                }
                if std::fs::remove_file(p).is_ok() {
                    total -= len;
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(file = %p.display(), "otlp buffer full: oldest trace dropped");
                }
            }
            self.stats.buffered_bytes.store(total, Ordering::Relaxed);
        }
        self.flush().await
    }

    /// Sends buffered traces in order, each to the first collector that
    /// accepts it; stops at the first trace no collector accepts. Returns
    /// how many were sent.
    pub async fn flush(&self) -> Result<usize, TraceError> {
        let dir = &self.cfg.buffer_dir;
        let _guard = self.lock.lock().await;
        let files = list(dir).map_err(|source| TraceError::Buffer {
            path: dir.clone(),
            source,
        })?;
        let mut sent = 0;
        for (_, path, _) in files {
            let Ok(body) = std::fs::read(&path) else {
                continue;
            };
            let mut ok = false;
            for ep in &self.cfg.endpoints {
                let url = format!("{}/v1/traces", ep.trim_end_matches('/'));
                let r = self
                    .http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        ok = true;
                        break;
                    }
                    _ => {
                        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if !ok {
                break;
            }
            let _ = std::fs::remove_file(&path);
            self.stats.exported.fetch_add(1, Ordering::Relaxed);
            sent += 1;
        }
        let left: u64 = list(dir)
            .map(|f| f.iter().map(|(_, _, l)| l).sum())
            .unwrap_or(0);
        self.stats.buffered_bytes.store(left, Ordering::Relaxed);
        Ok(sent)
    }

    /// Number of traces waiting in the buffer.
    pub fn buffered(&self) -> usize {
        list(&self.cfg.buffer_dir).map_or(0, |f| f.len())
    }

    /// Flushes every `every` until `shutdown` turns true (replay on recovery).
    pub async fn run(self, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "otlp flush failed");
            }
        }
    }
}

/// Buffered files `(number, path, bytes)` in order.
fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        let Ok(n) = stem.parse::<u64>() else {
            continue;
        };
        out.push((n, e.path(), e.metadata()?.len()));
    }
    out.sort_by_key(|(n, _, _)| *n);
    Ok(out)
}
