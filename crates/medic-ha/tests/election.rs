#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The election loop against a real etcd (`/usr/bin/etcd`, Debian's
//! etcd-server) on loopback.
use std::time::{Duration, Instant};

use medic_ha::local::LocalEtcd;
use medic_ha::{ElectorConfig, HaState, Verdict};
use tokio::sync::watch;

fn etcd(dir: &std::path::Path) -> LocalEtcd {
    match LocalEtcd::start(dir) {
        Ok(e) => e,
        Err(e) => panic!("etcd is needed for this test (package etcd-server): {e}"),
    }
}

fn cfg(url: &str, member: &str) -> ElectorConfig {
    ElectorConfig {
        endpoints: vec![url.to_string()],
        election: "t/leader".into(),
        prefix: "t".into(),
        member: member.into(),
        api: format!("{member}:0"),
        ttl: Duration::from_secs(2),
        margin: Duration::from_millis(200),
    }
}

async fn until(rx: &watch::Receiver<HaState>, what: impl Fn(&HaState) -> bool) -> HaState {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = rx.borrow().clone();
        if what(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out; last state {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_then_a_higher_token_after_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let e = etcd(dir.path());
    let (stop_a, ra) = watch::channel(false);
    let (_stop_b, rb) = watch::channel(false);
    let (a, ja) = medic_ha::spawn(cfg(&e.client_url, "a"), ra);
    let sa = until(&a, |s| s.elected.is_some()).await;
    let (b, _jb) = medic_ha::spawn(cfg(&e.client_url, "b"), rb);
    let sb = until(&b, |s| s.renewed_unix_ms.is_some() && s.leader.is_some()).await;
    assert_eq!(sb.elected, None, "b must follow while a leads");
    assert_eq!(sb.leader.as_deref(), Some("a"));
    let now = Instant::now();
    assert!(matches!(
        sa.verdict(now, Duration::from_secs(2), Duration::from_millis(200)),
        Verdict::Act { .. }
    ));
    let status = medic_ha::cluster_status(
        std::slice::from_ref(&e.client_url),
        "t/leader",
        "t",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(status.leader.as_deref(), Some("a"));
    assert_eq!(status.token, sa.elected);
    assert_eq!(status.members.len(), 2, "{status:?}");

    // a leaves (resigns by revoking its lease): b takes over with a newer token.
    let t0 = Instant::now();
    stop_a.send(true).unwrap();
    ja.await.unwrap();
    let sb = until(&b, |s| s.elected.is_some()).await;
    assert!(sb.elected > sa.elected, "{sb:?} vs {sa:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_reach_etcd_stops_acting_before_its_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let e = etcd(dir.path());
    let (_stop, r) = watch::channel(false);
    let (a, _ja) = medic_ha::spawn(cfg(&e.client_url, "a"), r);
    until(&a, |s| s.elected.is_some() && s.renewed_unix_ms.is_some()).await;
    // etcd goes away: the leader keeps its token but the gate closes within
    // ttl - margin of the last renewal it sent.
    let stopped = Instant::now();
    drop(e);
    let s = until(&a, |s| {
        !matches!(
            s.verdict(
                Instant::now(),
                Duration::from_secs(2),
                Duration::from_millis(200)
            ),
            Verdict::Act { .. }
        )
    })
    .await;
    assert!(
        stopped.elapsed() <= Duration::from_millis(2000),
        "{:?}",
        stopped.elapsed()
    );
    assert!(s.etcd_down || s.elected.is_some(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_fenced_by_the_election_and_can_be_force_released() {
    use medic_ha::locks::{self, Lock, LockError, Scope, Session};
    let dir = tempfile::tempdir().unwrap();
    let e = etcd(dir.path());
    let (stop_a, ra) = watch::channel(false);
    let (a, ja) = medic_ha::spawn(cfg(&e.client_url, "a"), ra);
    let sa = until(&a, |s| s.elected.is_some() && s.leader_key.is_some()).await;
    let session = Session {
        prefix: "t".into(),
        lease: sa.lease.unwrap(),
        leader_key: sa.leader_key.clone().unwrap(),
        token: sa.elected.unwrap(),
        member: "a".into(),
        fenced: true,
    };
    let mut client =
        medic_ha::elector::connect(std::slice::from_ref(&e.client_url), Duration::from_secs(2))
            .await
            .unwrap();
    let web = vec![
        Lock::new(Scope::Incident, "inc-1"),
        Lock::new(Scope::Service, "web"),
    ];
    let held = locks::acquire(&mut client, &session, web.clone(), "act-1")
        .await
        .unwrap();
    assert_eq!(held.keys, ["t/locks/service/web", "t/locks/incident/inc-1"]);
    // Taken: a second holder is refused, naming the holder.
    match locks::acquire(
        &mut client,
        &session,
        vec![Lock::new(Scope::Service, "web")],
        "act-2",
    )
    .await
    {
        Err(LockError::Busy { lock, holder }) => {
            assert_eq!(lock, "service/web");
            assert!(holder.contains("act-1"), "{holder}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(locks::list(&mut client, "t").await.unwrap().len(), 2);
    // The operator force-releases the service lock.
    let was = locks::force_release(&mut client, "t", &Lock::new(Scope::Service, "web"))
        .await
        .unwrap();
    assert!(was.unwrap().contains("act-1"));
    locks::release(&mut client, &held).await;
    assert!(locks::list(&mut client, "t").await.unwrap().is_empty());
    // Deposed (a resigned and its key is gone): its token takes no lock.
    stop_a.send(true).unwrap();
    ja.await.unwrap();
    match locks::acquire(&mut client, &session, web, "act-3").await {
        Err(LockError::Fenced { token }) => assert_eq!(token, session.token),
        other => panic!("{other:?}"),
    }
    assert!(locks::list(&mut client, "t").await.unwrap().is_empty());
}
