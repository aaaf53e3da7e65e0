//! Executor circuit breakers (issue 10): one per executor target (a
//! configured action of a service). Closed → open after `failures`
//! consecutive failed executions → half-open after `cooldown` (one trial
//! call) → closed on its success, open again on its failure. A pure state
//! machine: time is passed in.
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::MonoTime;

/// Breaker settings (`governance.breaker` in config).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed executions that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses before it lets one trial through.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cooldown: Duration::from_secs(120),
        }
    }
}

/// The state of one breaker.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerState {
    Closed,
    /// Refusing until this time.
    Open {
        until: MonoTime,
    },
    /// One trial call allowed (`trial`: it is running).
    HalfOpen {
        trial: bool,
    },
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }

    /// 0 closed, 1 half-open, 2 open (the metric's value).
    pub fn level(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen { .. } => 1,
            BreakerState::Open { .. } => 2,
        }
    }
}

/// A change of state, for the audit log and metrics.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub consecutive_failures: u32,
}

/// One executor target's breaker.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub state: BreakerState,
    pub consecutive_failures: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
        }
    }
}

/// Why a call was refused: the breaker is open until `until` (or a
/// half-open trial is already running: `until` is `None`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub until: Option<MonoTime>,
}

impl Breaker {
    /// The state as of `now` (an open breaker whose cool-down is over is
    /// half-open), with the transition if that moved it.
    pub fn tick(&mut self, now: MonoTime) -> Option<Transition> {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                Some(self.go(BreakerState::HalfOpen { trial: false }))
            }
            _ => None,
        }
    }

    /// May a call run now? A half-open breaker lets exactly one trial through.
    pub fn admit(&mut self, now: MonoTime) -> (Result<(), Refused>, Option<Transition>) {
        let t = self.tick(now);
        let r = match self.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until } => Err(Refused { until: Some(until) }),
            BreakerState::HalfOpen { trial: true } => Err(Refused { until: None }),
            BreakerState::HalfOpen { trial: false } => {
                self.state = BreakerState::HalfOpen { trial: true };
                Ok(())
            }
        };
        (r, t)
    }

    /// Whether a call would be admitted now, without taking the trial.
    pub fn would_admit(&self, now: MonoTime) -> bool {
        match self.state {
            BreakerState::Closed | BreakerState::HalfOpen { trial: false } => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen { trial: true } => false,
        }
    }

    /// Record the result of a call.
    pub fn record(&mut self, now: MonoTime, ok: bool, cfg: &BreakerConfig) -> Option<Transition> {
        if ok {
            self.consecutive_failures = 0;
            return match self.state {
                BreakerState::Closed => None,
                _ => Some(self.go(BreakerState::Closed)),
            };
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let open = BreakerState::Open {
            until: now.plus(cfg.cooldown),
        };
        match self.state {
            BreakerState::HalfOpen { .. } => Some(self.go(open)),
            BreakerState::Open { until } if now >= until => Some(self.go(open)),
            BreakerState::Closed if self.consecutive_failures >= cfg.failures.max(1) => {
                Some(self.go(open))
            }
            _ => None,
        }
    }

    fn go(&mut self, to: BreakerState) -> Transition {
        let from = self.state;
        self.state = to;
        Transition {
            from,
            to,
            consecutive_failures: self.consecutive_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn closed_open_half_open_closed() {
        let c = cfg();
        let mut b = Breaker::default();
        let t0 = MonoTime(0);
        assert!(b.admit(t0).0.is_ok());
        assert_eq!(b.record(t0, false, &c), None);
        assert_eq!(b.record(t0, false, &c), None);
        let t = b.record(t0, false, &c).unwrap();
        assert_eq!(t.from, BreakerState::Closed);
        assert_eq!(
            t.to,
            BreakerState::Open {
                until: MonoTime(60_000)
            }
        );
        assert_eq!(
            b.admit(MonoTime(59_999)).0,
            Err(Refused {
                until: Some(MonoTime(60_000))
            })
        );
        let (r, t) = b.admit(MonoTime(60_000));
        assert!(r.is_ok());
        assert_eq!(t.unwrap().to, BreakerState::HalfOpen { trial: false });
        // Only one trial.
        assert_eq!(b.admit(MonoTime(60_001)).0, Err(Refused { until: None }));
        let t = b.record(MonoTime(61_000), true, &c).unwrap();
        assert_eq!(t.to, BreakerState::Closed);
        assert_eq!(b.consecutive_failures, 0);
    }

    #[test]
    fn failed_trial_opens_again() {
        let c = cfg();
        let mut b = Breaker::default();
        for _ in 0..3 {
            b.record(MonoTime(0), false, &c);
        }
        assert!(b.admit(MonoTime(60_000)).0.is_ok());
        let t = b.record(MonoTime(61_000), false, &c).unwrap();
        assert_eq!(
            t.to,
            BreakerState::Open {
                until: MonoTime(121_000)
            }
        );
    }

    #[test]
    fn success_resets_the_count() {
        let c = cfg();
        let mut b = Breaker::default();
        b.record(MonoTime(0), false, &c);
        b.record(MonoTime(0), false, &c);
        b.record(MonoTime(0), true, &c);
        b.record(MonoTime(0), false, &c);
        b.record(MonoTime(0), false, &c);
        assert_eq!(b.state, BreakerState::Closed);
    }

    proptest! {
        /// Against a simple model: the breaker is open exactly when the last
        /// `failures` results were failures (or a half-open trial failed) and
        /// the cool-down since the opening failure has not passed; an open
        /// breaker never admits; a half-open one admits exactly one call.
        #[test]
        fn model(ops in proptest::collection::vec((0u64..90_000, 0u8..3), 1..200)) {
            let c = cfg();
            let mut b = Breaker::default();
            let mut now = 0u64;
            let mut streak = 0u32;
            let mut open_until: Option<u64> = None;
            let mut trial_taken = false;
            for (dt, op) in ops {
                now += dt % 40_000;
                let t = MonoTime(now);
                match op {
                    0 => {
                        let (r, _) = b.admit(t);
                        let expect_ok = match open_until {
                            None => true,
                            Some(u) if now >= u => !trial_taken,
                            Some(_) => false,
                        };
                        prop_assert_eq!(r.is_ok(), expect_ok);
                        if r.is_ok() && open_until.is_some() {
                            trial_taken = true;
                        }
                    }
                    1 => {
                        b.record(t, true, &c);
                        streak = 0;
                        open_until = None;
                        trial_taken = false;
                    }
                    _ => {
                        streak += 1;
                        b.record(t, false, &c);
                        let half_open = open_until.is_some_and(|u| now >= u);
                        if half_open || (open_until.is_none() && streak >= c.failures) {
                            open_until = Some(now + 60_000);
                            trial_taken = false;
                        }
                    }
                }
                let model_open = open_until.is_some_and(|u| now < u);
                prop_assert_eq!(matches!(b.state, BreakerState::Open { .. }) && !b.would_admit(t), model_open);
            }
        }
    }
}
