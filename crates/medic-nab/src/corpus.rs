//! Loading the NAB corpus: `data/<category>/*.csv`, `combined_windows.json`, `profiles.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, NabError, Result};
use crate::time::parse_micros;

/// A scoring profile (cost matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Profile name, e.g. `standard`.
    pub name: String,
    /// Weight of a true positive.
    pub tp_weight: f64,
    /// Weight (cost) of a missed window.
    pub fn_weight: f64,
    /// Weight (cost) of a false positive.
    pub fp_weight: f64,
    /// Weight of a true negative (unused by NAB's score).
    pub tn_weight: f64,
}

/// The three NAB profiles, in report order.
pub const PROFILE_NAMES: [&str; 3] = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"];

/// One time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Relative name, `<category>/<file>.csv`.
    pub name: String,
    /// Timestamps in microseconds since the Unix epoch.
    pub ts_micros: Vec<i64>,
    /// Values.
    pub values: Vec<f64>,
}

/// A series with its labelled anomaly windows.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusFile {
    /// The data.
    pub series: Series,
    /// Inclusive windows `[start, end]` in microseconds.
    pub windows: Vec<(i64, i64)>,
}

/// The loaded corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Files sorted by name.
    pub files: Vec<CorpusFile>,
    /// Profiles, the three standard ones first.
    pub profiles: Vec<Profile>,
}

fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io_err(path))
}

fn json_err(path: &Path, msg: impl Into<String>) -> NabError {
    NabError::Json {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Loads `profiles.json`.
///
/// # Errors
/// Missing file, invalid JSON or a profile without a numeric `CostMatrix` weight.
pub fn load_profiles(path: &Path) -> Result<Vec<Profile>> {
    let text = read_to_string(path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| json_err(path, e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| json_err(path, "expected an object of profiles"))?;
    let mut out = Vec::new();
    for (name, p) in obj {
        let w = |field: &str| -> Result<f64> {
            p.get("CostMatrix")
                .and_then(|c| c.get(field))
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| {
                    json_err(
                        path,
                        format!("{name}.CostMatrix.{field}: missing or not a number"),
                    )
                })
        };
        out.push(Profile {
            name: name.clone(),
            tp_weight: w("tpWeight")?,
            fn_weight: w("fnWeight")?,
            fp_weight: w("fpWeight")?,
            tn_weight: w("tnWeight")?,
        });
    }
    out.sort_by_key(|p| {
        (
            PROFILE_NAMES
                .iter()
                .position(|n| *n == p.name)
                .unwrap_or(usize::MAX),
            p.name.clone(),
        )
    });
    Ok(out)
}

/// Loads `combined_windows.json`: file name → inclusive windows in microseconds.
///
/// # Errors
/// Missing file, invalid JSON, or a window that is not a pair of valid timestamps.
pub fn load_windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>> {
    let text = read_to_string(path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| json_err(path, e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| json_err(path, "expected an object of file → windows"))?;
    let mut out = BTreeMap::new();
    for (name, wins) in obj {
        let arr = wins
            .as_array()
            .ok_or_else(|| json_err(path, format!("{name}: expected a list of windows")))?;
        let mut ws = Vec::with_capacity(arr.len());
        for (i, w) in arr.iter().enumerate() {
            let pair = w
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(|| json_err(path, format!("{name}[{i}]: expected [start, end]")))?;
            let ts = |k: usize| -> Result<i64> {
                let s = pair[k].as_str().ok_or_else(|| {
                    json_err(path, format!("{name}[{i}][{k}]: expected a string"))
                })?;
                parse_micros(s).map_err(|e| json_err(path, format!("{name}[{i}][{k}]: {e}")))
            };
            let (a, b) = (ts(0)?, ts(1)?);
            if b < a {
                return Err(json_err(
                    path,
                    format!("{name}[{i}]: window ends before it starts"),
                ));
            }
            ws.push((a, b));
        }
        ws.sort_unstable();
        out.insert(name.clone(), ws);
    }
    Ok(out)
}

/// A CSV file read as a header and rows of fields (no quoting beyond stripping `"`).
pub(crate) struct Csv {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// (1-based line number, fields)
    pub rows: Vec<(usize, Vec<String>)>,
}

impl Csv {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let text = read_to_string(path)?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, head)) = lines.next() else {
            return Err(NabError::Csv {
                path: path.to_path_buf(),
                line: 1,
                msg: "empty file (expected a header)".into(),
            });
        };
        let split = |l: &str| -> Vec<String> {
            l.split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .collect()
        };
        let header = split(head.trim_start_matches('\u{feff}'));
        let rows = lines.map(|(i, l)| (i + 1, split(l))).collect();
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    pub(crate) fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| NabError::Csv {
                path: self.path.clone(),
                line: 1,
                msg: format!(
                    "missing column {name:?} (header: {})",
                    self.header.join(",")
                ),
            })
    }

    pub(crate) fn err(&self, line: usize, msg: impl Into<String>) -> NabError {
        NabError::Csv {
            path: self.path.clone(),
            line,
            msg: msg.into(),
        }
    }

    /// Reads `(timestamp, number)` pairs from the named columns.
    pub(crate) fn ts_and(&self, value_col: &str) -> Result<(Vec<i64>, Vec<f64>)> {
        let ti = self.column("timestamp")?;
        let vi = self.column(value_col)?;
        let mut ts = Vec::with_capacity(self.rows.len());
        let mut vs = Vec::with_capacity(self.rows.len());
        for (line, f) in &self.rows {
            let t = f
                .get(ti)
                .ok_or_else(|| self.err(*line, "missing timestamp field"))?;
            let t = parse_micros(t).map_err(|e| self.err(*line, e))?;
            let v = f
                .get(vi)
                .ok_or_else(|| self.err(*line, format!("missing {value_col} field")))?;
            let v: f64 = v
                .parse()
                .map_err(|e| self.err(*line, format!("bad {value_col} {v:?}: {e}")))?;
            ts.push(t);
            vs.push(v);
        }
        if ts.is_empty() {
            return Err(self.err(1, "no data rows"));
        }
        Ok((ts, vs))
    }
}

