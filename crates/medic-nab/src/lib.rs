//! Numenta Anomaly Benchmark (NAB) harness for medic's detectors: corpus loader, an exact
//! scorer (conformant with the published per-file results), an exact corpus-wide threshold
//! optimiser, normalised scores, and the `medic eval nab` / `medic bench detect` commands
//! (see [`cli`]).

#![forbid(unsafe_code)]

pub mod cli;
pub mod corpus;
pub mod error;
pub mod scorer;
pub mod time;

use medic_detect::by_name;

pub use corpus::{
    find_profile, list_csvs, load_corpus, load_profiles, load_windows, read_anomaly_scores,
    read_series, Corpus, CorpusFile, Profile, Series, PROFILE_NAMES,
};
pub use error::{NabError, Result};
pub use scorer::{normalise, optimise_threshold, FileScore, Optimum, PreparedFile};

/// Runs the named detector (fresh instance) over a series, returning one score per row.
///
/// # Errors
/// Unknown detector name.
pub fn run_detector(name: &str, series: &Series) -> Result<Vec<f64>> {
    let mut d = by_name(name).ok_or_else(|| {
        NabError::Invalid(format!(
            "unknown detector {name:?} (known: {})",
            medic_detect::NAMES.join(", ")
        ))
    })?;
    Ok(series
        .ts_micros
        .iter()
        .zip(&series.values)
        .map(|(&t, &v)| d.update(t.div_euclid(1_000_000), v))
        .collect())
}

/// Normalised corpus result of one detector for one profile.
#[derive(Debug, Clone)]
pub struct ProfileResult {
    /// Profile name.
    pub profile: String,
    /// Optimised threshold and raw/null/perfect sums.
    pub optimum: Optimum,
}

/// Scores precomputed per-file anomaly scores (aligned with `corpus.files`) for every profile,
/// optimising one threshold per profile.
#[must_use]
pub fn evaluate_scores(corpus: &Corpus, scores: &[Vec<f64>]) -> Vec<ProfileResult> {
    let prepared: Vec<PreparedFile> = corpus
        .files
        .iter()
        .map(|f| PreparedFile::new(&f.series.name, &f.series.ts_micros, &f.windows))
        .collect();
    let pairs: Vec<(&PreparedFile, &[f64])> = prepared
        .iter()
        .zip(scores)
        .map(|(p, s)| (p, s.as_slice()))
        .collect();
    corpus
        .profiles
        .iter()
        .map(|p| ProfileResult {
            profile: p.name.clone(),
            optimum: optimise_threshold(&pairs, p),
        })
        .collect()
}
