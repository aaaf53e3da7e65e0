//! The `medic eval nab` and `medic bench detect` commands, ready to be wired into the binary:
//! flatten [`EvalNabArgs`] / [`BenchDetectArgs`] into a clap subcommand and call [`run`] /
//! [`run_bench`].

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use medic_detect::{by_name, Detector, NAMES};

use crate::corpus::{find_profile, list_csvs, load_corpus, load_profiles, load_windows, Csv};
use crate::scorer::PreparedFile;
use crate::{evaluate_scores, run_detector, PROFILE_NAMES};

/// `medic eval nab`: score a detector on a NAB corpus, or re-score precomputed outputs.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalNabArgs {
    /// NAB directory holding `data/`, `combined_windows.json` and `profiles.json`.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Detector to run (see `medic_detect::NAMES`).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub detector: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Score precomputed outputs `SCORES_DIR/<category>/<detector>_<name>.csv` (with an
    /// `anomaly_score` column) instead of running a detector; needs --threshold and --profile.
    #[arg(long, value_name = "SCORES_DIR")]
    pub scores: Option<PathBuf>,
    /// Detection threshold for --scores (a row is a detection when its score is ≥ T).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,
    /// Profile for --scores (`standard`, `reward_low_FP_rate`, `reward_low_FN_rate`).
    #[arg(long, value_name = "P")]
    pub profile: Option<String>,
    /// Cross-validate: `category` (leave one category out) or `kfold:K`. Thresholds (and with
    /// --tune the parameters) are fitted on each fold's training files only; the held-out
    /// files are scored with them. Prints the references in `DIR/reference/*` beside.
    #[arg(long, value_name = "SPLIT")]
    pub cv: Option<String>,
    /// With --cv: choose the detector's parameters per fold, on the training files, from the
    /// printed `surprise` search space (budget --tune-budget, seed --tune-seed).
    #[arg(long, requires = "cv")]
    pub tune: bool,
    /// Configurations --tune evaluates (the default detector plus random grid points).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub tune_budget: usize,
    /// Seed of --tune's sampling of the grid.
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub tune_seed: u64,
}

/// Runs `medic eval nab`.
///
/// # Errors
/// Missing or malformed corpus/score files (named with line or field), unknown detector or
/// profile, or --scores without --threshold/--profile.
pub fn run(args: &EvalNabArgs) -> anyhow::Result<()> {
    print!("{}", render(args)?);
    Ok(())
}

/// What [`run`] prints, as a string.
///
/// # Errors
/// As [`run`].
pub fn render(args: &EvalNabArgs) -> anyhow::Result<String> {
    let out = match &args.scores {
        Some(dir) => {
            let (Some(t), Some(p)) = (args.threshold, args.profile.as_deref()) else {
                bail!("--scores needs both --threshold and --profile");
            };
            score_precomputed(&args.data, dir, t, p)?
        }
        None => {
            if args.threshold.is_some() || args.profile.is_some() {
                bail!("--threshold and --profile only apply with --scores");
            }
            match &args.cv {
                Some(cv) => crate::cv_report::render(args, cv)?,
                None if args.tune => {
                    bail!(
                        "--tune needs --cv: parameters are fitted only on a fold's training files"
                    )
                }
                None => evaluate(&args.data, &args.detector, args.json)?,
            }
        }
    };
    Ok(out)
}

/// Runs a detector over the whole corpus and renders the table (or JSON) of normalised scores.
fn evaluate(data: &Path, detector: &str, json: bool) -> anyhow::Result<String> {
    crate::spec::build_detector(detector)?;
    let corpus =
        load_corpus(data).with_context(|| format!("loading NAB corpus {}", data.display()))?;
    let bar = progress(corpus.files.len());
    let mut scores = Vec::with_capacity(corpus.files.len());
    for f in &corpus.files {
        if let Some(b) = &bar {
            b.set_message(f.series.name.clone());
        }
        scores.push(run_detector(detector, &f.series)?);
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let results = evaluate_scores(&corpus, &scores);
    let wanted: Vec<_> = results
        .iter()
        .filter(|r| PROFILE_NAMES.contains(&r.profile.as_str()))
        .collect();
    let mut s = String::new();
    if json {
        let mut sc = serde_json::Map::new();
        let mut th = serde_json::Map::new();
        for r in &wanted {
            sc.insert(
                r.profile.clone(),
                serde_json::json!(round4(r.optimum.normalised())),
            );
            th.insert(r.profile.clone(), serde_json::json!(r.optimum.threshold));
        }
        let v = serde_json::json!({
            "detector": detector,
            "files": corpus.files.len(),
            "scores": sc,
            "thresholds": th,
        });
        let _ = writeln!(s, "{v}");
    } else {
        let _ = writeln!(s, "detector {detector} on {} files", corpus.files.len());
        let _ = writeln!(
            s,
            "{:<20} {:>8} {:>10} {:>10}",
            "profile", "score", "threshold", "raw"
        );
        for r in &wanted {
            let _ = writeln!(
                s,
                "{:<20} {:>8.2} {:>10.6} {:>10.3}",
                r.profile,
                r.optimum.normalised(),
                r.optimum.threshold,
                r.optimum.raw
            );
        }
    }
    Ok(s)
}

pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// A progress bar on stderr when it is a terminal, else `None`.
pub(crate) fn progress(len: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}") {
        b.set_style(style);
    }
    Some(b)
}

