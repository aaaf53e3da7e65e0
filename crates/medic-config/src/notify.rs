//! `notify:`: notification channels, routing, retries, the outbox bound and
//! the escalation chain (issue 12). Delivered by `medic-notify`.
use std::collections::BTreeMap;
use std::time::Duration;

use medic_core::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::Validator;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Shorthand for one unsigned `webhook` channel named `webhook`.
    pub webhook: Option<Spanned<String>>,
    pub timeout: Option<Dur>,
    pub outbox_capacity: Option<Spanned<u32>>,
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub channels: BTreeMap<String, Spanned<RawChannel>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub escalation: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub base: Option<Dur>,
    pub cap: Option<Dur>,
    pub jitter: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub webhook: Option<RawWebhook>,
    pub slack: Option<RawUrl>,
    pub teams: Option<RawUrl>,
    pub pagerduty: Option<RawPagerDuty>,
    pub email: Option<RawEmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Spanned<String>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrl {
    pub url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerDuty {
    pub routing_key: Spanned<String>,
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub server: Spanned<String>,
    #[serde(default)]
    pub starttls: bool,
    pub from: Spanned<String>,
    pub to: Spanned<Vec<String>>,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub severity: Vec<Spanned<String>>,
    #[serde(default)]
    pub services: Vec<String>,
    pub channels: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub after: Dur,
    pub channels: Spanned<Vec<String>>,
}

/// The PagerDuty Events API v2 endpoint used when `url` is not set.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Per-request timeout of every channel.
    pub timeout: Duration,
    /// Most pending messages in the outbox.
    pub outbox_capacity: u32,
    pub retry: NotifyRetry,
    /// Channels by name.
    pub channels: BTreeMap<String, ChannelSpec>,
    /// Routes in order; every matching route delivers the message (failover
    /// within a route). Empty: one route over every channel by name.
    pub routes: Vec<RouteSpec>,
    /// Escalation chain for escalated incidents and pending approvals,
    /// ordered by `after`.
    pub escalation: Vec<EscalationStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyRetry {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Duration,
}

impl Default for NotifyRetry {
    /// base 1s, cap 30s, jitter 1s: after an outage of any length a lane
    /// retries its head at most ~31 s after the channel is back.
    fn default() -> Self {
        NotifyRetry {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            jitter: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSpec {
    Webhook {
        url: String,
        /// Environment variable holding the HMAC-SHA256 key.
        secret_env: Option<String>,
    },
    Slack {
        url: String,
    },
    Teams {
        url: String,
    },
    PagerDuty {
        url: String,
        routing_key: String,
    },
    Email {
        host: String,
        port: u16,
        starttls: bool,
        from: String,
        to: Vec<String>,
        username: Option<String>,
        password_env: Option<String>,
    },
}

impl ChannelSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelSpec::Webhook { .. } => "webhook",
            ChannelSpec::Slack { .. } => "slack",
            ChannelSpec::Teams { .. } => "teams",
            ChannelSpec::PagerDuty { .. } => "pagerduty",
            ChannelSpec::Email { .. } => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Empty: every severity.
    pub severities: Vec<Severity>,
    /// Empty: every service.
    pub services: Vec<String>,
    /// Primary first, then the failover order.
    pub channels: Vec<String>,
}

impl RouteSpec {
    pub fn matches(&self, severity: Severity, service: &str) -> bool {
        (self.severities.is_empty() || self.severities.contains(&severity))
            && (self.services.is_empty() || self.services.iter().any(|s| s == service))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    pub after: Duration,
    pub channels: Vec<String>,
}

impl NotifyConfig {
    /// The channel lists (one per matching route) for a message.
    pub fn route(&self, severity: Severity, service: &str) -> Vec<Vec<String>> {
        if self.routes.is_empty() {
            if self.channels.is_empty() {
                return Vec::new();
            }
            return vec![self.channels.keys().cloned().collect()];
        }
        self.routes
            .iter()
            .filter(|r| r.matches(severity, service))
            .map(|r| r.channels.clone())
            .collect()
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "info" => Some(Severity::Info),
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

impl Validator {
    pub(crate) fn notify(&mut self, raw: RawNotify) -> NotifyConfig {
        let mut channels = BTreeMap::new();
        if let Some(hook) = &raw.webhook {
            self.url(hook);
            channels.insert(
                "webhook".to_string(),
                ChannelSpec::Webhook {
                    url: hook.value.clone(),
                    secret_env: None,
                },
            );
        }
        for (name, ch) in &raw.channels {
            if let Some(spec) = self.channel(name, ch) {
                channels.insert(name.clone(), spec);
            }
        }
        let check_names = |v: &mut Validator, list: &Spanned<Vec<String>>, what: &str| {
            if list.value.is_empty() {
                v.at(
                    list.referenced,
                    format!("{what}: `channels` must not be empty"),
                );
            }
            for c in &list.value {
                if !channels.contains_key(c) {
                    v.at(
                        list.referenced,
                        format!("{what}: unknown channel `{c}` (not under notify.channels)"),
                    );
                }
            }
        };
        let mut routes = Vec::new();
        for r in &raw.routes {
            check_names(self, &r.value.channels, "notify.routes");
            let mut severities = Vec::new();
            for s in &r.value.severity {
                match parse_severity(&s.value) {
                    Some(sev) => severities.push(sev),
                    None => self.at(
                        s.referenced,
                        format!(
                            "unknown severity `{}` (use info, warning or critical)",
                            s.value
                        ),
                    ),
                }
            }
            routes.push(RouteSpec {
                severities,
                services: r.value.services.clone(),
                channels: r.value.channels.value.clone(),
            });
        }
        let mut escalation = Vec::new();
        for s in &raw.escalation {
            check_names(self, &s.value.channels, "notify.escalation");
            escalation.push(EscalationStep {
                after: s.value.after.0,
                channels: s.value.channels.value.clone(),
            });
        }
        escalation.sort_by_key(|s| s.after);
        let outbox_capacity = match &raw.outbox_capacity {
            Some(c) if c.value == 0 => {
                self.at(c.referenced, "notify.outbox_capacity must be at least 1");
                1
            }
            Some(c) => c.value,
            None => 10_000,
        };
        let retry = raw.retry.as_ref();
        NotifyConfig {
            timeout: raw.timeout.map_or(Duration::from_secs(5), |d| d.0),
            outbox_capacity,
            retry: {
                let d = NotifyRetry::default();
                NotifyRetry {
                    base: retry.and_then(|r| r.base).map_or(d.base, |x| x.0),
                    cap: retry.and_then(|r| r.cap).map_or(d.cap, |x| x.0),
                    jitter: retry.and_then(|r| r.jitter).map_or(d.jitter, |x| x.0),
                }
            },
            channels,
            routes,
            escalation,
        }
    }

    fn channel(&mut self, name: &str, ch: &Spanned<RawChannel>) -> Option<ChannelSpec> {
        let c = &ch.value;
        let n = [
            c.webhook.is_some(),
            c.slack.is_some(),
            c.teams.is_some(),
            c.pagerduty.is_some(),
            c.email.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            self.at(
                ch.referenced,
                format!(
                    "notify.channels.{name}: exactly one of webhook, slack, teams, pagerduty, email"
                ),
            );
            return None;
        }
        if let Some(w) = &c.webhook {
            self.url(&w.url);
            return Some(ChannelSpec::Webhook {
                url: w.url.value.clone(),
                secret_env: w.secret_env.clone(),
            });
        }
        if let Some(s) = &c.slack {
            self.url(&s.url);
            return Some(ChannelSpec::Slack {
                url: s.url.value.clone(),
            });
        }
        if let Some(t) = &c.teams {
            self.url(&t.url);
            return Some(ChannelSpec::Teams {
                url: t.url.value.clone(),
            });
        }
        if let Some(p) = &c.pagerduty {
            if let Some(u) = &p.url {
                self.url(u);
            }
            if p.routing_key.value.trim().is_empty() {
                self.at(p.routing_key.referenced, "routing_key must not be empty");
            }
            return Some(ChannelSpec::PagerDuty {
                url: p
                    .url
                    .as_ref()
                    .map_or(PAGERDUTY_EVENTS_URL.to_string(), |u| u.value.clone()),
                routing_key: p.routing_key.value.clone(),
            });
        }
        let e = c.email.as_ref()?;
        let (host, port) = match e.server.value.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => match p.parse::<u16>() {
                Ok(p) => (h.to_string(), p),
                Err(_) => {
                    self.at(
                        e.server.referenced,
                        format!("invalid server `{}`: use host:port", e.server.value),
                    );
                    return None;
                }
            },
            _ => {
                self.at(
                    e.server.referenced,
                    format!("invalid server `{}`: use host:port", e.server.value),
                );
                return None;
            }
        };
        if !e.from.value.contains('@') {
            self.at(e.from.referenced, "`from` must be an email address");
        }
        if e.to.value.is_empty() || e.to.value.iter().any(|t| !t.contains('@')) {
            self.at(
                e.to.referenced,
                "`to` must be a non-empty list of email addresses",
            );
        }
        Some(ChannelSpec::Email {
            host,
            port,
            starttls: e.starttls,
            from: e.from.value.clone(),
            to: e.to.value.clone(),
            username: e.username.clone(),
            password_env: e.password_env.clone(),
        })
    }
}
