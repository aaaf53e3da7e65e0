//! One delivery attempt of one outbox message over one channel.
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use medic_config::ChannelSpec;
use medic_store::outbox::OutboxMessage;
use sha2::Sha256;

/// Header with the message's stable id: receivers dedupe on it.
pub const ID_HEADER: &str = "X-Medic-Id";
/// Header with the unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Medic-Timestamp";
/// `sha256=<hex(HMAC-SHA256(key, timestamp + "." + body))>`.
pub const SIGNATURE_HEADER: &str = "X-Medic-Signature";

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{channel}: request failed: {message}")]
    Transport { channel: String, message: String },
    #[error("{channel}: refused with HTTP {status}")]
    Refused { channel: String, status: u16 },
    #[error("{channel}: bad message: {message}")]
    Build { channel: String, message: String },
    #[error("{channel}: SMTP: {message}")]
    Smtp { channel: String, message: String },
}

/// A configured channel, ready to send (secrets resolved).
#[derive(Clone)]
pub struct Channel {
    pub name: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Webhook {
        url: String,
        secret: Option<Vec<u8>>,
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
        mailer: AsyncSmtpTransport<Tokio1Executor>,
        from: String,
        to: Vec<String>,
    },
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .finish()
    }
}

/// Reads a secret from the environment named in the config (at the edge).
pub type SecretLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Channel {
    /// Builds a channel. A secret named in the config but absent from the
    /// environment is an error (never send unsigned by accident).
    pub fn new(
        name: &str,
        spec: &ChannelSpec,
        timeout: Duration,
        secret: SecretLookup<'_>,
    ) -> Result<Channel, String> {
        let kind = match spec {
            ChannelSpec::Webhook { url, secret_env } => Kind::Webhook {
                url: url.clone(),
                secret: match secret_env {
                    Some(var) => Some(
                        secret(var)
                            .ok_or_else(|| {
                                format!("channel {name}: environment variable {var} is not set")
                            })?
                            .into_bytes(),
                    ),
                    None => None,
                },
            },
            ChannelSpec::Slack { url } => Kind::Slack { url: url.clone() },
            ChannelSpec::Teams { url } => Kind::Teams { url: url.clone() },
            ChannelSpec::PagerDuty { url, routing_key } => Kind::PagerDuty {
                url: url.clone(),
                routing_key: routing_key.clone(),
            },
            ChannelSpec::Email {
                host,
                port,
                starttls,
                from,
                to,
                username,
                password_env,
            } => {
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(timeout));
                if *starttls {
                    let tls = TlsParameters::new(host.clone())
                        .map_err(|e| format!("channel {name}: TLS: {e}"))?;
                    b = b.tls(Tls::Required(tls));
                }
                if let Some(user) = username {
                    let pass = match password_env {
                        Some(var) => secret(var).ok_or_else(|| {
                            format!("channel {name}: environment variable {var} is not set")
                        })?,
                        None => String::new(),
                    };
                    b = b.credentials(Credentials::new(user.clone(), pass));
                }
                Kind::Email {
                    mailer: b.build(),
                    from: from.clone(),
                    to: to.clone(),
                }
            }
        };
        Ok(Channel {
            name: name.to_string(),
            kind,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Webhook { .. } => "webhook",
            Kind::Slack { .. } => "slack",
            Kind::Teams { .. } => "teams",
            Kind::PagerDuty { .. } => "pagerduty",
            Kind::Email { .. } => "email",
        }
    }

    /// One attempt. Success means the receiver accepted the message (2xx,
    /// or SMTP 250 after DATA).
    pub async fn send(
        &self,
        http: &reqwest::Client,
        m: &OutboxMessage,
        timeout: Duration,
        unix_secs: i64,
    ) -> Result<(), SendError> {
        let (url, body, signature) = match &self.kind {
            Kind::Webhook { url, secret } => {
                let body = webhook_body(m).to_string();
                let sig = secret.as_ref().map(|k| sign(k, unix_secs, body.as_bytes()));
                (url, body, sig)
            }
            Kind::Slack { url } => (url, slack_body(m).to_string(), None),
            Kind::Teams { url } => (url, teams_body(m).to_string(), None),
            Kind::PagerDuty { url, routing_key } => {
                (url, pagerduty_body(m, routing_key).to_string(), None)
            }
            Kind::Email { mailer, from, to } => return self.mail(mailer, from, to, m).await,
        };
        let mut req = http
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &m.msg_id)
            .header(TIMESTAMP_HEADER, unix_secs.to_string());
        if let Some(sig) = signature {
            req = req.header(SIGNATURE_HEADER, sig);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Transport {
                channel: self.name.clone(),
                message: error_chain(&e),
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(SendError::Refused {
                channel: self.name.clone(),
                status: resp.status().as_u16(),
            })
        }
    }

    async fn mail(
        &self,
        mailer: &AsyncSmtpTransport<Tokio1Executor>,
        from: &str,
        to: &[String],
        m: &OutboxMessage,
    ) -> Result<(), SendError> {
        let build = |message: String| SendError::Build {
            channel: self.name.clone(),
            message,
        };
        let mut b = Message::builder()
            .from(from.parse().map_err(|e| build(format!("from: {e}")))?)
            .subject(subject(m))
            .message_id(Some(format!("<{}@medic>", m.msg_id)))
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            b = b.to(t.parse().map_err(|e| build(format!("to {t}: {e}")))?);
        }
        let email = b.body(text(m)).map_err(|e| build(e.to_string()))?;
        mailer
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Smtp {
                channel: self.name.clone(),
                message: error_chain(&e),
            })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `sha256=` + hex HMAC-SHA256 over `"{unix_secs}.{body}"`.
