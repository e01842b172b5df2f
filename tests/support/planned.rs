//! A plan together with the diff it rests on, for tests that check one against the other
//! (`plan::build` returns the plan alone: it turns the diff's per-state deltas into mappings).

use bplmigrate::bpl::Bpl;
use bplmigrate::diff::{self, MatchLimits, ProcessDiff};
use bplmigrate::plan::{self, MigrationPlan, Overrides, PlanError};
use bplmigrate::states::CompiledProcess;

pub struct Planned {
    pub plan: MigrationPlan,
    pub diff: ProcessDiff,
}

#[allow(dead_code)]
pub fn build(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    overrides: Option<&Overrides>,
) -> Result<Planned, PlanError> {
    build_with_limits(old, new, old_c, new_c, overrides, &MatchLimits::default())
}

pub fn build_with_limits(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    overrides: Option<&Overrides>,
    limits: &MatchLimits,
) -> Result<Planned, PlanError> {
    let plan = plan::build_with_limits(old, new, old_c, new_c, overrides, limits)?;
    let pins = plan::pins(old, new, overrides.unwrap_or(&Overrides::default()))?;
    let diff = diff::diff_with_limits(old, new, old_c, new_c, &pins, limits)?;
    Ok(Planned { plan, diff })
}
