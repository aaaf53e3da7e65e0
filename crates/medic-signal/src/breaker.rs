//! Noisy-rule circuit breaker: pure, with injected time.
//!
//! Each rule counts its firings (healthy → failing transitions) over the last
//! hour. When that count exceeds `factor × baseline`, the rule is muted for
//! `cooldown` and then re-enabled with a fresh count.
use std::collections::VecDeque;
use std::time::Duration;

use medic_config::BreakerConfig;

const HOUR_MS: u64 = 3_600_000;

/// What the breaker decided.
#[derive(Clone, Debug, PartialEq)]
pub enum BreakerEvent {
    /// The rule fired `rate_per_hour` times in the last hour and is muted until `until_ms`.
    Muted { rate_per_hour: f64, until_ms: u64 },
    /// The cooldown ended; the rule is evaluated again.
    Unmuted,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    /// Firing times (ms) within the last hour, oldest first; bounded by the limit + 1.
    firings: VecDeque<u64>,
    muted_until: Option<u64>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            firings: VecDeque::new(),
            muted_until: None,
        }
    }

    /// Firings per hour above which the rule is muted.
    pub fn limit(&self) -> f64 {
        self.cfg.baseline_per_hour * self.cfg.factor
    }

    /// Most firing times ever kept: one more than the limit.
    fn cap(&self) -> usize {
        let l = self.limit();
        if l.is_finite() && l >= 0.0 {
            (l.floor() as usize).saturating_add(1).min(1_000_000)
        } else {
            1_000_000
        }
    }

    pub fn cooldown(&self) -> Duration {
        self.cfg.cooldown
    }

    /// Whether the rule is muted at `now_ms`; re-enables it (returning
    /// [`BreakerEvent::Unmuted`]) once the cooldown is over.
    pub fn poll(&mut self, now_ms: u64) -> (bool, Option<BreakerEvent>) {
        match self.muted_until {
            Some(until) if now_ms >= until => {
                self.muted_until = None;
                (false, Some(BreakerEvent::Unmuted))
            }
            Some(_) => (true, None),
            None => (false, None),
        }
    }

    pub fn muted(&self) -> bool {
        self.muted_until.is_some()
    }

    /// Record one firing at `now_ms`; mutes the rule when it is too noisy.
    pub fn record_firing(&mut self, now_ms: u64) -> Option<BreakerEvent> {
        if !self.cfg.enabled || self.muted_until.is_some() {
            return None;
        }
        while self
            .firings
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= HOUR_MS)
        {
            self.firings.pop_front();
        }
        self.firings.push_back(now_ms);
        let cap = self.cap();
        while self.firings.len() > cap {
            self.firings.pop_front();
        }
        let rate = self.firings.len() as f64;
        if rate > self.limit() {
            let cooldown_ms = u64::try_from(self.cfg.cooldown.as_millis()).unwrap_or(u64::MAX);
            let until = now_ms.saturating_add(cooldown_ms);
            self.muted_until = Some(until);
            self.firings.clear();
            return Some(BreakerEvent::Muted {
                rate_per_hour: rate,
                until_ms: until,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            baseline_per_hour: 10.0,
            factor: 3.0,
            cooldown: Duration::from_secs(900),
        }
    }

    #[test]
    fn thirty_firings_an_hour_are_fine_thirty_one_mute() {
        let mut b = Breaker::new(cfg());
        for i in 0..30 {
            assert_eq!(b.record_firing(i * 60_000), None, "firing {i}");
        }
        let ev = b.record_firing(30 * 60_000);
        assert_eq!(
            ev,
            Some(BreakerEvent::Muted {
                rate_per_hour: 31.0,
                until_ms: 30 * 60_000 + 900_000
            })
        );
        assert!(b.muted());
        assert_eq!(b.poll(30 * 60_000 + 899_999), (true, None));
        assert_eq!(
            b.poll(30 * 60_000 + 900_000),
            (false, Some(BreakerEvent::Unmuted))
        );
        assert!(!b.muted());
        // A fresh count after the cooldown.
        assert_eq!(b.record_firing(30 * 60_000 + 900_001), None);
    }

    #[test]
    fn old_firings_slide_out_of_the_hour() {
        let mut b = Breaker::new(cfg());
        // 30 firings every 2 minutes (one hour), then one every 2 minutes forever:
        // never more than 30 in any hour.
        for i in 0..500u64 {
            assert_eq!(b.record_firing(i * 120_000), None, "firing {i}");
        }
        assert!(b.firings.len() <= 31);
    }

    #[test]
    fn disabled_breaker_never_mutes() {
        let mut b = Breaker::new(BreakerConfig {
            enabled: false,
            ..cfg()
        });
        for i in 0..1000 {
            assert_eq!(b.record_firing(i), None);
        }
    }

    proptest::proptest! {
        /// Whatever the firing times: between two mutes no more than `limit`
        /// firings are let through in any one-hour window, a mute lasts exactly
        /// the cooldown, and state stays bounded.
        #[test]
        fn never_more_than_limit_per_hour_unmuted(gaps in proptest::collection::vec(0u64..600_000, 1..400)) {
            let mut b = Breaker::new(cfg());
            let mut t = 0u64;
            let mut accepted: Vec<u64> = Vec::new();
            let mut muted_until = None;
            for g in gaps {
                t += g;
                let (muted, ev) = b.poll(t);
                if let Some(BreakerEvent::Unmuted) = ev {
                    let until = muted_until.take().unwrap_or(0);
                    proptest::prop_assert!(t >= until);
                    accepted.clear();
                }
                if muted {
                    proptest::prop_assert!(muted_until.is_some_and(|u| t < u));
                    continue;
                }
                match b.record_firing(t) {
                    Some(BreakerEvent::Muted { until_ms, rate_per_hour }) => {
                        proptest::prop_assert_eq!(until_ms, t + 900_000);
                        proptest::prop_assert!(rate_per_hour > 30.0);
                        muted_until = Some(until_ms);
                    }
                    Some(BreakerEvent::Unmuted) => proptest::prop_assert!(false, "unmute from record"),
                    None => {
                        accepted.push(t);
                        let in_hour = accepted.iter().filter(|x| t - **x < HOUR_MS).count();
                        proptest::prop_assert!(in_hour <= 30, "{} firings in an hour", in_hour);
                    }
                }
                proptest::prop_assert!(b.firings.len() <= 31);
            }
        }
    }

    #[test]
    fn burst_mutes_immediately() {
        let mut b = Breaker::new(cfg());
        let mut muted_at = None;
        for i in 0..100u64 {
            if b.record_firing(i * 1000).is_some() {
                muted_at = Some(i);
                break;
            }
        }
        assert_eq!(muted_at, Some(30));
        // While muted, more firings do not extend the cooldown.
        assert_eq!(b.record_firing(40_000), None);
        assert_eq!(b.poll(30_000 + 900_000).1, Some(BreakerEvent::Unmuted));
    }
}
