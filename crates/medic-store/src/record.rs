//! The audit record format of the engine's notices: the one place that turns
//! a [`Notice`] into an audit `kind` and JSON payload.
//!
//! Format version [`RECORD_VERSION`]: the payload is a JSON object whose
//! values are strings (numbers and lists rendered as text, absent values
//! omitted), plus `"v": 1`. Times are RFC 3339 UTC. A golden test
//! (`tests/golden.rs`) pins the rendering of every [`medic_core::NoticeKind`], so a change
//! of the engine cannot change the audit format silently.
use medic_core::Notice;
use serde_json::{Map, Value};

/// Version of the payload format, written as `"v"` in every payload.
pub const RECORD_VERSION: u64 = 1;

/// An audit record rendered from a notice, ready for [`crate::Store::append_audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub kind: &'static str,
    pub payload: String,
}

struct Fields(Map<String, Value>);

impl Fields {
    fn new() -> Fields {
        let mut m = Map::new();
        m.insert("v".into(), Value::from(RECORD_VERSION));
        Fields(m)
    }
    fn s(mut self, k: &str, v: impl ToString) -> Fields {
        self.0.insert(k.into(), Value::String(v.to_string()));
        self
    }
    fn opt(self, k: &str, v: Option<impl ToString>) -> Fields {
        match v {
            Some(v) => self.s(k, v),
            None => self,
        }
    }
    fn list(self, k: &str, v: &[String]) -> Fields {
        self.s(k, v.join(","))
    }
    /// Verification figures under `prefix_` (issue 10), absent when unknown.
    fn stats(self, prefix: &str, st: Option<&medic_core::Stats>) -> Fields {
        let Some(st) = st else {
            return self;
        };
        self.s(&format!("{prefix}_samples"), st.samples)
            .s(
                &format!("{prefix}_failure_share"),
                format!("{:.3}", st.failure_share),
            )
            .opt(&format!("{prefix}_p50_ms"), st.p50_ms)
            .opt(&format!("{prefix}_p90_ms"), st.p90_ms)
    }
}

