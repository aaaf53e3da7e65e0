//! A parser for the Prometheus text exposition format.
//!
//! Accepts the classic text format (`# HELP`, `# TYPE`, samples with optional
//! millisecond timestamps) and tolerates OpenMetrics: `# EOF` ends the input,
//! `# UNIT` lines are skipped, `_created` samples parse like any other sample,
//! exemplars (` # {labels} value [ts]` after a sample) are ignored and
//! fractional (seconds) timestamps are converted to milliseconds.
//!
//! The parser never panics and bounds what it keeps: at most [`MAX_SAMPLES`]
//! samples and [`MAX_LABELS`] labels per sample; beyond that it fails with
//! an error instead of growing.
use std::fmt;

/// Most samples accepted from one exposition.
pub const MAX_SAMPLES: usize = 200_000;
/// Most labels accepted on one sample.
pub const MAX_LABELS: usize = 128;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries a timestamp.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A `# TYPE` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDecl {
    pub name: String,
    pub kind: String,
}

/// The parsed exposition.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: Vec<TypeDecl>,
    /// Whether an OpenMetrics `# EOF` marker was seen.
    pub eof: bool,
}

/// Why an exposition could not be parsed: the 1-based line and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn is_label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A cursor over one line.
struct Cur<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

/// Parse a float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, decimal or exponent).
pub fn parse_value(tok: &str) -> Option<f64> {
    match tok {
        "+Inf" | "Inf" | "+inf" | "inf" => return Some(f64::INFINITY),
        "-Inf" | "-inf" => return Some(f64::NEG_INFINITY),
        "NaN" | "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust also accepts "infinity" spellings; Prometheus does not. Require a digit.
    if !tok.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    tok.parse::<f64>().ok()
}

fn parse_timestamp(tok: &str) -> Option<i64> {
    if let Ok(ms) = tok.parse::<i64>() {
        return Some(ms);
    }
    // OpenMetrics: seconds, possibly fractional.
    let secs = parse_value(tok)?;
    let ms = secs * 1000.0;
    if ms.is_finite() && ms.abs() < 9.0e18 {
        Some(ms.round() as i64)
    } else {
        None
    }
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn parse_labels(c: &mut Cur<'_>, line: usize) -> Result<Vec<(String, String)>, ParseError> {
    let mut labels = Vec::new();
    loop {
        c.skip_blanks();
        match c.peek() {
            Some('}') => {
                c.bump();
                return Ok(labels);
            }
            Some(ch) if is_label_start(ch) => {}
            Some(ch) => return Err(err(line, format!("unexpected `{ch}` in label set"))),
            None => return Err(err(line, "unterminated label set")),
        }
        let name = c.take_while(is_label_char).to_string();
        c.skip_blanks();
        if c.bump() != Some('=') {
            return Err(err(line, format!("expected `=` after label name `{name}`")));
        }
        c.skip_blanks();
        if c.bump() != Some('"') {
            return Err(err(
                line,
                format!("expected `\"` to open the value of label `{name}`"),
            ));
        }
        let mut value = String::new();
        loop {
            match c.bump() {
                None => return Err(err(line, format!("unterminated value of label `{name}`"))),
                Some('"') => break,
                Some('\\') => match c.bump() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    Some(other) => {
                        return Err(err(
                            line,
                            format!("invalid escape `\\{other}` in label `{name}`"),
                        ))
                    }
                    None => return Err(err(line, format!("unterminated value of label `{name}`"))),
                },
                Some(ch) => value.push(ch),
            }
        }
        if labels.iter().any(|(k, _)| *k == name) {
            return Err(err(line, format!("duplicate label `{name}`")));
        }
        if labels.len() >= MAX_LABELS {
            return Err(err(line, format!("more than {MAX_LABELS} labels")));
        }
        labels.push((name, value));
        c.skip_blanks();
        match c.peek() {
            Some(',') => {
                c.bump();
            }
            Some('}') => {}
            Some(ch) => return Err(err(line, format!("expected `,` or `}}`, found `{ch}`"))),
            None => return Err(err(line, "unterminated label set")),
        }
    }
}

fn parse_sample(text: &str, line: usize) -> Result<Sample, ParseError> {
    let mut c = Cur { s: text, pos: 0 };
    if !c.peek().is_some_and(is_name_start) {
        return Err(err(line, "expected a metric name"));
    }
    let name = c.take_while(is_name_char).to_string();
    c.skip_blanks();
    let labels = if c.peek() == Some('{') {
        c.bump();
        parse_labels(&mut c, line)?
    } else {
        Vec::new()
    };
    // `name{a="b"}1` (no blank before the value) is tolerated.
    c.skip_blanks();
    let value_tok = c.take_while(|ch| !is_blank(ch));
    if value_tok.is_empty() {
        return Err(err(line, format!("missing value for `{name}`")));
    }
    let value =
        parse_value(value_tok).ok_or_else(|| err(line, format!("invalid value `{value_tok}`")))?;
    c.skip_blanks();
    let mut timestamp_ms = None;
    match c.peek() {
        None | Some('#') => {}
        Some(_) => {
            let tok = c.take_while(|ch| !is_blank(ch));
            timestamp_ms = Some(
                parse_timestamp(tok)
                    .ok_or_else(|| err(line, format!("invalid timestamp `{tok}`")))?,
            );
            c.skip_blanks();
        }
    }
    match c.peek() {
        None => {}
        // An OpenMetrics exemplar: ignored.
        Some('#') => {}
        Some(_) => return Err(err(line, format!("unexpected text `{}`", c.rest()))),
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Parse an exposition body.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut out = Exposition::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        let l = l.trim_start_matches(is_blank);
        if l.is_empty() {
            continue;
        }
        if let Some(comment) = l.strip_prefix('#') {
            let mut c = Cur { s: comment, pos: 0 };
            c.skip_blanks();
            let keyword = c.take_while(|ch| !is_blank(ch));
            match keyword {
                "EOF" if c.rest().trim().is_empty() => {
                    out.eof = true;
                    break;
                }
                "TYPE" => {
                    c.skip_blanks();
                    let name = c.take_while(|ch| !is_blank(ch)).to_string();
                    c.skip_blanks();
                    let kind = c.rest().trim().to_string();
                    let valid = name.chars().next().is_some_and(is_name_start)
                        && name.chars().all(is_name_char);
                    if !valid {
                        return Err(err(line, format!("invalid metric name `{name}` in TYPE")));
                    }
                    if out.types.len() < MAX_SAMPLES {
                        out.types.push(TypeDecl { name, kind });
                    }
                }
                // HELP, UNIT and free comments carry nothing we use.
                _ => {}
            }
            continue;
        }
        if out.samples.len() >= MAX_SAMPLES {
            return Err(err(line, format!("more than {MAX_SAMPLES} samples")));
        }
        out.samples.push(parse_sample(l, line)?);
    }
    Ok(out)
}

fn escape_label(v: &str, out: &mut String) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Format a value the way Prometheus does (`+Inf`, `-Inf`, `NaN`, shortest round-trip float).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// Render samples in the classic text format (the inverse of [`parse`]).
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    for s in samples {
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            out.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape_label(v, &mut out);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        out.push_str(&format_value(s.value));
        if let Some(ts) = s.timestamp_ms {
            out.push(' ');
            out.push_str(&ts.to_string());
        }
        out.push('\n');
    }
    out
}

