//! `medic eval rca` on the vendored PetShop subset (train issues and normal
//! data only) and on generated scenarios. The floors are below what the
//! method measures today (docs/rca.md), so a regression fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use medic_rca::Params;
use medic_rca_eval::{generate, inject, petshop};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/petshop")
}

#[test]
fn petshop_train_issues_and_normal_slices_meet_the_floors() {
    let scenarios = petshop::load(&data()).unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["high_traffic", "low_traffic"]);
    let (mut cases, mut top1, mut top3, mut slices, mut specific) = (0, 0, 0, 0, 0);
    // Per target metric, over both scenarios: (slices, specific).
    let mut by_metric = [(0, 0); 2];
    for sc in &scenarios {
        assert_eq!(sc.issues.len(), 8, "{}", sc.name);
        for (metric, c) in petshop::evaluate(sc, &Params::default()).unwrap() {
            assert!(metric == "latency" || metric == "availability", "{metric}");
            assert_eq!(c.slices, 5, "{} {metric}: one slice per split", sc.name);
            assert!(c.top1 <= c.top3 && c.top3 <= c.cases);
            cases += c.cases;
            top1 += c.top1;
            top3 += c.top3;
            slices += c.slices;
            specific += c.specific;
            let m = &mut by_metric[usize::from(metric == "availability")];
            m.0 += c.slices;
            m.1 += c.specific;
        }
    }
    assert_eq!((cases, slices), (16, 20));
    let r = |a: usize, b: usize| a as f64 / b as f64;
    // Measured 15/16 and 16/16 (docs/rca.md); floors one case below.
    assert!(r(top1, cases) >= 0.87, "top1 {top1}/{cases}");
    assert!(r(top3, cases) >= 0.93, "top3 {top3}/{cases}");
    // Measured 20/20: the goal (0.9 for each target metric) is the floor.
    assert!(
        r(specific, slices) >= 0.9,
        "specificity {specific}/{slices}"
    );
    for (metric, (n, ok)) in ["latency", "availability"].iter().zip(by_metric) {
        assert!(r(ok, n) >= 0.9, "{metric} specificity {ok}/{n}");
    }
}

#[test]
fn generated_scenarios_meet_the_goals_and_are_deterministic() {
    let p = Params::default();
    let a = generate::evaluate(1, 200, &p).unwrap();
    let b = generate::evaluate(1, 200, &p).unwrap();
    assert_eq!(a, b, "same seed, same report");
    assert_eq!((a.faulty, a.healthy), (150, 50));
    assert!(a.top1 as f64 / a.faulty as f64 >= 0.9, "{a:?}");
    assert_eq!(a.victim_actions, 0, "{a:?}");
    assert_eq!(a.healthy_actions, 0, "{a:?}");
    assert!(a.healthy_no_cause as f64 / a.healthy as f64 >= 0.9, "{a:?}");
    let c = generate::evaluate(2, 200, &p).unwrap();
    assert_ne!(a, c, "another seed draws other cases");
}

#[test]
fn generated_filling_queues_are_found_across_kinds() {
    // The root's queue_depth grows while its own latency stays; its callers
    // slow down. Without the cross-kind links the callers' latency ranks
    // first (top-1 0.23–0.25 at 1,000 cases); measured here 0.887 (133/150).
    let p = Params::default();
    let a = generate::evaluate_world(1, 200, &p, true).unwrap();
    assert_eq!(a, generate::evaluate_world(1, 200, &p, true).unwrap());
    assert_eq!((a.faulty, a.healthy, a.by_kind[2].0), (150, 50, 150));
    assert!(a.top1 as f64 / a.faulty as f64 >= 0.85, "{a:?}");
    assert_eq!(a.victim_actions, 0, "{a:?}");
    assert_eq!(a.healthy_actions, 0, "{a:?}");
}

#[test]
fn malformed_files_are_named_with_line_and_column() {
    let e = petshop::parse_metrics(
        "m.csv",
        "microservice,a\nmetric,latency\nstatistic,Average\n1,0.5\n2,x\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "m.csv:5:2: not a number: \"x\"");
    let e = petshop::parse_metrics("m.csv", "microservice,a\nmetric,latency\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing the `statistic` header row"), "{e}");
    let e = petshop::parse_target("t.json", "{\"target\": {}}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.json: missing string field `target.node`"),
        "{e}"
    );
    let e = petshop::load(&PathBuf::from("/nonexistent-dir"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent-dir: cannot list"), "{e}");
}

#[test]
fn injected_faults_in_real_normal_data_are_found_and_deterministic() {
    let scenarios = petshop::load(&data()).unwrap();
    let p = Params::default();
    let (mut cases, mut top1, mut top3) = (0, 0, 0);
    for sc in &scenarios {
        let a = inject::evaluate(sc, 40, 1, &p).unwrap();
        assert_eq!(a, inject::evaluate(sc, 40, 1, &p).unwrap(), "same seed");
        assert_eq!(a.total.cases, 40, "{}", sc.name);
        assert_eq!(a.by_metric.iter().map(|(_, t)| t.cases).sum::<usize>(), 40);
        // Roots all over the closure, the target included.
        assert!(a.by_root.len() >= 10, "{}: {:?}", sc.name, a.by_root);
        cases += a.total.cases;
        top1 += a.total.top1;
        top3 += a.total.top3;
    }
    let r = |a: usize| a as f64 / cases as f64;
    // Floors below the measured figures (docs/rca.md): a regression fails.
    assert!(r(top1) >= 0.8, "top1 {top1}/{cases}");
    assert!(r(top3) >= 0.9, "top3 {top3}/{cases}");
}

/// The peer in the same run (`--method traversal`, the published
/// anomaly-traversal baseline as we read it) on the same issues and slices:
/// it runs the same protocol, reproduces the published availability
/// specificity (1.0: availability's normal MAD is 0, so it is never
/// scored), and medic names the true cause first at least as often.
#[test]
fn the_traversal_peer_runs_the_same_protocol() {
    let scenarios = petshop::load(&data()).unwrap();
    let (mut medic1, mut peer1) = (0, 0);
    for sc in &scenarios {
        let peer =
            petshop::evaluate_with(sc, &Params::default(), petshop::Method::Traversal).unwrap();
        for (metric, c) in &peer {
            assert_eq!(c.slices, 5, "{} {metric}", sc.name);
            if metric == "availability" {
                assert_eq!(c.specific, 5, "{} {metric}", sc.name);
            }
            peer1 += c.top1;
        }
        for (_, c) in petshop::evaluate(sc, &Params::default()).unwrap() {
            medic1 += c.top1;
        }
    }
    assert!(medic1 >= peer1, "medic {medic1} < traversal {peer1}");
}
