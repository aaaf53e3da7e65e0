#![allow(clippy::unwrap_used, clippy::expect_used)]
use medic_config::{load, parse, parse_bytes, ProbeKind};
use medic_core::{Condition, Mode};

fn errs(text: &str) -> String {
    parse("medic.yaml", text).unwrap_err().to_string()
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../../examples/medic.yaml");
    let cfg = parse("examples/medic.yaml", text).unwrap();
    assert_eq!(cfg.mode, Some(Mode::DryRun));
    let web = &cfg.services[0];
    assert_eq!(web.name, "web");
    assert!(web.probes.iter().any(|p| p.kind == ProbeKind::Process));
    let spec = &cfg.engine.services[0];
    assert_eq!(spec.policy.cooldown.as_secs(), 300);
    assert!(spec
        .remediations
        .iter()
        .any(|r| r.condition == Condition::Slow));
    let hz = spec.probes.iter().find(|p| p.name == "healthz").unwrap();
    assert_eq!(hz.failure.consecutive, 3);
    assert_eq!(hz.failure.within.as_secs(), 900);
}

const MIN: &str = "services:
  web:
    probes:
      hz:
        http: { url: http://127.0.0.1:1/healthz }
";

#[test]
fn minimal_config_gets_defaults() {
    let cfg = parse("m.yaml", MIN).unwrap();
    assert_eq!(cfg.mode, None);
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(cfg.engine.services[0].policy.restart_budget, 3);
}

#[test]
fn unknown_field_is_located() {
    let e = errs("services:\n  web:\n    probes:\n      hz:\n        http: { url: http://x/ }\n        intervall: 5s\n");
    assert!(
        e.starts_with("medic.yaml:6:9: unknown field `intervall`"),
        "{e}"
    );
}

#[test]
fn bad_duration_is_located() {
    let e = errs("services:\n  web:\n    probes:\n      hz:\n        http: { url: http://x/ }\n        interval: 5 parsecs\n");
    assert!(
        e.starts_with("medic.yaml:6:19: invalid duration `5 parsecs`"),
        "{e}"
    );
}

#[test]
fn missing_required_field_is_located() {
    let e = errs("services:\n  web:\n    probes:\n      hz:\n        http: { timeout: 1s }\n");
    assert!(e.contains("medic.yaml:5:"), "{e}");
    assert!(e.contains("missing field `url`"), "{e}");
}

#[test]
fn every_undefined_reference_is_reported() {
    let text = "services:
  web:
    probes:
      hz:
        http: { url: http://x/ }
    actions:
      kick:
        exec: { command: [true] }
        revert: { action: unkick, after: 1m }
    remediate:
      - when: { probe: nope, condition: failing }
        action: kick
      - when: { probe: hz, condition: slow }
        action: missing
";
    let e = errs(text);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("medic.yaml:9:27: revert names undefined action `unkick`"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("medic.yaml:11:24: remediation names undefined probe `nope`"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("medic.yaml:13:39: condition `slow` needs a `latency:` rule"),
        "{e}"
    );
    assert!(
        lines[3].starts_with("medic.yaml:14:17: remediation names undefined action `missing`"),
        "{e}"
    );
}

#[test]
fn semantic_problems_are_all_collected() {
    let text = "mode: yolo
services:
  web:
    probes:
      both:
        http: { url: ftp://x/ }
        tcp: { address: nohost }
      proc:
        process: {}
    actions:
      bounce:
        restart: {}
";
    let e = errs(text);
    assert!(e.contains("medic.yaml:1:7: unknown mode `yolo`"), "{e}");
    assert!(e.contains("invalid URL `ftp://x/`"), "{e}");
    assert!(e.contains("invalid tcp address `nohost`"), "{e}");
    assert!(
        e.contains("exactly one of http, tcp, exec, process or docker is required (found 2)"),
        "{e}"
    );
    assert!(
        e.contains("a process probe needs the service's `process:` section"),
        "{e}"
    );
    assert!(
        e.contains("restart needs the service's `process:` section"),
        "{e}"
    );
}

#[test]
fn syntax_error_is_located_not_a_panic() {
    let e = errs("services: [\n");
    assert!(e.starts_with("medic.yaml:"), "{e}");
}

#[test]
fn invalid_utf8_is_located_at_the_first_bad_byte() {
    // Line 3, after "  wéb: " (7 characters, 8 bytes): column 8.
    let bytes = b"mode: dry-run\nservices:\n  w\xc3\xa9b: \xff\xfe\n";
    let e = parse_bytes("medic.yaml", bytes).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    let (p, text) = (&e.problems[0], e.to_string());
    assert_eq!((p.line, p.column), (3, 8), "{text}");
    assert!(
        text.starts_with(
            "medic.yaml:3:8: invalid UTF-8: invalid byte sequence 0xFF at byte offset 32"
        ),
        "{text}"
    );
    // The very first byte, and a sequence cut off by the end of the file.
    let first = parse_bytes("m.yaml", b"\xc3(").unwrap_err().to_string();
    assert!(
        first.starts_with("m.yaml:1:1: invalid UTF-8: invalid byte sequence 0xC3 "),
        "{first}"
    );
    let cut = parse_bytes("m.yaml", b"mode: dry-run\n# \xe2\x82")
        .unwrap_err()
        .to_string();
    assert!(
        cut.starts_with("m.yaml:2:3: invalid UTF-8: incomplete byte sequence 0xE2 0x82 "),
        "{cut}"
    );
    // Valid UTF-8 bytes go on to the YAML parser as before.
    assert!(parse_bytes("m.yaml", MIN.as_bytes()).is_ok());
}

#[test]
fn load_reports_invalid_utf8_with_the_file_name_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("medic.yaml");
    std::fs::write(&path, b"services:\n  web:\n    probes: {}\n# caf\xe9\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    let want = format!("{}:4:6: invalid UTF-8", path.display());
    assert!(e.starts_with(&want), "{e}");
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = parse("fuzz.yaml", &s);
    }

    #[test]
    fn mutated_example_never_panics(pos in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
        let mut text = include_str!("../../../examples/medic.yaml").as_bytes().to_vec();
        let i = pos % text.len();
        text[i] = byte;
        let _ = parse_bytes("fuzz.yaml", &text);
        let s = String::from_utf8_lossy(&text);
        let _ = parse("fuzz.yaml", &s);
    }
}

#[test]
fn auth_is_tokens_unless_the_file_says_none() {
    use medic_config::AuthMode;
    assert_eq!(parse("m.yaml", MIN).unwrap().auth, AuthMode::Tokens);
    let none = format!("auth: none\n{MIN}");
    assert_eq!(parse("m.yaml", &none).unwrap().auth, AuthMode::None);
    let tokens = format!("auth: tokens\n{MIN}");
    assert_eq!(parse("m.yaml", &tokens).unwrap().auth, AuthMode::Tokens);
    let e = errs(&format!("auth: off\n{MIN}"));
    assert!(
        e.starts_with("medic.yaml:1:7: invalid auth `off`: expected `tokens` or `none`"),
        "{e}"
    );
}

#[test]
fn store_url_selects_postgres_and_a_bad_one_is_located() {
    let cfg = parse("m.yaml", MIN).unwrap();
    assert_eq!(cfg.store_url, None);
    assert_eq!(cfg.database.to_str(), Some("medic.db"));
    let ok = format!("store:\n  url: postgres://medic:pw@db.example:5432/medic\n{MIN}");
    let cfg = parse("m.yaml", &ok).unwrap();
    assert_eq!(
        cfg.store_url.as_deref(),
        Some("postgres://medic:pw@db.example:5432/medic")
    );
    let e = errs(&format!("store:\n  url: mysql://db/medic\n{MIN}"));
    assert!(
        e.starts_with("medic.yaml:2:8: store.url scheme `mysql` is not supported"),
        "{e}"
    );
    let e = errs(&format!("store:\n  url: postgres://u:pw@db:70000/m\n{MIN}"));
    assert!(
        e.starts_with("medic.yaml:2:8: store.url port `70000`"),
        "{e}"
    );
    assert!(!e.contains("pw"), "{e}");
    let e = errs(&format!(
        "database: m.db\nstore:\n  url: postgres://db/medic\n{MIN}"
    ));
    assert!(
        e.starts_with("medic.yaml:3:8: set either `database`"),
        "{e}"
    );
    let e = errs(&format!("store:\n  uri: postgres://db/medic\n{MIN}"));
    assert!(e.starts_with("medic.yaml:2:3: unknown field `uri`"), "{e}");
}

#[test]
fn a_probe_timeout_defaults_to_5s_but_never_beyond_the_interval() {
    let cfg = parse(
        "t.yaml",
        "services:
  web:
    probes:
      fast: { http: { url: http://127.0.0.1:1/healthz }, interval: 1s }
      slow: { tcp: { address: \"127.0.0.1:1\" }, interval: 30s }
      dflt: { http: { url: http://127.0.0.1:1/healthz } }
      given: { http: { url: http://127.0.0.1:1/healthz, timeout: 3s }, interval: 1s }
",
    )
    .unwrap();
    let t = |name: &str| {
        cfg.services[0]
            .probes
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .timeout
            .as_millis()
    };
    assert_eq!(t("fast"), 1000);
    assert_eq!(t("slow"), 5000);
    assert_eq!(t("dflt"), 5000);
    assert_eq!(t("given"), 3000);
}

#[test]
fn http_probes_keep_one_connection_alive_by_default_for_a_bounded_age() {
    let cfg = parse(
        "k.yaml",
        "services:
  web:
    probes:
      dflt: { http: { url: http://127.0.0.1:1/healthz } }
      aged: { http: { url: http://127.0.0.1:1/healthz, keep_alive_max_age: 5s } }
      fresh: { http: { url: http://127.0.0.1:1/healthz, keep_alive: false } }
",
    )
    .unwrap();
    let ka = |name: &str| match &cfg.services[0]
        .probes
        .iter()
        .find(|p| p.name == name)
        .unwrap()
        .kind
    {
        ProbeKind::Http { keep_alive, .. } => *keep_alive,
        other => panic!("{other:?}"),
    };
    assert_eq!(ka("dflt"), Some(medic_config::DEFAULT_KEEP_ALIVE_MAX_AGE));
    assert_eq!(ka("aged"), Some(std::time::Duration::from_secs(5)));
    assert_eq!(ka("fresh"), None);
    let e = errs("services:\n  web:\n    probes:\n      hz:\n        http: { url: http://x/, keep_alive_max_age: 0s }\n");
    assert!(e.contains("keep_alive_max_age must be more than 0"), "{e}");
}
