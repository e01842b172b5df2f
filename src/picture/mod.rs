//! Pictures for reviewers: the state graphs of one version ([`states_svg`]), a change drawn
//! side by side ([`change_svg`], [`change_mermaid`]) and the self-contained review report
//! ([`review_html`]). Plain data in (compiled processes, plans, diffs), strings out; nothing
//! here prints or touches files.

mod change;
mod draw;
mod html;
mod layout;
mod legend;
mod mermaid;
mod states;
mod svg;
mod view;

pub use html::{review_html, Listing};
pub use states::to_svg as states_svg;
pub use svg::esc as xml_escape;
pub use view::{from_diff, from_plan, ChangeView, Fate, StateFate, StateRef, ThreadPair};

use crate::states::CompiledProcess;

/// The change as one SVG document (old graph left, new graph right, per thread class).
pub fn change_svg(v: &ChangeView, old: &CompiledProcess, new: &CompiledProcess) -> String {
    change::to_svg(v, old, new)
}

/// The change as a Mermaid flowchart.
pub fn change_mermaid(v: &ChangeView, old: &CompiledProcess, new: &CompiledProcess) -> String {
    mermaid::to_mermaid(v, old, new)
}
