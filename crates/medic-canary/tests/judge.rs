//! The judge against reference values from scipy 1.17.1 and on the cases
//! Kayenta misses (spread, missing data).
use medic_canary::*;

fn close(a: f64, b: f64) {
    let tol = 1e-9_f64.max(b.abs() * 1e-7);
    assert!((a - b).abs() <= tol, "{a} != {b}");
}

/// `less` p-value: the same test with the groups swapped.
fn less(x: &[f64], y: &[f64]) -> f64 {
    mann_whitney_greater(y, x).p_value
}

// Every reference below is
//   from scipy.stats import mannwhitneyu
//   mannwhitneyu(x, y, alternative="greater"|"less", method=M)
// with scipy 1.17.1; statistic and p-value copied verbatim.

#[test]
fn exact_small_groups_match_scipy() {
    // mannwhitneyu([1.1,2.3,3.7,4.2,5.9],[0.5,0.7,1.9,2.1,2.8,3.3],alternative="greater",method="exact")
    // -> statistic 24.0, pvalue 0.06277056277056277; "less" -> 0.9588744588744589
    let x = [1.1, 2.3, 3.7, 4.2, 5.9];
    let y = [0.5, 0.7, 1.9, 2.1, 2.8, 3.3];
    let t = mann_whitney_greater(&x, &y);
    assert_eq!(t.method, Method::Exact);
    close(t.u, 24.0);
    close(t.p_value, 0.06277056277056277);
    close(less(&x, &y), 0.9588744588744589);
}

#[test]
fn exact_twenty_each_match_scipy() {
    // x = [i*1.5+0.25 for i in range(20)], y = [float(i) for i in range(20)]
    // mannwhitneyu(x, y, alternative="greater", method="exact") -> 267.0, 0.035888376735695005
    // "less" -> 0.9662494274623694
    let x: Vec<f64> = (0..20).map(|i| f64::from(i) * 1.5 + 0.25).collect();
    let y: Vec<f64> = (0..20).map(f64::from).collect();
    let t = mann_whitney_greater(&x, &y);
    assert_eq!(t.method, Method::Exact);
    close(t.u, 267.0);
    close(t.p_value, 0.035888376735695005);
    close(less(&x, &y), 0.9662494274623694);
}

#[test]
fn exact_clear_shift_matches_scipy() {
    // mannwhitneyu([10.5,11.2,12.9,13.1,14.8,15.3,16.6,17.4],
    //              [1.0,2.5,3.1,4.4,5.2,6.6,7.9,8.3], alternative="greater", method="exact")
    // -> 64.0, 7.77000777000777e-05; "less" -> 1.0
    let x = [10.5, 11.2, 12.9, 13.1, 14.8, 15.3, 16.6, 17.4];
    let y = [1.0, 2.5, 3.1, 4.4, 5.2, 6.6, 7.9, 8.3];
    let t = mann_whitney_greater(&x, &y);
    close(t.u, 64.0);
    close(t.p_value, 7.77000777000777e-05);
    close(less(&x, &y), 1.0);
}

#[test]
fn ties_use_the_tie_corrected_normal_approximation_like_scipy() {
    // mannwhitneyu([1,2,2,3,3,3,4,5,5,6],[1,1,2,2,2,3,3,4,4,5],alternative="greater",
    //              method="asymptotic") -> 63.0, 0.1675372362030088; "less" -> 0.8510758025480474
    let x = [1., 2., 2., 3., 3., 3., 4., 5., 5., 6.];
    let y = [1., 1., 2., 2., 2., 3., 3., 4., 4., 5.];
    let t = mann_whitney_greater(&x, &y);
    assert_eq!(t.method, Method::Normal, "ties: no exact distribution");
    close(t.u, 63.0);
    close(t.p_value, 0.1675372362030088);
    close(less(&x, &y), 0.8510758025480474);
}

#[test]
fn binary_error_samples_match_scipy() {
    // mannwhitneyu([0]*20+[1]*10, [0]*95+[1]*5, alternative="greater", method="asymptotic")
    // -> 1925.0, 1.1233717360483909e-05; "less" -> 0.9999892554496388
    let x: Vec<f64> = [0.0; 20].iter().chain([1.0; 10].iter()).copied().collect();
    let y: Vec<f64> = [0.0; 95].iter().chain([1.0; 5].iter()).copied().collect();
    let t = mann_whitney_greater(&x, &y);
    close(t.u, 1925.0);
    close(t.p_value, 1.1233717360483909e-05);
    close(less(&x, &y), 0.9999892554496388);
}

#[test]
fn large_groups_match_scipy() {
    // x = [float((i*37)%101)+5.0 for i in range(60)], y = [float((i*53)%97) for i in range(70)]
    // mannwhitneyu(x, y, alternative="greater", method="asymptotic") -> 2424.5, 0.06511348617088794
    // "less" -> 0.9354774018156952
    let x: Vec<f64> = (0..60).map(|i| f64::from((i * 37) % 101) + 5.0).collect();
    let y: Vec<f64> = (0..70).map(|i| f64::from((i * 53) % 97)).collect();
    let t = mann_whitney_greater(&x, &y);
    assert_eq!(t.method, Method::Normal);
    close(t.u, 2424.5);
    close(t.p_value, 0.06511348617088794);
    close(less(&x, &y), 0.9354774018156952);
}

