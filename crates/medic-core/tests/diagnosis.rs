#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 9: a root-cause diagnosis gates by its confidence band, and holds
//! back the victims of a diagnosed upstream cause. Scripts in, traces out.
mod common;

use common::*;
use medic_core::*;

/// web → api → db, each a copy of the test service under its own name.
fn chain(gov: GovernanceConfig) -> Engine {
    let svc = |name: &str| {
        let mut s = web_service(policy());
        s.name = name.into();
        s
    };
    engine_of(
        1,
        Mode::Aggressive,
        vec![svc("web"), svc("api"), svc("db")],
        gov,
    )
}

fn fail3(svc: &str, from: u64) -> String {
    (0..3)
        .map(|i| format!("{}s probe {svc} healthz fail exited\n", from + i))
        .collect()
}

fn decisions(script: &str, gov: GovernanceConfig) -> Vec<String> {
    decisions_on(&mut chain(gov), script)
}

fn decisions_on(e: &mut Engine, script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines().filter(|l| !l.trim().is_empty()) {
        step(e, line.trim());
        while let Some(n) = e.poll_notice() {
            match &n {
                Notice::Decision {
                    service,
                    verdict,
                    reason_code,
                    ..
                } => out.push(format!(
                    "{service} {} {}",
                    verdict.as_str(),
                    reason_code.map_or("-", |c| c.as_str())
                )),
                Notice::ActionIntent { service, .. } => out.push(format!("{service} run -")),
                Notice::IncidentMerged {
                    service,
                    cause,
                    trigger,
                    ..
                } => out.push(format!("{service} merged into {cause}: {trigger}")),
                Notice::IncidentEscalated {
                    service,
                    reason_code,
                    ..
                } => out.push(format!("{service} escalate {}", reason_code.as_str())),
                Notice::RootCause {
                    service,
                    band,
                    victims,
                    ..
                } => out.push(format!(
                    "rca {} {} held={}",
                    service.as_deref().unwrap_or("-"),
                    band.as_str(),
                    victims.join(",")
                )),
                _ => {}
            }
        }
        while e.poll_command().is_some() {}
    }
    out
}

#[test]
fn a_slow_database_is_acted_on_and_its_callers_are_held() {
    let script = format!(
        "0s diagnose db 81 api,web\n{}{}{}",
        fail3("web", 1),
        fail3("api", 1),
        fail3("db", 1)
    );
    assert_eq!(
        decisions(&script, GovernanceConfig::default()),
        [
            "rca db act_armed held=api,web",
            "web held upstream_cause",
            "api held upstream_cause",
            "db run confidence_armed",
            "db run -",
            // Their incidents opened before db's: once db's is open they
            // join it, closed as `merged`.
            "api merged into db: healthz failing",
            "web merged into db: healthz failing",
        ]
    );
}

#[test]
fn each_band_decides() {
    let cases = [
        (95, "db run confidence_act"),
        (90, "db run confidence_armed"),
        (70, "db run confidence_armed"),
        (69, "db pending-approval confidence_approval"),
        (50, "db pending-approval confidence_approval"),
        (49, "db escalate confidence_escalate"),
    ];
    for (conf, want) in cases {
        let script = format!("0s diagnose db {conf} -\n{}", fail3("db", 1));
        let got = decisions(&script, GovernanceConfig::default());
        assert!(got.iter().any(|g| g == want), "confidence {conf}: {got:?}");
        let acted = got.iter().any(|g| g == "db run -");
        assert_eq!(acted, conf >= 70, "confidence {conf}: {got:?}");
    }
}

