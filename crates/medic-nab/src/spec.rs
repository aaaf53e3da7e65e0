//! Detector specifications as the harness accepts them: a detector name (see
//! `medic_detect::NAMES`) or `surprise:key=value,...`, which overrides fields of
//! `SurpriseParams` (used by `--tune` and the tuning example). Parsing is strict: an unknown
//! key or a value that is not a number is an error naming it.

use medic_detect::{by_name, Detector, Surprise, SurpriseParams, NAMES};

use crate::error::{NabError, Result};

fn invalid(msg: String) -> NabError {
    NabError::Invalid(msg)
}

/// Applies `key=value` overrides (comma separated) to `p`.
///
/// # Errors
/// An item without `=`, an unknown key, or a value that is not a finite number.
#[allow(clippy::too_many_lines)]
pub fn apply_surprise_overrides(p: &mut SurpriseParams, overrides: &str) -> Result<()> {
    for kv in overrides.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| invalid(format!("detector spec: {kv:?} is not key=value")))?;
        let num = |s: &str| -> Result<f64> {
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .ok_or_else(|| invalid(format!("detector spec: {k}={s:?} is not a number ≥ 0")))
        };
        if k == "w" {
            let ws = v.split('/').map(num).collect::<Result<Vec<_>>>()?;
            for (i, x) in ws.iter().enumerate().take(p.weights.len()) {
                p.weights[i] = *x;
            }
            continue;
        }
        let f = num(v)?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let u = f as usize;
        match k {
            "warmup" => p.warmup = u,
            "level_window" => p.level_window = u.max(1),
            "shift_window" => p.shift_window = u.max(1),
            "diff_window" => p.diff_window = u.max(1),
            "avg_window" => p.avg_window = u.max(1),
            "history" => p.history = u.max(1),
            "season_alpha" => p.season_alpha = f.min(1.0),
            "season_min_periods" => p.season_min_periods = u32::try_from(u).unwrap_or(u32::MAX),
            "min_sigma" => p.min_sigma = f,
            "log" => p.log = f > 0.0,
            "spatial_window" => p.spatial_window = u,
            "refresh" => p.refresh = u.max(1),
            "gauss" => p.gauss = f > 0.0,
            "jump_record" => p.jump_record = f,
            "season_record" => p.season_record = f,
            "spatial" => p.spatial = f,
            "combine" => p.combine = u,
            "quantile" => p.quantile = f.min(1.0),
            "pattern_blocks" => p.pattern_blocks = u.max(1),
            "pattern_block" => p.pattern_block = u.max(1),
            "prototypes" => p.prototypes = u.max(1),
            "vigilance" => p.vigilance = f,
            "proto_rate" => p.proto_rate = f.min(1.0),
            "half" => p.half = f.max(1e-9),
            "suppress" => p.suppress = u,
            "drift_window" => p.drift_window = u.max(1),
            "damp" => p.damp = f.min(1.0),
            _ => return Err(invalid(format!("detector spec: unknown key {k:?}"))),
        }
    }
    Ok(())
}

/// Builds a detector from a spec (`NAME` or `surprise:key=value,...`).
///
/// # Errors
/// Unknown detector name or a bad override.
pub fn build_detector(spec: &str) -> Result<Box<dyn Detector>> {
    if let Some(rest) = spec.strip_prefix("surprise:") {
        let mut p = SurpriseParams::default();
        apply_surprise_overrides(&mut p, rest)?;
        return Ok(Box::new(Surprise::new(p)));
    }
    by_name(spec).ok_or_else(|| {
        invalid(format!(
            "unknown detector {spec:?} (known: {}, or surprise:key=value,...)",
            NAMES.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_strictly() {
        assert!(build_detector("default").is_ok());
        assert!(build_detector("surprise:avg_window=5,suppress=100,w=1/1/0").is_ok());
        for bad in [
            "nope",
            "surprise:zzz=1",
            "surprise:avg_window",
            "surprise:half=x",
        ] {
            let e = build_detector(bad).map(|_| ()).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let mut p = SurpriseParams::default();
        assert!(apply_surprise_overrides(&mut p, "suppress=7,w=2/3").is_ok());
        assert_eq!(p.suppress, 7);
        assert_eq!(p.weights[..2], [2.0, 3.0]);
    }
}
