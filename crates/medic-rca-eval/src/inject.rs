//! Semi-synthetic faults in real normal data: a generality check that does
//! not depend on which service the PetShop train issues happen to blame.
//!
//! Per case, from one scenario's `noissue` rows: the first 70 % are the
//! history, a random run of [`WINDOW`] later rows is the window (real noise,
//! nothing injected yet). A root is drawn uniformly among the services the
//! target (`PetSite`) reaches, the target included, that have the metric and
//! a positive median traffic (`requests`/`Sum`). From step 1 or 2, for 2 or 3
//! steps, the root's metric changes (latency up, availability down) and the
//! change propagates to its callers against the call arrows: a caller's
//! change is the sum over its changed callees of `share · Δcallee ·
//! traffic(callee) / traffic(caller)` (a caller's average latency grows by the
//! extra time its calls spend, spread over its own requests; lost requests
//! likewise), with `share` drawn per edge in [0.5, 1] (asynchronous or
//! retried calls pass on less). The root's change is scaled so the target
//! moves by 5–20 of its own history's robust scales (a clearly noticed
//! symptom, as in the train issues). Distractors: 1–3 other services (not
//! the target) get a level shift over the whole window, 10–50 of their robust
//! scales jittered ±50 % per step, like the drift between the history's days
//! and the issue days in high_traffic. The method sees the target's metric
//! and statistic and every service's traffic, as on the real issues.
use anyhow::Context;
use medic_rca::Params;
use serde_json::json;

use crate::generate::Rng;
use crate::petshop::{rank_window, Method, Metrics, Scenario, Target, Window};

/// Steps in an injected window (as in the PetShop issues).
pub const WINDOW: usize = 5;
/// The target every injected fault must reach.
pub const TARGET: &str = "PetSite";

/// Counts for one injected root (or a total).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub cases: usize,
    pub top1: usize,
    pub top3: usize,
    /// Cases where the method named no cause at all.
    pub none: usize,
}

impl Tally {
    fn add(&mut self, top1: bool, top3: bool, none: bool) {
        self.cases += 1;
        self.top1 += usize::from(top1);
        self.top3 += usize::from(top3);
        self.none += usize::from(none);
    }
}

/// One scenario's injection results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub scenario: String,
    /// Per metric (`latency`, `availability`).
    pub by_metric: Vec<(String, Tally)>,
    /// Per injected root, in name order.
    pub by_root: Vec<(String, Tally)>,
    pub total: Tally,
    /// The first [`MAX_MISSES`] top-1 misses, one line each (metric, root,
    /// window start row, what was ranked first).
    pub misses: Vec<String>,
}

/// Misses kept per scenario for `--verbose`.
pub const MAX_MISSES: usize = 40;

fn bump(v: &mut Vec<(String, Tally)>, key: &str, top1: bool, top3: bool, none: bool) {
    match v.iter_mut().find(|(k, _)| k == key) {
        Some((_, t)) => t.add(top1, top3, none),
        None => {
            let mut t = Tally::default();
            t.add(top1, top3, none);
            v.push((key.to_string(), t));
        }
    }
}

fn median(xs: &[f64]) -> f64 {
    medic_rca::median(xs)
}

/// Runs `cases` injected faults on `sc` (half latency, half availability).
///
/// # Errors
/// The scenario lacks the target or its metrics.
pub fn evaluate(sc: &Scenario, cases: usize, seed: u64, params: &Params) -> anyhow::Result<Report> {
    evaluate_with(sc, cases, seed, params, Method::Medic)
}

