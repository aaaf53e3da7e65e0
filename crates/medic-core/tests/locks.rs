//! Locks and conflicts: scenario tables and a property test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use medic_core::{
    Acquire, LockConfig, LockEvent, LockKey, LockRequest, LockScope, LockTable, MonoTime,
    OnConflict, Topology,
};
use proptest::prelude::*;

/// web → api → db, and a lonely `cache`.
fn topo() -> Topology {
    Topology::new([
        ("web".to_string(), "api".to_string()),
        ("api".to_string(), "db".to_string()),
    ])
}

/// One step of a scenario: at `t` seconds, `op`; the table answers `expect`.
/// Ops: `acquire HOLDER KEY[,KEY] [radius=S[,S]] [queue]`, `release HOLDER`,
/// `force KEY`, `tick`, `renew HOLDER`. Answers: `granted`, `queued N REASON`,
/// `refused REASON`, the tick's events (`reclaimed KEY`, `granted HOLDER`,
/// `timeout HOLDER`, joined by `;`), a count for release/renew, `-` for none.
struct Step {
    t: u64,
    op: &'static str,
    expect: &'static str,
}

const fn s(t: u64, op: &'static str, expect: &'static str) -> Step {
    Step { t, op, expect }
}

struct Scenario {
    name: &'static str,
    steps: &'static [Step],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "two actions on one service: the second is refused, then gets it",
        steps: &[
            s(0, "acquire a1 service:web,incident:i1", "granted"),
            s(
                1,
                "acquire a2 service:web,incident:i2",
                "refused lock_held service:web a1",
            ),
            s(2, "release a1", "2"),
            s(3, "acquire a2 service:web,incident:i2", "granted"),
        ],
    },
    Scenario {
        name: "a service and its dependency at once: serialised through the queue",
        steps: &[
            s(0, "acquire a1 service:api", "granted"),
            s(
                1,
                "acquire a2 service:db queue",
                "queued 1 conflict_dependency service:api a1",
            ),
            s(
                1,
                "acquire a3 service:web queue",
                "queued 2 conflict_dependency service:api a1",
            ),
            s(2, "acquire a4 service:cache queue", "granted"),
            s(5, "release a1", "1"),
            // db and web are not adjacent: both get their lock in one tick.
            s(5, "tick", "granted a2;granted a3"),
        ],
    },
    Scenario {
        name: "a later waiter never overtakes an earlier one it conflicts with",
        steps: &[
            s(0, "acquire a1 service:db", "granted"),
            s(
                1,
                "acquire a2 service:db queue",
                "queued 1 lock_held service:db a1",
            ),
            // api is adjacent to the queued db request: waits behind it.
            s(
                2,
                "acquire a3 service:api queue",
                "queued 2 conflict_dependency service:db a1",
            ),
            s(3, "release a1", "1"),
            s(3, "tick", "granted a2"),
            s(4, "release a2", "1"),
            s(4, "tick", "granted a3"),
        ],
    },
    Scenario {
        name: "overlapping blast radius",
        steps: &[
            s(0, "acquire a1 service:cache radius=web", "granted"),
            s(
                0,
                "acquire a2 service:db radius=web",
                "refused conflict_blast_radius service:cache a1",
            ),
            s(0, "acquire a3 service:db", "granted"),
        ],
    },
    Scenario {
        name: "the SYSTEM lock excludes everything",
        steps: &[
            s(0, "acquire op system:system", "granted"),
            s(
                0,
                "acquire a1 service:cache",
                "refused lock_held system:system op",
            ),
            s(1, "release op", "1"),
            s(1, "acquire a1 service:cache", "granted"),
            s(
                1,
                "acquire op system:system",
                "refused lock_held service:cache a1",
            ),
        ],
    },
    Scenario {
        name: "acquisition order SYSTEM → SERVICE → INCIDENT → DEPLOYMENT",
        steps: &[
            s(
                0,
                "acquire a1 incident:i1,service:web",
                "refused lock_order",
            ),
            s(0, "acquire a1 service:web,deployment:web-v2", "granted"),
            // Already holds a DEPLOYMENT lock: an INCIDENT lock would go backwards.
            s(0, "acquire a1 incident:i1", "refused lock_order"),
            s(0, "acquire a2 deployment:web-v3", "granted"),
            s(0, "acquire a2 deployment:web-v4", "granted"),
        ],
    },
    Scenario {
        name: "expired locks are reclaimed (TTL 300 s) unless renewed",
        steps: &[
            s(0, "acquire a1 service:web", "granted"),
            s(0, "acquire a2 service:db", "granted"),
            s(200, "renew a2", "1"),
            s(299, "tick", "-"),
            s(300, "tick", "reclaimed service:web"),
            s(300, "acquire a3 service:web", "granted"),
            s(
                499,
                "acquire a4 service:db",
                "refused lock_held service:db a2",
            ),
            s(500, "acquire a4 service:db", "granted"),
        ],
    },
    Scenario {
        name: "lock timeout: a waiter gives up after max_wait (60 s here)",
        steps: &[
            s(0, "acquire a1 service:web", "granted"),
            s(
                10,
                "acquire a2 service:web queue",
                "queued 1 lock_held service:web a1",
            ),
            s(69, "tick", "-"),
            s(70, "tick", "timeout a2"),
            s(71, "release a1", "1"),
            s(71, "tick", "-"),
        ],
    },
    Scenario {
        name: "an operator force-releases a stuck lock",
        steps: &[
            s(0, "acquire a1 service:web,incident:i1", "granted"),
            s(
                1,
                "acquire a2 service:web queue",
                "queued 1 lock_held service:web a1",
            ),
            s(2, "force service:web", "a1"),
            s(2, "force service:web", "-"),
            s(2, "tick", "granted a2"),
            s(
                3,
                "acquire a3 incident:i1",
                "refused lock_held incident:i1 a1",
            ),
        ],
    },
    Scenario {
        name: "the wait queue is bounded (3 here)",
        steps: &[
            s(0, "acquire a0 service:web", "granted"),
            s(
                0,
                "acquire a1 service:web queue",
                "queued 1 lock_held service:web a0",
            ),
            s(
                0,
                "acquire a2 service:web queue",
                "queued 2 lock_held service:web a0",
            ),
            s(
                0,
                "acquire a3 service:web queue",
                "queued 3 lock_held service:web a0",
            ),
            s(0, "acquire a4 service:web queue", "refused lock_queue_full"),
            // Asking again keeps the place.
            s(
                1,
                "acquire a2 service:web queue",
                "queued 2 lock_held service:web a0",
            ),
        ],
    },
];

