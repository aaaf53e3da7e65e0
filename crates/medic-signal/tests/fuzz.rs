//! Property tests: the exposition parser and the Alertmanager webhook parser
//! and handler, on generated and arbitrary input. CI runs these; the
//! cargo-fuzz targets in `fuzz/` drive the same entry points without bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use medic_signal::alertmanager::{alert_reports, parse_webhook, WebhookAlert};
use medic_signal::expo::{self, Sample};
use proptest::prelude::*;

/// Cases per property (CI figures). `MEDIC_FUZZ_SCALE=N` multiplies them for
/// a longer local run.
const ROUNDTRIP_CASES: u32 = 2_000;
const ARBITRARY_CASES: u32 = 5_000;

fn scaled(n: u32) -> u32 {
    let k: u32 = std::env::var("MEDIC_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    n.saturating_mul(k.max(1))
}

fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}"
}

fn label_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(0.0),
        (-1e6f64..1e6),
    ]
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        metric_name(),
        prop::collection::btree_map(label_name(), any::<String>(), 0..5),
        value(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(name, labels, value, timestamp_ms)| Sample {
            name,
            labels: labels.into_iter().collect(),
            value,
            timestamp_ms,
        })
}

fn same(a: &Sample, b: &Sample) -> bool {
    a.name == b.name
        && a.labels == b.labels
        && a.timestamp_ms == b.timestamp_ms
        && (a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(scaled(ROUNDTRIP_CASES)))]

    #[test]
    fn exposition_roundtrips(samples in prop::collection::vec(sample(), 0..20)) {
        let text = expo::render(&samples);
        let parsed = expo::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed.samples.len(), samples.len());
        for (a, b) in samples.iter().zip(&parsed.samples) {
            prop_assert!(same(a, b), "{:?} != {:?}\n{}", a, b, text);
        }
    }

    #[test]
    fn exposition_roundtrips_with_comments_and_openmetrics_noise(
        samples in prop::collection::vec(sample(), 1..10),
        help in "[ -~]{0,40}",
    ) {
        let mut text = String::new();
        for s in &samples {
            text.push_str(&format!("# HELP {} {}\n# TYPE {} gauge\n", s.name, help, s.name));
            let mut line = expo::render(std::slice::from_ref(s));
            line.pop();
            text.push_str(&line);
            text.push_str(" # {trace_id=\"abc\"} 1.0\r\n\n");
        }
        text.push_str("# EOF\nnot parsed {{{\n");
        let parsed = expo::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(parsed.eof);
        prop_assert_eq!(parsed.samples.len(), samples.len());
        for (a, b) in samples.iter().zip(&parsed.samples) {
            prop_assert!(same(a, b));
        }
    }

    #[test]
    fn alert_payload_roundtrips(
        alerts in prop::collection::vec(
            (any::<bool>(), prop::collection::btree_map("[a-z]{1,8}", any::<String>(), 0..4)),
            0..8,
        ),
    ) {
        let alerts: Vec<WebhookAlert> = alerts
            .into_iter()
            .map(|(firing, labels)| WebhookAlert {
                status: if firing {
                    medic_signal::alertmanager::AlertStatus::Firing
                } else {
                    medic_signal::alertmanager::AlertStatus::Resolved
                },
                labels,
                annotations: Default::default(),
                starts_at: String::new(),
                ends_at: String::new(),
                generator_url: String::new(),
                fingerprint: String::new(),
            })
            .collect();
        let body = serde_json::json!({ "version": "4", "alerts": alerts });
        let bytes = serde_json::to_vec(&body).unwrap();
        let parsed = parse_webhook(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.alerts, alerts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(scaled(ARBITRARY_CASES)))]

    #[test]
    fn exposition_arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = expo::parse(&s);
    }

    #[test]
    fn exposition_arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = expo::parse(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn exposition_near_valid_lines_never_panic(
        s in "[a-z_{}=\",\\\\# .0-9eEnINaf+\\-\t\r\n]{0,120}",
    ) {
        if let Ok(e) = expo::parse(&s) {
            // Whatever parses renders and parses again to the same samples.
            let again = expo::parse(&expo::render(&e.samples)).unwrap();
            prop_assert_eq!(again.samples.len(), e.samples.len());
        }
    }

    #[test]
    fn webhook_arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(p) = parse_webhook(&b) {
            let _ = alert_reports(&Default::default(), &p);
        }
    }

    #[test]
    fn webhook_near_valid_json_never_panics(
        s in "[{}\\[\\]\":,a-z0-9 ]{0,200}",
        prefix in prop::sample::select(vec![
            "", "{\"version\":\"4\",\"alerts\":[", "{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"labels\":",
        ]),
    ) {
        let body = format!("{prefix}{s}");
        match parse_webhook(body.as_bytes()) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.field().is_empty()),
        }
    }
}

/// The handler itself, through the router, on arbitrary bodies: never a
/// panic, always a JSON answer (200 or a 4xx error naming a field).
#[test]
fn webhook_handler_answers_arbitrary_bodies_with_json() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = medic_config::SignalsConfig::default();
    let (hooks, _events) = medic_signal::SignalHooks::new();
    // No alert is configured, so nothing is ever queued.
    let (tx, _rx) = tokio::sync::mpsc::channel::<medic_core::ProbeReport>(16);
    let router = medic_signal::alertmanager_router(&cfg, tx, &hooks);
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(scaled(1_000)));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..300), |body| {
            let resp = rt.block_on(
                router.clone().oneshot(
                    Request::post(medic_signal::WEBHOOK_PATH)
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .unwrap(),
                ),
            );
            let resp = resp.unwrap();
            let status = resp.status().as_u16();
            let bytes = rt
                .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if status == 200 {
                prop_assert!(v.get("accepted").is_some());
            } else {
                prop_assert!((400..500).contains(&status), "status {}", status);
                prop_assert!(v["error"]["field"].is_string(), "{}", v);
                prop_assert!(v["error"]["code"].is_string());
            }
            Ok(())
        })
        .unwrap();
}
