//! Numenta Anomaly Benchmark (NAB) harness for medic's detectors: corpus loader, an exact
//! scorer (conformant with the published per-file results), an exact corpus-wide threshold
//! optimiser, normalised scores, and the `medic eval nab` / `medic bench detect` commands
//! (see [`cli`]).

#![forbid(unsafe_code)]

pub mod cli;
pub mod corpus;
pub mod cv;
mod cv_report;
pub mod error;
pub mod scorer;
pub mod spec;
pub mod time;

pub use corpus::{
    find_profile, list_csvs, load_corpus, load_profiles, load_windows, read_anomaly_scores,
    read_series, Corpus, CorpusFile, Profile, Series, PROFILE_NAMES,
};
pub use error::{NabError, Result};
pub use scorer::{normalise, optimise_threshold, FileScore, Optimum, PreparedFile};

/// Runs the detector named by `spec` (a name or `surprise:key=value,...`, see [`spec`]; fresh
/// instance) over a series, returning one score per row.
///
/// # Errors
/// Unknown detector name or bad spec.
pub fn run_detector(spec: &str, series: &Series) -> Result<Vec<f64>> {
    let mut d = spec::build_detector(spec)?;
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
