//! The `process:` section of a service.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_config::parse;

fn process(extra: &str) -> Result<medic_config::ProcessConfig, String> {
    let text = format!(
        "services:
  web:
    process:
      command: [\"web\"]
{extra}    probes:
      alive: {{ process: {{}} }}
"
    );
    parse("medic.yaml", &text)
        .map(|c| c.services[0].process.clone().unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn stop_graces_default_and_parse() {
    let p = process("").unwrap();
    assert_eq!(p.stop_grace, Duration::from_secs(10));
    assert_eq!(p.unresponsive_stop_grace, Duration::from_secs(1));
    let p = process("      stop_grace: 30s\n      unresponsive_stop_grace: 250ms\n").unwrap();
    assert_eq!(p.stop_grace, Duration::from_secs(30));
    assert_eq!(p.unresponsive_stop_grace, Duration::from_millis(250));
    let e = process("      unresponsive_stop_grace: soon\n").unwrap_err();
    assert!(
        e.starts_with("medic.yaml:5:32: invalid duration `soon`"),
        "{e}"
    );
}
