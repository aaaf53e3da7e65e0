//! The exact NAB scorer and an exact corpus-wide threshold optimiser.

use crate::corpus::Profile;

const NO_WINDOW: u32 = u32::MAX;

/// NAB's scaled sigmoid: `2 / (1 + e^(5y)) - 1`, and `-1` beyond 3 window widths.
#[must_use]
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Probationary (learning) rows of a series of `n` rows: `min(floor(0.15 n), 750)`.
#[must_use]
pub fn probation_rows(n: usize) -> usize {
    // floor(0.15 * n) computed exactly in integers.
    (n.saturating_mul(15) / 100).min(750)
}

/// A series prepared for scoring: for every row, its window and its profile-independent
/// weight (the TP weight relative to an on-time detection inside a window, the FP sigmoid
/// outside).
#[derive(Debug, Clone)]
pub struct PreparedFile {
    /// Relative name.
    pub name: String,
    /// Rows in the series.
    pub n_rows: usize,
    /// Learning rows (never scored).
    pub probation: usize,
    window_of: Vec<u32>,
    weight: Vec<f64>,
    /// Number of windows with at least one scorable row (the ones a detector can hit or miss).
    pub n_windows: usize,
    /// Number of labelled windows, including any that lie in the learning period or hold no
    /// row: NAB's perfect score counts every labelled window.
    pub n_labelled_windows: usize,
    best_tp: Vec<f64>,
}

/// Per-file result at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FileScore {
    /// Raw NAB score.
    pub score: f64,
    /// Detected rows inside windows.
    pub tp: usize,
    /// Quiet rows outside windows.
    pub tn: usize,
    /// Detected rows outside windows.
    pub fp: usize,
    /// Quiet rows inside windows.
    pub fn_: usize,
    /// Scorable rows (after the learning period).
    pub total: usize,
}

impl PreparedFile {
    /// Prepares a series with timestamps `ts` (any unit, in file order; duplicates and
    /// steps back are tolerated exactly as NAB does) and inclusive windows `[start, end]` in
    /// the same unit, sorted by start.
    ///
    /// As in NAB, a window is entered at the first row whose timestamp equals its start and
    /// left after the first row whose timestamp equals its end; its width and right edge come
    /// from the first occurrences of those timestamps. A window whose start or end timestamp is
    /// not a row falls back to the first row after the start / the last row before the end.
    /// Windows that contain no row are ignored.
    #[must_use]
    pub fn new(name: &str, ts: &[i64], windows: &[(i64, i64)]) -> Self {
        let n = ts.len();
        let probation = probation_rows(n);
        // (entry row, exit row, right index, width)
        let mut wins: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut from = 0usize;
        for &(a, b) in windows {
            let entry = ts[from..]
                .iter()
                .position(|&t| t == a)
                .or_else(|| ts[from..].iter().position(|&t| t > a))
                .map(|k| k + from);
            let Some(entry) = entry else { continue };
            let exit = ts[entry..]
                .iter()
                .position(|&t| t == b)
                .map(|k| k + entry)
                .or_else(|| ts[entry..].iter().position(|&t| t > b).map(|k| k + entry))
                .map_or(n - 1, |k| if ts[k] == b { k } else { k.saturating_sub(1) });
            if exit < entry || ts[entry] > b {
                continue;
            }
            let right = ts.iter().position(|&t| t == b).unwrap_or(exit);
            let left = ts.iter().position(|&t| t == a).unwrap_or(entry);
            let width = (right + 1).saturating_sub(left).max(1);
            wins.push((entry, exit, right, width));
            from = exit + 1;
            if from >= n {
                break;
            }
        }
        let mut window_of = vec![NO_WINDOW; n];
        let mut weight = vec![0.0; n];
        let max_tp = scaled_sigmoid(-1.0);
        let mut prev: Option<(usize, usize)> = None; // (exit row, width)
        let mut wi = 0usize;
        let mut i = 0usize;
        while i < n {
            if wi < wins.len() && i == wins[wi].0 {
                let (entry, exit, right, width) = wins[wi];
                for row in entry..=exit {
                    #[allow(clippy::cast_precision_loss)]
                    let y = -((right as f64) - (row as f64) + 1.0) / width as f64;
                    window_of[row] = u32::try_from(wi).unwrap_or(NO_WINDOW - 1);
                    weight[row] = scaled_sigmoid(y) / max_tp;
                }
                prev = Some((exit, width));
                i = exit + 1;
                wi += 1;
                continue;
            }
            // Before any window: -1 (the published results use exactly -fpWeight here).
            let y = match prev {
                None => f64::INFINITY,
                Some((r, width)) => {
                    #[allow(clippy::cast_precision_loss)]
                    let y = (i.abs_diff(r)) as f64 / (width as f64 - 1.0);
                    if y.is_nan() {
                        f64::INFINITY
                    } else {
                        y
                    }
                }
            };
            weight[i] = scaled_sigmoid(y);
            i += 1;
        }
        let mut best_tp = vec![f64::NEG_INFINITY; wins.len()];
        for row in probation..n {
            let w = window_of[row];
            if w != NO_WINDOW {
                let b = &mut best_tp[w as usize];
                *b = b.max(weight[row]);
            }
        }
        let n_windows = best_tp.iter().filter(|b| b.is_finite()).count();
        Self {
            name: name.to_string(),
            n_rows: n,
            probation,
            window_of,
            weight,
            n_windows,
            n_labelled_windows: windows.len(),
            best_tp,
        }
    }

