//! The delivery task: reads due outbox rows in order and sends each over its
//! lane (the channel list chosen at enqueue time), primary first, failing
//! over to the next channel; a lane whose head could not be sent anywhere
//! waits (exponential backoff with jitter) and retries the SAME message, so
//! a lane delivers in order and nothing is skipped. A row leaves `pending`
//! only after a channel accepted it.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use medic_config::{NotifyConfig, NotifyRetry};
use medic_store::outbox::OutboxMessage;
use medic_store::Store;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::channel::{Channel, SecretLookup};

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Messages this channel accepted.
    pub delivered: AtomicU64,
    /// Attempts on this channel that failed.
    pub failed_attempts: AtomicU64,
    /// Messages this channel accepted after the lane's earlier channels failed.
    pub failovers: AtomicU64,
}

/// Counters read by the one `/metrics` registry ([`Stats::families`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages accepted by a channel.
    pub delivered: AtomicU64,
    /// Attempts that failed (one per channel tried).
    pub failed_attempts: AtomicU64,
    /// Deliveries by a channel other than the lane's primary.
    pub failovers: AtomicU64,
    /// Pending messages at the last look.
    pub depth: AtomicU64,
    /// Messages dropped because the outbox was full (set by the enqueuer).
    pub dropped: AtomicU64,
    /// Messages suppressed as duplicates of a pending one.
    pub suppressed: AtomicU64,
    /// Dropped messages by severity (`info`, `warning`, `critical`).
    pub dropped_by_severity: [AtomicU64; 3],
    /// The outbox's bound (`notify.outbox_capacity`).
    pub capacity: AtomicU64,
    /// Per configured channel, plus `log` (a message with no channel).
    /// Fixed when the notifier is built: a bounded label set.
    pub channels: BTreeMap<String, ChannelStats>,
}

const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

