//! Cross-validation (`medic eval nab --cv ...`): shape, honesty of the protocol, references.

use std::path::PathBuf;

use medic_nab::cli::{render, EvalNabArgs};
use medic_nab::cv::{cross_validate, folds, tune_candidates, Candidate, CvSpec};
use medic_nab::{load_corpus, run_detector};

fn nab_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/nab"))
}

fn args(cv: &str) -> EvalNabArgs {
    EvalNabArgs {
        data: nab_dir(),
        detector: "ewma".into(),
        json: true,
        scores: None,
        threshold: None,
        profile: None,
        cv: Some(cv.into()),
        tune: false,
        tune_budget: 16,
        tune_seed: 1,
    }
}

fn json(a: &EvalNabArgs) -> serde_json::Value {
    let out = render(a).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn leave_one_category_out_has_the_documented_shape_and_references() {
    let v = json(&args("category"));
    assert_eq!(v["cv"], "category");
    assert_eq!(v["detector"], "ewma");
    let folds = v["folds"].as_array().cloned().unwrap_or_default();
    let held: Vec<&str> = folds
        .iter()
        .filter_map(|f| f["held_out"].as_str())
        .collect();
    assert_eq!(
        held,
        [
            "artificialNoAnomaly",
            "artificialWithAnomaly",
            "realAWSCloudwatch",
            "realKnownCause"
        ]
    );
    let files: u64 = folds.iter().filter_map(|f| f["files"].as_u64()).sum();
    assert_eq!(files, 35);
    // No labelled window in artificialNoAnomaly: undefined normalised score, not a number.
    assert!(folds[0]["standard"].is_null(), "{}", folds[0]);
    for f in &folds[1..] {
        for p in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
            let s = f[p].as_f64().unwrap_or(f64::NAN);
            assert!(s.is_finite() && s <= 100.0, "{p}: {f}");
        }
    }
    for p in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let mean = v["mean"][p].as_f64().unwrap_or(f64::NAN);
        let by_hand: f64 = folds[1..].iter().filter_map(|f| f[p].as_f64()).sum::<f64>() / 3.0;
        assert!((mean - by_hand).abs() < 1e-3, "{p}: {mean} vs {by_hand}");
        assert!(v["pooled"][p].is_number(), "{p}");
    }
    // ARTime and numenta outputs from data/nab/reference, cross-validated the same way:
    // out-of-fold figures below their in-sample 67.85 / 66.59.
    for (det, in_sample) in [("ARTime", 67.85), ("numenta", 66.59)] {
        let r = &v["references"][det];
        assert_eq!(r["folds"].as_array().map_or(0, Vec::len), 4, "{det}");
        let pooled = r["pooled"]["standard"].as_f64().unwrap_or(f64::NAN);
        assert!(
            pooled < in_sample && pooled > 50.0,
            "{det}: pooled {pooled}"
        );
    }
}

#[test]
fn kfold_splits_every_file_once_and_table_names_the_protocol() {
    let v = json(&args("kfold:5"));
    assert_eq!(v["cv"], "kfold:5");
    let folds = v["folds"].as_array().cloned().unwrap_or_default();
    assert_eq!(folds.len(), 5);
    assert!(folds.iter().all(|f| f["files"] == 7));
    let mut a = args("kfold:3");
    a.json = false;
    let t = render(&a).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(t.contains("3-fold"), "{t}");
    assert!(t.contains("no parameter search"), "{t}");
    assert!(t.contains("pooled out-of-fold"), "{t}");
    // The references side by side with medic, per fold.
    assert!(
        t.lines().any(|l| l.contains("held out")
            && l.contains("medic")
            && l.contains("ARTime")
            && l.contains("numenta")),
        "{t}"
    );
}

/// A small corpus (three files, two categories) so that tuning `surprise` stays quick in a
/// debug build.
fn small_corpus(dir: &std::path::Path) -> PathBuf {
    let src = nab_dir();
    for f in ["combined_windows.json", "profiles.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    }
    for f in [
        "artificialWithAnomaly/art_daily_jumpsdown.csv",
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realKnownCause/rogue_agent_key_hold.csv",
    ] {
        let to = dir.join("data").join(f);
        std::fs::create_dir_all(to.parent().unwrap_or(dir)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(src.join("data").join(f), to).unwrap_or_else(|e| panic!("{e}"));
    }
    dir.to_path_buf()
}

#[test]
fn tuning_prints_its_space_and_budget() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut a = args("category");
    a.data = small_corpus(tmp.path());
    a.detector = "default".into();
    a.tune = true;
    a.tune_budget = 2;
    a.json = false;
    let t = render(&a).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(t.contains("search space avg_window∈{5,15,30}"), "{t}");
    assert!(t.contains("budget 2 configurations"), "{t}");
    assert!(t.contains("over 3 files"), "{t}");
    assert_eq!(tune_candidates(3, 1).len(), 3);
    assert_eq!(tune_candidates(3, 1), tune_candidates(3, 1));
}

#[test]
fn bad_cv_arguments_are_rejected() {
    for (cv, want) in [
        ("folds", "expected `category` or `kfold:K`"),
        ("kfold:1", "K must be an integer"),
        ("kfold:x", "K must be an integer"),
        ("kfold:99", "only 35 files"),
    ] {
        let e = format!("{:#}", render(&args(cv)).map(|_| ()).unwrap_err());
        assert!(e.contains(want), "{cv}: {e}");
    }
    let mut a = args("category");
    a.cv = None;
    a.tune = true;
    let e = format!("{:#}", render(&a).map(|_| ()).unwrap_err());
    assert!(e.contains("--tune needs --cv"), "{e}");
}

/// A candidate that is an oracle on one category and useless elsewhere must not be chosen
/// for the fold that holds that category out: the choice sees only training files.
#[test]
fn selection_never_sees_the_held_out_files() {
    let corpus = load_corpus(&nab_dir()).unwrap_or_else(|e| panic!("{e}"));
    let fs = folds(&corpus, CvSpec::Category).unwrap_or_else(|e| panic!("{e}"));
    let honest = Candidate {
        spec: "ewma".into(),
        scores: corpus
            .files
            .iter()
            .map(|f| run_detector("ewma", &f.series).unwrap_or_default())
            .collect(),
    };
    // Oracle on realKnownCause: 1 at every window start, 0 elsewhere; elsewhere all zeros.
    let oracle = Candidate {
        spec: "oracle".into(),
        scores: corpus
            .files
            .iter()
            .map(|f| {
                let known = f.series.name.starts_with("realKnownCause/");
                f.series
                    .ts_micros
                    .iter()
                    .map(|t| f64::from(u8::from(known && f.windows.iter().any(|w| w.0 == *t))))
                    .collect()
            })
            .collect(),
    };
    let r = cross_validate(&corpus, &fs, &[honest, oracle]).unwrap_or_else(|e| panic!("{e}"));
    let known = r
        .folds
        .iter()
        .find(|f| f.fold.held_out == "realKnownCause")
        .unwrap_or_else(|| panic!("no fold"));
    assert_eq!(
        known.chosen, 0,
        "the oracle was chosen from held-out labels"
    );
    // ... while a fold that trains on realKnownCause may well pick it (it is perfect there).
    let aws = r
        .folds
        .iter()
        .find(|f| f.fold.held_out == "realAWSCloudwatch")
        .unwrap_or_else(|| panic!("no fold"));
    assert!(aws.profiles[0].threshold.is_finite());
}