    /// Score and counts when rows with `scores[i] >= threshold` are detections.
    /// `scores` shorter than the series counts the missing rows as quiet.
    #[must_use]
    pub fn score(&self, scores: &[f64], threshold: f64, profile: &Profile) -> FileScore {
        let mut best: Vec<Option<f64>> = vec![None; self.best_tp.len()];
        let (mut tp, mut tn, mut fp, mut fn_) = (0, 0, 0, 0);
        let mut fp_score = 0.0;
        for row in self.probation..self.n_rows {
            let hit = scores.get(row).is_some_and(|&s| s >= threshold);
            let w = self.window_of[row];
            match (w != NO_WINDOW, hit) {
                (true, true) => {
                    tp += 1;
                    let b = &mut best[w as usize];
                    *b = Some(b.map_or(self.weight[row], |v: f64| v.max(self.weight[row])));
                }
                (true, false) => fn_ += 1,
                (false, true) => {
                    fp += 1;
                    fp_score += self.weight[row] * profile.fp_weight;
                }
                (false, false) => tn += 1,
            }
        }
        let mut score = fp_score;
        for (k, b) in best.iter().enumerate() {
            if !self.best_tp[k].is_finite() {
                continue; // window entirely inside the learning period
            }
            score += match b {
                Some(v) => v * profile.tp_weight,
                None => -profile.fn_weight,
            };
        }
        FileScore {
            score,
            tp,
            tn,
            fp,
            fn_,
            total: self.n_rows - self.probation,
        }
    }

    /// Score of a detector that never fires: `-fnWeight` for every window with a scorable row
    /// (NAB's null detector; windows inside the learning period are not scored at all).
    #[must_use]
    pub fn null_score(&self, profile: &Profile) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.n_windows as f64;
        -profile.fn_weight * n
    }

    /// NAB's perfect score: every labelled window detected at its start, each worth exactly
    /// `tpWeight`, so `windows × tpWeight` (NAB's `normalize`: `tpCount * tpWeight`, with
    /// `tpCount` the number of windows in the labels). A window that starts inside the learning
    /// period still counts in full, so on such a file 100 is out of reach, as in NAB.
    #[must_use]
    pub fn perfect_score(&self, profile: &Profile) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.n_labelled_windows as f64;
        profile.tp_weight * n
    }
}

