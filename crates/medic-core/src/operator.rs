//! Operator commands: who may do what, and the answer to each.
//!
//! The edge (API, CLI) authenticates the caller and builds the [`Actor`];
//! nothing in a request body names who acts. [`crate::Engine::operate`]
//! returns the answer directly.
use std::fmt;
use std::time::Duration;

use crate::spec::{ActionKind, Mode};
use crate::types::ActionId;

/// A role, ordered by what it may do: each includes the ones before it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    /// Pause, resume, cancel, resolve, re-enable autoheal.
    Operator,
    /// Approve and reject.
    Approver,
    /// Mode, force.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// Who issues a command, as established by the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The name recorded in the audit log (a token's name, a local user).
    pub id: String,
    pub role: Role,
}

impl Actor {
    pub fn new(id: impl Into<String>, role: Role) -> Actor {
        Actor {
            id: id.into(),
            role,
        }
    }
}

/// Operator commands. The actor is passed beside the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    SetMode {
        service: Option<String>,
        mode: Mode,
    },
    ResolveIncident {
        id: String,
        reason: String,
    },
    EnableAutoheal {
        service: String,
    },
    /// Kill switch: hold automation for a service (or all), an action kind
    /// (or all), for a duration (or until resumed). Detection, diagnosis and
    /// "would do" records go on.
    Pause {
        service: Option<String>,
        kind: Option<ActionKind>,
        duration: Option<Duration>,
        reason: String,
    },
    /// Lift the pauses with exactly this scope; `None`/`None` lifts every
    /// pause and the mass-incident latch.
    Resume {
        service: Option<String>,
        kind: Option<ActionKind>,
    },
    /// Approve a pending approval (`apr-N` or `N`). HIGH and CRITICAL need two
    /// distinct approvers when the two-person rule is on.
    Approve {
        id: String,
    },
    Reject {
        id: String,
        reason: String,
    },
    /// Ask the driver to cancel a running action ([`crate::Command::CancelAction`]).
    CancelAction {
        id: ActionId,
        reason: String,
    },
    /// Run an action past every gate but the target lock. `reason` is
    /// mandatory; audited as `override`.
    ForceAction {
        service: String,
        action: String,
        reason: String,
    },
    /// Remove the lock on `key` (`scope:target`), whoever holds it (issue
    /// 10). `reason` is mandatory; audited as `lock.force_released`.
    ReleaseLock {
        key: crate::locks::LockKey,
        reason: String,
    },
}

impl OperatorCommand {
    /// The least role that may issue this command.
    pub fn required_role(&self) -> Role {
        match self {
            OperatorCommand::SetMode { .. }
            | OperatorCommand::ForceAction { .. }
            | OperatorCommand::ReleaseLock { .. } => Role::Admin,
            OperatorCommand::Approve { .. } | OperatorCommand::Reject { .. } => Role::Approver,
            OperatorCommand::ResolveIncident { .. }
            | OperatorCommand::EnableAutoheal { .. }
            | OperatorCommand::Pause { .. }
            | OperatorCommand::Resume { .. }
            | OperatorCommand::CancelAction { .. } => Role::Operator,
        }
    }

    /// A stable name for audit and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            OperatorCommand::SetMode { .. } => "set_mode",
            OperatorCommand::ResolveIncident { .. } => "resolve",
            OperatorCommand::EnableAutoheal { .. } => "enable_autoheal",
            OperatorCommand::Pause { .. } => "pause",
            OperatorCommand::Resume { .. } => "resume",
            OperatorCommand::Approve { .. } => "approve",
            OperatorCommand::Reject { .. } => "reject",
            OperatorCommand::CancelAction { .. } => "cancel",
            OperatorCommand::ForceAction { .. } => "force",
            OperatorCommand::ReleaseLock { .. } => "release_lock",
        }
    }
}

/// An accepted command: what it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub message: String,
}

