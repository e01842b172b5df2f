//! `ProcessDiff`: the data handed from `diff` to `plan` and printed by `bplmigrate diff`.

use crate::states::{ActivityRef, Role, StateName};
use serde::{Deserialize, Serialize};

pub const DIFF_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessDiff {
    pub schema_version: u32,
    pub compiler: String,
    pub old: DiffSource,
    pub new: DiffSource,
    /// Same activity tree (ignoring layout and annotations), same context, same class names.
    pub identical: bool,
    /// One entry per old activity (document order), then one per inserted new activity.
    pub activities: Vec<ActivityChange>,
    /// `<switch>` cases paired through the switch match (cases are not activities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<CaseMatch>,
    /// One entry per old thread class (in number order), then one per added new thread class.
    pub threads: Vec<ThreadDelta>,
    /// One entry per old `OnResponse<n>`, then one per added new handler.
    pub handlers: Vec<HandlerDelta>,
    pub context: Vec<ContextDelta>,
    /// What the matcher could not decide alone: ambiguities, limits hit, guesses by position.
    pub issues: Vec<MatchIssue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffSource {
    pub origin: String,
    pub sha256: String,
    pub class: String,
    pub package: String,
    pub version: Option<u64>,
}

/// How an old/new activity pair was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchVia {
    /// Pinned in the overrides file.
    Pinned,
    /// The compiled top-level sequences.
    Root,
    /// Identical subtree, unique in both trees.
    Exact,
    /// Identical subtree aligned among its siblings.
    ExactAligned,
    /// Same element and key attributes.
    Key,
    /// Same element and name.
    Name,
    /// Same key attributes, different name.
    Rename,
    /// Containers whose descendants correspond.
    Children,
    /// The only candidate of its element between two aligned neighbours.
    Position,
    /// Inside an identical subtree matched as a whole.
    Inside,
    /// A state, not an activity: the wait of a synchronous `<call>` and that of a `<sync>` on
    /// that call alone (spec 3.4.4a: they compile and persist alike).
    SameWait,
    /// A scope's `<catch>` widened to its `<catchall>`: the new version has no catch of that
    /// fault, so the fault now goes to the catchall.
    Widened,
    /// A scope's `<catch>` whose fault was renamed (with the `<throw>`s that raise it), not
    /// replaced: its name kept, or unnamed at the same place with the same body.
    FaultRenamed,
    /// Identical copies ending two or more branches of a conditional, hoisted into one
    /// activity right after it: the first copy is paired with it, the states of the others
    /// map to its states.
    Merged,
}

impl MatchVia {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchVia::Pinned => "pinned",
            MatchVia::Root => "root",
            MatchVia::Exact => "exact",
            MatchVia::ExactAligned => "exact_aligned",
            MatchVia::Key => "key",
            MatchVia::Name => "name",
            MatchVia::Rename => "rename",
            MatchVia::Children => "children",
            MatchVia::Position => "position",
            MatchVia::Inside => "inside",
            MatchVia::SameWait => "same_wait",
            MatchVia::Widened => "widened",
            MatchVia::FaultRenamed => "fault_renamed",
            MatchVia::Merged => "merged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityChangeKind {
    /// Matched, and the whole subtree is identical in place.
    Unchanged,
    /// Matched, with at least one aspect changed (see `aspects`), or with changes inside.
    Changed,
    Removed,
    Inserted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// Different parent (re-nested, or moved to another branch/case/list).
    Moved,
    /// Same parent and list, but its order relative to its matched siblings changed.
    Reordered,
    /// The `name` attribute changed.
    Renamed,
    /// Other own attributes changed (target, condition, value, …).
    Modified,
    /// Was disabled, now enabled.
    Enabled,
    /// Was enabled, now disabled.
    Disabled,
    /// Something inside changed.
    Contents,
}