/// Normalised NAB score: `100 (raw - null) / (perfect - null)`.
#[must_use]
pub fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    let d = perfect - null;
    if d.abs() < f64::EPSILON {
        0.0
    } else {
        100.0 * (raw - null) / d
    }
}

/// Result of [`optimise_threshold`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimum {
    /// Best threshold (detections are scores ≥ it). Above every score when firing never pays.
    pub threshold: f64,
    /// Summed raw score at that threshold.
    pub raw: f64,
    /// Summed null score.
    pub null: f64,
    /// Summed perfect score (labelled windows × tpWeight).
    pub perfect: f64,
}

impl Optimum {
    /// The normalised score.
    #[must_use]
    pub fn normalised(&self) -> f64 {
        normalise(self.raw, self.null, self.perfect)
    }
}

/// Finds the single threshold maximising the summed raw score over all files, exactly: every
/// distinct score value is a candidate, evaluated incrementally in one sweep from the highest
/// score down (O(N log N) for N scorable rows). Ties go to the higher threshold. Non-finite
/// scores never count as detections.
#[must_use]
pub fn optimise_threshold(files: &[(&PreparedFile, &[f64])], profile: &Profile) -> Optimum {
    let mut points: Vec<(f64, u32, u32)> = Vec::new();
    let mut null = 0.0;
    let mut perfect = 0.0;
    for (fi, (pf, scores)) in files.iter().enumerate() {
        null += pf.null_score(profile);
        perfect += pf.perfect_score(profile);
        for row in pf.probation..pf.n_rows.min(scores.len()) {
            let s = scores[row];
            if s.is_finite() {
                points.push((
                    s,
                    u32::try_from(fi).unwrap_or(u32::MAX),
                    u32::try_from(row).unwrap_or(u32::MAX),
                ));
            }
        }
    }
    points.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut best_by_window: Vec<Vec<Option<f64>>> = files
        .iter()
        .map(|(pf, _)| vec![None; pf.best_tp.len()])
        .collect();
    let mut total = null;
    let top = points.first().map_or(1.0, |p| p.0);
    let mut best = Optimum {
        threshold: if top >= 1.0 {
            top + 1.0
        } else {
            1.0 + f64::EPSILON
        },
        raw: null,
        null,
        perfect,
    };
    let mut i = 0;
    while i < points.len() {
        let t = points[i].0;
        while i < points.len() && points[i].0 == t {
            let (_, fi, row) = points[i];
            let (pf, _) = files[fi as usize];
            let row = row as usize;
            let w = pf.window_of[row];
            let wt = pf.weight[row];
            if w == NO_WINDOW {
                total += wt * profile.fp_weight;
            } else {
                let slot = &mut best_by_window[fi as usize][w as usize];
                match *slot {
                    None => {
                        total += profile.fn_weight + wt * profile.tp_weight;
                        *slot = Some(wt);
                    }
                    Some(prev) if wt > prev => {
                        total += (wt - prev) * profile.tp_weight;
                        *slot = Some(wt);
                    }
                    Some(_) => {}
                }
            }
            i += 1;
        }
        if total > best.raw + 1e-12 {
            best.raw = total;
            best.threshold = t;
        }
    }
    // Recompute the winner exactly (the sweep accumulates rounding).
    best.raw = files
        .iter()
        .map(|(pf, s)| pf.score(s, best.threshold, profile).score)
        .sum();
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile {
            name: "standard".into(),
            tp_weight: 1.0,
            fn_weight: 1.0,
            fp_weight: 0.11,
            tn_weight: 1.0,
        }
    }

    #[test]
    fn probation_matches_nab() {
        assert_eq!(probation_rows(4032), 604);
        assert_eq!(probation_rows(18050), 750);
        assert_eq!(probation_rows(1882), 282);
        assert_eq!(probation_rows(0), 0);
    }

    #[test]
    fn sigmoid_edges() {
        assert!((scaled_sigmoid(0.0)).abs() < 1e-15);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert!(scaled_sigmoid(-1.0) > 0.98);
    }

    #[test]
    fn early_detection_beats_late_and_fp_costs() {
        let ts: Vec<i64> = (0..1000).collect();
        let pf = PreparedFile::new("x", &ts, &[(500, 599)]);
        let p = standard();
        let mut early = vec![0.0; 1000];
        early[500] = 1.0;
        let mut late = vec![0.0; 1000];
        late[590] = 1.0;
        let e = pf.score(&early, 0.5, &p);
        let l = pf.score(&late, 0.5, &p);
        assert!((e.score - 1.0).abs() < 1e-12, "{e:?}");
        assert!(l.score < e.score && l.score > 0.0);
        assert_eq!((e.tp, e.fp, e.fn_, e.total), (1, 0, 99, 850));
        let none = pf.score(&[0.0; 1000], 0.5, &p);
        assert!((none.score + 1.0).abs() < 1e-12);
        let mut fp = vec![0.0; 1000];
        fp[200] = 1.0; // before any window: -fpWeight
        assert!((pf.score(&fp, 0.5, &p).score - (-1.0 - 0.11)).abs() < 1e-12);
        assert!((pf.perfect_score(&p) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn optimiser_finds_the_best_threshold() {
        let ts: Vec<i64> = (0..1000).collect();
        let pf = PreparedFile::new("x", &ts, &[(500, 599)]);
        let mut s = vec![0.1; 1000];
        s[300] = 0.7; // FP
        s[520] = 0.6; // TP
        let p = standard();
        let o = optimise_threshold(&[(&pf, &s)], &p);
        // 0.6 catches the window and pays one FP: better than missing it.
        assert!((o.threshold - 0.6).abs() < 1e-12, "{o:?}");
        assert!((o.raw - pf.score(&s, 0.6, &p).score).abs() < 1e-12);
        // A brute-force check over all candidates agrees.
        for t in [0.05, 0.1, 0.6, 0.7, 0.8] {
            assert!(pf.score(&s, t, &p).score <= o.raw + 1e-12);
        }
    }

    #[test]
    fn perfect_is_windows_times_tp_weight_even_when_a_window_starts_in_the_learning_period() {
        // 1000 rows → 150 learning rows. Window A [100, 199] straddles the end of the learning
        // period (its start is not scorable), window B [20, 59] lies entirely inside it,
        // window C [600, 699] is ordinary.
        let ts: Vec<i64> = (0..1000).collect();
        let pf = PreparedFile::new("x", &ts, &[(20, 59), (100, 199), (600, 699)]);
        assert_eq!(
            (pf.probation, pf.n_windows, pf.n_labelled_windows),
            (150, 2, 3)
        );
        let p = Profile {
            name: "p".into(),
            tp_weight: 2.0,
            fn_weight: 1.5,
            fp_weight: 0.11,
            tn_weight: 1.0,
        };
        // NAB: perfect = 3 windows × tpWeight; null = the 2 scorable windows missed.
        assert!(
            (pf.perfect_score(&p) - 6.0).abs() < 1e-12,
            "{}",
            pf.perfect_score(&p)
        );
        assert!((pf.null_score(&p) + 3.0).abs() < 1e-12);
        // The best a detector can do here: A at its first scorable row, C at its start. The
        // old "perfect" was exactly that (so it normalised it to 100); NAB gives less.
        let mut s = vec![0.0; 1000];
        s[150] = 1.0;
        s[600] = 1.0;
        let best = pf.score(&s, 0.5, &p);
        assert!(best.score < 4.0 - 1e-3, "{best:?}");
        let o = optimise_threshold(&[(&pf, &s)], &p);
        assert!(
            (o.perfect - 6.0).abs() < 1e-12 && (o.null + 3.0).abs() < 1e-12,
            "{o:?}"
        );
        let expected = 100.0 * (best.score + 3.0) / 9.0;
        assert!((o.normalised() - expected).abs() < 1e-9, "{o:?}");
        assert!(o.normalised() < 90.0, "{}", o.normalised());
    }
}
