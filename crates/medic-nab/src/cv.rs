//! Honest evaluation: cross-validation over the corpus (`medic eval nab --cv ...`).
//!
//! A fold holds some files out. Everything that is fitted (the corpus-wide detection
//! threshold of each profile, and with `--tune` the choice of detector parameters from an
//! explicit, printed search space) is fitted on the fold's training files only; the held-out
//! files are then scored with what was fitted. Detectors themselves never see labels, so a
//! detector's output on a file does not depend on the fold and is computed once.
//!
//! Per fold the held-out files get NAB's normalised score `100 (raw − null) / (perfect −
//! null)` summed over those files. A fold without any labelled window (e.g. the category
//! `artificialNoAnomaly`) has `perfect = null = 0`, so its normalised score is undefined: it is
//! reported as `null` with its raw score (its false-positive cost) and left out of the mean,
//! but it counts in the pooled out-of-fold score, which normalises all held-out files of all
//! folds together.

use std::str::FromStr;

use crate::corpus::{Corpus, Profile, PROFILE_NAMES};
use crate::error::{NabError, Result};
use crate::scorer::{normalise, optimise_threshold, PreparedFile};

/// How files are split into folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvSpec {
    /// Leave one category (`data/<category>/`) out per fold.
    Category,
    /// K folds; file `i` (files sorted by name) is held out in fold `i mod K`, which spreads
    /// every category over the folds.
    KFold(usize),
}

impl FromStr for CvSpec {
    type Err = NabError;
    fn from_str(s: &str) -> Result<Self> {
        if s == "category" {
            return Ok(Self::Category);
        }
        if let Some(k) = s.strip_prefix("kfold:") {
            return match k.parse::<usize>() {
                Ok(k) if k >= 2 => Ok(Self::KFold(k)),
                _ => Err(NabError::Invalid(format!(
                    "--cv {s:?}: K must be an integer ≥ 2"
                ))),
            };
        }
        Err(NabError::Invalid(format!(
            "--cv {s:?}: expected `category` or `kfold:K`"
        )))
    }
}

impl std::fmt::Display for CvSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Category => f.write_str("category"),
            Self::KFold(k) => write!(f, "kfold:{k}"),
        }
    }
}

/// One fold: a name and the indexes (into `corpus.files`) of its held-out files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    /// The held-out category, or `fold i/K`.
    pub held_out: String,
    /// Held-out file indexes.
    pub test: Vec<usize>,
}

/// Splits the corpus into folds.
///
/// # Errors
/// Fewer than two categories (leave-one-category-out) or fewer files than folds.
pub fn folds(corpus: &Corpus, spec: CvSpec) -> Result<Vec<Fold>> {
    let out: Vec<Fold> = match spec {
        CvSpec::Category => {
            let mut v: Vec<Fold> = Vec::new();
            for (i, f) in corpus.files.iter().enumerate() {
                let cat = f.series.name.split_once('/').map_or("", |(c, _)| c);
                match v.iter_mut().find(|x| x.held_out == cat) {
                    Some(x) => x.test.push(i),
                    None => v.push(Fold {
                        held_out: cat.to_string(),
                        test: vec![i],
                    }),
                }
            }
            if v.len() < 2 {
                return Err(NabError::Invalid(
                    "--cv category needs at least two categories".into(),
                ));
            }
            v
        }
        CvSpec::KFold(k) => {
            if corpus.files.len() < k {
                return Err(NabError::Invalid(format!(
                    "--cv kfold:{k}: only {} files",
                    corpus.files.len()
                )));
            }
            (0..k)
                .map(|j| Fold {
                    held_out: format!("fold {}/{k}", j + 1),
                    test: (j..corpus.files.len()).step_by(k).collect(),
                })
                .collect()
        }
    };
    Ok(out)
}

/// A candidate detector's output on every corpus file (aligned with `corpus.files`).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its spec (see [`crate::spec`]) or reference name.
    pub spec: String,
    /// One score per row, per file.
    pub scores: Vec<Vec<f64>>,
}

/// Held-out result for one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    /// Profile name.
    pub profile: String,
    /// Threshold fitted on the training files.
    pub threshold: f64,
    /// Raw NAB score summed over the held-out files at that threshold.
    pub raw: f64,
    /// Summed null score of the held-out files.
    pub null: f64,
    /// Summed perfect score of the held-out files.
    pub perfect: f64,
    /// False-positive rows on the held-out files.
    pub fp: usize,
}

impl HeldOut {
    /// Normalised score; `None` when the held-out files have no labelled window.
    #[must_use]
    pub fn normalised(&self) -> Option<f64> {
        ((self.perfect - self.null).abs() > f64::EPSILON)
            .then(|| normalise(self.raw, self.null, self.perfect))
    }
}

/// One fold's result.
#[derive(Debug, Clone)]
pub struct FoldResult {
    /// The fold.
    pub fold: Fold,
    /// Index of the candidate chosen on the training files.
    pub chosen: usize,
    /// One entry per profile of [`PROFILE_NAMES`].
    pub profiles: Vec<HeldOut>,
}

/// A cross-validation result.
#[derive(Debug, Clone)]
pub struct CvResult {
    /// Per fold.
    pub folds: Vec<FoldResult>,
}

