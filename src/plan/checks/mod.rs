//! The checks that raise findings, grouped like the catalogue ([`findings`](super::findings)):
//! [`mapping`] (BPM01xx state and thread mapping), [`resume`] (02xx instances resuming),
//! [`matching`] (03xx activity matching), [`identity`] (04xx runtime environment and process
//! identity). Each `run(cx, out)` reads the decided [`Scope`] and appends findings and the
//! preconditions they need; none decides the verdict.

mod identity;
mod mapping;
mod matching;
mod resume;

pub(super) use identity::actor_pool;

use super::model::*;
use crate::bpl::Bpl;
use crate::diff::Analysis;
use crate::states::{CompiledProcess, State};

/// What the plan covers, decided before any check runs: the thread, state and handler
/// mappings (overrides applied), the context changes (defaults applied).
pub(super) struct Scope<'c> {
    /// The new version compiles into another package: nothing is migrated.
    pub versioned: bool,
    /// Old and new are different classes.
    pub class_changed: bool,
    pub threads: Vec<ThreadMapping>,
    pub handlers: Vec<HandlerMapping>,
    pub context: Vec<ContextPropertyChange>,
    /// The states the overrides file mapped (`[[map]]`).
    pub overridden: Vec<Overridden<'c>>,
}

/// A state mapped by the overrides file.
pub(super) struct Overridden<'c> {
    pub old_class: &'c str,
    pub old: &'c State,
    pub new_class: &'c str,
    pub new: &'c State,
}

/// What every check reads.
pub(super) struct Context<'x, 'a> {
    pub a: &'x Analysis<'a>,
    pub old: &'x Bpl,
    pub new: &'x Bpl,
    pub old_c: &'x CompiledProcess,
    pub new_c: &'x CompiledProcess,
    pub scope: &'x Scope<'x>,
}

/// What the checks produce.
#[derive(Default)]
pub(super) struct Findings {
    pub findings: Vec<Finding>,
    pub pre: Vec<Precondition>,
    pub default_suggestions: Vec<DefaultSuggestion>,
}

/// Every check, in the order whose preconditions the plan lists (mapping before calls).
pub(super) fn run(cx: &Context, out: &mut Findings) {
    identity::run(cx, out);
    if cx.scope.versioned {
        // No instance migrates, but new ones run the new version's compensates.
        out.findings.extend(resume::unresolved_compensates(
            cx.a,
            cx.old_c,
            cx.new_c,
            &Default::default(),
        ));
        return;
    }
    mapping::run(cx, out);
    resume::run(cx, out);
    mapping::stale_keys(cx, out);
    matching::run(cx, out);
}
