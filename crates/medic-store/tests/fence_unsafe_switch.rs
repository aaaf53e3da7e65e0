//! The deliberate-bug switch `MEDIC_HA_UNSAFE_NO_FENCE=1` (tests only) turns
//! the fencing check off: a stale leader's write lands. Its own test binary,
//! since it sets the variable for the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDb;

#[tokio::test]
async fn without_fencing_a_stale_leaders_write_lands() {
    std::env::set_var(medic_store::UNSAFE_NO_FENCE_ENV, "1");
    for db in TestDb::all().await {
        eprintln!("backend: {}", db.name);
        let old = db.open().await;
        let new = db.open().await;
        new.set_fence(Some(9));
        new.append_audit("2026-01-01T00:00:00Z", "new", "{}")
            .await
            .unwrap();
        old.set_fence(Some(2));
        old.append_audit("2026-01-01T00:00:01Z", "stale", "{}")
            .await
            .unwrap();
        let kinds: Vec<String> = new
            .list_audit(0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect();
        assert_eq!(kinds, ["new", "stale"]);
    }
}
