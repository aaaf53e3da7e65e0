//! The PetShop RCA dataset layout and its protocol (Hardt et al., CLeaR 2024).
//!
//! `<scenario>/graph.csv` (adjacency matrix, row calls column),
//! `<scenario>/noissue/metrics.csv` (normal operation) and
//! `<scenario>/<split>/issue_N/{metrics.csv,target.json}`. Metrics files have
//! three header rows (`microservice`, `metric`, `statistic`), then a unix
//! timestamp and one value per column; empty cells are missing data.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use medic_rca::{Diagnosis, Direction, Params, Signal, Topology};

/// One metrics file.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// (node, metric, statistic) per column.
    pub columns: Vec<(String, String, String)>,
    /// `values[col][row]`, NaN when empty.
    pub values: Vec<Vec<f64>>,
    /// Per row its unix timestamp (the first cell), NaN when it is none.
    pub timestamps: Vec<f64>,
    pub rows: usize,
}

impl Metrics {
    pub fn column(&self, node: &str, metric: &str, stat: &str) -> Option<&[f64]> {
        self.columns
            .iter()
            .position(|(n, m, s)| n == node && m == metric && s == stat)
            .map(|i| self.values[i].as_slice())
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// Parses a metrics CSV.
///
/// # Errors
/// Missing header rows, rows of the wrong width, or cells that are not numbers
/// (named with line and column).
pub fn parse_metrics(file: &str, text: &str) -> anyhow::Result<Metrics> {
    let mut lines = text.lines();
    let mut header = |want: &str| -> anyhow::Result<Vec<String>> {
        let l = lines
            .next()
            .ok_or_else(|| anyhow!("{file}: missing the `{want}` header row"))?;
        let cells: Vec<String> = l.split(',').map(str::to_string).collect();
        if cells.first().map(String::as_str) != Some(want) {
            bail!(
                "{file}: expected the `{want}` header row, found {:?}",
                cells.first()
            );
        }
        Ok(cells[1..].to_vec())
    };
    let nodes = header("microservice")?;
    let metrics = header("metric")?;
    let stats = header("statistic")?;
    if metrics.len() != nodes.len() || stats.len() != nodes.len() {
        bail!("{file}: header rows differ in width");
    }
    let width = nodes.len();
    let mut values = vec![Vec::new(); width];
    let mut timestamps = Vec::new();
    let mut rows = 0;
    for (i, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = l.split(',').collect();
        if cells.len() != width + 1 {
            bail!(
                "{file}:{}: {} cells, expected {}",
                i + 4,
                cells.len(),
                width + 1
            );
        }
        for (c, cell) in cells[1..].iter().enumerate() {
            let v = if cell.trim().is_empty() {
                f64::NAN
            } else {
                cell.trim()
                    .parse::<f64>()
                    .map_err(|_| anyhow!("{file}:{}:{}: not a number: {cell:?}", i + 4, c + 2))?
            };
            values[c].push(v);
        }
        timestamps.push(cells[0].trim().parse::<f64>().unwrap_or(f64::NAN));
        rows += 1;
    }
    let columns = nodes
        .into_iter()
        .zip(metrics)
        .zip(stats)
        .map(|((n, m), s)| (n, m, s))
        .collect();
    Ok(Metrics {
        columns,
        values,
        timestamps,
        rows,
    })
}

/// Parses `graph.csv` into a topology (row calls column).
///
/// # Errors
/// A malformed matrix.
pub fn parse_graph(file: &str, text: &str) -> anyhow::Result<Topology> {
    let mut lines = text.lines();
    let head = lines.next().ok_or_else(|| anyhow!("{file}: empty"))?;
    let names: Vec<String> = head.split(',').skip(1).map(str::to_string).collect();
    let mut edges = Vec::new();
    for (i, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = l.split(',').collect();
        let from = names
            .iter()
            .position(|n| n == cells[0])
            .ok_or_else(|| anyhow!("{file}:{}: row {:?} is not a column name", i + 2, cells[0]))?;
        if cells.len() != names.len() + 1 {
            bail!(
                "{file}:{}: {} cells, expected {}",
                i + 2,
                cells.len(),
                names.len() + 1
            );
        }
        for (to, c) in cells[1..].iter().enumerate() {
            let v: f64 = c
                .trim()
                .parse()
                .map_err(|_| anyhow!("{file}:{}:{}: not a number: {c:?}", i + 2, to + 2))?;
            if v != 0.0 {
                edges.push((from, to));
            }
        }
    }
    Ok(Topology::new(names, &edges)?)
}

/// The noticed SLO violation and the truth of one issue.
#[derive(Debug, Clone)]
pub struct Target {
    pub node: String,
    pub metric: String,
    pub agg: String,
    pub root_cause: String,
    /// When the violation was noticed (`target.timestamp`, unix seconds),
    /// if given.
    pub timestamp: Option<f64>,
}

/// Parses `target.json`.
///
/// # Errors
/// Invalid JSON or a missing field (named).
pub fn parse_target(file: &str, text: &str) -> anyhow::Result<Target> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{file}: invalid JSON"))?;
    let s = |path: &[&str]| -> anyhow::Result<String> {
        let mut cur = &v;
        for p in path {
            cur = &cur[p];
        }
        cur.as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{file}: missing string field `{}`", path.join(".")))
    };
    Ok(Target {
        node: s(&["target", "node"])?,
        metric: s(&["target", "metric"])?,
        agg: s(&["target", "agg"])?,
        root_cause: s(&["root_cause", "node"])?,
        timestamp: v["target"]["timestamp"].as_f64(),
    })
}

/// Which way a PetShop metric goes bad.
pub fn direction(metric: &str) -> Direction {
    match metric {
        "availability" => Direction::Down,
        "requests" => Direction::Both,
        _ => Direction::Up,
    }
}

/// One judged window of the protocol: `target`'s metric and statistic on
/// every node of `topo`, the `normal_rows` of `normal` as history and the
/// `abnormal_rows` of `abnormal` as the window. `noticed_at` (unix
/// seconds): when the violation was noticed, if told (an issue's
/// `target.timestamp`; never for the normal-data slices).
#[derive(Debug, Clone)]
pub struct Window<'a> {
    pub topo: &'a Topology,
    pub normal: &'a Metrics,
    pub abnormal: &'a Metrics,
    pub normal_rows: std::ops::Range<usize>,
    pub abnormal_rows: std::ops::Range<usize>,
    pub target: &'a Target,
    pub noticed_at: Option<f64>,
}

