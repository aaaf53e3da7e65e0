//! A small server-rendered SVG chart: a probe's round-trip time around an
//! incident, failures as red marks, the incident's window shaded.

/// One probe run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub unix_ms: i64,
    pub latency_ms: f64,
    pub ok: bool,
}

const W: f64 = 640.0;
const H: f64 = 160.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 20.0;
const PAD_T: f64 = 8.0;

/// SVG of `samples` between `from` and `to` (unix ms), with the incident
/// window `[open, close]` shaded. `None` when no sample falls in the range.
pub fn svg(samples: &[Sample], from: i64, to: i64, open: i64, close: i64) -> Option<String> {
    let pts: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.unix_ms >= from && s.unix_ms <= to)
        .collect();
    if pts.is_empty() || to <= from {
        return None;
    }
    let max = pts
        .iter()
        .map(|s| s.latency_ms)
        .fold(1.0_f64, f64::max)
        .ceil();
    let span = (to - from) as f64;
    let x = |t: i64| PAD_L + (t - from) as f64 / span * (W - PAD_L - 4.0);
    let y = |v: f64| PAD_T + (1.0 - v / max) * (H - PAD_T - PAD_B);
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="probe round trip around the incident">"##
    );
    let (x0, x1) = (x(open.max(from)), x(close.min(to)));
    out.push_str(&format!(
        r##"<rect x="{x0:.1}" y="{PAD_T}" width="{:.1}" height="{:.1}" fill="#fde2e2"/>"##,
        (x1 - x0).max(1.0),
        H - PAD_T - PAD_B
    ));
    out.push_str(&format!(
        r##"<line x1="{PAD_L}" y1="{b:.1}" x2="{W}" y2="{b:.1}" stroke="#999"/><line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{b:.1}" stroke="#999"/>"##,
        b = H - PAD_B
    ));
    out.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{max} ms</text><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">0</text>"##,
        PAD_L - 4.0,
        PAD_T + 8.0,
        PAD_L - 4.0,
        H - PAD_B
    ));
    let line: Vec<String> = pts
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.unix_ms), y(s.latency_ms)))
        .collect();
    out.push_str(&format!(
        r##"<polyline fill="none" stroke="#2b6cb0" stroke-width="1.5" points="{}"/>"##,
        line.join(" ")
    ));
    for s in pts.iter().filter(|s| !s.ok) {
        out.push_str(&format!(
            r##"<rect class="fail" x="{:.1}" y="{:.1}" width="3" height="6" fill="#c53030"/>"##,
            x(s.unix_ms) - 1.5,
            H - PAD_B - 6.0
        ));
    }
    out.push_str(&format!(
        r##"<text x="{PAD_L}" y="{H}" font-size="10">-{}s</text><text x="{W}" y="{H}" font-size="10" text-anchor="end">+{}s</text></svg>"##,
        (open - from).max(0) / 1000,
        (to - close).max(0) / 1000
    ));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_samples_in_range_and_marks_failures() {
        let s = |t: i64, ok: bool| Sample {
            unix_ms: t,
            latency_ms: 10.0,
            ok,
        };
        let samples = [s(0, true), s(1000, false), s(2000, true), s(99_000, true)];
        let svg = svg(&samples, 0, 3000, 500, 1500).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"fail\"").count(), 1);
        assert_eq!(svg.matches("points=\"").count(), 1);
        // Three points in range, the fourth outside.
        let pts = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(pts.split(' ').count(), 3);
        assert!(super::svg(&samples, 5000, 6000, 5000, 6000).is_none());
    }
}