/// Re-scores precomputed outputs at a fixed threshold; returns the per-file CSV in the
/// published format `Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count`.
///
/// # Errors
/// Missing/malformed files, unknown profile, or a score file that matches no labelled file.
pub fn score_precomputed(
    data: &Path,
    scores_dir: &Path,
    threshold: f64,
    profile: &str,
) -> anyhow::Result<String> {
    if !threshold.is_finite() {
        bail!("--threshold must be a finite number");
    }
    let profiles = load_profiles(&data.join("profiles.json"))?;
    let prof = find_profile(&profiles, profile)?;
    let windows = load_windows(&data.join("combined_windows.json"))?;
    let files = list_csvs(scores_dir)
        .with_context(|| format!("listing score files in {}", scores_dir.display()))?;
    if files.is_empty() {
        bail!("{}: no <category>/*.csv score files", scores_dir.display());
    }
    let mut out = String::from("Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count\n");
    for (rel, path) in files {
        let Some((category, fname)) = rel.split_once('/') else {
            continue;
        };
        // `<detector>_<name>.csv`: the longest labelled name of this category that matches.
        let found = windows
            .iter()
            .filter_map(|(key, w)| {
                let (c, name) = key.split_once('/')?;
                (c == category
                    && fname.len() > name.len()
                    && fname.ends_with(name)
                    && fname.as_bytes()[fname.len() - name.len() - 1] == b'_')
                    .then_some((key, name, w))
            })
            .max_by_key(|(_, name, _)| name.len());
        let Some((key, name, wins)) = found else {
            bail!(
                "{}: no entry `{category}/<name>.csv` in combined_windows.json matches this file",
                path.display()
            );
        };
        let det = &fname[..fname.len() - name.len() - 1];
        let csv = Csv::read(&path)?;
        let (ts, scores) = csv.ts_and("anomaly_score")?;
        let pf = PreparedFile::new(key, &ts, wins);
        let r = pf.score(&scores, threshold, prof);
        let _ = writeln!(
            out,
            "{det},{profile},{key},{threshold:?},{:?},{},{},{},{},{}",
            r.score, r.tp, r.tn, r.fp, r.fn_, r.total
        );
    }
    Ok(out)
}

/// `medic bench detect`: single-core throughput of every detector.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchDetectArgs {
    /// Samples fed to each detector.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    pub samples: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The naive baseline: one comparison per sample behind the same trait object.
struct Naive;

impl Detector for Naive {
    fn name(&self) -> &'static str {
        "naive"
    }
    fn update(&mut self, _ts_secs: i64, value: f64) -> f64 {
        if value > 80.0 {
            1.0
        } else {
            0.0
        }
    }
}

fn time_detector(d: &mut dyn Detector, series: &[(i64, f64)]) -> f64 {
    // Hide the concrete type so every detector pays the same dynamic dispatch.
    let d = std::hint::black_box(d);
    let start = Instant::now();
    let mut acc = 0.0;
    for &(t, v) in series {
        acc += d.update(t, v);
    }
    std::hint::black_box(acc);
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let n = series.len() as f64;
    n / secs
}

/// Measured throughput of one detector.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Detector name.
    pub name: String,
    /// Samples per second on one core.
    pub per_sec: f64,
    /// `per_sec` divided by the naive baseline's.
    pub ratio: f64,
}

/// Benchmarks every detector in `medic_detect::NAMES` plus the naive baseline over the same
/// seeded series (one-minute samples, daily seasonality, noise, 0.1% spikes), single-threaded.
#[must_use]
pub fn bench(samples: usize) -> (f64, Vec<BenchResult>) {
    let series = medic_detect::synth::daily_series(samples.max(1), 60, 0x5eed, 0.001);
    let mut naive: Box<dyn Detector> = Box::new(Naive);
    let baseline = time_detector(naive.as_mut(), &series);
    let results = NAMES
        .iter()
        .filter_map(|n| {
            let mut d = by_name(n)?;
            let per_sec = time_detector(d.as_mut(), &series);
            Some(BenchResult {
                name: (*n).to_string(),
                per_sec,
                ratio: per_sec / baseline,
            })
        })
        .collect();
    (baseline, results)
}

/// Runs `medic bench detect`.
///
/// # Errors
/// `--samples 0`.
pub fn run_bench(args: &BenchDetectArgs) -> anyhow::Result<()> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let (baseline, results) = bench(args.samples);
    if args.json {
        let dets: Vec<_> = results
            .iter()
            .map(|r| serde_json::json!({"name": r.name, "samples_per_sec": r.per_sec.round(), "ratio_to_naive": round4(r.ratio)}))
            .collect();
        let v = serde_json::json!({
            "samples": args.samples,
            "naive_samples_per_sec": baseline.round(),
            "detectors": dets,
        });
        println!("{v}");
    } else {
        println!("{} samples per detector, one core", args.samples);
        println!("{:<12} {:>16} {:>10}", "detector", "samples/s", "vs naive");
        println!("{:<12} {:>16.0} {:>10}", "naive", baseline, "1.0000");
        for r in &results {
            println!("{:<12} {:>16.0} {:>10.4}", r.name, r.per_sec, r.ratio);
        }
    }
    Ok(())
}
