//! Conformance of the scorer and optimiser with NAB's published results for the two
//! reference detectors shipped in the NAB subset vendored in `data/nab`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use medic_nab::cli::score_precomputed;
use medic_nab::{evaluate_scores, load_corpus, read_anomaly_scores, PROFILE_NAMES};

fn nab_dir() -> PathBuf {
    std::env::var_os("MEDIC_NAB_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/nab")),
        PathBuf::from,
    )
}

struct Row {
    threshold: f64,
    score: f64,
    counts: [u64; 4],
}

fn parse_rows(text: &str) -> BTreeMap<String, Row> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| *h == n)
            .unwrap_or_else(|| panic!("no column {n}"))
    };
    let (f, t, s) = (col("File"), col("Threshold"), col("Score"));
    let cs = [col("TP"), col("TN"), col("FP"), col("FN")];
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let num = |i: usize| v[i].parse::<f64>().unwrap_or_else(|e| panic!("{l}: {e}"));
            let int = |i: usize| v[i].parse::<u64>().unwrap_or_else(|e| panic!("{l}: {e}"));
            (
                v[f].to_string(),
                Row {
                    threshold: num(t),
                    score: num(s),
                    counts: [int(cs[0]), int(cs[1]), int(cs[2]), int(cs[3])],
                },
            )
        })
        .collect()
}

#[test]
fn reference_per_file_scores_and_counts_are_reproduced() {
    let dir = nab_dir();
    for det in ["ARTime", "numenta"] {
        for profile in PROFILE_NAMES {
            let ref_path = dir.join(format!("reference/{det}/{det}_{profile}_scores.csv"));
            let text = std::fs::read_to_string(&ref_path)
                .unwrap_or_else(|e| panic!("{}: {e}", ref_path.display()));
            let reference = parse_rows(&text);
            assert_eq!(reference.len(), 35, "{det} {profile}");
            let threshold = reference.values().next().map_or(f64::NAN, |r| r.threshold);
            let ours = score_precomputed(
                &dir,
                &dir.join(format!("reference/{det}")),
                threshold,
                profile,
            )
            .unwrap_or_else(|e| panic!("{det} {profile}: {e:#}"));
            assert!(
                ours.starts_with("Detector,Profile,File,Threshold,Score,TP,TN,FP,FN,Total_Count\n")
            );
            for l in ours.lines().skip(1) {
                assert!(l.starts_with(&format!("{det},{profile},")), "{l}");
            }
            let ours = parse_rows(&ours);
            assert_eq!(ours.len(), reference.len(), "{det} {profile}: file count");
            for (file, r) in &reference {
                let o = ours
                    .get(file)
                    .unwrap_or_else(|| panic!("{det} {profile}: missing {file}"));
                assert!(
                    (o.score - r.score).abs() < 1e-6,
                    "{det} {profile} {file}: score {} vs reference {}",
                    o.score,
                    r.score
                );
                assert_eq!(o.counts, r.counts, "{det} {profile} {file}: TP/TN/FP/FN");
            }
        }
    }
}

#[test]
fn optimised_normalised_scores_match_published_figures() {
    let dir = nab_dir();
    let corpus = load_corpus(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(corpus.files.len(), 35);
    let published = [
        ("ARTime", [67.85, 57.84, 73.72]),
        ("numenta", [66.59, 60.81, 71.06]),
    ];
    for (det, expected) in published {
        let scores: Vec<Vec<f64>> = corpus
            .files
            .iter()
            .map(|f| {
                let (cat, name) = f.series.name.split_once('/').unwrap_or_default();
                let p = dir.join(format!("reference/{det}/{cat}/{det}_{name}"));
                let (ts, s) = read_anomaly_scores(&p).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(ts, f.series.ts_micros, "{}", p.display());
                s
            })
            .collect();
        let results = evaluate_scores(&corpus, &scores);
        for (i, profile) in PROFILE_NAMES.iter().enumerate() {
            let r = results
                .iter()
                .find(|r| r.profile == *profile)
                .unwrap_or_else(|| panic!("no {profile}"));
            let got = r.optimum.normalised();
            eprintln!(
                "{det} {profile}: {got:.3} (published {}) at {}",
                expected[i], r.optimum.threshold
            );
            // The exact optimiser reproduces NAB's own optimum on these files.
            assert!(
                (got - expected[i]).abs() < 0.01,
                "{det} {profile}: {got} vs published {}",
                expected[i]
            );
        }
    }
}

#[test]
fn malformed_and_missing_files_give_clear_errors() {
    let dir = nab_dir();
    let tmp = std::env::temp_dir().join(format!("medic-nab-test-{}", std::process::id()));
    let cat = tmp.join("realKnownCause");
    std::fs::create_dir_all(&cat).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        cat.join("X_nyc_taxi.csv"),
        "timestamp,anomaly_score\n2014-07-01 00:00:00,0.5\n2014-07-01 00:30:00,abc\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = score_precomputed(&dir, &tmp, 0.5, "standard")
        .map(|_| ())
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("X_nyc_taxi.csv:3") && msg.contains("anomaly_score"),
        "{msg}"
    );

    std::fs::write(
        cat.join("X_nyc_taxi.csv"),
        "timestamp,value\n2014-07-01 00:00:00,1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let msg = format!(
        "{:#}",
        score_precomputed(&dir, &tmp, 0.5, "standard")
            .map(|_| ())
            .unwrap_err()
    );
    assert!(msg.contains("missing column \"anomaly_score\""), "{msg}");

    std::fs::write(
        cat.join("X_nyc_taxi.csv"),
        "timestamp,anomaly_score\n2014-07-01 00:00:00,1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let msg = format!(
        "{:#}",
        score_precomputed(&dir, &tmp, 0.5, "nope")
            .map(|_| ())
            .unwrap_err()
    );
    assert!(msg.contains("unknown profile"), "{msg}");

    std::fs::write(
        cat.join("X_unknown_series.csv"),
        "timestamp,anomaly_score\n2014-07-01 00:00:00,1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let msg = format!(
        "{:#}",
        score_precomputed(&dir, &tmp, 0.5, "standard")
            .map(|_| ())
            .unwrap_err()
    );
    assert!(msg.contains("X_unknown_series.csv"), "{msg}");

    let missing = load_corpus(&tmp.join("nowhere")).map(|_| ()).unwrap_err();
    assert!(missing.to_string().contains("profiles.json"), "{missing}");
    let _ = std::fs::remove_dir_all(&tmp);
}
