//! Development helper for tuning (not part of the API):
//! `cargo run --release -p medic-nab --example nab_eval -- DIR SPEC...` where SPEC is a
//! detector name, or `surprise:key=value,...` to override `SurpriseParams` fields; DIR is
//! the NAB directory (the repository's `data/nab` when no argument is given).
//! With `MEDIC_NAB_DETAIL=1`, prints per-file results at the standard profile's threshold.

use std::path::PathBuf;

use medic_detect::Detector;
use medic_nab::{PreparedFile, Series};

fn build(spec: &str) -> anyhow::Result<Box<dyn Detector>> {
    if let Some(rest) = spec.strip_prefix("mix:") {
        let members = rest
            .split('+')
            .map(|m| build(&format!("surprise:{m}")).map(|d| (d, 1.0)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        return Ok(Box::new(medic_detect::Ensemble::from_members(
            members, None,
        )));
    }
    if let Some(rest) = spec.strip_prefix("ens:") {
        let mut members = Vec::new();
        for m in rest.split('+') {
            let (n, w) = m.split_once('*').unwrap_or((m, "1"));
            members.push((build(n)?, w.parse::<f64>()?));
        }
        return Ok(Box::new(medic_detect::Ensemble::from_members(
            members, None,
        )));
    }
    Ok(medic_nab::spec::build_detector(spec)?)
}

fn run(dir: &std::path::Path, spec: &str, s: &Series) -> anyhow::Result<Vec<f64>> {
    if let Some(det) = spec.strip_prefix("ref:") {
        let (cat, name) = s.name.split_once('/').unwrap_or_default();
        let p = dir.join(format!("reference/{det}/{cat}/{det}_{name}"));
        return Ok(medic_nab::read_anomaly_scores(&p)?.1);
    }
    let mut d = build(spec)?;
    Ok(s.ts_micros
        .iter()
        .zip(&s.values)
        .map(|(&t, &v)| d.update(t.div_euclid(1_000_000), v))
        .collect())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/nab")),
        PathBuf::from,
    );
    let mut corpus = medic_nab::load_corpus(&dir)?;
    if let Ok(fold) = std::env::var("MEDIC_NAB_FOLD") {
        let fold: usize = fold.parse()?;
        let mut i = 0usize;
        corpus.files.retain(|_| {
            i += 1;
            (i - 1) % 2 == fold
        });
    }
    if let Ok(k) = std::env::var("MEDIC_NAB_DECIMATE") {
        // Keep every k-th row: shorter, coarser series with the same labelled windows (a
        // stand-in for short hourly data such as the held-out ad-exchange files).
        let k: usize = k.parse()?;
        for f in &mut corpus.files {
            f.series.ts_micros = f.series.ts_micros.iter().step_by(k).copied().collect();
            f.series.values = f.series.values.iter().step_by(k).copied().collect();
        }
    }
    if let Ok(f) = std::env::var("MEDIC_NAB_FILTER") {
        corpus.files.retain(|x| x.series.name.contains(&f));
    }
    let detail = std::env::var_os("MEDIC_NAB_DETAIL").is_some();
    for spec in args {
        let scores = corpus
            .files
            .iter()
            .map(|f| run(&dir, &spec, &f.series))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let res = medic_nab::evaluate_scores(&corpus, &scores);
        if std::env::var_os("MEDIC_NAB_CV").is_some() {
            // Leave-one-category-out: mean of folds with windows, and pooled, standard profile.
            let fs = medic_nab::cv::folds(&corpus, medic_nab::cv::CvSpec::Category)?;
            let c = medic_nab::cv::Candidate {
                spec: spec.clone(),
                scores: scores.clone(),
            };
            let r = medic_nab::cv::cross_validate(&corpus, &fs, &[c])?;
            let per: Vec<String> = r
                .folds
                .iter()
                .filter_map(|f| f.profiles[0].normalised())
                .map(|x| format!("{x:.1}"))
                .collect();
            println!(
                "{spec:<12} LOCO mean {:.2} pooled {:.2} [{}]",
                r.mean()[0].unwrap_or(f64::NAN),
                r.pooled()[0].unwrap_or(f64::NAN),
                per.join(" ")
            );
        }
        let line: Vec<String> = res
            .iter()
            .map(|r| format!("{:.2}@{:.4}", r.optimum.normalised(), r.optimum.threshold))
            .collect();
        println!("{spec:<12} {}", line.join("  "));
        if detail {
            let t = res[0].optimum.threshold;
            let prof = &corpus.profiles[0];
            for (f, s) in corpus.files.iter().zip(&scores) {
                let pf = PreparedFile::new(&f.series.name, &f.series.ts_micros, &f.windows);
                let r = pf.score(s, t, prof);
                println!(
                    "  {:<60} {:>7.3} (null {:>4}) tp={} fp={} rows={}",
                    f.series.name,
                    r.score,
                    pf.null_score(prof),
                    r.tp,
                    r.fp,
                    pf.n_rows
                );
            }
        }
    }
    Ok(())
}
