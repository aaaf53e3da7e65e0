//! Scenarios as data for the precedent and the filled list: per service its
//! normal history (a ±5 % band around its base, with excursions written as
//! `step:factor,...` at given steps) and its recent window in multiples of
//! its base; the ranking that must come out.
//!
//! - A dependency's excursion while the target itself was symptomatic is a
//!   past incident, not normal operation: it does not make the same fault
//!   "precedented" for ever after.
//! - A sustained anomaly is compared with the history's runs of its own
//!   length, not with the deepest 2-step blip.
//! - With a cause named, the list is filled up to three services with those
//!   that show the symptom without being beyond their own threshold.
//! - The symptom alone (no other service, no other signal anomalous) names
//!   its own service only when its anomaly outlasts the shortest run an
//!   anomaly may have (`persistence` samples): that short, noise does as much.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::{history, topology};
use medic_rca::{diagnose, Diagnosis, Direction, Params, Signal, Verdict};

struct Case {
    name: &'static str,
    edges: &'static str,
    /// (service, history excursions "step:factor ...", window in multiples of base)
    rows: &'static [(&'static str, &'static str, &'static str)],
    target: &'static str,
    /// The whole ranked list (candidates, then suspects).
    want: &'static [&'static str],
    verdict: Verdict,
}

fn run(c: &Case, p: &Params) -> (Vec<String>, Diagnosis) {
    let names: Vec<String> = c.rows.iter().map(|r| r.0.to_string()).collect();
    let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
    let topo = topology(&names, c.edges);
    let base = |i: usize| 0.01 * (i + 1) as f64;
    let hist: Vec<Vec<f64>> = c
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut h = history(base(i));
            for ex in r.1.split_whitespace() {
                let (at, f) = ex.split_once(':').unwrap();
                h[at.parse::<usize>().unwrap()] = base(i) * f.parse::<f64>().unwrap();
            }
            h
        })
        .collect();
    let recent: Vec<Vec<f64>> = c
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.2.split_whitespace()
                .map(|x| base(i) * x.parse::<f64>().unwrap())
                .collect()
        })
        .collect();
    let signals: Vec<Signal<'_>> = (0..names.len())
        .map(|i| Signal {
            node: i,
            name: "latency",
            direction: Direction::Up,
            history: &hist[i],
            recent: &recent[i],
        })
        .collect();
    let d = diagnose(&topo, &signals, Some(idx(c.target)), p).unwrap();
    let ranked = d
        .ranked_nodes()
        .iter()
        .map(|&n| topo.name(n).to_string())
        .collect();
    (ranked, d)
}

const CASES: &[Case] = &[
    Case {
        name: "the same fault again: its first time, during a past incident, is no precedent",
        edges: "web>db web>api",
        rows: &[
            // Steps 40–43 of the history: web slow (a past incident), db 8× slower.
            ("web", "40:3 41:3 42:3 43:3", "1 1 3 3 1 1"),
            ("db", "40:8 41:8 42:8 43:8", "1 1 8 8 1 1"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        want: &["db", "web"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "a dependency's own excursion while the target was fine stays a precedent",
        edges: "web>db web>api",
        rows: &[
            // Three steps: longer than the shortest anomaly (see below).
            ("web", "", "1 1 3 3 3 1"),
            // Steps 40–43: db 8× slower, web quiet: db's normal includes that.
            ("db", "40:8 41:8 42:8 43:8", "1 1 8 8 8 1"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        // web is the only anomaly; db shows the symptom below its threshold.
        want: &["web", "db"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "the symptom alone, for the shortest run an anomaly may have, is no cause",
        edges: "web>db web>api",
        rows: &[
            // Two steps of web and nothing else: noise shows as much.
            ("web", "", "1 1 3 3 1 1"),
            ("db", "", "1 1 1 1 1 1"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        want: &[],
        verdict: Verdict::Unexplained,
    },
    Case {
        name: "the symptom alone, for longer than that, names its own service",
        edges: "web>db web>api",
        rows: &[
            ("web", "", "1 1 3 3 3 1"),
            ("db", "", "1 1 1 1 1 1"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        want: &["web"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "the symptom for the shortest run, with its cause beneath, is a cause",
        edges: "web>db web>api",
        rows: &[
            ("web", "", "1 1 3 3 1 1"),
            ("db", "", "1 1 8 8 1 1"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        want: &["db", "web"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "a sustained slowdown is judged against sustained history, not the deepest blip",
        edges: "web>db web>api",
        rows: &[
            ("web", "", "1 1 3 3 3 3"),
            // A 2-step 10× blip in the history (web quiet): a bar for 2-step
            // runs, not for 3 or 4 steps at 6×.
            ("db", "60:10 61:10", "1 1 6 6 6 6"),
            ("api", "", "1 1 1 1 1 1"),
        ],
        target: "web",
        want: &["db", "web"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "the list is filled to three with the closest misses, after the candidates",
        edges: "web>api web>search web>cache",
        rows: &[
            ("web", "", "1 1 3 3 1 1"),
            ("api", "", "1 1 5 5 1 1"),
            // Below their own precedent (web quiet then), but at symptom level.
            ("search", "60:10 61:10", "1 1 8 8 1 1"),
            ("cache", "90:10 91:10", "1 1 1.5 1.5 1 1"),
        ],
        target: "web",
        want: &["api", "web", "search"],
        verdict: Verdict::Cause,
    },
    Case {
        name: "no cause, no suspects",
        edges: "web>api web>search",
        rows: &[
            // web's own precedent: a 3× run (its history is not masked).
            ("web", "20:3 21:3", "1 1 3 3 1 1"),
            ("api", "", "1 1 1 1 1 1"),
            ("search", "60:10 61:10", "1 1 8 8 1 1"),
        ],
        target: "web",
        want: &[],
        verdict: Verdict::Unexplained,
    },
];

#[test]
fn ranked_lists_per_scenario() {
    for c in CASES {
        let (ranked, d) = run(c, &Params::default());
        assert_eq!(d.verdict, c.verdict, "{}: {ranked:?}", c.name);
        assert_eq!(ranked, c.want, "{}", c.name);
        for s in &d.suspects {
            assert!(!s.root && s.score == 0.0, "{}: {s:?}", c.name);
            assert!(
                !d.candidates.iter().any(|k| k.node == s.node),
                "{}: a suspect is no candidate",
                c.name
            );
        }
    }
}

#[test]
fn without_filling_only_anomalous_services_are_named() {
    let p = Params {
        min_named: 0,
        ..Params::default()
    };
    let filled = CASES
        .iter()
        .find(|c| c.name.starts_with("the list is filled"))
        .unwrap();
    let (ranked, d) = run(filled, &p);
    assert_eq!(ranked, ["api", "web"]);
    assert!(d.suspects.is_empty());
}