/// Why an operator command was refused. Closed: the API maps each variant to
/// one error code and HTTP status without reading its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorError {
    Forbidden {
        needed: Role,
        have: Role,
    },
    UnknownService(String),
    UnknownAction {
        service: String,
        action: String,
    },
    IncidentNotOpen(String),
    ApprovalNotFound(String),
    SameApprover {
        approval: String,
        by: String,
    },
    ActionNotRunning(ActionId),
    ReasonRequired,
    TargetBusy(String),
    /// No lock is held on this key.
    LockNotHeld(String),
}

/// The stable code of an [`OperatorError`] (audit `reason_code`, API code).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OperatorErrorCode {
    Forbidden,
    UnknownService,
    UnknownAction,
    IncidentNotOpen,
    ApprovalNotFound,
    SameApprover,
    ActionNotRunning,
    ReasonRequired,
    TargetBusy,
    LockNotHeld,
}

impl OperatorErrorCode {
    pub const ALL: [OperatorErrorCode; 10] = [
        OperatorErrorCode::Forbidden,
        OperatorErrorCode::UnknownService,
        OperatorErrorCode::UnknownAction,
        OperatorErrorCode::IncidentNotOpen,
        OperatorErrorCode::ApprovalNotFound,
        OperatorErrorCode::SameApprover,
        OperatorErrorCode::ActionNotRunning,
        OperatorErrorCode::ReasonRequired,
        OperatorErrorCode::TargetBusy,
        OperatorErrorCode::LockNotHeld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorErrorCode::Forbidden => "forbidden",
            OperatorErrorCode::UnknownService => "unknown_service",
            OperatorErrorCode::UnknownAction => "unknown_action",
            OperatorErrorCode::IncidentNotOpen => "incident_not_open",
            OperatorErrorCode::ApprovalNotFound => "approval_not_found",
            OperatorErrorCode::SameApprover => "same_approver",
            OperatorErrorCode::ActionNotRunning => "action_not_running",
            OperatorErrorCode::ReasonRequired => "reason_required",
            OperatorErrorCode::TargetBusy => "target_busy",
            OperatorErrorCode::LockNotHeld => "lock_not_held",
        }
    }
}

impl OperatorError {
    pub fn code(&self) -> OperatorErrorCode {
        use OperatorErrorCode as C;
        match self {
            OperatorError::Forbidden { .. } => C::Forbidden,
            OperatorError::UnknownService(_) => C::UnknownService,
            OperatorError::UnknownAction { .. } => C::UnknownAction,
            OperatorError::IncidentNotOpen(_) => C::IncidentNotOpen,
            OperatorError::ApprovalNotFound(_) => C::ApprovalNotFound,
            OperatorError::SameApprover { .. } => C::SameApprover,
            OperatorError::ActionNotRunning(_) => C::ActionNotRunning,
            OperatorError::ReasonRequired => C::ReasonRequired,
            OperatorError::TargetBusy(_) => C::TargetBusy,
            OperatorError::LockNotHeld(_) => C::LockNotHeld,
        }
    }
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorError::Forbidden { needed, have } => write!(
                f,
                "this needs the {} role; the caller has {}",
                needed.as_str(),
                have.as_str()
            ),
            OperatorError::UnknownService(s) => write!(f, "unknown service {s}"),
            OperatorError::UnknownAction { service, action } => {
                write!(f, "{service} has no action {action}")
            }
            OperatorError::IncidentNotOpen(id) => write!(f, "no open incident {id}"),
            OperatorError::ApprovalNotFound(id) => write!(f, "no pending approval {id}"),
            OperatorError::SameApprover { approval, by } => write!(
                f,
                "{by} already approved {approval}; a second, different approver is needed"
            ),
            OperatorError::ActionNotRunning(id) => write!(f, "{id} is not running"),
            OperatorError::ReasonRequired => write!(f, "an override needs a reason"),
            OperatorError::TargetBusy(s) => write!(f, "an action is already running on {s}"),
            OperatorError::LockNotHeld(k) => write!(f, "no lock is held on {k}"),
        }
    }
}

impl std::error::Error for OperatorError {}
