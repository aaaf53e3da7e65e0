//! Weighted-vote ensemble of other detectors.

use crate::util::clamp01;
use crate::{by_name, Detector};

/// Parameters of [`Ensemble`].
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleParams {
    /// Member detector names (see [`crate::NAMES`]) and their weights.
    pub members: Vec<(&'static str, f64)>,
    /// `None`: the score is the weighted mean of member scores (soft vote).
    /// `Some(t)`: each member votes 1 when its score is ≥ `t` (hard vote), and the score is
    /// the weighted share of votes.
    pub vote_threshold: Option<f64>,
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            members: vec![
                ("surprise", 3.0),
                ("seasonal", 1.0),
                ("ewma", 1.0),
                ("percentile", 1.0),
            ],
            vote_threshold: None,
        }
    }
}

/// Weighted voting over member detectors.
pub struct Ensemble {
    members: Vec<(Box<dyn Detector>, f64)>,
    total: f64,
    vote_threshold: Option<f64>,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|(d, _)| d.name()).collect();
        f.debug_struct("Ensemble").field("members", &names).finish()
    }
}

impl Ensemble {
    /// An ensemble of the named members; unknown names, nested ensembles and non-positive or
    /// non-finite weights are skipped.
    #[must_use]
    pub fn new(p: &EnsembleParams) -> Self {
        let members: Vec<(Box<dyn Detector>, f64)> = p
            .members
            .iter()
            .filter(|(n, w)| *n != "ensemble" && w.is_finite() && *w > 0.0)
            .filter_map(|(n, w)| by_name(n).map(|d| (d, *w)))
            .collect();
        Self::from_members(members, p.vote_threshold)
    }

    /// An ensemble of already-built members.
    #[must_use]
    pub fn from_members(
        members: Vec<(Box<dyn Detector>, f64)>,
        vote_threshold: Option<f64>,
    ) -> Self {
        let total = members.iter().map(|(_, w)| *w).sum();
        Self {
            members,
            total,
            vote_threshold,
        }
    }
}

impl Default for Ensemble {
    fn default() -> Self {
        Self::new(&EnsembleParams::default())
    }
}

impl Detector for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }

    fn update(&mut self, ts_secs: i64, value: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let mut acc = 0.0;
        for (d, w) in &mut self.members {
            let s = clamp01(d.update(ts_secs, value));
            acc += match self.vote_threshold {
                Some(t) if s >= t => *w,
                Some(_) => 0.0,
                None => *w * s,
            };
        }
        clamp01(acc / self.total)
    }
}
