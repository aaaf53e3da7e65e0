//! One SVG per (rule, series): the values, the samples where the rule's check breached
//! (red dots) and the incidents the rule would have opened (shaded spans, opened → closed
//! or the end of the replay).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::replay::{RuleReport, SeriesTrace};
use crate::BacktestError;

/// Colour of the detection markers (`#d62728` in the SVG).
pub const DETECTION: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Colour of the incident spans (`#ff7f0e` in the SVG, at 25 % opacity).
pub const INCIDENT: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// Colour of the value line.
pub const LINE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);

/// A file name made of `[A-Za-z0-9._-]` only.
#[must_use]
pub fn file_stem(rule: &str, series: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut s = format!("{}__{}", clean(rule), clean(series));
    s.truncate(180);
    s
}

fn err(e: impl std::fmt::Display) -> BacktestError {
    BacktestError::Plot(e.to_string())
}

/// Draws one series of one rule into `path` (SVG).
///
/// # Errors
/// The file cannot be written.
pub fn draw(
    path: &Path,
    rule: &RuleReport,
    s: &SeriesTrace,
    end_ms: i64,
) -> Result<(), BacktestError> {
    let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else {
        return Err(BacktestError::Plot(format!("{}: no samples", s.key)));
    };
    let (x0, x1) = (first.0, last.0.max(first.0 + 1));
    let (mut lo, mut hi) = s
        .points
        .iter()
        .filter(|p| p.1.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    } else if lo == hi {
        lo -= 1.0;
        hi += 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let root = SVGBackend::new(path, (1200, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let caption = format!("{} on {} ({})", rule.rule, s.key, rule.condition);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|t| crate::fmt_time(*t))
        .draw()
        .map_err(err)?;
    for inc in &rule.incidents {
        let a = inc.opened_ms.clamp(x0, x1);
        let b = inc.closed_ms.unwrap_or(end_ms).clamp(x0, x1).max(a + 1);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, lo), (b, hi)],
                INCIDENT.mix(0.25).filled(),
            )))
            .map_err(err)?
            .label(format!("incident {}", inc.id));
    }
    chart
        .draw_series(LineSeries::new(
            s.points.iter().copied().filter(|p| p.1.is_finite()),
            &LINE,
        ))
        .map_err(err)?;
    let values: std::collections::BTreeMap<i64, f64> = s.points.iter().copied().collect();
    chart
        .draw_series(s.detections.iter().filter_map(|t| {
            values
                .get(t)
                .map(|v| Circle::new((*t, *v), 3, DETECTION.filled()))
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Draws every series of every rule into `dir` (created if missing); returns the files.
///
/// # Errors
/// The directory or a file cannot be written.
pub fn draw_all(
    dir: &Path,
    rules: &[RuleReport],
    end_ms: i64,
) -> Result<Vec<PathBuf>, BacktestError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| BacktestError::Plot(format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for r in rules {
        for s in &r.series {
            if s.points.is_empty() {
                continue;
            }
            let p = dir.join(format!("{}.svg", file_stem(&r.rule, &s.key)));
            draw(&p, r, s, end_ms)?;
            out.push(p);
        }
    }
    Ok(out)
}