#[test]
fn all_ties_give_no_evidence() {
    let t = mann_whitney_greater(&[3.0; 30], &[3.0; 40]);
    assert_eq!(t.p_value, 1.0);
    close(t.u, 600.0);
}

#[test]
fn hodges_lehmann_is_the_median_pairwise_difference() {
    // differences of [10, 20] - [1, 2, 3]: 9 8 7 19 18 17 -> median (9+17)/2 = 13
    close(hodges_lehmann(&[10.0, 20.0], &[1.0, 2.0, 3.0]), 13.0);
}

/// Latency-like samples: a deterministic spread around `centre`.
fn around(centre: f64, width: f64, n: usize, phase: usize) -> Vec<f64> {
    (0..n)
        .map(|i| centre + width * ((((i + phase) * 7919) % 101) as f64 / 100.0 - 0.5))
        .collect()
}

fn metrics() -> Vec<MetricConfig> {
    vec![
        MetricConfig::latency_ms("latency_ms"),
        MetricConfig::error_share("error"),
    ]
}

fn samples(
    lat_c: Vec<f64>,
    lat_b: Vec<f64>,
    err_c: Vec<f64>,
    err_b: Vec<f64>,
) -> Vec<MetricSamples> {
    vec![
        MetricSamples {
            metric: "latency_ms".into(),
            canary: lat_c,
            baseline: lat_b,
        },
        MetricSamples {
            metric: "error".into(),
            canary: err_c,
            baseline: err_b,
        },
    ]
}

#[test]
fn same_behaviour_passes() {
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(
            around(20.0, 8.0, 30, 3),
            around(20.0, 8.0, 270, 0),
            vec![0.0; 30],
            vec![0.0; 270],
        ),
    );
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.explanation);
    assert_eq!(v.score, 1.0);
    let lat = &v.metrics[0];
    assert_eq!((lat.n_canary, lat.n_baseline), (30, 270));
    assert!(lat.test.p_value > 0.02, "{lat}");
    assert!(lat.explanation.contains("U="), "{lat}");
}

#[test]
fn a_slow_canary_fails_on_latency_with_its_numbers() {
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(
            around(320.0, 8.0, 30, 3),
            around(20.0, 8.0, 270, 0),
            vec![0.0; 30],
            vec![0.0; 270],
        ),
    );
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.explanation);
    let lat = &v.metrics[0];
    assert_eq!(lat.fail, Some(FailReason::Worse));
    assert_eq!(lat.test.method, Method::Normal);
    assert_eq!(lat.test.u, 30.0 * 270.0, "every canary sample is slower");
    assert!(lat.test.p_value < 1e-10);
    assert!((lat.effect - 300.0).abs() < 3.0, "{lat}");
    assert!((lat.allowed_effect - 4.0_f64.max(5.0)).abs() < 1.0, "{lat}");
    assert_eq!(v.metrics[1].outcome, Outcome::Pass);
    assert_eq!(v.score, 0.5);
}

#[test]
fn a_significant_but_allowed_shift_passes() {
    // +2 ms on 20 ms: detectable with this many samples, within 20 %.
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(
            around(22.0, 1.0, 200, 3),
            around(20.0, 1.0, 400, 0),
            vec![0.0; 200],
            vec![0.0; 400],
        ),
    );
    let lat = &v.metrics[0];
    assert!(lat.test.p_value < 0.02, "{lat}");
    assert!(lat.effect > 1.5 && lat.effect < lat.allowed_effect, "{lat}");
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.explanation);
}

#[test]
fn an_erroring_canary_fails_on_error_share() {
    let mut err_c = vec![0.0; 20];
    err_c.extend([1.0; 10]);
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(
            around(20.0, 8.0, 30, 3),
            around(20.0, 8.0, 270, 0),
            err_c,
            vec![0.0; 270],
        ),
    );
    let e = &v.metrics[1];
    assert_eq!(e.outcome, Outcome::Fail, "{e}");
    assert!((e.effect - 1.0 / 3.0).abs() < 1e-9, "{e}");
    assert_eq!(v.outcome, Outcome::Fail);
}

#[test]
fn more_spread_on_the_same_median_fails() {
    // Same median, ten times the spread: a location test alone passes it.
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(
            around(20.0, 36.0, 60, 3),
            around(20.0, 3.6, 270, 0),
            vec![0.0; 60],
            vec![0.0; 270],
        ),
    );
    let lat = &v.metrics[0];
    assert!(
        lat.test.p_value > 0.02,
        "location alone does not see it: {lat}"
    );
    assert!(lat.spread.failed, "{lat}");
    assert!(lat.spread.ratio > 5.0, "{lat}");
    assert_eq!(lat.fail, Some(FailReason::SpreadIncrease));
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.explanation);
    assert!(v.explanation.contains("whatever the score"));
}