impl Aspect {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Moved => "moved",
            Aspect::Reordered => "reordered",
            Aspect::Renamed => "renamed",
            Aspect::Modified => "modified",
            Aspect::Enabled => "enabled",
            Aspect::Disabled => "disabled",
            Aspect::Contents => "contents",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityChange {
    pub change: ActivityChangeKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aspects: Vec<Aspect>,
    pub old: Option<ActivityRef>,
    pub new: Option<ActivityRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<MatchVia>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseMatch {
    pub old_switch: ActivityRef,
    pub new_switch: ActivityRef,
    /// 1-based index among the user cases (`SWITCH_CASE(i)`).
    pub old_case: u32,
    pub new_case: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeltaKind {
    Unchanged,
    Renumbered,
    Removed,
    Added,
}

impl DeltaKind {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            DeltaKind::Unchanged => "unchanged",
            DeltaKind::Renumbered => "renumbered",
            DeltaKind::Removed => "removed",
            DeltaKind::Added => "added",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadDelta {
    pub old: Option<u32>,
    pub new: Option<u32>,
    pub old_class: Option<String>,
    pub new_class: Option<String>,
    pub change: DeltaKind,
    /// Every old state (allocation order), then every added new state.
    pub states: Vec<StateDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDelta {
    pub old: Option<StateName>,
    pub new: Option<StateName>,
    /// The old role (the new one for added states).
    pub role: Role,
    /// The new role when it is spelled differently (`CATCH(2)` → `CATCH(1)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_role: Option<Role>,
    pub old_activity: Option<ActivityRef>,
    pub new_activity: Option<ActivityRef>,
    pub wait: bool,
    pub join: bool,
    pub change: DeltaKind,
    /// How the owning activity was matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<MatchVia>,
    /// Why a state with a matched owner still has no counterpart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerDelta {
    pub old: Option<String>,
    pub new: Option<String>,
    /// Call name (completion key) in the old version.
    pub old_call: Option<String>,
    pub new_call: Option<String>,
    pub old_activity: Option<ActivityRef>,
    pub new_activity: Option<ActivityRef>,
    pub change: DeltaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextChangeKind {
    Added,
    Removed,
    Retyped,
    /// Same type, another `initialexpression` (new instances only get the new value).
    InitialChanged,
}

impl ContextChangeKind {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            ContextChangeKind::Added => "added",
            ContextChangeKind::Removed => "removed",
            ContextChangeKind::Retyped => "retyped",
            ContextChangeKind::InitialChanged => "initial_changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextDelta {
    pub name: String,
    pub change: ContextChangeKind,
    pub old_type: Option<String>,
    pub new_type: Option<String>,
    /// `initialexpression` of the new property (what new instances get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_expression: Option<String>,
    /// `initialexpression` of the old property (what in-flight instances were created with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_initial_expression: Option<String>,
}

/// Something the matcher could not decide with confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MatchIssue {
    /// Several candidates scored the same; the first in document order was taken.
    Ambiguous {
        old: Vec<ActivityRef>,
        new: Vec<ActivityRef>,
        chosen: Option<(ActivityRef, ActivityRef)>,
        reason: String,
    },
    /// Paired only because it was the one candidate of its element between aligned neighbours.
    Positional { old: ActivityRef, new: ActivityRef },
    /// A limit of [`MatchLimits`](super::costs::MatchLimits) was hit and a simpler method was
    /// used (`fallback` says which).
    LimitHit {
        limit: Limit,
        fallback: String,
        at: Option<ActivityRef>,
    },
}

/// Which matcher limit was hit, with the limit in effect and what exceeded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum Limit {
    /// Old × new siblings of one list above `align_cells`.
    AlignCells { max: usize, old: usize, new: usize },
    /// Leftover old × new containers above `move_pairs`.
    MovePairs { max: usize, old: usize, new: usize },
    /// The move pass still finding moves after `move_rounds` rounds.
    MoveRounds { max: usize },
}

impl Limit {
    /// The simpler method used instead.
    pub fn fallback(self) -> &'static str {
        match self {
            Limit::AlignCells { .. } => {
                "paired siblings with equal keys in order instead of a full alignment"
            }
            Limit::MovePairs { .. } => {
                "did not look for moved containers by their contents; they count as removed/inserted"
            }
            Limit::MoveRounds { .. } => {
                "stopped looking for moved activities; the rest count as removed/inserted"
            }
        }
    }
}

/// Named as in `diff::costs` (e.g. `ALIGN_MAX_CELLS = 1000000 (1001 × 1002 siblings)`).
impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Limit::AlignCells { max, old, new } => {
                write!(f, "ALIGN_MAX_CELLS = {max} ({old} × {new} siblings)")
            }
            Limit::MovePairs { max, old, new } => {
                write!(f, "MOVE_MAX_PAIRS = {max} ({old} × {new} containers)")
            }
            Limit::MoveRounds { max } => write!(f, "MOVE_MAX_ROUNDS = {max}"),
        }
    }
}
