//! Action classes: the one table of every fact about a class (default tier,
//! whether it removes capacity, which budget it spends), and the one place
//! that resolves an action's class and tier ([`ResolvedAction::of`]).
use std::fmt;
use std::str::FromStr;

use crate::governance::{change_size_for, ActionGovernance};
use crate::spec::{ActionKind, Risk};

/// What an action does, semantically. Every fact about a class (name, default
/// tier, whether it removes capacity, which budget it spends) is one row of
/// [`CLASS_TABLE`]. An explicit per-action [`crate::ActionSpec::risk`] wins;
/// [`ResolvedAction::of`] is the one place that combines them.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ActionClass {
    ScaleOut,
    ClearCache,
    RollingRestart,
    RateLimit,
    RestartService,
    ResetConnectionPool,
    ToggleFeatureFlag,
    ReloadConfig,
    /// Switch to a degraded fallback path.
    Fallback,
    DatabaseFailover,
    TrafficRedirect,
    Deploy,
    Rollback,
    DataMigration,
    #[default]
    Other,
}

impl ActionClass {
    pub const ALL: [ActionClass; 15] = [
        ActionClass::ScaleOut,
        ActionClass::ClearCache,
        ActionClass::RollingRestart,
        ActionClass::RateLimit,
        ActionClass::RestartService,
        ActionClass::ResetConnectionPool,
        ActionClass::ToggleFeatureFlag,
        ActionClass::ReloadConfig,
        ActionClass::Fallback,
        ActionClass::DatabaseFailover,
        ActionClass::TrafficRedirect,
        ActionClass::Deploy,
        ActionClass::Rollback,
        ActionClass::DataMigration,
        ActionClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        self.facts().name
    }

    /// This class's row of [`CLASS_TABLE`].
    pub fn facts(self) -> &'static ClassFacts {
        // The table lists every class once, in `ALL` order (tested).
        &CLASS_TABLE[self as usize]
    }

    /// The default risk tier of this class, from [`CLASS_TABLE`].
    pub fn default_risk(self) -> Risk {
        self.facts().default_risk
    }

    /// Whether the action takes capacity away while it runs (headroom gate),
    /// from [`CLASS_TABLE`].
    pub fn removes_capacity(self) -> bool {
        self.facts().removes_capacity
    }

    /// Which per-kind budget the action spends, from [`CLASS_TABLE`].
    pub fn budget(self) -> Option<ClassBudget> {
        self.facts().budget
    }

    /// Class implied by an engine action kind when none is configured.
    pub fn from_kind(kind: ActionKind) -> ActionClass {
        match kind {
            ActionKind::Restart
            | ActionKind::Docker
            | ActionKind::Systemd
            | ActionKind::Kubernetes => ActionClass::RestartService,
            ActionKind::Exec | ActionKind::Http => ActionClass::Other,
        }
    }
}

/// A per-kind budget that an action class spends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClassBudget {
    /// Counts as a restart: `policy.restart_budget` per `budget_window`.
    Restart,
    /// Counts against `limits.feature_disables_per_hour` (fleet-wide).
    FeatureFlag,
    /// Counts against `limits.fallbacks_per_service_per_hour`.
    Fallback,
}

/// One row of the action-class table: every fact about a class, in one place.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClassFacts {
    pub class: ActionClass,
    /// The name used in config, the audit log and the API.
    pub name: &'static str,
    /// The tier an action of this class gets when it states no `risk`.
    pub default_risk: Risk,
    /// Takes capacity away while it runs (headroom gate).
    pub removes_capacity: bool,
    pub budget: Option<ClassBudget>,
}

const fn row(
    class: ActionClass,
    name: &'static str,
    default_risk: Risk,
    removes_capacity: bool,
    budget: Option<ClassBudget>,
) -> ClassFacts {
    ClassFacts {
        class,
        name,
        default_risk,
        removes_capacity,
        budget,
    }
}

/// The one table of action classes. Config, engine, simulator docs and API
/// read it; `docs/governance.md` is checked against it by a test.
pub const CLASS_TABLE: [ClassFacts; 15] = {
    use ActionClass as C;
    use ClassBudget as B;
    use Risk::{Critical, High, Low, Medium};
    [
        row(C::ScaleOut, "scale_out", Low, false, None),
        row(C::ClearCache, "clear_cache", Low, false, None),
        row(C::RollingRestart, "rolling_restart", Low, true, None),
        row(C::RateLimit, "rate_limit", Low, false, None),
        row(
            C::RestartService,
            "restart_service",
            Medium,
            true,
            Some(B::Restart),
        ),
        row(
            C::ResetConnectionPool,
            "reset_connection_pool",
            Medium,
            true,
            None,
        ),
        row(
            C::ToggleFeatureFlag,
            "toggle_feature_flag",
            Medium,
            false,
            Some(B::FeatureFlag),
        ),
        row(C::ReloadConfig, "reload_config", Medium, false, None),
        row(C::Fallback, "fallback", Medium, false, Some(B::Fallback)),
        row(C::DatabaseFailover, "database_failover", High, true, None),
        row(C::TrafficRedirect, "traffic_redirect", High, false, None),
        row(C::Deploy, "deploy", High, true, None),
        row(C::Rollback, "rollback", High, true, None),
        row(C::DataMigration, "data_migration", Critical, false, None),
        row(C::Other, "other", Medium, false, None),
    ]
};

/// The facts the engine acts on for one action, resolved in one place: the
/// class from governance or else the action's kind, the tier from the
/// action's explicit `risk` or else the class's default.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAction {
    pub class: ActionClass,
    pub risk: Risk,
    pub change_size: f64,
    pub removes_capacity: bool,
    pub canary: bool,
}

impl ResolvedAction {
    pub fn of(action: &crate::ActionSpec, gov: Option<&ActionGovernance>) -> ResolvedAction {
        let class = gov
            .and_then(|g| g.class)
            .unwrap_or(ActionClass::from_kind(action.kind));
        let risk = action.risk.unwrap_or(class.default_risk());
        ResolvedAction {
            class,
            risk,
            change_size: gov
                .and_then(|g| g.change_size)
                .unwrap_or(change_size_for(risk)),
            removes_capacity: gov
                .and_then(|g| g.removes_capacity)
                .unwrap_or(class.removes_capacity()),
            canary: gov.is_none_or(|g| g.canary),
        }
    }
}

impl fmt::Display for ActionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionClass::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s || c.as_str().replace('_', "-") == s)
            .ok_or_else(|| format!("unknown action class `{s}`"))
    }
}