/// [`evaluate`] with the ranking of `method` (the same cases for each).
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_with(
    sc: &Scenario,
    cases: usize,
    seed: u64,
    params: &Params,
    method: Method,
) -> anyhow::Result<Report> {
    let topo = &sc.topo;
    let n = topo.len();
    let rows = sc.normal.rows;
    let cut = rows * 7 / 10;
    anyhow::ensure!(
        rows >= cut + WINDOW && cut >= 8,
        "{}: too few normal rows",
        sc.name
    );
    let tnode = topo
        .index(TARGET)
        .with_context(|| format!("{}: no {TARGET} in graph.csv", sc.name))?;
    let closure = topo.reaches(tnode);
    // Median traffic per service over the history.
    let traffic: Vec<Option<f64>> = (0..n)
        .map(|v| {
            sc.normal
                .column(topo.name(v), "requests", "Sum")
                .map(|c| median(&c[..cut]))
                .filter(|m| m.is_finite() && *m > 0.0)
        })
        .collect();
    let mut rng = Rng::new(seed);
    let mut report = Report {
        scenario: sc.name.clone(),
        ..Report::default()
    };
    let mut done = 0;
    let mut attempts = 0;
    while done < cases && attempts < cases * 50 {
        attempts += 1;
        let metric = if done % 2 == 0 {
            "latency"
        } else {
            "availability"
        };
        let col = |v: usize| sc.normal.column(topo.name(v), metric, "Average");
        let roots: Vec<usize> = (0..n)
            .filter(|&v| closure[v] && traffic[v].is_some() && col(v).is_some())
            .collect();
        if roots.is_empty() {
            anyhow::bail!("{}: no service to inject a fault into", sc.name);
        }
        let root = roots[rng.below(roots.len())];
        let start = cut + rng.below(rows - cut - WINDOW + 1);
        let onset = 1 + rng.below(2);
        let len = 2 + rng.below(2);
        let fault: Vec<usize> = (onset..(onset + len).min(WINDOW)).collect();
        // Propagation factors: f[v] = change of v per unit change of the root.
        let mut share = vec![vec![0.0; n]; n];
        for (c, row) in share.iter_mut().enumerate() {
            for w in topo.callees(c) {
                row[w] = rng.range(0.5, 1.0);
            }
        }
        let mut f = vec![0.0; n];
        f[root] = 1.0;
        for _ in 0..n {
            let mut next = vec![0.0; n];
            next[root] = 1.0;
            for (c, nc) in next.iter_mut().enumerate() {
                if c == root {
                    continue;
                }
                let Some(tc) = traffic[c] else { continue };
                for w in topo.callees(c) {
                    if let Some(tw) = traffic[w] {
                        *nc += share[c][w] * f[w] * tw / tc;
                    }
                }
            }
            if next == f {
                break;
            }
            f = next;
        }
        let Some(thist) = col(tnode) else { continue };
        let Some(base) = medic_rca::Baseline::of(&thist[..cut], params.min_history) else {
            continue;
        };
        if f[tnode] <= 0.0 {
            continue;
        }
        let want = rng.range(5.0, 20.0) * base.scale;
        let delta = want / f[tnode];
        if metric == "availability" && delta > 100.0 {
            continue;
        }
        // The root must have data at the fault steps.
        let Some(rc) = col(root) else { continue };
        if fault.iter().any(|&t| !rc[start + t].is_finite()) {
            continue;
        }
        // An availability cannot drop below 0: such a draw would not give
        // the target the drawn change.
        if metric == "availability" && fault.iter().any(|&t| rc[start + t] < delta) {
            continue;
        }
        // Distractors: 1–3 other services (not the target) with a level shift
        // over the whole window, 10–50 robust scales, jittered ±50 % per
        // step — the drift between days seen in high_traffic's issues.
        let others: Vec<usize> = roots
            .iter()
            .copied()
            .filter(|&v| v != root && v != tnode)
            .collect();
        let mut shift = vec![[0.0; WINDOW]; n];
        for _ in 0..1 + rng.below(3) {
            if others.is_empty() {
                break;
            }
            let v = others[rng.below(others.len())];
            let Some(c) = col(v) else { continue };
            let Some(b) = medic_rca::Baseline::of(&c[..cut], params.min_history) else {
                continue;
            };
            let level = rng.range(10.0, 50.0) * b.scale;
            for s in shift[v].iter_mut() {
                *s = level * rng.range(0.5, 1.5);
            }
        }
        let mut abnormal = Metrics {
            columns: sc.normal.columns.clone(),
            values: Vec::with_capacity(sc.normal.columns.len()),
            timestamps: sc.normal.timestamps[start..start + WINDOW].to_vec(),
            rows: WINDOW,
        };
        for (i, (node, m, stat)) in sc.normal.columns.iter().enumerate() {
            let mut w = sc.normal.values[i][start..start + WINDOW].to_vec();
            let v = topo.index(node);
            if let Some(v) = v.filter(|_| m == metric && stat == "Average") {
                let mut d = shift[v];
                if f[v] > 0.0 {
                    for &t in &fault {
                        d[t] += delta * f[v];
                    }
                }
                for (x, d) in w.iter_mut().zip(d) {
                    *x = if metric == "latency" {
                        *x + d
                    } else {
                        (*x - d).max(0.0)
                    };
                }
            }
            abnormal.values.push(w);
        }
        let target = Target {
            node: TARGET.to_string(),
            metric: metric.to_string(),
            agg: "Average".to_string(),
            root_cause: topo.name(root).to_string(),
            timestamp: None,
        };
        let window = Window {
            topo,
            normal: &sc.normal,
            abnormal: &abnormal,
            normal_rows: 0..cut,
            abnormal_rows: 0..WINDOW,
            target: &target,
            noticed_at: None,
        };
        let (ranked, _, diagnosis) = rank_window(method, &window, params)?;
        let top1 = ranked.first() == Some(&root);
        let top3 = ranked.iter().take(3).any(|&v| v == root);
        let none = ranked.is_empty();
        if !top1 && report.misses.len() < MAX_MISSES {
            let names: Vec<&str> = ranked.iter().take(3).map(|&v| topo.name(v)).collect();
            let why = diagnosis.map_or(String::new(), |d| account(topo, &d, root));
            report.misses.push(format!(
                "miss {} {metric}: root {} (rows {start}.., fault steps {fault:?}); ranked: {}{}{why}",
                sc.name,
                topo.name(root),
                if names.is_empty() {
                    "no cause".to_string()
                } else {
                    names.join(", ")
                },
                if why.is_empty() { "" } else { "\n        " },
            ));
        }
        bump(&mut report.by_metric, metric, top1, top3, none);
        bump(&mut report.by_root, topo.name(root), top1, top3, none);
        report.total.add(top1, top3, none);
        done += 1;
    }
    report.by_root.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(report)
}

/// medic's account of a miss: its first three candidates and the true
/// root (marked `*`), each with the figures that ranked it.
fn account(topo: &medic_rca::Topology, d: &medic_rca::Diagnosis, root: usize) -> String {
    d.candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| *i < 3 || c.node == root)
        .map(|(_, c)| {
            format!(
                "{}{} root={} cover={:.2} explains={:.2} onset={} z/thr={:.1}/{:.1} score={:.2}",
                if c.node == root { "*" } else { "" },
                topo.name(c.node),
                c.root,
                c.cover,
                c.explains,
                c.onset,
                c.z,
                c.threshold,
                c.score
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        let t = |t: &Tally| json!({"cases": t.cases, "top1": t.top1, "top3": t.top3, "no_cause": t.none});
        json!({
            "scenario": self.scenario,
            "total": t(&self.total),
            "by_metric": self.by_metric.iter().map(|(k, v)| (k.clone(), t(v))).collect::<serde_json::Map<_, _>>(),
            "by_root": self.by_root.iter().map(|(k, v)| (k.clone(), t(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
}
