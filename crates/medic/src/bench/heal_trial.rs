//! Scaffolding shared by the benches that disturb medic in the middle of a
//! real heal and then read what the audit log says (`medic bench recovery`,
//! `medic bench failover`): the bench's directory, `medic run` processes,
//! signals, polling, and the audit log's checks.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// The directory a bench works in: `dir` (created) when given, otherwise a
/// temporary one, removed when the returned guard is dropped.
pub fn work_dir(dir: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            Ok((d.to_path_buf(), None))
        }
        None => {
            let tmp = tempfile::tempdir().context("creating a temporary directory")?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

/// `program run -c DIR/medic.yaml` started in `dir`: `program` is the medic
/// binary (or a wrapper that ends with it, e.g. `ip netns exec NS medic`);
/// stderr is appended to `DIR/medic.stderr`, stdin and stdout are null,
/// `MEDIC_MODE` is not inherited, and the process is killed when its
/// [`Child`] is dropped. The caller adds its environment and spawns.
pub fn medic_run(mut program: Command, dir: &Path) -> anyhow::Result<Command> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("medic.stderr"))
        .with_context(|| format!("opening {}", dir.join("medic.stderr").display()))?;
    program
        .arg("run")
        .arg("-c")
        .arg(dir.join("medic.yaml"))
        .current_dir(dir)
        .env_remove("MEDIC_MODE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    Ok(program)
}

/// Sends `s` to `pid` (nothing when there is no pid or it is gone).
pub fn signal(pid: Option<u32>, s: nix::sys::signal::Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
    }
}

/// SIGTERM, then wait up to `grace` for the process to end (medic stops its
/// supervised process on the way out), then SIGKILL.
pub async fn terminate(child: &mut Child, grace: Duration) {
    signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Polls `f` (every 50 ms, [`super::wait_until`]) until it is true or
/// `within` passes; whether it became true.
pub async fn wait_true<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    super::wait_until(within, || {
        let ready = f();
        async move { ready.await.then_some(()) }
    })
    .await
    .is_some()
}

/// `action_id`s of the `action.intent` records in the store with neither an
/// `action.outcome` nor an `action.reconciled` record: actions that may
/// have been lost.
pub async fn unmatched_intents(target: &medic_store::StoreTarget) -> anyhow::Result<Vec<String>> {
    let store = medic_store::Store::open_target(target).await?;
    let mut intents = std::collections::BTreeSet::new();
    let mut closed = std::collections::BTreeSet::new();
    let mut after = 0;
    loop {
        let page = store.list_audit(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            let id = serde_json::from_str::<serde_json::Value>(&r.payload)
                .ok()
                .and_then(|v| v["action_id"].as_str().map(str::to_string));
            let Some(id) = id else { continue };
            match r.kind.as_str() {
                "action.intent" => {
                    intents.insert(id);
                }
                "action.outcome" | "action.reconciled" => {
                    closed.insert(id);
                }
                _ => {}
            }
        }
    }
    store.close().await;
    Ok(intents.difference(&closed).cloned().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An intent is unmatched until an outcome or a reconciliation names
    /// its action id; records without one are ignored.
    #[tokio::test]
    async fn unmatched_intents_are_the_intents_without_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("medic.db");
        let store = medic_store::Store::open(&path).await.unwrap();
        let ts = "2026-01-01T00:00:00Z";
        for (kind, payload) in [
            ("action.intent", r#"{"action_id":"a1"}"#),
            ("action.intent", r#"{"action_id":"a2"}"#),
            ("action.intent", r#"{"action_id":"a3"}"#),
            ("action.outcome", r#"{"action_id":"a1"}"#),
            ("action.reconciled", r#"{"action_id":"a3"}"#),
            ("medic.started", "{}"),
        ] {
            store.append_audit(ts, kind, payload).await.unwrap();
        }
        store.close().await;
        let target = medic_store::StoreTarget::Sqlite(path);
        assert_eq!(unmatched_intents(&target).await.unwrap(), vec!["a2"]);
    }

    #[test]
    fn work_dir_is_the_given_one_or_a_temporary_one() {
        let parent = tempfile::tempdir().unwrap();
        let want = parent.path().join("a").join("b");
        let (got, guard) = work_dir(Some(&want)).unwrap();
        assert_eq!(got, want);
        assert!(guard.is_none() && want.is_dir());
        let (tmp, guard) = work_dir(None).unwrap();
        assert!(tmp.is_dir());
        drop(guard);
        assert!(!tmp.exists(), "the temporary directory goes with its guard");
    }
}
