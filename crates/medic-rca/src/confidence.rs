//! One confidence number, 0–100, from three parts (issue 9):
//! the pattern's prior, how well the evidence matches, and the learned success
//! of the (pattern, action) pair as a Beta posterior mean.
use crate::Diagnosis;

/// The parts and the product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// The pattern's prior probability, in [0, 1].
    pub prior: f64,
    /// How well the evidence matches, in [0, 1] ([`evidence_match`]).
    pub evidence: f64,
    /// Posterior mean of the (pattern, action) success rate, in [0, 1].
    pub learned: f64,
    /// `round(100 · prior · evidence · learned)`, in 0..=100.
    pub value: u8,
}

impl Confidence {
    pub fn new(prior: f64, evidence: f64, learned: f64) -> Confidence {
        let c = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let (prior, evidence, learned) = (c(prior), c(evidence), c(learned));
        let value = (100.0 * prior * evidence * learned)
            .round()
            .clamp(0.0, 100.0) as u8;
        Confidence {
            prior,
            evidence,
            learned,
            value,
        }
    }
}

/// Posterior mean of a Beta(`a0`, `b0`) prior after `successes` and `failures`.
pub fn beta_mean(a0: f64, b0: f64, successes: u32, failures: u32) -> f64 {
    let a = a0.max(0.0) + f64::from(successes);
    let b = b0.max(0.0) + f64::from(failures);
    if a + b <= 0.0 {
        0.5
    } else {
        a / (a + b)
    }
}

/// How well a diagnosis singles out its first candidate, in [0, 1]:
/// its share of the roots' score (two equal roots give 0.5), times the share
/// of anomalous services it explains along dependency paths, halved when its
/// onset comes after the symptom's, when it is no root, when the target
/// does not reach it through symptomatic services, when something it calls
/// shows the symptom below the threshold (the origin may be deeper), and when
/// the symptom itself is a single sample. 0 without a candidate.
pub fn evidence_match(d: &Diagnosis) -> f64 {
    let Some(top) = d.candidates.first() else {
        return 0.0;
    };
    let onset = if top.onset_ok { 1.0 } else { 0.5 };
    let root = if top.root { 1.0 } else { 0.5 };
    let path = if top.connected { 1.0 } else { 0.5 };
    let deeper = if top.weak_below { 0.5 } else { 1.0 };
    let lasting = if d.symptom_samples >= 2 { 1.0 } else { 0.5 };
    let e = d.top_share() * top.explains * onset * root * path * deeper * lasting;
    if e.is_finite() {
        e.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_multiply_and_clamp() {
        assert_eq!(Confidence::new(0.9, 1.0, 0.9).value, 81);
        assert_eq!(Confidence::new(2.0, 1.0, 1.0).value, 100);
        assert_eq!(Confidence::new(f64::NAN, 1.0, 1.0).value, 0);
        assert!((beta_mean(1.0, 1.0, 0, 0) - 0.5).abs() < 1e-12);
        assert!((beta_mean(9.0, 1.0, 10, 0) - 0.95).abs() < 1e-12);
        assert!(beta_mean(9.0, 1.0, 0, 10) < 0.5);
    }
}