impl<'a> Window<'a> {
    /// The (history, window) of `name`'s `metric`/`agg`, when both files
    /// have the column and the rows.
    fn series(&self, name: &str, metric: &str, agg: &str) -> Option<(&'a [f64], &'a [f64])> {
        let h = self
            .normal
            .column(name, metric, agg)?
            .get(self.normal_rows.clone())?;
        let r = self
            .abnormal
            .column(name, metric, agg)?
            .get(self.abnormal_rows.clone())?;
        Some((h, r))
    }

    /// The (history, window) of the target's metric and statistic on `name`.
    fn target_series(&self, name: &str) -> Option<(&'a [f64], &'a [f64])> {
        self.series(name, &self.target.metric, &self.target.agg)
    }
}

/// Diagnoses one window: the target's metric and statistic on every node,
/// each with its traffic (`requests`/`Sum`, [`medic_rca::VOLUME`]); when
/// the violation's time is told, the first window row at or after it is
/// the symptom if no row reaches the symptom level
/// ([`medic_rca::diagnose_noticed`]).
///
/// # Errors
/// The target column is absent, or the core refuses the input.
pub fn diagnose_window(w: &Window<'_>, params: &Params) -> anyhow::Result<Diagnosis> {
    let (topo, target) = (w.topo, w.target);
    let dir = direction(&target.metric);
    let mut signals = Vec::new();
    let mut target_idx = None;
    for node in 0..topo.len() {
        let name = topo.name(node);
        let Some((h, r)) = w.target_series(name) else {
            continue;
        };
        if name == target.node {
            target_idx = Some(signals.len());
        }
        signals.push(Signal {
            node,
            name: &target.metric,
            direction: dir,
            history: h,
            recent: r,
        });
        // Its traffic: changes are weighed by it (medic_rca::VOLUME).
        if let Some((h, r)) = w.series(name, "requests", "Sum") {
            signals.push(Signal {
                node,
                name: medic_rca::VOLUME,
                direction: Direction::Both,
                history: h,
                recent: r,
            });
        }
    }
    let Some(t) = target_idx else {
        bail!(
            "target {}/{}/{} has no column in both metrics files (or is not in graph.csv)",
            target.node,
            target.metric,
            target.agg
        );
    };
    let noticed = w.noticed_at.and_then(|at| {
        w.abnormal
            .timestamps
            .get(w.abnormal_rows.clone())?
            .iter()
            .position(|&ts| ts >= at)
    });
    Ok(medic_rca::diagnose_noticed(
        topo,
        &signals,
        Some(t),
        noticed,
        params,
        medic_rca::DEFAULT_LEADS,
    )?)
}