/// A canonical `name{k="v",...}` key for a label set (labels sorted by name).
pub fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort();
    let mut out = String::from(name);
    if !sorted.is_empty() || name.is_empty() {
        out.push('{');
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(v, &mut out);
            out.push('"');
        }
        out.push('}');
    }
    out
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(render(std::slice::from_ref(self)).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format() {
        let text = "# HELP http_requests_total The total number of HTTP requests.\n\
# TYPE http_requests_total counter\n\
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
\n\
# Escaping in label values:\n\
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
metric_without_timestamp_and_labels 12.47\n\
something_weird{problem=\"division by zero\"} +Inf -3982045\n\
http_request_duration_seconds_bucket{le=\"+Inf\"} 144320\n\
rpc_duration_seconds{quantile=\"0.5\"} NaN\n";
        let e = parse(text).unwrap();
        assert_eq!(e.samples.len(), 7);
        assert_eq!(e.types[0].kind, "counter");
        assert_eq!(e.samples[0].label("code"), Some("200"));
        assert_eq!(e.samples[0].timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(e.samples[1].value, 3.0);
        assert_eq!(e.samples[2].label("path"), Some("C:\\DIR\\FILE.TXT"));
        assert_eq!(
            e.samples[2].label("error"),
            Some("Cannot find file:\n\"FILE.TXT\"")
        );
        assert_eq!(e.samples[4].value, f64::INFINITY);
        assert_eq!(e.samples[4].timestamp_ms, Some(-3_982_045));
        assert!(e.samples[6].value.is_nan());
        assert!(!e.eof);
    }

    #[test]
    fn openmetrics_is_tolerated() {
        let text = "# TYPE foo counter\n# UNIT foo seconds\n# HELP foo help\n\
foo_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
foo_created{a=\"b\"} 1520430000.123\n\
# EOF\n\
this is garbage after EOF\n";
        let e = parse(text).unwrap();
        assert!(e.eof);
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[0].timestamp_ms, Some(1_520_879_607_789));
        assert_eq!(e.samples[1].name, "foo_created");
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("ok 1\nbad{x=\"1\" 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("a{b=\"\\q\"} 1").is_err());
        assert!(parse("a{b=\"1\",b=\"2\"} 1").is_err());
        assert!(parse("a infinity").is_err());
        assert!(parse("a 1 2 3").is_err());
        assert!(parse("9a 1").is_err());
        assert!(parse("a").is_err());
    }

    #[test]
    fn crlf_trailing_comma_and_blanks() {
        let e = parse("a{x=\"1\",} 2\r\n\tb 3\r\n").unwrap();
        assert_eq!(e.samples.len(), 2);
        assert_eq!(e.samples[1].name, "b");
    }

    #[test]
    fn series_key_is_order_independent() {
        let a = vec![("b".to_string(), "1".to_string()), ("a".into(), "2".into())];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(series_key("m", &a), series_key("m", &b));
        assert_eq!(series_key("m", &a), "m{a=\"2\",b=\"1\"}");
        assert_eq!(series_key("", &[]), "{}");
        assert_eq!(series_key("m", &[]), "m");
    }
}