#[test]
fn a_victim_of_a_cause_awaiting_approval_awaits_it_too_and_bands_are_configurable() {
    // In the approval band the victims' own remediations wait for a human
    // as the cause's does; below it (escalated) they are gated as without a
    // diagnosis.
    let script = format!("0s diagnose db 60 api\n{}", fail3("api", 1));
    assert_eq!(
        decisions(&script, GovernanceConfig::default()),
        [
            "rca db approval held=api",
            "api pending-approval upstream_cause_approval"
        ]
    );
    let script = format!("0s diagnose db 49 api\n{}", fail3("api", 1));
    assert_eq!(
        decisions(&script, GovernanceConfig::default()),
        ["rca db escalate held=", "api run -"]
    );
    // Approved, the victim's own action runs.
    let mut e = chain(GovernanceConfig::default());
    let got = decisions_on(
        &mut e,
        &format!("0s diagnose db 60 api\n{}", fail3("api", 1)),
    );
    assert_eq!(
        got.last().map(String::as_str),
        Some("api pending-approval upstream_cause_approval")
    );
    assert_eq!(
        decisions_on(&mut e, "5s approve apr-1 alice"),
        ["api run -"]
    );
    let gov = GovernanceConfig {
        autonomy: AutonomyBands {
            act: 50,
            armed: 40,
            approve: 10,
            armed_verify_factor: 3,
        },
        ..GovernanceConfig::default()
    };
    let script = format!("0s diagnose db 60 -\n{}", fail3("db", 1));
    assert_eq!(
        decisions(&script, gov),
        ["rca db act held=", "db run confidence_act", "db run -"]
    );
}

#[test]
fn clearing_the_diagnosis_releases_the_victims() {
    let script = format!("0s diagnose db 85 api\n{}10s undiagnose", fail3("api", 1));
    assert_eq!(
        decisions(&script, GovernanceConfig::default()),
        [
            "rca db act_armed held=api",
            "api held upstream_cause",
            "rca - escalate held=",
            "api run -"
        ]
    );
}

#[test]
fn the_armed_band_verifies_longer() {
    // verify_window 30s; armed doubles it: not resolved at 45s without probes,
    // and the incident is still verifying then.
    let mut e = chain(GovernanceConfig::default());
    feed(
        &mut e,
        &format!("0s diagnose db 80 -\n{}4s outcome 1 ok", fail3("db", 1)),
    );
    let t = e.poll_timeout().unwrap();
    assert_eq!(
        t,
        MonoTime::ZERO.plus(std::time::Duration::from_secs(4 + 60)),
        "{t:?}"
    );
}

#[test]
fn a_cascade_makes_one_incident_whose_top_hypothesis_is_the_cause() {
    // db's incident is open and diagnosed as the cause of api and web: their
    // symptoms join it (once each) instead of opening incidents of their own.
    let mut e = chain(GovernanceConfig::default());
    let script = format!(
        "0s diagnose db 81 api,web\n{}{}{}",
        fail3("db", 1),
        fail3("api", 5),
        fail3("web", 8)
    );
    assert_eq!(
        decisions_on(&mut e, &script),
        [
            "rca db act_armed held=api,web",
            "db run confidence_armed",
            "db run -",
            "api merged into db: healthz failing",
            "web merged into db: healthz failing",
        ]
    );
    let open = e.open_incidents();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].service, "db");
    let ex = e.explain(&open[0].id.0).unwrap();
    assert_eq!(ex.hypotheses[0].service, "db");
    assert_eq!(ex.hypotheses[0].victims, ["api", "web"]);
    // The merged services are visible in the incident and its explanation,
    // and survive a restart (the snapshot).
    assert_eq!(open[0].merged, ["api", "web"]);
    assert_eq!(ex.merged, ["api", "web"]);
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut fresh = chain(GovernanceConfig::default());
    fresh
        .restore(
            serde_json::from_str(&json).unwrap(),
            std::time::Duration::ZERO,
        )
        .unwrap();
    let again = fresh.open_incidents();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].merged, ["api", "web"]);
    assert_eq!(
        fresh.explain(&again[0].id.0).unwrap().merged,
        ["api", "web"]
    );
    // Below the armed band nothing is merged: each service keeps its own.
    let mut e = chain(GovernanceConfig::default());
    let script = format!(
        "0s diagnose db 60 api\n{}{}",
        fail3("db", 1),
        fail3("api", 5)
    );
    let out = decisions_on(&mut e, &script);
    assert!(!out.iter().any(|l| l.contains("merged")), "{out:?}");
    assert_eq!(e.open_incidents().len(), 2);
}

