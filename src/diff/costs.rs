//! Every weight and limit of the activity matcher, in one place.
//!
//! The matcher (see `matcher.rs`) runs cheap exact passes first and only then scores
//! candidate pairs. Scores are integers so results never depend on floating-point rounding;
//! a pair scoring 0 is never aligned. The levels are spaced so that the bonus from content
//! similarity (at most `SCORE_DICE_BONUS_MAX`) can break ties *within* a level but never lift
//! a pair into the next level.

/// A pair that is already matched (a pin from the overrides file, or an exact subtree that is
/// unique in both trees). Dominates everything, so the sibling alignment keeps as many of them
/// in order as it can; those it cannot keep in order are reported as reordered.
pub const SCORE_ALREADY_MATCHED: u32 = 10_000;

/// Identical subtree (same element, attributes, `disabled`, children) that is *not* unique in
/// the tree, so the global exact pass left it to the alignment of its sibling list.
pub const SCORE_EXACT: u32 = 1_000;

/// Same element and the same key attributes (name, call target, request type, sync-ness,
/// `<sync calls>`, assign property, conditions, …): the same activity whose content changed.
pub const SCORE_KEY: u32 = 600;

/// Same element and the same non-empty `name`, but other key attributes differ (a call whose
/// target changed, an `<if>` whose condition was edited). Names are what users navigate by in
/// the graphical editor, so they outrank content similarity.
pub const SCORE_NAME: u32 = 400;

/// Same element and the same key attributes except the name, or the same subtree except for
/// names anywhere in it: the activity was renamed. The key form is only used for elements
/// whose key has at least one attribute besides `name` (otherwise every unnamed `<sequence>`
/// would be a "rename" of every other one).
pub const SCORE_RENAME: u32 = 300;

/// Containers (anything with children) whose matched descendants overlap: the base is added to
/// a share of the Dice coefficient. Below the minimum overlap the pair is not a candidate.
pub const SCORE_CONTAINER_BASE: u32 = 100;
/// Dice coefficient (‰) above which two containers are candidates: half of their descendants
/// must correspond. Lower values started pairing unrelated `<if>`s that share one `<assign>`.
pub const CONTAINER_MIN_DICE_PERMILLE: u32 = 500;

/// Content similarity bonus added to every level: `dice‰ / SCORE_DICE_DIVISOR`, at most
/// `SCORE_DICE_BONUS_MAX` (below the 100-point spacing of the levels, so a bonus never makes a
/// pair equal to one of the next level). Breaks ties between two candidates of equal key (two `<if>`s with
/// the same condition) in favour of the one whose children correspond.
pub const SCORE_DICE_DIVISOR: u32 = 10;
pub const SCORE_DICE_BONUS_MAX: u32 = 99;

/// The global exact pass only matches subtrees at least this heavy (one point per node plus one
/// per key attribute value). Bare leaves such as `<empty/>`, `<break/>`, `<reply/>` weigh 1:
/// matching one of those across the whole tree says nothing, so they are left to the sibling
/// alignment, which sees their neighbours.
pub const EXACT_MIN_WEIGHT: u32 = 2;

/// The sibling alignment is a quadratic dynamic programme. Above this many cells (old × new
/// siblings of one list) it falls back to pairing equal keys in order, and says so.
pub const ALIGN_MAX_CELLS: usize = 1_000_000;

/// The move pass compares every leftover old container with every leftover new one. Above this
/// many pairs it skips the container comparison (key and name moves still run), and says so.
pub const MOVE_MAX_PAIRS: usize = 250_000;

/// The move pass repeats while it finds something (a moved container lets its children align,
/// which can reveal further moves). It stops after this many rounds and says so.
pub const MOVE_MAX_ROUNDS: usize = 16;
