//! Chaos drills (issue 14): a drill's fault action is judged by the same
//! gates as any action, so a kill switch (pause), a freeze window, the mode
//! (dry-run, disabled), the mass-incident latch, budgets and limits all block
//! it. The judgement is pure: nothing is recorded and nothing runs here; the
//! driver records the drill and runs the fault action only on `Ok`.

use super::Engine;
use crate::governance::*;
use crate::types::ActionStage;

/// Why a drill may not inject its fault now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrillBlock {
    UnknownService,
    UnknownAction,
    /// The service has an open incident: no drill into a sick service.
    OpenIncident,
    /// A gate said no (or not yet, or only with a human's approval).
    Gate(ReasonCode),
}

impl DrillBlock {
    pub fn as_str(self) -> &'static str {
        match self {
            DrillBlock::UnknownService => "unknown_service",
            DrillBlock::UnknownAction => "unknown_action",
            DrillBlock::OpenIncident => "open_incident",
            DrillBlock::Gate(r) => r.as_str(),
        }
    }
}

impl Engine {
    /// Would governance let `action` of `service` run now as a fresh
    /// (direct) action? `Ok` only for a plain `run` decision: a canary, an
    /// approval, a deferral or any block refuses the drill.
    pub fn judge_drill(&mut self, service: &str, action: &str) -> Result<(), DrillBlock> {
        self.timeout_cache.clear();
        let svc = self
            .services
            .get(service)
            .ok_or(DrillBlock::UnknownService)?;
        if svc.incident.is_some() {
            return Err(DrillBlock::OpenIncident);
        }
        let spec = svc
            .action_spec(action)
            .cloned()
            .ok_or(DrillBlock::UnknownAction)?;
        let (input, _) = self
            .gate_input(service, &spec, ActionStage::Direct, false)
            .ok_or(DrillBlock::UnknownService)?;
        match decide_with(&self.gov, &input, self.fault) {
            Decision::Run { canary: false } => Ok(()),
            d => Err(DrillBlock::Gate(
                d.reason().map_or(ReasonCode::TargetBusy, |b| b.code),
            )),
        }
    }
}
