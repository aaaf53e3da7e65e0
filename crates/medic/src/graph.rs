//! `medic graph [--dot]`: the `depends_on` graph of a config file.
use std::fmt::Write as _;

use medic_config::Config;

/// Text form: one line per service, `name -> dep (kind), ...`, services in name order.
pub fn text(cfg: &Config) -> String {
    let mut out = String::new();
    for s in &cfg.services {
        let deps: Vec<String> = cfg
            .dependencies
            .iter()
            .filter(|d| d.from == s.name)
            .map(|d| format!("{} ({})", d.to, d.kind))
            .collect();
        let callers: Vec<&str> = cfg
            .dependencies
            .iter()
            .filter(|d| d.to == s.name)
            .map(|d| d.from.as_str())
            .collect();
        if deps.is_empty() {
            let _ = write!(out, "{}", s.name);
        } else {
            let _ = write!(out, "{} -> {}", s.name, deps.join(", "));
        }
        if !callers.is_empty() {
            let _ = write!(out, "    [called by {}]", callers.join(", "));
        }
        out.push('\n');
    }
    out
}

/// Graphviz DOT: an edge per dependency, labelled with its kind.
pub fn dot(cfg: &Config) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph medic {\n  rankdir=LR;\n");
    for s in &cfg.services {
        let _ = writeln!(out, "  {};", q(&s.name));
    }
    for d in &cfg.dependencies {
        let _ = writeln!(
            out,
            "  {} -> {} [label={}];",
            q(&d.from),
            q(&d.to),
            q(d.kind.name())
        );
    }
    out.push_str("}\n");
    out
}
