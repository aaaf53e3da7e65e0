use std::fmt;
use std::time::Duration;

/// Monotonic engine time: milliseconds since the driver's epoch (engine start).
///
/// Constructed freely by drivers and tests; never read from the host inside the core.
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct MonoTime(pub u64);

impl MonoTime {
    pub const ZERO: MonoTime = MonoTime(0);

    pub fn from_millis(ms: u64) -> Self {
        MonoTime(ms)
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> MonoTime {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        MonoTime(self.0.saturating_add(ms))
    }

    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: MonoTime) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for MonoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0 / 1000;
        let ms = self.0 % 1000;
        if ms == 0 {
            write!(f, "t={s}s")
        } else {
            let frac = format!("{ms:03}");
            write!(f, "t={s}.{}s", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_arith() {
        assert_eq!(MonoTime(35_000).to_string(), "t=35s");
        assert_eq!(MonoTime(1_250).to_string(), "t=1.25s");
        assert_eq!(MonoTime(5).plus(Duration::from_secs(1)), MonoTime(1_005));
        assert_eq!(MonoTime(5).since(MonoTime(10)), Duration::ZERO);
        assert_eq!(
            MonoTime(u64::MAX).plus(Duration::from_secs(1)),
            MonoTime(u64::MAX)
        );
    }
}
