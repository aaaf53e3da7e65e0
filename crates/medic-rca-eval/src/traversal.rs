//! A peer in the same run: our reading of the PetShop authors' published
//! anomaly-traversal baseline (described in their dataset's README, not
//! their code): a metric is anomalous when its MAD score against normal
//! operation exceeds 5; the candidates are anomalous services the target
//! reaches through anomalous services whose own callees are not anomalous;
//! they are ranked by the summed anomaly along their best anomalous path to
//! the target. Choices the description leaves open, made once and not tuned:
//! the score is the largest over the window's rows; a metric whose normal
//! MAD is 0 cannot be scored (0); ties go to the lower node index (the
//! authors break them at random). Used by `medic eval rca --method
//! traversal`, for figures next to medic's on the same data.
use medic_rca::Topology;

/// The threshold of the published baseline.
pub const MAD_THRESHOLD: f64 = 5.0;

/// MAD score of each of `window`'s values against `history`: |x − median|
/// / (1.4826 · MAD); 0 when the MAD is 0 or there is no finite history;
/// the largest over the window's finite values.
pub fn mad_score(history: &[f64], window: &[f64]) -> f64 {
    let med = medic_rca::median(history);
    if !med.is_finite() {
        return 0.0;
    }
    let dev: Vec<f64> = history.iter().map(|x| (x - med).abs()).collect();
    let mad = 1.4826 * medic_rca::median(&dev);
    if mad.is_nan() || mad <= 0.0 {
        return 0.0;
    }
    window
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| (x - med).abs() / mad)
        .fold(0.0, f64::max)
}

/// Ranked root-cause nodes for `target` given each node's score (`None`:
/// no data). Empty when nothing the target reaches is anomalous.
pub fn rank(topo: &Topology, target: usize, scores: &[Option<f64>]) -> Vec<usize> {
    let n = topo.len();
    let anomalous = |v: usize| {
        scores
            .get(v)
            .copied()
            .flatten()
            .is_some_and(|s| s > MAD_THRESHOLD)
    };
    let score = |v: usize| scores.get(v).copied().flatten().unwrap_or(0.0);
    // best[v]: the largest summed anomaly over anomalous paths target → v
    // (the target's own score counts when it is anomalous). Longest-path
    // relaxation, bounded by n rounds (the graph may have cycles).
    let mut best: Vec<Option<f64>> = vec![None; n];
    if target >= n {
        return Vec::new();
    }
    best[target] = Some(if anomalous(target) {
        score(target)
    } else {
        0.0
    });
    for _ in 0..n {
        let mut changed = false;
        for u in 0..n {
            let Some(bu) = best[u] else { continue };
            for v in topo.callees(u) {
                if !anomalous(v) {
                    continue;
                }
                let cand = bu + score(v);
                if best[v].is_none_or(|b| cand > b + 1e-12) {
                    best[v] = Some(cand);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut roots: Vec<(usize, f64)> = (0..n)
        .filter(|&v| best[v].is_some() && anomalous(v))
        .filter(|&v| {
            !topo
                .callees(v)
                .into_iter()
                .any(|c| c != v && anomalous(c) && best[c].is_some())
        })
        .filter_map(|v| best[v].map(|b| (v, b)))
        .collect();
    roots.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    roots.into_iter().map(|(v, _)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Topology {
        // web → api → db, web → cache.
        Topology::new(
            vec!["web".into(), "api".into(), "db".into(), "cache".into()],
            &[(0, 1), (1, 2), (0, 3)],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_deepest_anomalous_service_on_an_anomalous_path_comes_first() {
        let t = chain();
        let s = [Some(9.0), Some(7.0), Some(30.0), Some(1.0)];
        assert_eq!(rank(&t, 0, &s), [2]);
        // A broken path (api normal): db is not reached; web is its own root.
        let s = [Some(9.0), Some(1.0), Some(30.0), Some(6.0)];
        assert_eq!(rank(&t, 0, &s), [3]);
        // Nothing anomalous: no cause.
        let s = [Some(1.0), Some(1.0), None, Some(0.0)];
        assert!(rank(&t, 0, &s).is_empty());
        // Only the target: it is the root.
        let s = [Some(6.0), None, None, None];
        assert_eq!(rank(&t, 0, &s), [0]);
    }

    #[test]
    fn a_zero_mad_metric_cannot_be_scored() {
        assert_eq!(mad_score(&[100.0; 20], &[90.0]), 0.0);
        let h: Vec<f64> = (0..20).map(|i| f64::from(i % 5)).collect();
        assert!(mad_score(&h, &[40.0]) > MAD_THRESHOLD);
        assert_eq!(mad_score(&[], &[1.0]), 0.0);
    }
}