/// Reads a `timestamp,value` data file.
///
/// # Errors
/// Missing file, missing columns, or a malformed row (reported with its line).
pub fn read_series(path: &Path, name: &str) -> Result<Series> {
    let csv = Csv::read(path)?;
    let (ts_micros, values) = csv.ts_and("value")?;
    Ok(Series {
        name: name.to_string(),
        ts_micros,
        values,
    })
}

fn sorted_dir(path: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(path).map_err(io_err(path))? {
        out.push(e.map_err(io_err(path))?.path());
    }
    out.sort();
    Ok(out)
}

/// Lists `<dir>/<category>/*.csv` as `(relative name, path)`, sorted.
///
/// # Errors
/// Unreadable directories.
pub fn list_csvs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for cat in sorted_dir(dir)? {
        if !cat.is_dir() {
            continue;
        }
        let cname = cat
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in sorted_dir(&cat)? {
            if f.extension().is_some_and(|e| e == "csv") && f.is_file() {
                let fname = f
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((format!("{cname}/{fname}"), f));
            }
        }
    }
    Ok(out)
}

/// Loads a NAB corpus directory (`data/`, `combined_windows.json`, `profiles.json`).
///
/// # Errors
/// Any missing or malformed file, or a data file without an entry in the windows file.
pub fn load_corpus(dir: &Path) -> Result<Corpus> {
    let profiles = load_profiles(&dir.join("profiles.json"))?;
    let wpath = dir.join("combined_windows.json");
    let mut windows = load_windows(&wpath)?;
    let data = dir.join("data");
    let mut files = Vec::new();
    for (name, path) in list_csvs(&data)? {
        let series = read_series(&path, &name)?;
        let w = windows.remove(&name).ok_or_else(|| {
            NabError::Invalid(format!("{}: no entry for {name}", wpath.display()))
        })?;
        files.push(CorpusFile { series, windows: w });
    }
    if files.is_empty() {
        return Err(NabError::Invalid(format!(
            "{}: no <category>/*.csv files",
            data.display()
        )));
    }
    Ok(Corpus { files, profiles })
}

/// Finds a profile by name.
///
/// # Errors
/// Unknown name (the message lists the known ones).
pub fn find_profile<'a>(profiles: &'a [Profile], name: &str) -> Result<&'a Profile> {
    profiles.iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
        NabError::Invalid(format!(
            "unknown profile {name:?} (known: {})",
            known.join(", ")
        ))
    })
}

/// Reads a detector output file (`timestamp,anomaly_score,...`).
///
/// # Errors
/// Missing file, missing columns, or a malformed row (reported with its line).
pub fn read_anomaly_scores(path: &Path) -> Result<(Vec<i64>, Vec<f64>)> {
    Csv::read(path)?.ts_and("anomaly_score")
}