fn request(holder: &str, keys: &str, radius: Option<&str>) -> LockRequest {
    LockRequest {
        holder: holder.to_string(),
        keys: keys
            .split(',')
            .map(|k| LockKey::parse(k).unwrap_or_else(|| panic!("bad key {k}")))
            .collect(),
        radius: radius
            .map(|r| r.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

fn run(table: &mut LockTable, topo: &Topology, step: &Step) -> String {
    let now = MonoTime(step.t * 1000);
    let words: Vec<&str> = step.op.split_whitespace().collect();
    match words[0] {
        "acquire" => {
            let radius = words.iter().find_map(|w| w.strip_prefix("radius="));
            let on = if words.contains(&"queue") {
                OnConflict::Queue
            } else {
                OnConflict::Refuse
            };
            let with = |c: &medic_core::Conflict| match (&c.key, &c.holder) {
                (Some(k), Some(h)) => format!("{} {k} {h}", c.reason.as_str()),
                _ => c.reason.as_str().to_string(),
            };
            match table.acquire(now, topo, request(words[1], words[2], radius), on) {
                Acquire::Granted(_) => "granted".into(),
                Acquire::Queued { position, conflict } => {
                    format!("queued {position} {}", with(&conflict))
                }
                Acquire::Refused(c) => format!("refused {}", with(&c)),
            }
        }
        "release" => table.release(words[1]).len().to_string(),
        "renew" => table.renew(now, words[1]).to_string(),
        "force" => table
            .force_release(&LockKey::parse(words[1]).unwrap())
            .map_or("-".into(), |l| l.holder),
        "tick" => {
            let ev: Vec<String> = table
                .tick(now, topo)
                .into_iter()
                .map(|e| match e {
                    LockEvent::Reclaimed(l) => format!("reclaimed {}", l.key),
                    LockEvent::Granted { holder, .. } => format!("granted {holder}"),
                    LockEvent::TimedOut { holder, .. } => format!("timeout {holder}"),
                })
                .collect();
            if ev.is_empty() {
                "-".into()
            } else {
                ev.join(";")
            }
        }
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn lock_scenarios() {
    let topo = topo();
    let mut failures = Vec::new();
    for sc in SCENARIOS {
        let cfg = LockConfig {
            max_wait: Duration::from_secs(60),
            max_waiters: 3,
            ..LockConfig::default()
        };
        let mut table = LockTable::new(cfg);
        for (i, step) in sc.steps.iter().enumerate() {
            let got = run(&mut table, &topo, step);
            if got != step.expect {
                failures.push(format!(
                    "{}: step {i} `{}`: expected `{}`, got `{got}`",
                    sc.name, step.op, step.expect
                ));
            }
            assert!(!table.has_conflicting_locks(&topo), "{}: step {i}", sc.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lock_table_survives_the_snapshot_json() {
    let topo = topo();
    let mut t = LockTable::new(LockConfig::default());
    t.acquire(
        MonoTime(5_000),
        &topo,
        request("a1", "service:web,incident:i1", Some("api")),
        OnConflict::Refuse,
    );
    t.acquire(
        MonoTime(6_000),
        &topo,
        request("a2", "service:api", None),
        OnConflict::Queue,
    );
    let json = serde_json::to_string(&t).unwrap();
    let back: LockTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.held().len(), 2);
    assert_eq!(back.waiting().count(), 1);
}

// --- property: no two held locks of different holders ever conflict, and
// every holder's locks were granted in acquisition order.

const SERVICES: &[&str] = &["web", "api", "db", "cache", "queue"];

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        holder: u8,
        keys: Vec<(u8, u8)>,
        radius: Vec<u8>,
        queue: bool,
    },
    Release(u8),
    Force(u8, u8),
    Renew(u8),
    Tick,
}

fn key_of(scope: u8, target: u8) -> LockKey {
    let scope = [
        LockScope::System,
        LockScope::Service,
        LockScope::Incident,
        LockScope::Deployment,
    ][usize::from(scope % 4)];
    let target = match scope {
        LockScope::System => "system".to_string(),
        LockScope::Service => SERVICES[usize::from(target) % SERVICES.len()].to_string(),
        _ => format!("t{}", target % 3),
    };
    LockKey::new(scope, target)
}

/// The test's own conflict rule: same key, a SYSTEM lock, two SERVICE locks
/// on services one of which calls the other (web → api → db), or two
/// SERVICE locks whose holders' radii share a service.
fn conflicting(a: &medic_core::Lock, b: &medic_core::Lock) -> bool {
    const CALLS: &[(&str, &str)] = &[("web", "api"), ("api", "db")];
    let sys = LockScope::System;
    if a.key == b.key || a.key.scope == sys || b.key.scope == sys {
        return true;
    }
    let svc = LockScope::Service;
    if a.key.scope != svc || b.key.scope != svc {
        return false;
    }
    let (x, y) = (a.key.target.as_str(), b.key.target.as_str());
    CALLS
        .iter()
        .any(|&(c, d)| (c, d) == (x, y) || (c, d) == (y, x))
        || a.radius.iter().any(|r| b.radius.contains(r))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0u8..6,
            prop::collection::vec((0u8..8, 0u8..8), 1..4),
            prop::collection::vec(0u8..5, 0..3),
            any::<bool>()
        )
            .prop_map(|(holder, keys, radius, queue)| Op::Acquire {
                holder,
                keys,
                radius,
                queue
            }),
        2 => (0u8..6).prop_map(Op::Release),
        1 => (0u8..8, 0u8..8).prop_map(|(s, t)| Op::Force(s, t)),
        1 => (0u8..6).prop_map(Op::Renew),
        2 => Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn locks_never_conflict_and_order_holds(
        ops in prop::collection::vec((op(), 0u64..120_000), 1..80),
    ) {
        let topo = topo();
        let cfg = LockConfig {
            ttl: Duration::from_secs(120),
            max_wait: Duration::from_secs(90),
            max_waiters: 4,
            max_locks: 6,
        };
        let mut table = LockTable::new(cfg);
        let mut now = 0u64;
        // Every grant comes after (in acquisition order) each key its holder
        // still holds: the check that makes waiting for each other impossible.
        let record = |holder: &str, keys: Vec<LockKey>, table: &LockTable| {
            let before: Vec<&LockKey> = table
                .held()
                .iter()
                .filter(|l| l.holder == holder && !keys.contains(&l.key))
                .map(|l| &l.key)
                .collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "{holder} got {keys:?} out of order");
            prop_assert!(
                before.iter().all(|b| keys.iter().all(|k| *b < k)),
                "order violated by {holder}: held {before:?}, then got {keys:?}"
            );
            Ok(())
        };
        for (op, dt) in ops {
            now += dt;
            let t = MonoTime(now);
            match op {
                Op::Acquire { holder, keys, radius, queue } => {
                    let mut keys: Vec<LockKey> = keys.into_iter().map(|(s, t)| key_of(s, t)).collect();
                    // Mostly well-ordered requests; the table must refuse the rest.
                    if holder % 2 == 0 {
                        keys.sort();
                        keys.dedup();
                    }
                    let holder = format!("h{holder}");
                    let req = LockRequest {
                        holder: holder.clone(),
                        keys,
                        radius: radius.into_iter().map(|r| SERVICES[usize::from(r)].to_string()).collect(),
                    };
                    let on = if queue { OnConflict::Queue } else { OnConflict::Refuse };
                    if let Acquire::Granted(locks) = table.acquire(t, &topo, req, on) {
                        record(&holder, locks.into_iter().map(|l| l.key).collect(), &table)?;
                    }
                }
                Op::Release(h) => {
                    table.release(&format!("h{h}"));
                }
                Op::Force(s, k) => {
                    table.force_release(&key_of(s, k));
                }
                Op::Renew(h) => {
                    table.renew(t, &format!("h{h}"));
                }
                Op::Tick => {
                    for e in table.tick(t, &topo) {
                        if let LockEvent::Granted { holder, locks } = e {
                            record(&holder, locks.into_iter().map(|l| l.key).collect(), &table)?;
                        }
                    }
                }
            }
            prop_assert!(!table.has_conflicting_locks(&topo), "conflicting locks: {:?}", table.held());
            // The same, by the test's own rule (independent of the table's code).
            let held = table.held();
            for (i, a) in held.iter().enumerate() {
                for b in &held[i + 1..] {
                    prop_assert!(a.holder == b.holder || !conflicting(a, b), "{a:?} and {b:?} both held");
                }
            }
            prop_assert!(table.waiting().count() <= 4);
            prop_assert!(table.held().len() <= 6);
            prop_assert!(table.held().iter().all(|l| l.expires > l.acquired));
        }
    }
}
