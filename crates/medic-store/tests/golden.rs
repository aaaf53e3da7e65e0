#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden test of the audit record format: one sample of every notice kind,
//! rendered and compared with `tests/golden/notices.txt`. A failing diff means
//! the audit format changed: if that is intended, bump `RECORD_VERSION` when
//! needed, rerun with `UPDATE_GOLDEN=1` and review the diff.
use std::time::Duration;

mod common;

use common::TestDb;
use medic_core::*;
use medic_store::record::render;

fn inc() -> IncidentId {
    IncidentId("inc-abc-1".into())
}

fn scope() -> Scope {
    Scope {
        service: Some("web".into()),
        kind: Some(ActionKind::Restart),
    }
}

/// One notice per kind. The match is exhaustive: a new kind does not compile
/// until it has a sample here.
fn sample(k: NoticeKind) -> Notice {
    let s = || "web".to_string();
    match k {
        NoticeKind::IncidentOpened => Notice::IncidentOpened {
            incident: inc(),
            service: s(),
            trigger: "healthz failing".into(),
        },
        NoticeKind::IncidentMerged => Notice::IncidentMerged {
            incident: inc(),
            cause: "db".into(),
            service: s(),
            trigger: "work slow".into(),
        },
        NoticeKind::Diagnosis => Notice::Diagnosis {
            incident: inc(),
            service: s(),
            cause: "process exited".into(),
            confidence: 0.95,
        },
        NoticeKind::RootCause => Notice::RootCause {
            service: Some("db".into()),
            signal: "latency".into(),
            pattern: "dependency_slow".into(),
            confidence: 81,
            prior: 0.9,
            evidence: 1.0,
            learned: 0.9,
            band: medic_core::Band::ActArmed,
            victims: vec!["api".into(), "web".into()],
            ranked: vec![
                "db/latency dependency_slow 81".into(),
                "api/latency overload 20".into(),
            ],
            evidence_text: "latency z 41.0 > 5.0 from step 2".into(),
        },
        NoticeKind::MassIncidentLatched => Notice::MassIncidentLatched {
            affected_services: 11,
            limit: 10,
        },
        NoticeKind::AutomationPaused => Notice::AutomationPaused {
            scope: scope(),
            until_unix_ms: Some(1_767_229_200_000),
            duration: Some(Duration::from_secs(3600)),
            by: "alice".into(),
            reason: "deploy".into(),
        },
        NoticeKind::AutomationResumed => Notice::AutomationResumed {
            scope: Scope {
                service: None,
                kind: None,
            },
            pauses_lifted: 2,
            mass_latch_lifted: true,
            by: "alice".into(),
        },
        NoticeKind::PauseExpired => Notice::PauseExpired { scope: scope() },
        NoticeKind::FreezeWindowsSet => Notice::FreezeWindowsSet {
            names: vec!["friday".into(), "holidays".into()],
        },
        NoticeKind::Decision => Notice::Decision {
            incident: inc(),
            service: s(),
            action: "restart".into(),
            stage: ActionStage::Direct,
            verdict: Verdict::Held,
            reason_code: Some(ReasonCode::Frozen),
            window: Some("friday".into()),
            reason: "inside freeze window friday: would run restart".into(),
        },
        NoticeKind::ApprovalRequested => Notice::ApprovalRequested {
            approval: "apr-1".into(),
            incident: inc(),
            service: s(),
            action: "failover".into(),
            risk: Risk::High,
            score: 0.7125,
            reason_code: ReasonCode::RiskTier,
            required: 2,
            expires_at_unix_ms: Some(1_767_226_500_000),
        },
        NoticeKind::ApprovalApproved => Notice::ApprovalApproved {
            approval: "apr-1".into(),
            by: "alice".into(),
            approvals: 1,
            required: 2,
            two_person_rule: true,
        },
        NoticeKind::ApprovalGranted => Notice::ApprovalGranted {
            approval: "apr-1".into(),
            incident: inc(),
            service: s(),
            action: "failover".into(),
            risk: Risk::High,
            approvers: vec!["alice".into(), "bob".into()],
        },
        NoticeKind::ApprovalRejected => Notice::ApprovalRejected {
            approval: "apr-1".into(),
            incident: inc(),
            service: s(),
            action: "failover".into(),
            by: "bob".into(),
            reason: "not now".into(),
        },
        NoticeKind::ApprovalExpired => Notice::ApprovalExpired {
            approval: "apr-1".into(),
            incident: inc(),
            service: s(),
            action: "failover".into(),
            approvers: vec!["alice".into()],
        },
        NoticeKind::ApprovalWithdrawn => Notice::ApprovalWithdrawn {
            approval: "apr-1".into(),
            incident: inc(),
            reason: "merged: merged into inc-abc-2 (a victim of db)".into(),
        },
        NoticeKind::Override => Notice::Override {
            action_id: ActionId(7),
            service: s(),
            action: "restart".into(),
            by: "alice".into(),
            reason: "stuck".into(),
        },
        NoticeKind::ActionIntent => Notice::ActionIntent {
            action_id: ActionId(7),
            incident: Some(inc()),
            service: s(),
            action: "restart".into(),
            kind: ActionKind::Restart,
            class: ActionClass::RestartService,
            risk: Risk::Medium,
            score: 0.5,
            stage: ActionStage::Direct,
            attempt: 1,
            reason: "inc-abc-1: healthz failing".into(),
            approved_by: vec!["alice".into(), "bob".into()],
            revert_of: None,
            override_by: Some("carol".into()),
            instances: Vec::new(),
        },
        NoticeKind::ActionOutcome => Notice::ActionOutcome {
            action_id: ActionId(7),
            incident: Some(inc()),
            service: s(),
            action: "restart".into(),
            stage: ActionStage::Direct,
            status: ActionStatus::Succeeded,
            detail: "restarted; new pid 42".into(),
        },
        NoticeKind::ActionOutcomeUnmatched => Notice::ActionOutcomeUnmatched {
            action_id: ActionId(9),
        },
        NoticeKind::ActionRetryScheduled => Notice::ActionRetryScheduled {
            incident: inc(),
            service: s(),
            action: "restart".into(),
            delay: Duration::from_millis(1200),
        },
        NoticeKind::ActionCancelRequested => Notice::ActionCancelRequested {
            action_id: ActionId(7),
            service: s(),
            action: "restart".into(),
            by: "alice".into(),
            reason: "wrong target".into(),
        },
        NoticeKind::ActionReconciled => Notice::ActionReconciled {
            action_id: ActionId(7),
            incident: Some(inc()),
            service: s(),
            action: "restart".into(),
            stage: ActionStage::Direct,
            resolution: "verify",
        },
        NoticeKind::VerifyPassed => Notice::VerifyPassed {
            incident: inc(),
            service: s(),
            probe: "healthz".into(),
        },
        NoticeKind::VerifyFailed => Notice::VerifyFailed {
            incident: inc(),
            service: s(),
            probe: "healthz".into(),
        },
        NoticeKind::VerifyBaseline => Notice::VerifyBaseline {
            incident: inc(),
            service: s(),
            probe: "healthz".into(),
            action: "reload".into(),
            window: Duration::from_secs(300),
            baseline: Some(Stats {
                samples: 12,
                failure_share: 0.0,
                p50_ms: Some(310),
                p90_ms: Some(340),
            }),
        },
        NoticeKind::VerifyJudged => Notice::VerifyJudged {
            incident: inc(),
            service: s(),
            probe: "healthz".into(),
            action: "reload".into(),
            judgement: "worse_latency",
            reason_code: Some(ReasonCode::VerifyWorse),
            baseline: Some(Stats {
                samples: 12,
                failure_share: 0.0,
                p50_ms: Some(310),
                p90_ms: Some(340),
            }),
            observed: Some(Stats {
                samples: 3,
                failure_share: 0.0,
                p50_ms: Some(1510),
                p90_ms: None,
            }),
            undo: Some("reload-previous".into()),
        },
        NoticeKind::BreakerChanged => Notice::BreakerChanged {
            service: s(),
            action: "restart".into(),
            from: "closed",
            to: "open",
            consecutive_failures: 5,
        },
        NoticeKind::HealRetrying => Notice::HealRetrying {
            incident: inc(),
            service: s(),
            reason_code: ReasonCode::VerifyFailed,
            reason: "heal failed (1/3)".into(),
            consecutive_failures: 1,
        },
        NoticeKind::IncidentEscalated => Notice::IncidentEscalated {
            incident: inc(),
            service: s(),
            reason_code: ReasonCode::RetriesExhausted,
            reason: "restart failed 5 times".into(),
        },
        NoticeKind::IncidentResolved => Notice::IncidentResolved {
            incident: inc(),
            service: s(),
            outcome: IncidentOutcome::Healed,
            reason: "healthz healthy again".into(),
        },
        NoticeKind::AutohealDisabled => Notice::AutohealDisabled {
            service: s(),
            reason_code: ReasonCode::ConsecutiveFailures,
            consecutive_failures: 3,
        },
        NoticeKind::AutohealEnabled => Notice::AutohealEnabled {
            service: s(),
            by: "alice".into(),
        },
        NoticeKind::LockForceReleased => Notice::LockForceReleased {
            key: "service:web".into(),
            holder: "web".into(),
            by: "alice".into(),
            reason: "executor hung; lock left behind".into(),
        },
        NoticeKind::LockReclaimed => Notice::LockReclaimed {
            key: "service:web".into(),
            holder: "web".into(),
        },
        NoticeKind::RevertDeferred => Notice::RevertDeferred {
            service: s(),
            action: "restore-load".into(),
            revert_of: "shed-load".into(),
            reason_code: ReasonCode::Paused,
            reason: "paused by an operator".into(),
        },
        NoticeKind::RevertDropped => Notice::RevertDropped {
            service: s(),
            action: "restore-load".into(),
            revert_of: "shed-load".into(),
            reason_code: Some(ReasonCode::ModeDryRun),
        },
        NoticeKind::ModeChanged => Notice::ModeChanged {
            service: None,
            mode: Mode::Aggressive,
            by: "alice".into(),
        },
        NoticeKind::OperatorRejected => Notice::OperatorRejected {
            by: "alice".into(),
            command: "approve",
            error: OperatorErrorCode::SameApprover,
            reason: "alice already approved apr-1".into(),
        },
        NoticeKind::IncidentResolvedByOperator => Notice::IncidentResolvedByOperator {
            incident: inc(),
            by: "alice".into(),
            reason: "fixed by hand".into(),
        },
        NoticeKind::StartupProbeFailed => Notice::StartupProbeFailed {
            service: s(),
            probe: "healthz".into(),
            detail: "connection refused".into(),
        },
        NoticeKind::StateRestored => Notice::StateRestored {
            downtime: Duration::from_millis(4200),
            incidents: 1,
            approvals: 1,
            pauses: 1,
            inflight: 0,
            mass_latched: false,
        },
        NoticeKind::CanaryStage => Notice::CanaryStage {
            incident: inc(),
            service: s(),
            action: "deploy".into(),
            stage: 1,
            percent: 10,
            instances: vec!["web-0".into()],
            baseline: vec!["web-1".into(), "web-2".into()],
        },
        NoticeKind::CanaryVerdict => {
            use medic_core::medic_canary::*;
            let cfg = JudgeConfig {
                min_samples: 3,
                ..JudgeConfig::default()
            };
            let verdict = judge(
                &cfg,
                &[MetricConfig::latency_ms("latency_ms")],
                &[MetricSamples {
                    metric: "latency_ms".into(),
                    canary: vec![210.0, 220.0, 230.0, 240.0, 250.0],
                    baseline: vec![10.0, 11.0, 12.0, 13.0, 14.0, 15.0],
                }],
            );
            Notice::CanaryVerdict {
                incident: inc(),
                service: s(),
                action: "deploy".into(),
                stage: 1,
                percent: 10,
                verdict,
            }
        }
    }
}