pub fn sign(key: &[u8], unix_secs: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature as a receiver would (constant-time compare).
pub fn verify(key: &[u8], unix_secs: &str, body: &[u8], signature: &str) -> bool {
    let Some(hexsig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(raw) = hex::decode(hexsig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(unix_secs.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&raw).is_ok()
}

fn subject(m: &OutboxMessage) -> String {
    format!("[medic {}] {}", m.severity.to_uppercase(), m.title)
}

fn text(m: &OutboxMessage) -> String {
    let mut s = format!(
        "{}\n\n{}\n\nservice: {}\nevent: {}\n",
        m.title, m.message, m.service, m.event
    );
    if let Some(i) = &m.incident {
        s.push_str(&format!("incident: {i}\n"));
    }
    s.push_str(&format!("id: {}\nat: {}\n", m.msg_id, m.created_at));
    s
}

/// The generic webhook's JSON body.
pub fn webhook_body(m: &OutboxMessage) -> serde_json::Value {
    serde_json::json!({
        "id": m.msg_id,
        "event": m.event,
        "severity": m.severity,
        "service": m.service,
        "incident": m.incident,
        "title": m.title,
        "message": m.message,
        "created_at": m.created_at,
    })
}

fn slack_body(m: &OutboxMessage) -> serde_json::Value {
    serde_json::json!({ "text": format!("*{}*\n{}", subject(m), text(m)) })
}

fn teams_body(m: &OutboxMessage) -> serde_json::Value {
    let color = match m.severity.as_str() {
        "critical" => "D70000",
        "warning" => "FFA500",
        _ => "2EB886",
    };
    serde_json::json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": subject(m),
        "themeColor": color,
        "title": subject(m),
        "text": text(m),
    })
}

/// The PagerDuty dedup key: one per incident (else per message).
pub fn pagerduty_dedup_key(m: &OutboxMessage) -> String {
    match &m.incident {
        Some(i) => format!("medic-{i}"),
        None => format!("medic-{}", m.msg_id),
    }
}

fn pagerduty_body(m: &OutboxMessage, routing_key: &str) -> serde_json::Value {
    let action = match m.event.as_str() {
        "acknowledge" => "acknowledge",
        "resolve" => "resolve",
        _ => "trigger",
    };
    let mut body = serde_json::json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(m),
    });
    if action == "trigger" {
        body["payload"] = serde_json::json!({
            "summary": m.title,
            "source": "medic",
            "severity": match m.severity.as_str() {
                "critical" => "critical",
                "warning" => "warning",
                _ => "info",
            },
            "component": m.service,
            "custom_details": { "message": m.message, "medic_id": m.msg_id, "event": m.event },
        });
    }
    body
}
