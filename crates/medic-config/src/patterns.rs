//! The failure-pattern library as data (issue 9): the shipped YAML
//! (`patterns/default.yaml`, embedded in the binary) plus the operator's own
//! files in the same format. Problems are reported as `FILE:LINE:COL`.
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::raw::Dur;
use crate::{ConfigError, Problem};

/// The shipped library's text.
pub const DEFAULT_PATTERNS: &str = include_str!("../patterns/default.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLibrary {
    patterns: Vec<Spanned<RawPattern>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    cause: String,
    symptoms: Vec<Spanned<RawSymptom>>,
    actions: Vec<Spanned<RawPatternAction>>,
    prior: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymptom {
    signal: String,
    on: Spanned<String>,
    order: Option<u32>,
    within: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatternAction {
    action: String,
    tier: Spanned<String>,
}

/// Where a symptom is, relative to the candidate cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The candidate itself.
    SelfNode,
    /// A service the symptomatic one calls.
    Dependency,
    /// The services that call the candidate.
    Callers,
}

impl On {
    pub fn as_str(self) -> &'static str {
        match self {
            On::SelfNode => "self",
            On::Dependency => "dependency",
            On::Callers => "callers",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Symptom {
    pub signal: String,
    pub on: On,
    /// Position in the expected order (1 first), if the order matters.
    pub order: Option<u32>,
    /// Within how long of the first symptom.
    pub within: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatternAction {
    pub action: String,
    pub tier: medic_core::Risk,
}

/// One failure pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub name: String,
    pub cause: String,
    pub symptoms: Vec<Symptom>,
    pub actions: Vec<PatternAction>,
    /// In [0, 1].
    pub prior: f64,
    /// The file it came from (`<shipped>` for the embedded library;
    /// `candidate #ID` for an accepted candidate).
    pub source: String,
    /// Only for this service (an accepted candidate pattern, learned from
    /// one service's incident); `None`: any service.
    pub service: Option<String>,
}

/// The symptom signal of a recorded change (a deploy or config change of the
/// service, `POST /api/v1/changes`): no metric, an event.
pub const CHANGE_SIGNAL: &str = "change";

/// Does a candidate's `signal` satisfy a symptom naming `symptom`? The same
/// name, or for `errors` also `availability` (a service whose calls fail
/// shows it as errors in a rule of kind `errors` or as its probes'
/// availability going down).
pub fn signal_fits(symptom: &str, signal: &str) -> bool {
    symptom == signal || (symptom == "errors" && signal == "availability")
}

impl Pattern {
    /// Does the first symptom match a candidate's `signal` at `on`?
    pub fn matches(&self, signal: &str, on: On) -> bool {
        self.symptoms
            .first()
            .is_some_and(|s| s.signal == signal && s.on == on)
    }

    /// The pattern's change symptom (`signal: change` on `self`), if any: it
    /// only matches a candidate with a recorded change.
    pub fn change_symptom(&self) -> Option<&Symptom> {
        self.symptoms
            .iter()
            .find(|s| s.signal == CHANGE_SIGNAL && s.on == On::SelfNode)
    }

    /// For a pattern with a change symptom: its other symptom on `self`
    /// that a candidate's `signal` satisfies ([`signal_fits`]).
    pub fn symptom_after_change(&self, signal: &str) -> Option<&Symptom> {
        self.change_symptom()?;
        self.symptoms.iter().find(|s| {
            s.on == On::SelfNode && s.signal != CHANGE_SIGNAL && signal_fits(&s.signal, signal)
        })
    }
}

/// Parses one pattern file's text; `file` is only used in messages.
///
/// # Errors
/// Every problem, as `FILE:LINE:COL: message`.
pub fn parse_patterns(file: &str, text: &str) -> Result<Vec<Pattern>, ConfigError> {
    let err = |line, column, message: String| ConfigError {
        file: file.to_string(),
        problems: vec![Problem {
            line,
            column,
            message,
        }],
    };
    let raw: RawLibrary = serde_saphyr::from_str(text).map_err(|e| {
        let loc = e.location();
        let msg = e.without_snippet().to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        err(
            loc.map(|l| l.line()).unwrap_or(0),
            loc.map(|l| l.column()).unwrap_or(0),
            msg,
        )
    })?;
    let mut problems = Vec::new();
    let mut at = |l: serde_saphyr::Location, m: String| {
        problems.push(Problem {
            line: l.line(),
            column: l.column(),
            message: m,
        });
    };
    let mut out: Vec<Pattern> = Vec::new();
    for p in raw.patterns {
        let loc = p.referenced;
        let p = p.value;
        if out.iter().any(|q| q.name == p.name) {
            at(loc, format!("pattern `{}` is defined twice", p.name));
        }
        if !(0.0..=1.0).contains(&p.prior.value) {
            at(
                p.prior.referenced,
                format!("pattern `{}`: prior must be in [0, 1]", p.name),
            );
        }
        if p.symptoms.is_empty() {
            at(loc, format!("pattern `{}` has no symptoms", p.name));
        }
        let mut symptoms = Vec::new();
        for s in p.symptoms {
            let on = match s.value.on.value.as_str() {
                "self" => On::SelfNode,
                "dependency" => On::Dependency,
                "callers" => On::Callers,
                other => {
                    at(
                        s.value.on.referenced,
                        format!("unknown `on: {other}` (expected self, dependency or callers)"),
                    );
                    On::SelfNode
                }
            };
            symptoms.push(Symptom {
                signal: s.value.signal,
                on,
                order: s.value.order,
                within: s.value.within.map(|d| d.0),
            });
        }
        let mut actions = Vec::new();
        for a in p.actions {
            let tier = match a.value.tier.value.as_str() {
                "low" => Some(medic_core::Risk::Low),
                "medium" => Some(medic_core::Risk::Medium),
                "high" => Some(medic_core::Risk::High),
                "critical" => Some(medic_core::Risk::Critical),
                _ => None,
            };
            match tier {
                Some(tier) => actions.push(PatternAction {
                    action: a.value.action,
                    tier,
                }),
                None => at(
                    a.value.tier.referenced,
                    format!(
                        "unknown tier `{}` (expected low, medium, high or critical)",
                        a.value.tier.value
                    ),
                ),
            }
        }
        out.push(Pattern {
            name: p.name,
            cause: p.cause,
            symptoms,
            actions,
            prior: p.prior.value,
            source: file.to_string(),
            service: None,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError {
            file: file.to_string(),
            problems,
        })
    }
}

/// The shipped library, then each operator file (a later pattern of the same
/// name replaces an earlier one).
///
/// # Errors
/// An unreadable or invalid file.
pub fn load_patterns(files: &[&Path]) -> Result<Vec<Pattern>, ConfigError> {
    let mut all = parse_patterns("<shipped>", DEFAULT_PATTERNS)?;
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| ConfigError {
            file: name.clone(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                message: format!("cannot read patterns: {e}"),
            }],
        })?;
        for p in parse_patterns(&name, &text)? {
            match all.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p,
                None => all.push(p),
            }
        }
    }
    Ok(all)
}
