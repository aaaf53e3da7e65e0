#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::parse;

const BASE: &str = "services:
  web:
    probes:
      up: { http: { url: 'http://127.0.0.1:1/healthz' } }
";

#[test]
fn without_ai_there_are_no_suggestions() {
    assert!(parse("a.yaml", BASE).unwrap().ai.is_none());
}

#[test]
fn ai_defaults_and_fields_are_read() {
    let cfg = parse(
        "a.yaml",
        &format!("{BASE}ai:\n  url: http://127.0.0.1:8000/v1\n  model: m1\n"),
    )
    .unwrap();
    let ai = cfg.ai.unwrap();
    assert_eq!(ai.url, "http://127.0.0.1:8000/v1");
    assert_eq!(ai.model, "m1");
    assert_eq!(ai.api_key_env, None);
    assert_eq!(ai.timeout, Duration::from_secs(5));
    assert_eq!(ai.max_hypotheses, 3);

    let cfg = parse(
        "a.yaml",
        &format!(
            "{BASE}ai:\n  url: https://llm.example/v1\n  model: m2\n  api_key_env: LLM_KEY\n  timeout: 1500ms\n  max_hypotheses: 10\n"
        ),
    )
    .unwrap();
    let ai = cfg.ai.unwrap();
    assert_eq!(ai.api_key_env.as_deref(), Some("LLM_KEY"));
    assert_eq!(ai.timeout, Duration::from_millis(1500));
    assert_eq!(ai.max_hypotheses, 10);
}

#[test]
fn bad_ai_fields_are_reported_with_their_place() {
    let e = parse(
        "a.yaml",
        &format!(
            "{BASE}ai:\n  url: ftp://x/v1\n  model: '  '\n  api_key_env: 'MY-KEY'\n  timeout: 0s\n  max_hypotheses: 11\n"
        ),
    )
    .unwrap_err()
    .to_string();
    for (line, msg) in [
        (6, "invalid URL `ftp://x/v1`"),
        (7, "ai.model must not be empty"),
        (
            8,
            "ai.api_key_env `MY-KEY` is not an environment variable name",
        ),
        (9, "ai.timeout must be more than 0s and at most 60s"),
        (10, "ai.max_hypotheses must be between 1 and 10"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.starts_with(&format!("a.yaml:{line}:")) && l.contains(msg)),
            "line {line}: {msg}\n{e}"
        );
    }
    let e = parse(
        "a.yaml",
        &format!(
            "{BASE}ai:\n  url: http://x/v1\n  model: m\n  timeout: 61s\n  max_hypotheses: 0\n"
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("a.yaml:8:") && e.contains("at most 60s"), "{e}");
    assert!(
        e.contains("a.yaml:9:") && e.contains("between 1 and 10"),
        "{e}"
    );
}

#[test]
fn the_key_itself_is_refused_in_the_file() {
    let e = parse(
        "a.yaml",
        &format!("{BASE}ai:\n  url: http://x/v1\n  model: m\n  api_key: sk-secret\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("a.yaml:8:")
            && e.contains("ai.api_key is not allowed")
            && e.contains("api_key_env"),
        "{e}"
    );
}
