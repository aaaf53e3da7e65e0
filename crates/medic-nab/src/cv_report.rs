//! `medic eval nab --cv ...`: runs the candidates, cross-validates, renders the report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};

use crate::cli::{progress, round4, EvalNabArgs};
use crate::corpus::{load_corpus, read_anomaly_scores, Corpus, PROFILE_NAMES};
use crate::cv::{
    cross_validate, folds, tune_candidates, tune_space_size, Candidate, CvResult, CvSpec,
    TUNE_SPACE,
};
use crate::run_detector;

/// Reference outputs `DIR/reference/<det>/<category>/<det>_<name>` for every corpus file, for
/// each `<det>` directory that has all of them (sorted by name).
fn references(data: &Path, corpus: &Corpus) -> anyhow::Result<Vec<Candidate>> {
    let root = data.join("reference");
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    let mut out = Vec::new();
    'det: for det in names {
        let mut scores = Vec::with_capacity(corpus.files.len());
        for f in &corpus.files {
            let Some((cat, name)) = f.series.name.split_once('/') else {
                continue 'det;
            };
            let p = root.join(&det).join(cat).join(format!("{det}_{name}"));
            if !p.is_file() {
                continue 'det;
            }
            let (_, s) = read_anomaly_scores(&p)?;
            if s.len() != f.series.values.len() {
                bail!(
                    "{}: {} rows, the series has {}",
                    p.display(),
                    s.len(),
                    f.series.values.len()
                );
            }
            scores.push(s);
        }
        out.push(Candidate { spec: det, scores });
    }
    Ok(out)
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn json_opt(x: Option<f64>) -> serde_json::Value {
    x.map_or(serde_json::Value::Null, |v| serde_json::json!(round4(v)))
}

fn profile_obj(v: &[Option<f64>]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (p, x) in PROFILE_NAMES.iter().zip(v) {
        m.insert((*p).to_string(), json_opt(*x));
    }
    serde_json::Value::Object(m)
}

fn folds_json(r: &CvResult, candidates: &[Candidate], tuned: bool) -> serde_json::Value {
    let folds: Vec<_> = r
        .folds
        .iter()
        .map(|f| {
            let mut m = serde_json::Map::new();
            m.insert("held_out".into(), f.fold.held_out.clone().into());
            m.insert("files".into(), f.fold.test.len().into());
            let mut th = serde_json::Map::new();
            let mut raw = serde_json::Map::new();
            for h in &f.profiles {
                m.insert(h.profile.clone(), json_opt(h.normalised()));
                th.insert(h.profile.clone(), serde_json::json!(h.threshold));
                raw.insert(h.profile.clone(), serde_json::json!(round4(h.raw)));
            }
            m.insert("thresholds".into(), th.into());
            m.insert("raw".into(), raw.into());
            if tuned {
                m.insert("chosen".into(), candidates[f.chosen].spec.clone().into());
            }
            serde_json::Value::Object(m)
        })
        .collect();
    serde_json::Value::Array(folds)
}