/// Which ranking the protocol runs: medic's, or the published traversal
/// baseline as we read it ([`crate::traversal`]), a peer in the same run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    #[default]
    Medic,
    Traversal,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Medic => "medic",
            Method::Traversal => "traversal",
        }
    }
}

/// [`diagnose_window`] by `method`: the ranked nodes (empty: no cause),
/// the verdict's name and medic's diagnosis (its account of the ranking;
/// `None` for the peer).
///
/// # Errors
/// As [`diagnose_window`].
pub fn rank_window(
    method: Method,
    w: &Window<'_>,
    params: &Params,
) -> anyhow::Result<(Vec<usize>, &'static str, Option<Diagnosis>)> {
    match method {
        Method::Medic => {
            let d = diagnose_window(w, params)?;
            Ok((d.ranked_nodes(), d.verdict.name(), Some(d)))
        }
        Method::Traversal => {
            let t = w
                .topo
                .index(&w.target.node)
                .ok_or_else(|| anyhow!("target {} is not in graph.csv", w.target.node))?;
            let scores: Vec<Option<f64>> = (0..w.topo.len())
                .map(|v| {
                    let (h, r) = w.target_series(w.topo.name(v))?;
                    Some(crate::traversal::mad_score(h, r))
                })
                .collect();
            let ranked = crate::traversal::rank(w.topo, t, &scores);
            let verdict = if ranked.is_empty() {
                "no_cause"
            } else {
                "cause"
            };
            Ok((ranked, verdict, None))
        }
    }
}

/// One scenario directory, loaded.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub topo: Topology,
    pub normal: Metrics,
    /// (split/issue path, metrics, target), sorted by path.
    pub issues: Vec<(String, Metrics, Target)>,
}