impl Stats {
    /// Counters for these channel names (and `log`).
    pub fn for_channels<'a>(names: impl IntoIterator<Item = &'a String>, capacity: u32) -> Stats {
        let mut channels: BTreeMap<String, ChannelStats> = names
            .into_iter()
            .map(|n| (n.clone(), ChannelStats::default()))
            .collect();
        channels.entry("log".to_string()).or_default();
        Stats {
            channels,
            capacity: AtomicU64::new(u64::from(capacity)),
            ..Stats::default()
        }
    }

    /// Counts `n` messages of `severity` dropped because the outbox was full.
    pub fn count_dropped(&self, severity: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = SEVERITIES.iter().position(|s| *s == severity) {
            self.dropped_by_severity[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn channel(&self, name: &str) -> Option<&ChannelStats> {
        self.channels.get(name)
    }

    /// The notifier's metric families, served by medic's one `/metrics`
    /// (the outbox depth itself is `medic_outbox_depth` there).
    pub fn families(&self) -> Vec<medic_api::SourceFamily> {
        use medic_api::{SourceFamily, SourceKind};
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let per = |f: fn(&ChannelStats) -> &AtomicU64| -> Vec<(String, u64)> {
            self.channels
                .iter()
                .map(|(n, c)| (n.clone(), g(f(c))))
                .collect()
        };
        vec![
            SourceFamily {
                name: "medic_notify_outbox_capacity",
                help: "Most notifications the outbox holds (notify.outbox_capacity)",
                kind: SourceKind::Gauge,
                label: None,
                values: vec![(String::new(), g(&self.capacity))],
            },
            SourceFamily {
                name: "medic_notify_delivered_total",
                help: "Notifications accepted, by the channel that accepted them",
                kind: SourceKind::Counter,
                label: Some("channel"),
                values: per(|c| &c.delivered),
            },
            SourceFamily {
                name: "medic_notify_failed_attempts_total",
                help: "Delivery attempts that failed, by channel",
                kind: SourceKind::Counter,
                label: Some("channel"),
                values: per(|c| &c.failed_attempts),
            },
            SourceFamily {
                name: "medic_notify_failovers_total",
                help: "Notifications a secondary channel accepted after the lane's earlier channels failed, by that channel",
                kind: SourceKind::Counter,
                label: Some("channel"),
                values: per(|c| &c.failovers),
            },
            SourceFamily {
                name: "medic_notify_dropped_total",
                help: "Notifications dropped because the outbox was full (oldest non-critical first), by severity",
                kind: SourceKind::Counter,
                label: Some("severity"),
                values: SEVERITIES
                    .iter()
                    .zip(&self.dropped_by_severity)
                    .map(|(s, c)| (s.to_string(), g(c)))
                    .collect(),
            },
            SourceFamily {
                name: "medic_notify_suppressed_total",
                help: "Notifications not queued because an identical one was still pending (dedup)",
                kind: SourceKind::Counter,
                label: None,
                values: vec![(String::new(), g(&self.suppressed))],
            },
        ]
    }
}

/// What happened to one message in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by this channel after these failures on earlier channels.
    Delivered {
        channel: String,
        failed: Vec<String>,
    },
    /// No channel accepted it; the errors, by channel.
    Failed { errors: Vec<String> },
}

/// The deliverer. One per daemon (one writer of delivery state).
pub struct Notifier {
    store: Store,
    channels: BTreeMap<String, Channel>,
    http: reqwest::Client,
    timeout: Duration,
    retry: NotifyRetry,
    stats: Arc<Stats>,
    wake: Arc<Notify>,
    /// Lane → (consecutive failed rounds, next try).
    backoff: BTreeMap<String, (u32, Instant)>,
    rng: u64,
}

impl Notifier {
    /// Builds the channels of `cfg` (secrets from `secret`).
    pub fn new(
        store: Store,
        cfg: &NotifyConfig,
        secret: SecretLookup<'_>,
    ) -> Result<Notifier, String> {
        let mut channels = BTreeMap::new();
        for (name, spec) in &cfg.channels {
            channels.insert(name.clone(), Channel::new(name, spec, cfg.timeout, secret)?);
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Ok(Notifier {
            store,
            channels,
            http,
            timeout: cfg.timeout,
            retry: cfg.retry,
            stats: Arc::new(Stats::for_channels(
                cfg.channels.keys(),
                cfg.outbox_capacity,
            )),
            wake: Arc::new(Notify::new()),
            backoff: BTreeMap::new(),
            rng: seed | 1,
        })
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Notify this after queueing messages so they go out at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn channel_names(&self) -> Vec<String> {
        self.channels.keys().cloned().collect()
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let wait = self.round().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass over every lane (its head message only); returns how long
    /// to wait before the next pass (zero after any progress).
    pub async fn round(&mut self) -> Duration {
        const IDLE: Duration = Duration::from_secs(1);
        let heads = match self.store.outbox_lane_heads(unix_ms()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "notify: reading the outbox failed");
                return IDLE;
            }
        };
        let now = Instant::now();
        let mut wait = IDLE;
        let mut progress = false;
        for m in heads {
            let lane = self.lane_of(&m).join(",");
            if let Some((_, next)) = self.backoff.get(&lane) {
                if *next > now {
                    wait = wait.min(*next - now);
                    continue;
                }
            }
            match self.deliver(&m).await {
                Outcome::Delivered { .. } => {
                    self.backoff.remove(&lane);
                    progress = true;
                }
                Outcome::Failed { errors } => {
                    let n = self.backoff.get(&lane).map_or(0, |b| b.0);
                    let delay = self.delay(n);
                    tracing::warn!(
                        msg_id = %m.msg_id, lane = %lane, retry_in_ms = delay.as_millis() as u64,
                        errors = %errors.join("; "), "notification not delivered, will retry"
                    );
                    // In order: the rest of the lane waits behind its head.
                    self.backoff
                        .insert(lane.clone(), (n.saturating_add(1), Instant::now() + delay));
                    wait = wait.min(delay);
                }
            }
        }
        if let Ok(d) = self.store.outbox_depth().await {
            self.stats.depth.store(d, Ordering::Relaxed);
        }
        if progress {
            return Duration::ZERO;
        }
        if let Ok(Some(next_due)) = self.store.outbox_next_due().await {
            let ms = next_due.saturating_sub(unix_ms());
            if ms > 0 {
                wait = wait.min(Duration::from_millis(ms as u64));
            }
        }
        wait
    }

    fn lane_of(&self, m: &OutboxMessage) -> Vec<String> {
        let known: Vec<String> = m
            .channels
            .iter()
            .flatten()
            .filter(|c| self.channels.contains_key(*c))
            .cloned()
            .collect();
        if known.is_empty() {
            // Configuration changed since it was queued: every channel.
            self.channels.keys().cloned().collect()
        } else {
            known
        }
    }

    /// Tries the message's channels in order until one accepts it; records
    /// the result in the store.
    pub async fn deliver(&mut self, m: &OutboxMessage) -> Outcome {
        let lane = self.lane_of(m);
        let mut errors = Vec::new();
        let mut failed = Vec::new();
        let secs = unix_ms() / 1000;
        let mut accepted = None;
        if lane.is_empty() {
            // No channel configured at all: the structured log line is the
            // channel that is always there.
            accepted = Some("log".to_string());
        }
        for name in &lane {
            let Some(ch) = self.channels.get(name) else {
                continue;
            };
            match ch.send(&self.http, m, self.timeout, secs).await {
                Ok(()) => {
                    accepted = Some(name.clone());
                    break;
                }
                Err(e) => {
                    self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = self.stats.channel(name) {
                        c.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    }
                    errors.push(e.to_string());
                    failed.push(name.clone());
                }
            }
        }
        match accepted {
            Some(channel) => {
                let per = self.stats.channel(&channel);
                if !failed.is_empty() {
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = per {
                        c.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = per {
                    c.delivered.fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(target: "medic::notify", msg_id = %m.msg_id, channel = %channel,
                    severity = %m.severity, service = %m.service, event = %m.event, title = %m.title,
                    "notification delivered");
                if let Err(e) = self
                    .store
                    .outbox_delivered(m.id, &channel, &now_rfc3339())
                    .await
                {
                    // Sent but not marked: it will be sent again; receivers
                    // dedupe on the X-Medic-Id header.
                    tracing::error!(error = %e, msg_id = %m.msg_id, "notify: marking delivered failed");
                }
                Outcome::Delivered { channel, failed }
            }
            None => {
                if let Err(e) = self.store.outbox_failed(m.id, &errors.join("; ")).await {
                    tracing::error!(error = %e, "notify: recording a failed attempt failed");
                }
                Outcome::Failed { errors }
            }
        }
    }

    /// `min(cap, base·2^n) + random(0..jitter)`.
    fn delay(&mut self, n: u32) -> Duration {
        let exp = self
            .retry
            .base
            .saturating_mul(1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX));
        let exp = exp.min(self.retry.cap);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let jitter_ms = self.retry.jitter.as_millis() as u64;
        let j = if jitter_ms == 0 { 0 } else { r % jitter_ms };
        exp + Duration::from_millis(j)
    }
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}
