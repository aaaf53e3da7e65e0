//! systemd executor over `systemctl` (the command boundary).
//!
//! `systemctl [--user] <op> -- <unit>` with the action's timeout (the
//! process group is killed on timeout or cancel), then `systemctl show` for
//! the unit's state after it, which goes into the output (and the audit
//! record). `systemctl` waits for the job to finish, so a restart that fails
//! (unit enters `failed`) is a non-zero exit here.
//!
//! Tested at the command boundary (a recording `systemctl` stand-in): no
//! service manager runs where medic's tests run. See docs/executors.md.
use std::collections::BTreeMap;
use std::path::PathBuf;

use medic_config::{ActionExec, SystemdOp};
use medic_core::ActionKind;

use crate::executor::{CancelToken, ExecError, ExecOutput, ExecRequest, ExecResult, Executor};
use crate::supervisor::BoxFuture;

/// The properties of `systemctl show` reported after an action.
pub const SHOW_PROPERTIES: &str = "ActiveState,SubState,MainPID,ExecMainStartTimestamp";

/// The argv of `systemctl` for `op` on `unit`.
pub fn command(program: &str, op: SystemdOp, unit: &str, user: bool) -> Vec<String> {
    let mut argv = vec![program.to_string()];
    if user {
        argv.push("--user".into());
    }
    argv.extend([op.as_str().to_string(), "--".into(), unit.to_string()]);
    argv
}

/// The argv of the `systemctl show` that follows an action.
pub fn show_command(program: &str, unit: &str, user: bool) -> Vec<String> {
    let mut argv = vec![program.to_string()];
    if user {
        argv.push("--user".into());
    }
    argv.extend([
        "show".to_string(),
        "-p".into(),
        SHOW_PROPERTIES.into(),
        "--".into(),
        unit.to_string(),
    ]);
    argv
}

/// Runs `systemd:` actions with `program` (`systemctl` on PATH by default).
pub struct SystemdExecutor {
    pub program: PathBuf,
}

impl Default for SystemdExecutor {
    fn default() -> Self {
        SystemdExecutor {
            program: PathBuf::from("systemctl"),
        }
    }
}

impl Executor for SystemdExecutor {
    fn kind(&self) -> ActionKind {
        ActionKind::Systemd
    }

    fn execute(&self, req: ExecRequest, cancel: CancelToken) -> BoxFuture<'static, ExecResult> {
        let program = self.program.to_string_lossy().to_string();
        Box::pin(async move {
            let ActionExec::Systemd {
                op,
                unit,
                user,
                timeout,
            } = req.spec
            else {
                return Err(ExecError::Other("not a systemd action".into()));
            };
            let env = BTreeMap::new();
            let argv = command(&program, op, &unit, user);
            let out = crate::exec_command(&argv, &env, None, timeout, &cancel).await?;
            // The state after the job; a failure to read it does not undo
            // the action's success.
            let show = show_command(&program, &unit, user);
            let state = match crate::exec_command(&show, &env, None, timeout, &cancel).await {
                Ok(s) => s.detail.replace('\n', " "),
                Err(e) => format!("state unknown: {e}"),
            };
            let mut detail = format!("systemctl {} {unit}: {state}", op.as_str());
            if !out.detail.is_empty() {
                detail.push_str(&format!("\n{}", out.detail));
            }
            Ok(ExecOutput { detail })
        })
    }
}
