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
    /// Remove instances (the undo of a scale-out, or shedding cost).
    ScaleIn,
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
    /// A high-risk failover hook (to a standby, another region, ...).
    Failover,
    #[default]
    Other,
}

impl ActionClass {
    pub const ALL: [ActionClass; 17] = [
        ActionClass::ScaleOut,
        ActionClass::ScaleIn,
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
        ActionClass::Failover,
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

    /// The undo this class declares (catalogue), from [`CLASS_TABLE`].
    pub fn undo(self) -> Undo {
        self.facts().undo
    }

    /// How an action of this class is verified, from [`CLASS_TABLE`].
    pub fn verification(self) -> Verification {
        self.facts().verification
    }

    /// Class implied by an engine action kind when none is configured.
    pub fn from_kind(kind: ActionKind) -> ActionClass {
        match kind {
            ActionKind::Restart
            | ActionKind::Docker
            | ActionKind::Systemd
            | ActionKind::Kubernetes => ActionClass::RestartService,
            ActionKind::Signal => ActionClass::ReloadConfig,
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

/// What undoes an action of a class (the action catalogue, issue 10). The
/// concrete undo is the action's `revert.action`; the class says whether one
/// is expected.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Undo {
    /// Not reversible: an action of this class is High or Critical (approval
    /// or never automatic), or a heal with nothing to undo (a restart).
    None,
    /// Undone by the named inverse change.
    Inverse(&'static str),
}

/// How the outcome of an action of a class is verified.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// A heal (restart and the like): `policy.verify_window` (default 60s);
    /// the triggering probe must recover; a failed verification retries the
    /// heal through every gate.
    Heal,
    /// A change (reload, flag, scale, shed, circuit, rollback, ...): compared
    /// with the baseline from before the action over the change's window
    /// (default 5m); worse, or not better by its end, runs the undo and
    /// escalates.
    Change,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Heal => "heal",
            Verification::Change => "change",
        }
    }
}

/// The verify window of a change when its action states none.
pub const CHANGE_VERIFY_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// The undo this class declares (catalogue).
    pub undo: Undo,
    pub verification: Verification,
}

const fn row(
    class: ActionClass,
    name: &'static str,
    default_risk: Risk,
    removes_capacity: bool,
    budget: Option<ClassBudget>,
    undo: Undo,
    verification: Verification,
) -> ClassFacts {
    ClassFacts {
        class,
        name,
        default_risk,
        removes_capacity,
        budget,
        undo,
        verification,
    }
}

/// The one table of action classes. Config, engine, simulator docs and API
/// read it; `docs/governance.md` is checked against it by a test.
pub const CLASS_TABLE: [ClassFacts; 17] = {
    use ActionClass as C;
    use ClassBudget as B;
    use Risk::{Critical, High, Low, Medium};
    use Undo::{Inverse, None as No};
    use Verification::{Change, Heal};
    [
        row(
            C::ScaleOut,
            "scale_out",
            Low,
            false,
            None,
            Inverse("scale_in"),
            Change,
        ),
        row(
            C::ScaleIn,
            "scale_in",
            Medium,
            true,
            None,
            Inverse("scale_out"),
            Change,
        ),
        row(C::ClearCache, "clear_cache", Low, false, None, No, Heal),
        row(
            C::RollingRestart,
            "rolling_restart",
            Low,
            true,
            None,
            No,
            Heal,
        ),
        row(
            C::RateLimit,
            "rate_limit",
            Low,
            false,
            None,
            Inverse("lift_limit"),
            Change,
        ),
        row(
            C::RestartService,
            "restart_service",
            Medium,
            true,
            Some(B::Restart),
            No,
            Heal,
        ),
        row(
            C::ResetConnectionPool,
            "reset_connection_pool",
            Medium,
            true,
            None,
            No,
            Heal,
        ),
        row(
            C::ToggleFeatureFlag,
            "toggle_feature_flag",
            Medium,
            false,
            Some(B::FeatureFlag),
            Inverse("restore_flag"),
            Change,
        ),
        row(
            C::ReloadConfig,
            "reload_config",
            Medium,
            false,
            None,
            Inverse("reload_previous_config"),
            Change,
        ),
        row(
            C::Fallback,
            "fallback",
            Medium,
            false,
            Some(B::Fallback),
            Inverse("close_circuit"),
            Change,
        ),
        row(
            C::DatabaseFailover,
            "database_failover",
            High,
            true,
            None,
            No,
            Change,
        ),
        row(
            C::TrafficRedirect,
            "traffic_redirect",
            High,
            false,
            None,
            Inverse("redirect_back"),
            Change,
        ),
        row(
            C::Deploy,
            "deploy",
            High,
            true,
            None,
            Inverse("rollback"),
            Change,
        ),
        row(C::Rollback, "rollback", High, true, None, No, Change),
        row(
            C::DataMigration,
            "data_migration",
            Critical,
            false,
            None,
            No,
            Change,
        ),
        row(C::Failover, "failover", High, true, None, No, Change),
        row(C::Other, "other", Medium, false, None, No, Heal),
    ]
};

