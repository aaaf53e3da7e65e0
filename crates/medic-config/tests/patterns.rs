//! The pattern library: the shipped YAML parses and has the patterns;
//! operator files are checked with FILE:LINE:COL and override by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use medic_config::{load_patterns, parse_patterns, On, DEFAULT_PATTERNS};

#[test]
fn the_shipped_library_has_the_required_patterns() {
    let p = parse_patterns("<shipped>", DEFAULT_PATTERNS).unwrap();
    let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
    for want in [
        "crash",
        "hang",
        "memory_leak",
        "connection_pool_exhaustion",
        "dependency_down",
        "dependency_slow",
        "error_spike_after_change",
        "disk_filling",
        "queue_filling",
        "overload",
        "certificate_expiry",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    for q in &p {
        assert!((0.0..=1.0).contains(&q.prior), "{}", q.name);
        assert!(
            !q.symptoms.is_empty() && !q.actions.is_empty(),
            "{}",
            q.name
        );
    }
    let slow = p.iter().find(|q| q.name == "dependency_slow").unwrap();
    assert!(slow.matches("latency", On::SelfNode));
    assert!(!slow.matches("latency", On::Callers));
}

#[test]
fn operator_files_are_checked_and_override_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mine.yaml");
    std::fs::write(
        &good,
        "patterns:\n  - name: dependency_slow\n    cause: ours\n    symptoms: [{ signal: latency, on: self }]\n    actions: [{ action: failover, tier: high }]\n    prior: 0.5\n  - name: gc_pause\n    cause: long GC pauses\n    symptoms: [{ signal: gc_ms, on: self, within: 5m }]\n    actions: [{ action: restart, tier: medium }]\n    prior: 0.4\n",
    )
    .unwrap();
    let all = load_patterns(&[good.as_path()]).unwrap();
    let slow = all.iter().find(|p| p.name == "dependency_slow").unwrap();
    assert_eq!((slow.cause.as_str(), slow.prior), ("ours", 0.5));
    assert!(slow.source.ends_with("mine.yaml"));
    assert!(all.iter().any(|p| p.name == "gc_pause"));
    let e = parse_patterns(
        "bad.yaml",
        "patterns:\n  - name: x\n    cause: c\n    symptoms: [{ signal: s, on: there }]\n    actions: [{ action: a, tier: huge }]\n    prior: 1.5\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.yaml:4:33: unknown `on: there`"), "{e}");
    assert!(e.contains("bad.yaml:5:34: unknown tier `huge`"), "{e}");
    assert!(
        e.contains("bad.yaml:6:12: pattern `x`: prior must be in [0, 1]"),
        "{e}"
    );
    let e = parse_patterns("t.yaml", "patterns:\n  - name: x\n    prio: 1\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.yaml:3:5: unknown field `prio`"), "{e}");
}

/// A pattern with a `change` symptom on self (issue 9): only
/// `error_spike_after_change` in the shipped library; its other symptom is
/// met by a rule of kind `errors` or by `availability`, nothing else.
#[test]
fn the_change_pattern_and_what_its_errors_symptom_accepts() {
    let p = parse_patterns("<shipped>", DEFAULT_PATTERNS).unwrap();
    let with_change: Vec<&str> = p
        .iter()
        .filter(|q| q.change_symptom().is_some())
        .map(|q| q.name.as_str())
        .collect();
    assert_eq!(with_change, ["error_spike_after_change"]);
    let spike = p
        .iter()
        .find(|q| q.name == "error_spike_after_change")
        .unwrap();
    let ch = spike.change_symptom().unwrap();
    assert_eq!(
        (ch.signal.as_str(), ch.order),
        (medic_config::CHANGE_SIGNAL, Some(1))
    );
    for signal in ["errors", "availability"] {
        let s = spike.symptom_after_change(signal).unwrap();
        assert_eq!((s.signal.as_str(), s.order), ("errors", Some(2)));
        assert_eq!(s.within, Some(std::time::Duration::from_secs(30 * 60)));
    }
    for signal in ["latency", "change", "queue_depth"] {
        assert!(spike.symptom_after_change(signal).is_none(), "{signal}");
    }
    // A pattern without a change symptom has no symptom after a change.
    let slow = p.iter().find(|q| q.name == "dependency_slow").unwrap();
    assert!(slow.symptom_after_change("latency").is_none());
    assert!(medic_config::signal_fits("latency", "latency"));
    assert!(!medic_config::signal_fits("availability", "errors"));
}

// No input panics the pattern parser, and every refusal names the file
// (FILE:LINE:COL where the YAML has a place).
proptest::proptest! {
    #[test]
    fn arbitrary_pattern_text_never_panics(s in "\\PC{0,300}") {
        if let Err(e) = parse_patterns("fuzz.yaml", &s) {
            proptest::prop_assert!(e.to_string().starts_with("fuzz.yaml"), "{}", e);
        }
    }

    #[test]
    fn the_mutated_shipped_library_never_panics(
        edits in proptest::collection::vec((0usize..100_000, proptest::prelude::any::<u8>()), 1..6)
    ) {
        let mut text = DEFAULT_PATTERNS.as_bytes().to_vec();
        for (pos, byte) in edits {
            let i = pos % text.len();
            text[i] = byte;
        }
        let text = String::from_utf8_lossy(&text);
        if let Err(e) = parse_patterns("fuzz.yaml", &text) {
            proptest::prop_assert!(e.to_string().starts_with("fuzz.yaml"), "{}", e);
        }
    }
}