/// Renders `medic eval nab --cv SPLIT` (table or JSON).
pub(crate) fn render(args: &EvalNabArgs, cv: &str) -> anyhow::Result<String> {
    let spec: CvSpec = cv.parse()?;
    if args.tune && (args.tune_budget == 0 || args.tune_budget > 200) {
        bail!("--tune-budget must be between 1 and 200");
    }
    if args.tune && args.detector != "default" && args.detector != "surprise" {
        bail!(
            "--tune searches `surprise` parameters; it cannot be combined with --detector {}",
            args.detector
        );
    }
    crate::spec::build_detector(&args.detector)?;
    let data = &args.data;
    let corpus =
        load_corpus(data).with_context(|| format!("loading NAB corpus {}", data.display()))?;
    let fs = folds(&corpus, spec)?;
    let specs = if args.tune {
        tune_candidates(args.tune_budget, args.tune_seed)
    } else {
        vec![args.detector.clone()]
    };
    let bar = progress(specs.len() * corpus.files.len());
    let mut candidates = Vec::with_capacity(specs.len());
    for s in &specs {
        let mut scores = Vec::with_capacity(corpus.files.len());
        for f in &corpus.files {
            if let Some(b) = &bar {
                b.set_message(format!("{s} {}", f.series.name));
            }
            scores.push(run_detector(s, &f.series)?);
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        candidates.push(Candidate {
            spec: s.clone(),
            scores,
        });
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let result = cross_validate(&corpus, &fs, &candidates)?;
    let refs = references(data, &corpus)?;
    let ref_results = refs
        .iter()
        .map(|c| cross_validate(&corpus, &fs, std::slice::from_ref(c)))
        .collect::<crate::Result<Vec<_>>>()?;
    let space: Vec<String> = TUNE_SPACE
        .iter()
        .map(|(k, v)| format!("{k}∈{{{}}}", v.join(",")))
        .collect();
    let n_cands = candidates.len();
    let mut s = String::new();
    if args.json {
        let mut refs_json = serde_json::Map::new();
        for (c, r) in refs.iter().zip(&ref_results) {
            refs_json.insert(
                c.spec.clone(),
                serde_json::json!({
                    "folds": folds_json(r, std::slice::from_ref(c), false),
                    "mean": profile_obj(&r.mean()),
                    "pooled": profile_obj(&r.pooled()),
                }),
            );
        }
        let tune = if args.tune {
            serde_json::json!({
                "space": space,
                "space_points": tune_space_size(),
                "budget": n_cands,
                "seed": args.tune_seed,
                "selection": "best normalised standard score on the fold's training files",
            })
        } else {
            serde_json::Value::Null
        };
        let v = serde_json::json!({
            "cv": spec.to_string(),
            "detector": if args.tune { "surprise (tuned per fold)".to_string() } else { args.detector.clone() },
            "files": corpus.files.len(),
            "tune": tune,
            "folds": folds_json(&result, &candidates, args.tune),
            "mean": profile_obj(&result.mean()),
            "pooled": profile_obj(&result.pooled()),
            "references": refs_json,
        });
        let _ = writeln!(s, "{v}");
        return Ok(s);
    }
    let kind = match spec {
        CvSpec::Category => "leave-one-category-out".to_string(),
        CvSpec::KFold(k) => format!("{k}-fold (file i held out in fold i mod {k})"),
    };
    let _ = writeln!(
        s,
        "cross-validation: {kind}, {} folds over {} files; detector {}",
        fs.len(),
        corpus.files.len(),
        if args.tune {
            "surprise (tuned per fold)"
        } else {
            &args.detector
        }
    );
    let _ = writeln!(
        s,
        "fitted on each fold's training files only: the threshold of each profile{}",
        if args.tune {
            " and the parameters"
        } else {
            "; no parameter search (designed defaults)"
        }
    );
    if args.tune {
        let _ = writeln!(
            s,
            "tune: search space {} ({} points); budget {n_cands} configurations drawn with seed {}; chosen by the normalised standard score on the training files",
            space.join(" × "),
            tune_space_size(),
            args.tune_seed
        );
    }
    // Side by side first: the standard profile per fold, medic then each reference.
    let mut side = String::new();
    let _ = write!(
        side,
        "standard profile, out-of-fold\n{:<28} {:>9}",
        "held out", "medic"
    );
    for c in &refs {
        let _ = write!(side, " {:>9}", c.spec);
    }
    let _ = writeln!(side);
    let row = |side: &mut String, name: &str, vals: Vec<Option<f64>>| {
        let _ = write!(side, "{name:<28}");
        for v in vals {
            let _ = write!(side, " {:>9}", fmt_opt(v));
        }
        let _ = writeln!(side);
    };
    for (k, f) in result.folds.iter().enumerate() {
        let mut vals = vec![f.profiles[0].normalised()];
        vals.extend(
            ref_results
                .iter()
                .map(|r| r.folds[k].profiles[0].normalised()),
        );
        row(&mut side, &f.fold.held_out, vals);
    }
    let mut vals = vec![result.mean()[0]];
    vals.extend(ref_results.iter().map(|r| r.mean()[0]));
    row(&mut side, "mean of folds with windows", vals);
    let mut vals = vec![result.pooled()[0]];
    vals.extend(ref_results.iter().map(|r| r.pooled()[0]));
    row(&mut side, "pooled out-of-fold", vals);
    let _ = write!(s, "\n{side}");
    let mut table = |name: &str, r: &CvResult, cands: &[Candidate], tuned: bool| {
        let _ = writeln!(s, "\n{name}");
        let _ = writeln!(
            s,
            "{:<28} {:>5} {:>9} {:>9} {:>9}",
            "held out", "files", "standard", "low_FP", "low_FN"
        );
        for f in &r.folds {
            let v: Vec<String> = f.profiles.iter().map(|h| fmt_opt(h.normalised())).collect();
            let _ = write!(
                s,
                "{:<28} {:>5} {:>9} {:>9} {:>9}",
                f.fold.held_out,
                f.fold.test.len(),
                v[0],
                v[1],
                v[2]
            );
            if f.profiles[0].normalised().is_none() {
                let _ = write!(
                    s,
                    "   (no labelled window: raw {:.2}, {} FP rows)",
                    f.profiles[0].raw, f.profiles[0].fp
                );
            }
            if tuned {
                let _ = write!(s, "   {}", cands[f.chosen].spec);
            }
            let _ = writeln!(s);
        }
        let m = r.mean();
        let p = r.pooled();
        let _ = writeln!(
            s,
            "{:<34} {:>9} {:>9} {:>9}",
            "mean of folds with windows",
            fmt_opt(m[0]),
            fmt_opt(m[1]),
            fmt_opt(m[2])
        );
        let _ = writeln!(
            s,
            "{:<34} {:>9} {:>9} {:>9}",
            "pooled out-of-fold",
            fmt_opt(p[0]),
            fmt_opt(p[1]),
            fmt_opt(p[2])
        );
    };
    table("medic", &result, &candidates, args.tune);
    for (c, r) in refs.iter().zip(&ref_results) {
        table(
            &format!(
                "{} (reference outputs, threshold fitted the same way)",
                c.spec
            ),
            r,
            std::slice::from_ref(c),
            false,
        );
    }
    Ok(s)
}