#[test]
fn victims_opened_before_the_cause_are_merged_into_its_incident() {
    let mut e = chain(GovernanceConfig::default());
    let script = format!(
        "0s diagnose db 81 api,web\n{}{}{}",
        fail3("web", 1),
        fail3("api", 1),
        fail3("db", 5)
    );
    let mut resolved = Vec::new();
    for line in script.lines().filter(|l| !l.trim().is_empty()) {
        step(&mut e, line.trim());
        while let Some(n) = e.poll_notice() {
            if let Notice::IncidentResolved {
                service,
                outcome,
                reason,
                ..
            } = n
            {
                resolved.push((service, outcome, reason));
            }
        }
        while e.poll_command().is_some() {}
    }
    let open = e.open_incidents();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].service, "db");
    // The victims' incidents are closed as merged, naming db's incident.
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    for (service, outcome, reason) in &resolved {
        assert!(service == "api" || service == "web", "{resolved:?}");
        assert_eq!(*outcome, IncidentOutcome::Merged);
        assert!(
            reason.contains(&format!("merged into {}", open[0].id.0)),
            "{reason}"
        );
    }
    let db = e.explain(&open[0].id.0).unwrap();
    assert_eq!(db.hypotheses[0].service, "db");
}

#[test]
fn a_victim_waiting_for_approval_is_merged_and_its_approval_withdrawn() {
    // api's own incident waits for an approval (its diagnosis alone is in
    // the approval band); then db is diagnosed as its upstream cause, in the
    // armed band, and db's incident opens.
    let mut e = chain(GovernanceConfig::default());
    let script = format!(
        "0s diagnose api 60 -\n{}9s diagnose db 81 api\n{}",
        fail3("api", 1),
        fail3("db", 10)
    );
    let mut out = Vec::new();
    for line in script.lines().filter(|l| !l.trim().is_empty()) {
        step(&mut e, line.trim());
        while let Some(n) = e.poll_notice() {
            match n {
                Notice::ApprovalRequested { service, .. } => {
                    out.push(format!("{service} approval requested"))
                }
                Notice::ApprovalWithdrawn {
                    incident, reason, ..
                } => out.push(format!("{} approval withdrawn: {reason}", incident.0)),
                Notice::IncidentResolved {
                    service, outcome, ..
                } => out.push(format!("{service} resolved {}", outcome.as_str())),
                Notice::IncidentMerged { service, cause, .. } => {
                    out.push(format!("{service} merged into {cause}"))
                }
                _ => {}
            }
        }
        while e.poll_command().is_some() {}
    }
    let open = e.open_incidents();
    assert_eq!(open.len(), 1, "{open:?} {out:?}");
    assert_eq!(open[0].service, "db");
    assert_eq!(open[0].merged, ["api"]);
    let db = &open[0].id.0;
    let api = "inc-t-1";
    assert_eq!(
        out,
        [
            "api approval requested".to_string(),
            format!("{api} approval withdrawn: merged: merged into {db} (a victim of db)"),
            "api resolved merged".to_string(),
            "api merged into db".to_string(),
        ]
    );
}

#[test]
fn clearing_a_diagnosis_in_the_approval_band_releases_the_victims_waiting_for_it() {
    let got = decisions(
        &format!("0s diagnose db 60 api\n{}10s undiagnose", fail3("api", 1)),
        GovernanceConfig::default(),
    );
    assert_eq!(
        got,
        [
            "rca db approval held=api",
            "api pending-approval upstream_cause_approval",
            "rca - escalate held=",
            "api run -"
        ]
    );
}