#[test]
fn missing_canary_data_fails() {
    let v = judge(
        &JudgeConfig::default(),
        &metrics(),
        &samples(vec![], around(20.0, 8.0, 270, 0), vec![], vec![0.0; 270]),
    );
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.metrics[0].fail, Some(FailReason::TooFewCanary));
    assert_eq!(v.metrics[0].n_canary, 0);
    // A metric nobody sent samples for is missing too.
    let v = judge(&JudgeConfig::default(), &metrics(), &[]);
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(v
        .metrics
        .iter()
        .all(|m| m.fail == Some(FailReason::TooFewCanary)));
    // Too few: NaNs do not count.
    let mut c = vec![f64::NAN; 20];
    c.extend([20.0; 5]);
    let v = judge(
        &JudgeConfig::default(),
        &metrics()[..1],
        &samples(c, around(20.0, 8.0, 270, 0), vec![], vec![]),
    );
    assert_eq!(v.metrics[0].fail, Some(FailReason::TooFewCanary));
    assert_eq!(v.metrics[0].dropped, 20);
}

#[test]
fn no_metrics_is_not_a_pass() {
    assert_eq!(
        judge(&JudgeConfig::default(), &[], &[]).outcome,
        Outcome::Fail
    );
}

#[test]
fn marginal_between_the_thresholds() {
    let cfg = JudgeConfig {
        pass_score: 0.9,
        marginal_score: 0.6,
        ..JudgeConfig::default()
    };
    let ms: Vec<MetricConfig> = (0..3)
        .map(|i| MetricConfig::latency_ms(&format!("m{i}")))
        .collect();
    let mut s: Vec<MetricSamples> = (0..3)
        .map(|i| MetricSamples {
            metric: format!("m{i}"),
            canary: around(20.0, 8.0, 30, 3),
            baseline: around(20.0, 8.0, 200, 0),
        })
        .collect();
    s[2].canary = around(200.0, 8.0, 30, 3);
    let v = judge(&cfg, &ms, &s);
    assert_eq!(v.outcome, Outcome::Marginal, "{}", v.explanation);
    assert!((v.score - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn lower_is_worse_metrics_fail_when_they_drop() {
    let m = MetricConfig {
        name: "throughput".into(),
        direction: Direction::LowerIsWorse,
        effect: EffectMeasure::HodgesLehmann,
        allowed_relative: 0.1,
        allowed_absolute: 0.0,
    };
    let v = judge_metric(
        &JudgeConfig::default(),
        &m,
        &around(50.0, 5.0, 30, 1),
        &around(100.0, 5.0, 60, 0),
    );
    assert_eq!(v.fail, Some(FailReason::Worse), "{v}");
    assert!(v.effect > 45.0, "{v}");
    let v = judge_metric(
        &JudgeConfig::default(),
        &m,
        &around(150.0, 5.0, 30, 1),
        &around(100.0, 5.0, 60, 0),
    );
    assert_eq!(v.outcome, Outcome::Pass, "better is not worse: {v}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(0.0),
            Just(1.0),
            -1e6..1e6f64,
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_range(
            c in proptest::collection::vec(value(), 0..60),
            b in proptest::collection::vec(value(), 0..60),
            conf in 0.0..1.0f64,
        ) {
            let cfg = JudgeConfig { confidence: conf, min_samples: 3, ..JudgeConfig::default() };
            let v = judge(&cfg, &metrics(), &samples(c.clone(), b.clone(), c, b));
            prop_assert!((0.0..=1.0).contains(&v.score));
            for m in &v.metrics {
                if m.test.method != Method::None {
                    prop_assert!((0.0..=1.0).contains(&m.test.p_value));
                }
            }
        }

        #[test]
        fn exact_p_values_are_probabilities(
            c in proptest::collection::vec(-1e3..1e3f64, 1..21),
            b in proptest::collection::vec(-1e3..1e3f64, 1..21),
        ) {
            let g = mann_whitney_greater(&c, &b);
            let l = mann_whitney_greater(&b, &c);
            prop_assert!((0.0..=1.0).contains(&g.p_value));
            prop_assert!((g.u + l.u - (c.len() * b.len()) as f64).abs() < 1e-9);
            // P(U >= u) + P(U <= u) >= 1 (they overlap at u).
            prop_assert!(g.p_value + l.p_value >= 1.0 - 1e-9);
        }

        #[test]
        fn all_ties_never_fail_on_location(x in -1e3..1e3f64, n in 10usize..80, m in 10usize..80) {
            let v = judge_metric(&JudgeConfig::default(), &MetricConfig::latency_ms("l"), &vec![x; n], &vec![x; m]);
            prop_assert_eq!(v.outcome, Outcome::Pass);
        }
    }
}
