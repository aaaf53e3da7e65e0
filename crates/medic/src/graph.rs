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

/// A pattern's scope: `all` services, or `learned:SERVICE` for an accepted
/// candidate (learned from that service's incident).
pub fn pattern_scope(p: &medic_config::Pattern) -> String {
    match &p.service {
        Some(s) => format!("learned:{s}"),
        None => "all".into(),
    }
}

/// `medic patterns list`: one line per pattern.
pub fn patterns_list(patterns: &[medic_config::Pattern]) -> String {
    let mut out = format!(
        "{:<28} {:>5}  {:<24} {:<16} CAUSE\n",
        "NAME", "PRIOR", "SOURCE", "SCOPE"
    );
    for p in patterns {
        let _ = writeln!(
            out,
            "{:<28} {:>5.2}  {:<24} {:<16} {}",
            p.name,
            p.prior,
            p.source,
            pattern_scope(p),
            p.cause
        );
    }
    out
}

/// `medic patterns show NAME`.
pub fn pattern_show(p: &medic_config::Pattern) -> String {
    let mut out = format!(
        "{}\n  cause: {}\n  prior: {:.2}\n  source: {}\n  scope: {}\n  symptoms:\n",
        p.name,
        p.cause,
        p.prior,
        p.source,
        pattern_scope(p)
    );
    for s in &p.symptoms {
        let _ = write!(out, "    - {} on {}", s.signal, s.on.as_str());
        if let Some(o) = s.order {
            let _ = write!(out, ", order {o}");
        }
        if let Some(w) = s.within {
            let _ = write!(out, ", within {}", humantime::format_duration(w));
        }
        out.push('\n');
    }
    out.push_str("  actions:\n");
    for a in &p.actions {
        let _ = writeln!(out, "    - {} ({} tier)", a.action, a.tier.as_str());
    }
    out
}