#[test]
fn every_notice_kind_renders_as_the_golden_file_says() {
    let mut got = String::new();
    let mut kinds = std::collections::BTreeSet::new();
    for k in NoticeKind::ALL {
        let n = sample(k);
        assert_eq!(n.kind(), k);
        let r = render(&n);
        assert!(kinds.insert(r.kind), "duplicate audit kind {}", r.kind);
        got.push_str(&format!("{} {}\n", r.kind, r.payload));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/notices.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "audit format changed; see tests/golden.rs");
}

/// The golden records, stored through both write paths on every backend,
/// come back byte for byte and chain to the same hashes on SQLite and on
/// Postgres (`compute_hash` does not depend on the backend).
#[tokio::test]
async fn every_golden_record_is_stored_and_chained_identically_on_both_backends() {
    let records: Vec<_> = NoticeKind::ALL
        .into_iter()
        .map(|k| render(&sample(k)))
        .collect();
    let mut chains = Vec::new();
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let store = db.open().await;
        for (i, r) in records.iter().enumerate() {
            let ts = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
            if i % 2 == 0 {
                store.append_audit(&ts, r.kind, &r.payload).await.unwrap();
            } else {
                store
                    .append_step(&ts, &[(r.kind, r.payload.as_str())], &[], 10)
                    .await
                    .unwrap();
            }
        }
        let got = store.list_audit(0, 100_000).await.unwrap();
        assert_eq!(got.len(), records.len());
        for (g, r) in got.iter().zip(&records) {
            assert_eq!(
                (g.kind.as_str(), g.payload.as_str()),
                (r.kind, r.payload.as_str())
            );
        }
        store.close().await;
        let report = db.verify().await;
        assert!(
            report.is_ok() && report.records == records.len() as u64,
            "{report:?}"
        );
        chains.push(got);
    }
    if let [sqlite, postgres] = chains.as_slice() {
        assert_eq!(sqlite, postgres, "the chains differ between backends");
    }
}