/// The facts the engine acts on for one action, resolved in one place: the
/// class from governance or else the action's kind, the tier from the
/// action's explicit `risk` or else the class's default (at least HIGH for a
/// change that declares no undo).
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
        // The catalogue: a change with no declared undo (`revert`) is not
        // reversible, so it needs a human (at least HIGH) unless the action
        // states its tier itself.
        let change = action.verify.is_some() || class.verification() == Verification::Change;
        let default = if change && action.revert.is_none() {
            class.default_risk().max(Risk::High)
        } else {
            class.default_risk()
        };
        let risk = action.risk.unwrap_or(default);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The catalogue's rule: a change that declares no undo is not
    /// reversible, so it is never automatic below approval (HIGH or
    /// CRITICAL); every reversible change names its inverse.
    #[test]
    fn irreversible_changes_need_approval() {
        for row in CLASS_TABLE {
            if row.verification == Verification::Change && row.undo == Undo::None {
                assert!(
                    row.default_risk >= Risk::High,
                    "{} is an irreversible change below HIGH",
                    row.name
                );
            }
        }
        assert_eq!(
            ActionClass::ReloadConfig.undo(),
            Undo::Inverse("reload_previous_config")
        );
        assert_eq!(
            ActionClass::RestartService.verification(),
            Verification::Heal
        );
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;
    use crate::spec::{ActionKind, ActionSpec, RevertSpec};
    use crate::ActionGovernance;

    fn spec(revert: bool, risk: Option<Risk>) -> ActionSpec {
        ActionSpec {
            name: "reload".into(),
            kind: ActionKind::Http,
            risk,
            revert: revert.then(|| RevertSpec {
                action: "previous".into(),
                after: std::time::Duration::from_secs(60),
                green_checks: None,
                green_probe: None,
            }),
            verify: None,
        }
    }

    /// A change without a declared undo is not reversible: at least HIGH,
    /// unless the action states its tier; a heal is unaffected.
    #[test]
    fn an_irreversible_change_needs_approval() {
        let g = ActionGovernance {
            class: Some(ActionClass::ReloadConfig),
            change_size: None,
            removes_capacity: None,
            canary: true,
        };
        assert_eq!(
            ResolvedAction::of(&spec(true, None), Some(&g)).risk,
            Risk::Medium
        );
        assert_eq!(
            ResolvedAction::of(&spec(false, None), Some(&g)).risk,
            Risk::High
        );
        assert_eq!(
            ResolvedAction::of(&spec(false, Some(Risk::Low)), Some(&g)).risk,
            Risk::Low
        );
        // No class: an http action is `other`, a heal.
        assert_eq!(
            ResolvedAction::of(&spec(false, None), None).risk,
            Risk::Medium
        );
    }
}
