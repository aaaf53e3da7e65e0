//! medic-notify: delivers the notification outbox kept by medic-store.
//!
//! The daemon writes each notification into the outbox in the same
//! transaction as the audit records of the engine step that caused it
//! ([`medic_store::Store::append_step`]); [`Notifier`] then delivers the
//! rows: in order per lane (a route's channel list), primary channel first
//! with failover to the next, retrying a lane's head with exponential
//! backoff and jitter until some channel accepts it. Channels: generic
//! webhook (HMAC-SHA256 signed), Slack, Microsoft Teams, PagerDuty Events
//! API v2, email over SMTP; a structured log line is always written.
//!
//! Every message carries a stable id (`X-Medic-Id`, the email Message-ID,
//! and in PagerDuty the per-incident dedup key) so receivers can drop the
//! rare redelivery of a message sent just before a crash.
pub mod api;
pub mod bench;
pub mod channel;
pub mod deliver;
pub mod loopback;
pub mod plan;

pub use channel::{Channel, SendError, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use deliver::{Notifier, Outcome, Stats};
