//! When may this instance act? Pure: the caller passes every time in.
//!
//! etcd expires a lease `ttl` after it *received* the last keep-alive. That
//! receipt comes after this instance *sent* it, so measured on this host the
//! lease cannot expire before `sent + ttl`, up to the difference in clock
//! rate between the two hosts. A leader acts only until `sent + ttl - margin`
//! where `sent` is the send time of its last keep-alive that etcd answered:
//! `margin` covers the clock-rate drift over one TTL plus the time between
//! this check and the write it guards (docs/ha.md). Past that instant another
//! instance may already hold the lease, so this one holds its actions, even
//! though it may still be the leader.
use std::time::Duration;

/// Why an instance does not act (for `/readyz`, logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Another instance leads (or none yet); this one is a hot standby.
    Follower,
    /// Elected, but no renewal was confirmed recently enough: the lease may
    /// have expired in etcd's view.
    LostLease,
    /// etcd cannot be reached.
    EtcdUnreachable,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Follower => "follower",
            Hold::LostLease => "lost lease",
            Hold::EtcdUnreachable => "etcd unreachable",
        }
    }
}

/// The verdict: act with this fencing token until `until`, or hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Act { token: u64, until: Duration },
    Hold(Hold),
}

/// What the election loop last knew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The fencing token if this instance won the election.
    pub elected: Option<u64>,
    /// Send time of the last keep-alive etcd answered (same epoch as `now`).
    pub renewed_sent_at: Option<Duration>,
    /// The last attempt to reach etcd failed.
    pub etcd_down: bool,
}

/// May an instance in `standing` start an action at `now`?
pub fn may_act(standing: Standing, now: Duration, ttl: Duration, margin: Duration) -> Verdict {
    let Some(token) = standing.elected else {
        return Verdict::Hold(if standing.etcd_down {
            Hold::EtcdUnreachable
        } else {
            Hold::Follower
        });
    };
    let Some(sent) = standing.renewed_sent_at else {
        return Verdict::Hold(Hold::LostLease);
    };
    let until = (sent + ttl).saturating_sub(margin);
    if now < until {
        Verdict::Act { token, until }
    } else if standing.etcd_down {
        Verdict::Hold(Hold::EtcdUnreachable)
    } else {
        Verdict::Hold(Hold::LostLease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);
    const M: Duration = Duration::from_millis(500);

    fn s(elected: Option<u64>, sent: Option<u64>, down: bool) -> Standing {
        Standing {
            elected,
            renewed_sent_at: sent.map(Duration::from_millis),
            etcd_down: down,
        }
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_follower_never_acts() {
        assert_eq!(
            may_act(s(None, Some(1000), false), at(1000), TTL, M),
            Verdict::Hold(Hold::Follower)
        );
        assert_eq!(
            may_act(s(None, None, true), at(1000), TTL, M),
            Verdict::Hold(Hold::EtcdUnreachable)
        );
    }

    #[test]
    fn a_leader_acts_until_ttl_minus_margin_after_the_renewal_was_sent() {
        let st = s(Some(42), Some(1000), false);
        let until = at(1000 + 5000 - 500);
        assert_eq!(
            may_act(st, at(1000), TTL, M),
            Verdict::Act { token: 42, until }
        );
        assert_eq!(
            may_act(st, at(5499), TTL, M),
            Verdict::Act { token: 42, until }
        );
        assert_eq!(
            may_act(st, at(5500), TTL, M),
            Verdict::Hold(Hold::LostLease)
        );
        assert_eq!(
            may_act(st, at(60_000), TTL, M),
            Verdict::Hold(Hold::LostLease)
        );
    }

    #[test]
    fn an_unreachable_etcd_stops_a_leader_only_once_its_window_closes() {
        let st = s(Some(7), Some(1000), true);
        assert!(matches!(
            may_act(st, at(2000), TTL, M),
            Verdict::Act { token: 7, .. }
        ));
        assert_eq!(
            may_act(st, at(5600), TTL, M),
            Verdict::Hold(Hold::EtcdUnreachable)
        );
    }

    #[test]
    fn elected_without_a_confirmed_renewal_holds() {
        assert_eq!(
            may_act(s(Some(3), None, false), at(0), TTL, M),
            Verdict::Hold(Hold::LostLease)
        );
    }

    #[test]
    fn a_margin_as_large_as_the_ttl_never_acts() {
        assert_eq!(
            may_act(s(Some(3), Some(1000), false), at(1000), TTL, TTL),
            Verdict::Hold(Hold::LostLease)
        );
    }
}
