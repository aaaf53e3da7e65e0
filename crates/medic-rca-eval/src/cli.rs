//! The `medic eval rca` and `medic bench rca` commands (flatten the args into
//! a clap subcommand and call [`run`] / [`run_bench`]).
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use medic_rca::Params;
use serde_json::json;

use crate::{generate, petshop};

/// `medic eval rca`: root-cause ranking on PetShop-layout data or generated scenarios.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalRcaArgs {
    /// Directory in the PetShop layout (`<scenario>/graph.csv`, `noissue/`, `<split>/issue_N/`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seed of generated scenarios (instead of --data), or of --inject.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// With --data: instead of the issues, inject N faults per scenario into
    /// its normal data at random services PetSite reaches (PetSite included).
    #[arg(long, value_name = "N", requires = "data")]
    pub inject: Option<usize>,
    /// Number of generated scenarios.
    #[arg(long, value_name = "N", default_value_t = 200, requires = "seed")]
    pub cases: usize,
    /// With --seed: generated scenarios with queues (a `queue_depth` signal
    /// on some services) whose faults are filling queues that slow the
    /// callers (a cross-kind cause); the same bands, counts and figures.
    #[arg(long, requires = "seed")]
    pub queue_faults: bool,
    /// Scenario files (`*.yaml`, docs/rca.md "Scenario files") run through
    /// the daemon's ranking and the engine: per file pass or fail. Only the
    /// `medic` binary runs them.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["data", "seed"])]
    pub scenarios: Option<PathBuf>,
    /// With --data: the ranking to judge. `medic` (default), or
    /// `traversal`, the PetShop authors' published anomaly-traversal
    /// baseline as we read it (MAD score > 5, anomalous services without an
    /// anomalous callee on an anomalous path from the target), a peer on
    /// the same issues, slices and injected faults.
    #[arg(long, value_name = "METHOD", default_value = "medic", requires = "data", value_parser = ["medic", "traversal"])]
    pub method: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// List each issue's truth and ranking (PetShop data only).
    #[arg(long)]
    pub verbose: bool,
}

/// Runs `medic eval rca`.
///
/// # Errors
/// Bad data directory or file, or neither --data nor --seed.
pub fn run(args: &EvalRcaArgs) -> anyhow::Result<()> {
    print!("{}", render(args)?);
    Ok(())
}

fn ratio(a: usize, b: usize) -> serde_json::Value {
    if b == 0 {
        serde_json::Value::Null
    } else {
        json!(a as f64 / b as f64)
    }
}

fn fmt_ratio(a: usize, b: usize) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2} ({a}/{b})", a as f64 / b as f64)
    }
}

/// What [`run`] prints.
///
/// # Errors
/// As [`run`].
pub fn render(args: &EvalRcaArgs) -> anyhow::Result<String> {
    if args.scenarios.is_some() {
        anyhow::bail!("--scenarios runs the daemon's code: use `medic eval rca --scenarios DIR`");
    }
    let params = Params::default();
    let method = if args.method == "traversal" {
        petshop::Method::Traversal
    } else {
        petshop::Method::Medic
    };
    match (&args.data, args.seed) {
        (Some(dir), seed) if args.inject.is_some() => render_inject(
            dir,
            args.inject.unwrap_or(0),
            seed.unwrap_or(1),
            args.json,
            args.verbose,
            &params,
            method,
        ),
        (Some(dir), None) => render_petshop(dir, args.json, args.verbose, &params, method),
        (None, Some(seed)) => {
            let r = generate::evaluate_world(seed, args.cases, &params, args.queue_faults)?;
            Ok(if args.json {
                format!("{}\n", r.to_json())
            } else {
                let mut t = r.to_table();
                if args.verbose {
                    for m in &r.misses {
                        t.push_str(m);
                        t.push('\n');
                    }
                }
                t
            })
        }
        (Some(_), Some(_)) => bail!("--seed with --data needs --inject N"),
        (None, None) => bail!("give --data DIR or --seed S"),
    }
}

