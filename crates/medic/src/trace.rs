//! Incident traces over OTLP (issue 12, optional): each closed incident is
//! handed to one exporter task (bounded queue) that buffers it on disk and
//! sends it with collector failover; a timer replays the buffer.
use std::path::Path;

use medic_config::OtlpConfig;
use medic_core::{IncidentView, MonoTime};
use medic_trace::{incident_trace, Exporter, ExporterConfig};
use tokio::sync::{mpsc, watch};

/// Traces waiting for the exporter task; beyond this they are dropped (and
/// logged): tracing must never slow the healing loop.
const QUEUE: usize = 256;

pub struct Traces {
    tx: mpsc::Sender<serde_json::Value>,
}

impl Traces {
    /// `None` when `otlp:` is not configured. `db_dir` anchors a relative
    /// `buffer_dir`.
    pub fn start(
        cfg: Option<&OtlpConfig>,
        db_dir: &Path,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Traces>> {
        let Some(cfg) = cfg else { return Ok(None) };
        let buffer_dir = if cfg.buffer_dir.is_absolute() {
            cfg.buffer_dir.clone()
        } else {
            db_dir.join(&cfg.buffer_dir)
        };
        let exporter = Exporter::new(ExporterConfig {
            endpoints: cfg.endpoints.clone(),
            timeout: cfg.timeout,
            buffer_dir,
            max_bytes: cfg.buffer_max_bytes,
        })?;
        let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
        let e = exporter.clone();
        tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                if let Err(err) = e.export(&body).await {
                    tracing::warn!(error = %err, "otlp export failed");
                }
            }
        });
        tokio::spawn(exporter.run(cfg.flush_interval, shutdown));
        Ok(Some(Traces { tx }))
    }

    /// Queues the trace of a closed incident (never waits).
    pub fn incident_closed(&self, v: &IncidentView, unix_ns: &dyn Fn(MonoTime) -> u64) {
        let body = incident_trace(v, unix_ns);
        if self.tx.try_send(body).is_err() {
            tracing::warn!(incident = %v.id.0, "otlp queue full: trace dropped");
        }
    }
}