/// Loads every scenario under `dir`: subdirectories with a `graph.csv`.
///
/// # Errors
/// No scenario, or any malformed file (named).
pub fn load(dir: &Path) -> anyhow::Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for sdir in sorted_dirs(dir)? {
        let graph = sdir.join("graph.csv");
        if !graph.is_file() {
            continue;
        }
        let name = file_name(&sdir);
        let topo = parse_graph(&graph.display().to_string(), &read(&graph)?)?;
        let npath = sdir.join("noissue").join("metrics.csv");
        let normal = parse_metrics(&npath.display().to_string(), &read(&npath)?)?;
        let mut issues = Vec::new();
        for split in sorted_dirs(&sdir)? {
            if file_name(&split) == "noissue" {
                continue;
            }
            for idir in sorted_dirs(&split)? {
                let m = idir.join("metrics.csv");
                let t = idir.join("target.json");
                if !(m.is_file() && t.is_file()) {
                    continue;
                }
                let metrics = parse_metrics(&m.display().to_string(), &read(&m)?)?;
                let target = parse_target(&t.display().to_string(), &read(&t)?)?;
                issues.push((
                    format!("{}/{}", file_name(&split), file_name(&idir)),
                    metrics,
                    target,
                ));
            }
        }
        out.push(Scenario {
            name,
            topo,
            normal,
            issues,
        });
    }
    if out.is_empty() {
        bail!(
            "{}: no scenario (a subdirectory with graph.csv) found",
            dir.display()
        );
    }
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// The normal-data cuts of PetShop's specificity protocol.
pub const SPLITS: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// Counts for one (scenario, metric) cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub cases: usize,
    pub top1: usize,
    pub top3: usize,
    pub slices: usize,
    pub specific: usize,
    /// (issue, truth, ranked names) for the report.
    pub details: Vec<(String, String, Vec<String>, &'static str)>,
}

/// Runs the protocol on one scenario: every issue, then every distinct target
/// on the normal-data cuts. Returns cells by metric, in metric order.
///
/// # Errors
/// A target missing from the data.
pub fn evaluate(sc: &Scenario, params: &Params) -> anyhow::Result<Vec<(String, Cell)>> {
    evaluate_with(sc, params, Method::Medic)
}

/// [`evaluate`] with the ranking of `method`.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_with(
    sc: &Scenario,
    params: &Params,
    method: Method,
) -> anyhow::Result<Vec<(String, Cell)>> {
    let mut cells: Vec<(String, Cell)> = Vec::new();
    fn cell<'a>(cells: &'a mut Vec<(String, Cell)>, m: &str) -> &'a mut Cell {
        if let Some(i) = cells.iter().position(|(k, _)| k == m) {
            return &mut cells[i].1;
        }
        cells.push((m.to_string(), Cell::default()));
        let last = cells.len() - 1;
        &mut cells[last].1
    }
    let mut targets: Vec<Target> = Vec::new();
    for (id, metrics, target) in &sc.issues {
        let window = Window {
            topo: &sc.topo,
            normal: &sc.normal,
            abnormal: metrics,
            normal_rows: 0..sc.normal.rows,
            abnormal_rows: 0..metrics.rows,
            target,
            noticed_at: target.timestamp,
        };
        let (nodes, verdict, _) =
            rank_window(method, &window, params).with_context(|| format!("{}/{id}", sc.name))?;
        let ranked: Vec<String> = nodes.iter().map(|&n| sc.topo.name(n).to_string()).collect();
        let c = cell(&mut cells, &target.metric);
        c.cases += 1;
        if ranked.first() == Some(&target.root_cause) {
            c.top1 += 1;
        }
        if ranked.iter().take(3).any(|n| n == &target.root_cause) {
            c.top3 += 1;
        }
        c.details
            .push((id.clone(), target.root_cause.clone(), ranked, verdict));
        if !targets
            .iter()
            .any(|t| t.node == target.node && t.metric == target.metric && t.agg == target.agg)
        {
            targets.push(target.clone());
        }
    }
    for t in &targets {
        for split in SPLITS {
            let cut = ((sc.normal.rows as f64) * split).floor() as usize;
            let window = Window {
                topo: &sc.topo,
                normal: &sc.normal,
                abnormal: &sc.normal,
                normal_rows: 0..cut,
                abnormal_rows: cut..sc.normal.rows,
                target: t,
                noticed_at: None,
            };
            let (ranked, _, _) = rank_window(method, &window, params)
                .with_context(|| format!("{}/noissue split {split}", sc.name))?;
            let c = cell(&mut cells, &t.metric);
            c.slices += 1;
            if ranked.is_empty() {
                c.specific += 1;
            }
        }
    }
    cells.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(cells)
}