fn render_inject(
    dir: &std::path::Path,
    cases: usize,
    seed: u64,
    json_out: bool,
    verbose: bool,
    params: &Params,
    method: petshop::Method,
) -> anyhow::Result<String> {
    let scenarios = petshop::load(dir)?;
    let mut table = String::new();
    let mut all = Vec::new();
    let _ = writeln!(
        table,
        "injected faults (seed {seed}, {cases} per scenario, method {})\n{:<14} {:<48} {:>5} {:>14} {:>14} {:>8}",
        method.name(),
        "scenario", "metric / injected root", "cases", "top1", "top3", "no cause"
    );
    let mut total = crate::inject::Tally::default();
    for sc in &scenarios {
        let r = crate::inject::evaluate_with(sc, cases, seed, params, method)?;
        let mut rows: Vec<(String, &crate::inject::Tally)> =
            r.by_metric.iter().map(|(k, t)| (k.clone(), t)).collect();
        if verbose {
            rows.extend(r.by_root.iter().map(|(k, t)| (format!("  {k}"), t)));
        }
        rows.push(("all".into(), &r.total));
        for (k, t) in rows {
            let _ = writeln!(
                table,
                "{:<14} {:<48} {:>5} {:>14} {:>14} {:>8}",
                r.scenario,
                k.chars().take(48).collect::<String>(),
                t.cases,
                fmt_ratio(t.top1, t.cases),
                fmt_ratio(t.top3, t.cases),
                t.none
            );
        }
        if verbose {
            for m in &r.misses {
                let _ = writeln!(table, "    {m}");
            }
        }
        total.cases += r.total.cases;
        total.top1 += r.total.top1;
        total.top3 += r.total.top3;
        total.none += r.total.none;
        all.push(r.to_json());
    }
    let _ = writeln!(
        table,
        "{:<14} {:<48} {:>5} {:>14} {:>14} {:>8}",
        "all",
        "",
        total.cases,
        fmt_ratio(total.top1, total.cases),
        fmt_ratio(total.top3, total.cases),
        total.none
    );
    if json_out {
        let v = json!({
            "method": method.name(),
            "seed": seed,
            "cases": total.cases,
            "top1": ratio(total.top1, total.cases),
            "top3": ratio(total.top3, total.cases),
            "no_cause": total.none,
            "by_scenario": all,
        });
        Ok(format!("{v}\n"))
    } else {
        Ok(table)
    }
}