impl CvResult {
    /// Mean over the folds with a defined normalised score, per profile of [`PROFILE_NAMES`].
    #[must_use]
    pub fn mean(&self) -> Vec<Option<f64>> {
        (0..PROFILE_NAMES.len())
            .map(|k| {
                let v: Vec<f64> = self
                    .folds
                    .iter()
                    .filter_map(|f| f.profiles.get(k).and_then(HeldOut::normalised))
                    .collect();
                #[allow(clippy::cast_precision_loss)]
                let n = v.len() as f64;
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / n)
            })
            .collect()
    }

    /// Pooled out-of-fold score per profile: every file scored at its own fold's threshold,
    /// normalised over all held-out files together.
    #[must_use]
    pub fn pooled(&self) -> Vec<Option<f64>> {
        (0..PROFILE_NAMES.len())
            .map(|k| {
                let (mut raw, mut null, mut perfect) = (0.0, 0.0, 0.0);
                for f in &self.folds {
                    if let Some(h) = f.profiles.get(k) {
                        raw += h.raw;
                        null += h.null;
                        perfect += h.perfect;
                    }
                }
                ((perfect - null).abs() > f64::EPSILON).then(|| normalise(raw, null, perfect))
            })
            .collect()
    }
}

fn profiles_in_order(corpus: &Corpus) -> Result<Vec<&Profile>> {
    PROFILE_NAMES
        .iter()
        .map(|n| crate::corpus::find_profile(&corpus.profiles, n))
        .collect()
}

/// Cross-validates: per fold, the candidate with the best normalised standard score on the
/// training files (optimised threshold; ties to the earlier candidate) is chosen, each
/// profile's threshold is optimised on the training files for it, and the held-out files are
/// scored at that threshold.
///
/// # Errors
/// No candidate, a candidate without one score vector per file, or missing profiles.
pub fn cross_validate(
    corpus: &Corpus,
    folds: &[Fold],
    candidates: &[Candidate],
) -> Result<CvResult> {
    if candidates.is_empty() {
        return Err(NabError::Invalid("no candidate detector".into()));
    }
    if let Some(c) = candidates
        .iter()
        .find(|c| c.scores.len() != corpus.files.len())
    {
        return Err(NabError::Invalid(format!(
            "{}: {} score vectors for {} files",
            c.spec,
            c.scores.len(),
            corpus.files.len()
        )));
    }
    let profiles = profiles_in_order(corpus)?;
    let prepared: Vec<PreparedFile> = corpus
        .files
        .iter()
        .map(|f| PreparedFile::new(&f.series.name, &f.series.ts_micros, &f.windows))
        .collect();
    let mut out = Vec::with_capacity(folds.len());
    for fold in folds {
        let train: Vec<usize> = (0..corpus.files.len())
            .filter(|i| !fold.test.contains(i))
            .collect();
        let train_opt = |c: &Candidate, p: &Profile| {
            let refs: Vec<(&PreparedFile, &[f64])> = train
                .iter()
                .map(|&i| (&prepared[i], c.scores[i].as_slice()))
                .collect();
            optimise_threshold(&refs, p)
        };
        let mut chosen = 0;
        let mut best = f64::NEG_INFINITY;
        if candidates.len() > 1 {
            for (ci, c) in candidates.iter().enumerate() {
                let s = train_opt(c, profiles[0]).normalised();
                if s > best {
                    best = s;
                    chosen = ci;
                }
            }
        }
        let c = &candidates[chosen];
        let mut held = Vec::with_capacity(profiles.len());
        for p in &profiles {
            let t = train_opt(c, p).threshold;
            let (mut raw, mut null, mut perfect, mut fp) = (0.0, 0.0, 0.0, 0);
            for &i in &fold.test {
                let pf = &prepared[i];
                let r = pf.score(&c.scores[i], t, p);
                raw += r.score;
                fp += r.fp;
                null += pf.null_score(p);
                perfect += pf.perfect_score(p);
            }
            held.push(HeldOut {
                profile: p.name.clone(),
                threshold: t,
                raw,
                null,
                perfect,
                fp,
            });
        }
        out.push(FoldResult {
            fold: fold.clone(),
            chosen,
            profiles: held,
        });
    }
    Ok(CvResult { folds: out })
}

/// The `--tune` search space: a grid over `SurpriseParams` fields, listed so that the report
/// can print it (a reader can tell fitted from designed).
pub const TUNE_SPACE: &[(&str, &[&str])] = &[
    ("avg_window", &["5", "15", "30"]),
    ("history", &["2000", "4000", "8000"]),
    ("suppress", &["150", "300", "600"]),
    ("combine", &["1", "2", "3"]),
    ("spatial", &["0", "0.02", "0.1"]),
];

/// Number of points in [`TUNE_SPACE`].
#[must_use]
pub fn tune_space_size() -> usize {
    TUNE_SPACE.iter().map(|(_, v)| v.len()).product()
}

/// The `i`-th point of the grid as a `surprise:` spec.
#[must_use]
pub fn tune_point(mut i: usize) -> String {
    let mut parts = Vec::with_capacity(TUNE_SPACE.len());
    for (k, vals) in TUNE_SPACE {
        parts.push(format!("{k}={}", vals[i % vals.len()]));
        i /= vals.len();
    }
    format!("surprise:{}", parts.join(","))
}

/// `budget` distinct grid points drawn with a seeded generator: the candidates `--tune`
/// evaluates. The shipped default is not forced in: it was itself chosen on all 35 files, so
/// forcing it would leak the held-out files into every fold (it is in the grid, and is drawn
/// like any other point).
#[must_use]
pub fn tune_candidates(budget: usize, seed: u64) -> Vec<String> {
    let n = tune_space_size();
    let mut out = Vec::new();
    let mut picked: Vec<usize> = Vec::new();
    let mut rng = medic_detect::util::SplitMix64::new(seed);
    while out.len() < budget.min(n) {
        let i = rng.below(n);
        if !picked.contains(&i) {
            picked.push(i);
            out.push(tune_point(i));
        }
    }
    out
}
