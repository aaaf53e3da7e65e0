//! The daemon's side of notifications (issue 12): a step's audit records
//! and its notifications are written in one transaction (the outbox), the
//! delivery task sends them, and a closed incident resolves its pages.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use medic_config::NotifyConfig;
use medic_core::{Notification, Severity};
use medic_notify::api::NotifyApi;
use medic_notify::{plan, Notifier, Stats};
use medic_store::outbox::StepWritten;
use medic_store::{Store, StoreError};
use tokio::sync::{watch, Notify};

/// Default outbox bound when there is no `notify:` section (never used for
/// delivery then, only to satisfy the store's argument).
const NO_CONFIG_CAPACITY: u32 = 1;

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    cfg: Option<NotifyConfig>,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
}

impl Outbox {
    /// Starts the delivery task when `cfg` is set (secrets read from the
    /// environment here, at the edge).
    ///
    /// With `acting` (high availability, issue 13) only a leader delivers:
    /// the delivery rounds run while it reads `true`, so followers never send
    /// what the leader's outbox holds.
    pub fn start(
        store: &Store,
        cfg: Option<&NotifyConfig>,
        shutdown: watch::Receiver<bool>,
        acting: Option<watch::Receiver<bool>>,
    ) -> anyhow::Result<Outbox> {
        let mut out = Outbox {
            store: store.clone(),
            cfg: cfg.cloned(),
            wake: Arc::new(Notify::new()),
            stats: Arc::new(Stats::default()),
        };
        if let Some(cfg) = cfg {
            let env = |var: &str| std::env::var(var).ok();
            let n = Notifier::new(store.clone(), cfg, &env)
                .map_err(|e| anyhow::anyhow!("notify: {e}"))?;
            out.wake = n.waker();
            out.stats = n.stats();
            match acting {
                None => {
                    tokio::spawn(n.run(shutdown));
                }
                Some(acting) => {
                    tokio::spawn(deliver_while_acting(n, out.wake.clone(), shutdown, acting));
                }
            }
        }
        Ok(out)
    }

    pub fn api(&self) -> NotifyApi {
        NotifyApi {
            store: self.store.clone(),
            cfg: self.cfg.clone(),
            wake: self.wake.clone(),
            stats: self.stats.clone(),
        }
    }

    /// Writes a step's audit records and the outbox rows of its
    /// notifications in one transaction.
    pub async fn record_step(
        &self,
        ts: &str,
        audit: &[(&str, &str)],
        notes: &[Notification],
    ) -> Result<StepWritten, StoreError> {
        let (msgs, capacity) = match &self.cfg {
            Some(cfg) => {
                let now = medic_notify::deliver::unix_ms();
                let msgs = notes
                    .iter()
                    .flat_map(|n| plan::messages(cfg, n, now))
                    .collect::<Vec<_>>();
                (msgs, cfg.outbox_capacity)
            }
            None => (Vec::new(), NO_CONFIG_CAPACITY),
        };
        let w = self.store.append_step(ts, audit, &msgs, capacity).await?;
        for d in &w.dropped {
            tracing::warn!(msg_id = %d.msg_id, severity = %d.severity, title = %d.title,
                "notification dropped: outbox full");
        }
        for d in &w.dropped {
            self.stats.count_dropped(&d.severity);
        }
        self.stats
            .suppressed
            .fetch_add(u64::from(w.suppressed), Ordering::Relaxed);
        if !w.queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(w)
    }

    /// An incident closed: if it was notified about, stop its escalation
    /// chain and send `resolve` (PagerDuty resolves by dedup key), once.
    pub async fn incident_closed(&self, id: &str, ts: &str) {
        let Some(cfg) = &self.cfg else { return };
        let service = match self.store.outbox_incident_service(id).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "notify: reading the outbox failed");
                return;
            }
        };
        match self.store.outbox_has_event(id, "resolve").await {
            Ok(false) => {}
            Ok(true) => return,
            Err(e) => {
                tracing::error!(error = %e, "notify: reading the outbox failed");
                return;
            }
        }
        let msgs = plan::event_messages(
            cfg,
            &plan::Event {
                event: "resolve",
                severity: Severity::Critical,
                service: &service,
                incident: Some(id),
                title: &format!("{service}: incident {id} closed"),
                message: "medic closed the incident",
            },
            None,
        );
        match self
            .store
            .close_chain(ts, id, "medic", &msgs, "notify.resolved")
            .await
        {
            Ok(_) => self.wake.notify_one(),
            Err(e) => tracing::error!(error = %e, incident = %id, "notify: resolving failed"),
        }
    }
}

/// [`Notifier::run`], but only while this instance leads (`acting`).
async fn deliver_while_acting(
    mut n: Notifier,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut acting: watch::Receiver<bool>,
) {
    loop {
        if !*acting.borrow_and_update() {
            tokio::select! {
                r = acting.changed() => if r.is_err() { return },
                _ = shutdown.wait_for(|s| *s) => return,
            }
            continue;
        }
        let wait = n.round().await;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = acting.changed() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