fn render_petshop(
    dir: &std::path::Path,
    json_out: bool,
    verbose: bool,
    params: &Params,
    method: petshop::Method,
) -> anyhow::Result<String> {
    let scenarios = petshop::load(dir)?;
    let mut total = petshop::Cell::default();
    let mut by = serde_json::Map::new();
    let mut table = String::new();
    if method != petshop::Method::Medic {
        let _ = writeln!(
            table,
            "method {}: the published anomaly-traversal baseline as we read it (a peer, not medic)",
            method.name()
        );
    }
    let _ = writeln!(
        table,
        "{:<14} {:<13} {:>5} {:>14} {:>14} {:>14}",
        "scenario", "metric", "cases", "top1", "top3", "specificity"
    );
    for sc in &scenarios {
        let cells = petshop::evaluate_with(sc, params, method)?;
        let mut per = serde_json::Map::new();
        for (metric, c) in &cells {
            let _ = writeln!(
                table,
                "{:<14} {:<13} {:>5} {:>14} {:>14} {:>14}",
                sc.name,
                metric,
                c.cases,
                fmt_ratio(c.top1, c.cases),
                fmt_ratio(c.top3, c.cases),
                fmt_ratio(c.specific, c.slices)
            );
            if verbose {
                for (id, truth, ranked, verdict) in &c.details {
                    let _ = writeln!(
                        table,
                        "    {id}: truth {truth}; {verdict}: {}",
                        ranked
                            .iter()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            per.insert(
                metric.clone(),
                json!({
                    "cases": c.cases,
                    "top1": ratio(c.top1, c.cases),
                    "top3": ratio(c.top3, c.cases),
                    "specificity": ratio(c.specific, c.slices),
                    "slices": c.slices,
                }),
            );
            total.cases += c.cases;
            total.top1 += c.top1;
            total.top3 += c.top3;
            total.slices += c.slices;
            total.specific += c.specific;
        }
        by.insert(sc.name.clone(), serde_json::Value::Object(per));
    }
    let _ = writeln!(
        table,
        "{:<14} {:<13} {:>5} {:>14} {:>14} {:>14}",
        "all",
        "",
        total.cases,
        fmt_ratio(total.top1, total.cases),
        fmt_ratio(total.top3, total.cases),
        fmt_ratio(total.specific, total.slices)
    );
    if json_out {
        let v = json!({
            "method": method.name(),
            "cases": total.cases,
            "top1": ratio(total.top1, total.cases),
            "top3": ratio(total.top3, total.cases),
            "specificity": ratio(total.specific, total.slices),
            "slices": total.slices,
            "by_scenario": by,
        });
        Ok(format!("{v}\n"))
    } else {
        Ok(table)
    }
}

/// `medic bench rca`: time one diagnosis of a generated incident.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchRcaArgs {
    /// Services in the generated topology.
    #[arg(long, default_value_t = 50)]
    pub services: usize,
    /// Signals in total (spread over the services).
    #[arg(long, default_value_t = 1000)]
    pub signals: usize,
    /// Diagnoses timed (the median is printed).
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `medic bench rca`.
///
/// # Errors
/// Bad arguments.
pub fn run_bench(args: &BenchRcaArgs) -> anyhow::Result<()> {
    if args.services < 2 || args.signals < args.services || args.iterations == 0 {
        bail!("need --services >= 2, --signals >= --services and --iterations >= 1");
    }
    let w = generate::bench_world(args.services, args.signals, 7);
    let (signals, target) = w.signals();
    let params = Params::default();
    let mut times = Vec::with_capacity(args.iterations);
    let mut top = None;
    for _ in 0..args.iterations {
        let t0 = std::time::Instant::now();
        let d = medic_rca::diagnose(&w.topo, &signals, Some(target), &params)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        top = d.ranked_nodes().first().copied();
    }
    // The peer in the same run: the published anomaly traversal (our
    // reading, `traversal.rs`) on the same signals, each service scored by
    // its most anomalous signal.
    let mut peer_times = Vec::with_capacity(args.iterations);
    let mut peer_top = None;
    for _ in 0..args.iterations {
        let t0 = std::time::Instant::now();
        let mut scores: Vec<Option<f64>> = vec![None; w.topo.len()];
        for s in &signals {
            let m = crate::traversal::mad_score(s.history, s.recent);
            let e = &mut scores[s.node];
            *e = Some(e.map_or(m, |x: f64| x.max(m)));
        }
        let ranked = crate::traversal::rank(&w.topo, signals[target].node, &scores);
        peer_times.push(t0.elapsed().as_secs_f64() * 1e3);
        peer_top = ranked.first().copied();
    }
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (median, max) = mid(&mut times);
    let (peer_median, peer_max) = mid(&mut peer_times);
    let ratio = median / peer_median.max(f64::MIN_POSITIVE);
    let found = top == Some(w.root);
    let peer_found = peer_top == Some(w.root);
    if args.json {
        println!(
            "{}",
            json!({"services": args.services, "signals": signals.len(), "history": generate::HISTORY,
                   "window": generate::WINDOW, "iterations": args.iterations,
                   "median_ms": median, "max_ms": max, "root_found": found,
                   "traversal": {"median_ms": peer_median, "max_ms": peer_max, "root_found": peer_found},
                   "ratio_to_traversal": ratio})
        );
    } else {
        println!(
            "rca: {} services, {} signals ({} history + {} recent samples each): median {median:.3} ms, max {max:.3} ms per diagnosis over {} runs (goal < 10 ms); root found: {found}",
            args.services,
            signals.len(),
            generate::HISTORY,
            generate::WINDOW,
            args.iterations
        );
        println!(
            "traversal peer (same signals, same run): median {peer_median:.3} ms, max {peer_max:.3} ms; root found: {peer_found}; medic / traversal = {ratio:.2}"
        );
    }
    Ok(())
}
