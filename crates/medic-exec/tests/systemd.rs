//! The systemd executor at the command boundary: a `systemctl` stand-in (a
//! shell script) records its argv and answers like systemctl would, since no
//! service manager runs here. Checks the exact argv, `--user`, the state read
//! after the action, a failing job and a hung one.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medic_config::{ActionExec, SystemdOp};
use medic_exec::systemd::SystemdExecutor;
use medic_exec::{CancelToken, ExecError, ExecRequest, Executor};

fn stand_in(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("argv.log");
    let script = dir.join("systemctl");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo "$*" >> '{}'
for a in "$@"; do last="$a"; done
case "$*" in
  *show*) printf 'ActiveState=active\nSubState=running\nMainPID=4242\n' ;;
  *) case "$last" in
       broken.service) echo "Job for broken.service failed because the control process exited with error code." >&2; exit 1 ;;
       slow.service) exec sleep 30 ;;
     esac ;;
esac
"#,
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn req(op: SystemdOp, unit: &str, user: bool, timeout: Duration) -> ExecRequest {
    ExecRequest::new(
        "web",
        "bounce",
        ActionExec::Systemd {
            op,
            unit: unit.into(),
            user,
            timeout,
        },
        Duration::from_secs(60),
    )
}

#[tokio::test]
async fn systemctl_is_called_with_the_unit_and_the_state_after_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (program, log) = stand_in(dir.path());
    let ex = SystemdExecutor { program };
    let r = req(
        SystemdOp::Restart,
        "web.service",
        false,
        Duration::from_secs(5),
    );
    assert_eq!(r.timeout, Duration::from_secs(5));
    let out = ex.execute(r, CancelToken::new()).await.unwrap();
    assert!(
        out.detail.starts_with(
            "systemctl restart web.service: ActiveState=active SubState=running MainPID=4242"
        ),
        "{}",
        out.detail
    );
    let out = ex
        .execute(
            req(
                SystemdOp::Reload,
                "web.service",
                true,
                Duration::from_secs(5),
            ),
            CancelToken::new(),
        )
        .await
        .unwrap();
    assert!(
        out.detail.starts_with("systemctl reload web.service"),
        "{}",
        out.detail
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "restart -- web.service",
            "show -p ActiveState,SubState,MainPID,ExecMainStartTimestamp -- web.service",
            "--user reload -- web.service",
            "--user show -p ActiveState,SubState,MainPID,ExecMainStartTimestamp -- web.service",
        ]
    );
}

#[tokio::test]
async fn a_failed_job_and_a_hung_one_are_typed_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (program, _log) = stand_in(dir.path());
    let ex = SystemdExecutor { program };
    let err = ex
        .execute(
            req(
                SystemdOp::Restart,
                "broken.service",
                false,
                Duration::from_secs(5),
            ),
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    match &err {
        ExecError::NonZeroExit { status, output } => {
            assert!(status.contains('1'), "{status}");
            assert!(output.contains("Job for broken.service failed"), "{output}");
        }
        other => panic!("expected NonZeroExit, got {other:?}"),
    }
    let t0 = Instant::now();
    let err = ex
        .execute(
            req(
                SystemdOp::Restart,
                "slow.service",
                false,
                Duration::from_millis(300),
            ),
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Timeout(_)), "{err:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the hung systemctl was killed"
    );
}

#[tokio::test]
async fn a_missing_systemctl_is_a_spawn_failure() {
    let ex = SystemdExecutor {
        program: PathBuf::from("/nonexistent/systemctl"),
    };
    let err = ex
        .execute(
            req(
                SystemdOp::Start,
                "web.service",
                false,
                Duration::from_secs(5),
            ),
            CancelToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Spawn(_)), "{err:?}");
}