/// RFC 3339 (UTC, ms precision) of a unix time in ms.
pub fn rfc3339_ms(unix_ms: i64) -> Option<String> {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn scope(f: Fields, service: &Option<String>, kind: &Option<medic_core::ActionKind>) -> Fields {
    f.s("service", service.as_deref().unwrap_or("*"))
        .s("kind", kind.map(|k| k.as_str()).unwrap_or("*"))
}

/// A number as the audit writes it: up to 6 significant decimals, `nan` or
/// `inf` when not finite.
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else if x.is_nan() {
        "nan".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// The judge's verdict: `outcome`, `score`, `explanation`, `metrics` (the
/// names), then per metric `<name>.<field>` (metric names come from the
/// configuration, a bounded set).
fn canary_verdict(f: Fields, v: &medic_core::medic_canary::Verdict) -> Fields {
    let names: Vec<String> = v.metrics.iter().map(|m| m.metric.clone()).collect();
    let mut f = f
        .s("outcome", v.outcome.as_str())
        .s("score", num(v.score))
        .s("explanation", &v.explanation)
        .list("metrics", &names);
    for m in &v.metrics {
        let k = |field: &str| format!("{}.{field}", m.metric);
        f = f
            .s(&k("outcome"), m.outcome.as_str())
            .opt(&k("fail"), m.fail.map(|r| r.as_str()))
            .s(&k("n_canary"), m.n_canary)
            .s(&k("n_baseline"), m.n_baseline)
            .s(&k("dropped"), m.dropped)
            .s(&k("u"), num(m.test.u))
            .s(&k("p_value"), num(m.test.p_value))
            .s(&k("method"), m.test.method.as_str())
            .s(&k("effect_measure"), m.effect_measure.as_str())
            .s(&k("effect"), num(m.effect))
            .s(&k("allowed_effect"), num(m.allowed_effect))
            .s(&k("spread_ratio"), num(m.spread.ratio))
            .s(&k("spread_p_value"), num(m.spread.p_value))
            .s(&k("spread_failed"), m.spread.failed)
            .s(&k("explanation"), &m.explanation);
    }
    f
}

/// Render `n` as an audit record.
pub fn render(n: &Notice) -> Rendered {
    let f = Fields::new();
    let f = match n {
        Notice::IncidentOpened {
            incident,
            service,
            trigger,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("trigger", trigger),
        Notice::IncidentMerged {
            incident,
            cause,
            service,
            trigger,
        } => f
            .s("incident", incident)
            .s("cause", cause)
            .s("service", service)
            .s("trigger", trigger),
        Notice::Diagnosis {
            incident,
            service,
            cause,
            confidence,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("cause", cause)
            .s("confidence", format!("{confidence:.2}")),
        Notice::RootCause {
            service,
            signal,
            pattern,
            confidence,
            prior,
            evidence,
            learned,
            band,
            victims,
            ranked,
            evidence_text,
        } => f
            .s("service", service.as_deref().unwrap_or("-"))
            .s("signal", signal)
            .s("pattern", pattern)
            .s("confidence", confidence)
            .s("prior", format!("{prior:.2}"))
            .s("evidence", format!("{evidence:.2}"))
            .s("learned", format!("{learned:.2}"))
            .s("band", band.as_str())
            .s("reason_code", band.code().as_str())
            .s("victims_held", victims.join(","))
            .s("hypotheses", ranked.join("; "))
            .s("evidence_text", evidence_text),
        Notice::MassIncidentLatched {
            affected_services,
            limit,
        } => f
            .s("service", "*")
            .s("kind", "*")
            .s("reason_code", "mass_incident")
            .s("affected_services", affected_services)
            .s("limit", limit)
            .s("by", "medic"),
        Notice::AutomationPaused {
            scope: sc,
            until_unix_ms,
            duration,
            by,
            reason,
        } => scope(f, &sc.service, &sc.kind)
            .s("reason_code", "paused")
            .opt("until", until_unix_ms.and_then(rfc3339_ms))
            .opt("duration_s", duration.map(|d| d.as_secs()))
            .s("by", by)
            .s("reason", reason),
        Notice::AutomationResumed {
            scope: sc,
            pauses_lifted,
            mass_latch_lifted,
            by,
        } => scope(f, &sc.service, &sc.kind)
            .s("pauses_lifted", pauses_lifted)
            .s("mass_incident_latch_lifted", mass_latch_lifted)
            .s("by", by),
        Notice::PauseExpired { scope: sc } => scope(f, &sc.service, &sc.kind),
        Notice::FreezeWindowsSet { names } => f.s("count", names.len()).list("names", names),
        Notice::Decision {
            incident,
            service,
            action,
            stage,
            verdict,
            reason_code,
            window,
            reason,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("stage", stage.as_str())
            .s("verdict", verdict.as_str())
            .opt("reason_code", reason_code.map(|c| c.as_str()))
            .opt("window", window.as_ref())
            .s("reason", reason),
        Notice::ApprovalRequested {
            approval,
            incident,
            service,
            action,
            risk,
            score,
            reason_code,
            required,
            expires_at_unix_ms,
        } => f
            .s("approval_id", approval)
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("risk", risk.as_str())
            .s("score", format!("{score:.3}"))
            .s("reason_code", reason_code.as_str())
            .s("required", required)
            .opt("expires_at", expires_at_unix_ms.and_then(rfc3339_ms)),
        Notice::ApprovalApproved {
            approval,
            by,
            approvals,
            required,
            two_person_rule,
        } => f
            .s("approval_id", approval)
            .s("by", by)
            .s("approvals", approvals)
            .s("required", required)
            .s("two_person_rule", two_person_rule),
        Notice::ApprovalGranted {
            approval,
            incident,
            service,
            action,
            risk,
            approvers,
        } => f
            .s("approval_id", approval)
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("risk", risk.as_str())
            .list("approvers", approvers),
        Notice::ApprovalRejected {
            approval,
            incident,
            service,
            action,
            by,
            reason,
        } => f
            .s("approval_id", approval)
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("by", by)
            .s("reason", reason),
        Notice::ApprovalExpired {
            approval,
            incident,
            service,
            action,
            approvers,
        } => f
            .s("approval_id", approval)
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .list("approvers", approvers),
        Notice::ApprovalWithdrawn {
            approval,
            incident,
            reason,
        } => f
            .s("approval_id", approval)
            .s("incident", incident)
            .s("reason", reason),
        Notice::Override {
            action_id,
            service,
            action,
            by,
            reason,
        } => f
            .s("action_id", action_id)
            .s("service", service)
            .s("action", action)
            .s("by", by)
            .s("reason", reason),
        Notice::ActionIntent {
            action_id,
            incident,
            service,
            action,
            kind,
            class,
            risk,
            score,
            stage,
            attempt,
            reason,
            approved_by,
            revert_of,
            override_by,
            instances,
        } => {
            let f = f
                .s("action_id", action_id)
                .opt("incident", incident.as_ref())
                .s("service", service)
                .s("action", action)
                .s("kind", kind.as_str())
                .s("class", class.as_str())
                .s("risk", risk.as_str())
                .s("score", format!("{score:.3}"))
                .s("stage", stage.as_str())
                .s("attempt", attempt)
                .s("reason", reason);
            let f = if approved_by.is_empty() {
                f
            } else {
                f.list("approved_by", approved_by)
            };
            let f = f
                .opt("revert_of", revert_of.as_ref())
                .opt("override_by", override_by.as_ref());
            if instances.is_empty() {
                f
            } else {
                f.list("instances", instances)
            }
        }
        Notice::ActionOutcome {
            action_id,
            incident,
            service,
            action,
            stage,
            status,
            detail,
        } => f
            .s("action_id", action_id)
            .opt("incident", incident.as_ref())
            .s("service", service)
            .s("action", action)
            .s("stage", stage.as_str())
            .s("status", status.as_str())
            .s("detail", detail),
        Notice::ActionOutcomeUnmatched { action_id } => f.s("action_id", action_id),
        Notice::ActionRetryScheduled {
            incident,
            service,
            action,
            delay,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("delay_ms", delay.as_millis()),
        Notice::ActionCancelRequested {
            action_id,
            service,
            action,
            by,
            reason,
        } => f
            .s("action_id", action_id)
            .s("service", service)
            .s("action", action)
            .s("by", by)
            .s("reason", reason),
        Notice::ActionReconciled {
            action_id,
            incident,
            service,
            action,
            stage,
            resolution,
        } => f
            .s("action_id", action_id)
            .opt("incident", incident.as_ref())
            .s("service", service)
            .s("action", action)
            .s("stage", stage.as_str())
            .s("resolution", resolution)
            .s("reason_code", "interrupted_by_restart"),
        Notice::VerifyPassed {
            incident,
            service,
            probe,
        }
        | Notice::VerifyFailed {
            incident,
            service,
            probe,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("probe", probe),
        Notice::VerifyBaseline {
            incident,
            service,
            probe,
            action,
            window,
            baseline,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("probe", probe)
            .s("action", action)
            .s("window_ms", window.as_millis())
            .stats("baseline", baseline.as_ref()),
        Notice::VerifyJudged {
            incident,
            service,
            probe,
            action,
            judgement,
            reason_code,
            baseline,
            observed,
            undo,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("probe", probe)
            .s("action", action)
            .s("judgement", judgement)
            .opt("reason_code", reason_code.map(|c| c.as_str()))
            .stats("baseline", baseline.as_ref())
            .stats("observed", observed.as_ref())
            .opt("undo", undo.as_ref()),
        Notice::BreakerChanged {
            service,
            action,
            from,
            to,
            consecutive_failures,
        } => f
            .s("service", service)
            .s("action", action)
            .s("from", from)
            .s("to", to)
            .s("consecutive_failures", consecutive_failures),
        Notice::HealRetrying {
            incident,
            service,
            reason_code,
            reason,
            consecutive_failures,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("reason_code", reason_code.as_str())
            .s("reason", reason)
            .s("consecutive_failures", consecutive_failures),
        Notice::IncidentEscalated {
            incident,
            service,
            reason_code,
            reason,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("reason_code", reason_code.as_str())
            .s("reason", reason),
        Notice::IncidentResolved {
            incident,
            service,
            outcome,
            reason,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("outcome", outcome.as_str())
            .s("reason", reason),
        Notice::AutohealDisabled {
            service,
            reason_code,
            consecutive_failures,
        } => f
            .s("service", service)
            .s("reason_code", reason_code.as_str())
            .s("consecutive_failures", consecutive_failures),
        Notice::AutohealEnabled { service, by } => f.s("service", service).s("by", by),
        Notice::LockForceReleased {
            key,
            holder,
            by,
            reason,
        } => f
            .s("key", key)
            .s("holder", holder)
            .s("by", by)
            .s("reason", reason),
        Notice::LockReclaimed { key, holder } => f.s("key", key).s("holder", holder),
        Notice::RevertDeferred {
            service,
            action,
            revert_of,
            reason_code,
            reason,
        } => f
            .s("service", service)
            .s("action", action)
            .s("revert_of", revert_of)
            .s("reason_code", reason_code.as_str())
            .s("reason", reason),
        Notice::RevertDropped {
            service,
            action,
            revert_of,
            reason_code,
        } => f
            .s("service", service)
            .s("action", action)
            .s("revert_of", revert_of)
            .opt("reason_code", reason_code.map(|c| c.as_str())),
        Notice::ModeChanged { service, mode, by } => f
            .s("service", service.as_deref().unwrap_or("*"))
            .s("mode", mode.as_str())
            .s("by", by),
        Notice::OperatorRejected {
            by,
            command,
            error,
            reason,
        } => f
            .s("by", by)
            .s("command", command)
            .s("reason_code", error.as_str())
            .s("reason", reason),
        Notice::IncidentResolvedByOperator {
            incident,
            by,
            reason,
        } => f.s("incident", incident).s("by", by).s("reason", reason),
        Notice::StartupProbeFailed {
            service,
            probe,
            detail,
        } => f
            .s("service", service)
            .s("probe", probe)
            .s("detail", detail),
        Notice::StateRestored {
            downtime,
            incidents,
            approvals,
            pauses,
            inflight,
            mass_latched,
        } => f
            .s("downtime_ms", downtime.as_millis())
            .s("incidents", incidents)
            .s("approvals", approvals)
            .s("pauses", pauses)
            .s("inflight_reconciled", inflight)
            .s("mass_incident_latch", mass_latched),
        Notice::CanaryStage {
            incident,
            service,
            action,
            stage,
            percent,
            instances,
            baseline,
        } => f
            .s("incident", incident)
            .s("service", service)
            .s("action", action)
            .s("stage", stage)
            .s("percent", percent)
            .list("instances", instances)
            .list("baseline", baseline),
        Notice::CanaryVerdict {
            incident,
            service,
            action,
            stage,
            percent,
            verdict,
        } => canary_verdict(
            f.s("incident", incident)
                .s("service", service)
                .s("action", action)
                .s("stage", stage)
                .s("percent", percent),
            verdict,
        ),
    };
    Rendered {
        kind: n.kind().as_str(),
        payload: Value::Object(f.0).to_string(),
    }
}
