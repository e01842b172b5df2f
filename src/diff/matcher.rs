//! Old ↔ new activity matching. BPL has no ids, so identity comes from the element, its key
//! attributes, its content and its place among its siblings.
//!
//! Passes, cheapest and surest first (weights and limits: `costs.rs`):
//! 1. **Pins** from the overrides file are taken as given.
//! 2. **Exact**: every subtree whose hash is unique in both trees (and heavy enough to mean
//!    something) is matched as a whole, wherever it moved.
//! 3. **Top-down alignment**: for every matched pair, each child list is aligned with its
//!    counterpart by a maximum-weight, order-preserving alignment (an LCS whose pair weights
//!    say how alike two activities are: exact, same key, same name, renamed, corresponding
//!    children). `<switch>` cases are paired first: by condition or by name (one of them kept
//!    is the same case, renamed or edited), unnamed ones with an edited condition by their
//!    contents; a case whose name and condition both changed has no counterpart, wherever it
//!    stands. Pairs already matched anchor the alignment; those it cannot keep in order are
//!    the reordered ones.
//! 4. **Moves**: leftovers are paired across the whole tree when exactly one old and one new
//!    activity share a key, corresponding children, a name, or a rename key. A tie is never
//!    broken: it is reported and left unmatched.
//! 5. **Position**: between two aligned neighbours, the single leftover old and new activity
//!    of one element are paired (a renamed and edited activity in place), and reported as a
//!    guess. Never an `<if>`, loop or `<foreach>` whose test changed with no name kept (only
//!    its contents can tell), nor [other activities](other_activity).
//!
//! Some pairs are never made by any pass but a pin ([`other_activity`]): a call whose name
//! and target both changed, a `<catch>` of another fault (a fault handler is identified by its
//! fault; the one exception is a fault renamed whole, with its `<throw>`s, while the catch
//! keeps its name or, unnamed, its place and body: [`renamed_fault`]), an `<if>` whose name
//! and condition both changed. Identical subtrees matched early
//! are unpaired again when they join two branches that both lost their counterpart (a case or
//! `<if>` replaced by another that shares an activity: rows in the old branch chose it by
//! data, see `unpair_replaced_branches`), or a branch that kept its counterpart with another
//! one that has none (an activity removed from a case, its copy in a new case); such a pair is
//! refused only while that holds (a conditional moved *and* edited is paired later, by the
//! move pass, and its contents then with it). An activity moves by key or name into another
//! branch of its conditional's counterpart only when both branches have counterparts, and
//! only when the counterpart of its own branch does not still hold its name at its place
//! ([`namesake_in_place`]: two cases' `Send` calls whose targets were swapped stay in their
//! cases, retargeted; a name is identity, a target an attribute).
//!
//! 6. **Containers follow their children**: a matched container whose state-bearing
//!    descendants went into another copy of it (same key) follows them; when they went into
//!    several copies and none holds them all, it is left unmatched and reported.
//!
//! Everywhere: no pair across a fault/compensation-handler boundary (an instance cannot walk
//! into a handler), and a pair found by similarity elsewhere in the tree never joins branches
//! of two conditionals that are not each other's counterpart. Within an alignment, leftovers
//! next to a new (or removed) wrapper container are aligned with its body. A tie the move pass
//! left open is reported only for what no later pass paired.
//!
//! After every pass that matched something, the alignment runs again below the new pairs.

use super::case_index;
use super::costs::*;
use super::model::{Limit, MatchIssue, MatchVia};
use super::tree::{key_is_trivial, keys, normalize_expr, same_expr, Tree};
use crate::states::ActivityRef;
use foldhash::{HashMap, HashMapExt};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) struct Matching {
    pub o2n: Vec<Option<usize>>,
    pub n2o: Vec<Option<usize>>,
    /// By old position.
    pub via: Vec<Option<MatchVia>>,
    /// Old activities pinned to "no counterpart".
    pub blocked: Vec<bool>,
    /// Old activities pinned to a new one, with the line of their `[[pin]]` (for messages).
    pub pins: Vec<(usize, Option<u32>)>,
    /// Old switch position → (old case, new case), 1-based user-case indices.
    pub cases: BTreeMap<usize, Vec<(u32, u32)>>,
    pub issues: Vec<MatchIssue>,
    /// `element\u{1e}name` of every named activity of the new tree (for messages: does a
    /// removed activity still have a namesake?).
    pub new_names: foldhash::HashSet<String>,
    /// Old activities merged into a new one that is paired with another old copy (see
    /// `merged_tails`): (old position, new position). Not in `o2n`: the activity matching stays
    /// one-to-one; only their states (and response handlers) map, to the new one's.
    pub merged: Vec<(usize, usize)>,
}

impl Matching {
    /// The new counterpart of old `p` for its states: its match, or (inside an old copy merged
    /// into a new activity, identical subtrees) the corresponding new position.
    pub fn state_counterpart(&self, t_old: &Tree, p: usize) -> Option<usize> {
        self.o2n[p].or_else(|| {
            self.merged
                .iter()
                .find(|&&(o, _)| p >= o && p <= t_old.end(o))
                .map(|&(o, n)| n + (p - o))
        })
    }

    /// Is old `p` (or an activity around it) merged into a new one?
    pub fn is_merged(&self, t_old: &Tree, p: usize) -> bool {
        self.o2n[p].is_none() && self.state_counterpart(t_old, p).is_some()
    }

    fn set(&mut self, o: usize, n: usize, via: MatchVia) {
        self.o2n[o] = Some(n);
        self.n2o[n] = Some(o);
        self.via[o] = Some(via);
    }
}

/// A resolved pin: old position → new position (None = "has no counterpart").
pub(crate) type PinPos = (usize, Option<usize>);

struct Matcher<'t, 'a> {
    old: &'t Tree<'a>,
    new: &'t Tree<'a>,
    m: Matching,
    work: BTreeSet<usize>,
    /// Pairs whose child lists were aligned already.
    done: BTreeSet<usize>,
    /// Ties the move pass could not break: (old, new, what they share). Reported at the end,
    /// without whatever a later pass paired, so no issue contradicts the final matching.
    unresolved: Vec<(Vec<usize>, Vec<usize>, String)>,
    /// Pairs undone because they joined two branches that both lost their counterpart (see
    /// [`Matcher::unpair_replaced_branches`]), each with the root of the subtree undone: not
    /// made again while those branches still have no counterpart. A conditional moved and
    /// edited is paired only by the move pass, after its identical contents were undone;
    /// once it is, its branches correspond and so may they.
    refused: BTreeMap<(usize, usize), (usize, usize)>,
    /// The faults each tree throws (`thrown_faults`), found once when first asked: the trees
    /// do not change while they are matched.
    thrown: std::cell::OnceCell<(BTreeSet<String>, BTreeSet<String>)>,
    limits: MatchLimits,
}

pub(crate) fn match_trees(
    old: &Tree,
    new: &Tree,
    pins: &[PinPos],
    limits: &MatchLimits,
) -> Matching {
    let mut mt = Matcher {
        limits: *limits,
        thrown: std::cell::OnceCell::new(),
        old,
        new,
        m: Matching {
            o2n: vec![None; old.len()],
            n2o: vec![None; new.len()],
            via: vec![None; old.len()],
            blocked: vec![false; old.len()],
            pins: Vec::new(),
            cases: BTreeMap::new(),
            issues: Vec::new(),
            new_names: (0..new.len())
                .filter_map(|p| {
                    let n = new.nodes[p].name.as_deref()?;
                    Some(format!("{}\u{1e}{n}", new.element(p)))
                })
                .collect(),
            merged: Vec::new(),
        },
        work: BTreeSet::new(),
        done: BTreeSet::new(),
        unresolved: Vec::new(),
        refused: BTreeMap::new(),
    };
    for &(o, n) in pins {
        match n {
            Some(n) => {
                mt.m.set(o, n, MatchVia::Pinned);
                mt.work.insert(o);
            }
            None => mt.m.blocked[o] = true,
        }
    }
    if mt.m.o2n[0].is_none() && mt.m.n2o[0].is_none() && !mt.m.blocked[0] {
        mt.m.set(0, 0, MatchVia::Root);
    }
    mt.work.insert(0);
    mt.exact_pass();
    let mut rounds = 0;
    loop {
        mt.top_down();
        if mt.unpair_replaced_branches() {
            continue;
        }
        if mt.renamed_fault_catches() {
            continue;
        }
        if mt.widened_catches() {
            continue;
        }
        if mt.merged_tails() {
            continue;
        }
        if mt.move_pass() {
            rounds += 1;
            if rounds >= mt.limits.move_rounds {
                mt.limit_hit(
                    Limit::MoveRounds {
                        max: mt.limits.move_rounds,
                    },
                    None,
                );
                mt.top_down();
                break;
            }
            continue;
        }
        if mt.positional_pass() {
            continue;
        }
        if mt.follow_children() {
            continue;
        }
        break;
    }
    mt.untie_copies();
    mt.report_unresolved();
    mt.m
}

impl Matcher<'_, '_> {
    // ---- pass 2: exact unique subtrees -------------------------------------------------

    fn exact_pass(&mut self) {
        let count = |t: &Tree| {
            let mut c: HashMap<[u8; 16], (u32, usize)> = HashMap::new();
            for p in 0..t.len() {
                let e = c.entry(t.hash[p]).or_insert((0, p));
                e.0 += 1;
            }
            c
        };
        let (co, cn) = (count(self.old), count(self.new));
        let mut cands: Vec<(usize, usize)> = co
            .iter()
            .filter(|(_, (k, _))| *k == 1)
            .filter_map(|(h, &(_, o))| cn.get(h).filter(|(k, _)| *k == 1).map(|&(_, n)| (o, n)))
            .filter(|&(o, _)| self.old.weight[o] >= EXACT_MIN_WEIGHT)
            .collect();
        // Largest first, then document order: a subtree matched whole takes its inside along.
        cands.sort_by_key(|&(o, _)| (std::cmp::Reverse(self.old.desc_count(o)), o));
        for (o, n) in cands {
            let size = self.old.desc_count(o);
            let free = (0..=size).all(|k| {
                self.m.o2n[o + k].is_none() && !self.m.blocked[o + k] && self.m.n2o[n + k].is_none()
            });
            if !free || !self.crossing_ok(o, n, Crossing::Exact) {
                continue;
            }
            for k in 0..=size {
                self.m.set(
                    o + k,
                    n + k,
                    if k == 0 {
                        MatchVia::Exact
                    } else {
                        MatchVia::Inside
                    },
                );
            }
            self.work.insert(o);
        }
    }

    // ---- pass 3: top-down alignment ------------------------------------------------------

    fn top_down(&mut self) {
        while let Some(o) = self.work.pop_first() {
            if !self.done.insert(o) {
                continue;
            }
            let Some(n) = self.m.o2n[o] else { continue };
            for (ol, nl) in self.slot_pairs(o, n) {
                self.align_lists(o, &ol, &nl);
            }
        }
    }

    /// The child lists of a matched pair that correspond, as (old list, new list).
    fn slot_pairs(&mut self, o: usize, n: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
        let (ot, nt) = (self.old, self.new);
        let mut out = Vec::new();
        if ot.element(o) == "switch" && nt.element(n) == "switch" {
            let pairs = self.case_pairs(o, n);
            for &(i, j) in &pairs {
                if let (Some(ol), Some(nl)) = (
                    slot_list(ot, o, &format!("case[{}]", i - 1)),
                    slot_list(nt, n, &format!("case[{}]", j - 1)),
                ) {
                    out.push((ol.clone(), nl.clone()));
                }
            }
            self.m.cases.insert(o, pairs);
            if let (Some(ol), Some(nl)) = (slot_list(ot, o, "default"), slot_list(nt, n, "default"))
            {
                out.push((ol.clone(), nl.clone()));
            }
            return out;
        }
        for (slot, ol) in &ot.slots[o] {
            if let Some(nl) = slot_list(nt, n, slot) {
                out.push((ol.clone(), nl.clone()));
            }
        }
        out
    }

    /// Pair the user cases of two matched switches: same condition, same name, or (both
    /// unnamed) corresponding activities. A case whose name and condition both changed has
    /// no counterpart.
    fn case_pairs(&self, o: usize, n: usize) -> Vec<(u32, u32)> {
        let cases = |t: &Tree, p: usize| -> Vec<(Option<String>, Option<String>, Vec<usize>)> {
            match &t.nodes[p].kind {
                crate::bpl::ActivityKind::Switch { cases, .. } => cases
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            c.name.clone(),
                            // Compared as the same test when only re-spaced.
                            c.condition.as_deref().map(normalize_expr),
                            slot_list(t, p, &format!("case[{i}]"))
                                .cloned()
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
                _ => vec![],
            }
        };
        let (oc, nc) = (cases(self.old, o), cases(self.new, n));
        let score = |i: usize, j: usize| -> u32 {
            let (on, ocond, ol) = &oc[i];
            let (nn, ncond, nl) = &nc[j];
            let dice = self.dice_lists(ol, nl);
            let bonus = (dice / SCORE_DICE_DIVISOR).min(SCORE_DICE_BONUS_MAX);
            if ocond == ncond && on == nn {
                SCORE_EXACT + bonus
            } else if ocond == ncond {
                SCORE_KEY + bonus
            } else if on.is_some() && on == nn {
                SCORE_NAME + bonus
            } else if on.is_none() && nn.is_none() && dice >= CONTAINER_MIN_DICE_PERMILLE {
                // Unnamed on both sides, the condition edited: only what it runs tells.
                SCORE_CONTAINER_BASE + bonus
            } else {
                // A new name and a new condition: another case, wherever it stands and
                // whatever it shares (rows that chose the old one never chose this one).
                0
            }
        };
        // A case is identified by its condition and name, not its place: cases whose
        // (condition, name), then condition, then name is unique on both sides pair first,
        // wherever they moved (a reordered switch keeps every case).
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        let (mut used_o, mut used_n) = (vec![false; oc.len()], vec![false; nc.len()]);
        type Case = (Option<String>, Option<String>, Vec<usize>);
        // Kind 0: condition and name; 1: condition; 2: name.
        let key = |kind: u8, c: &Case| -> Option<(Option<String>, Option<String>)> {
            match kind {
                0 => c.1.clone().map(|x| (Some(x), c.0.clone())),
                1 => c.1.clone().map(|x| (Some(x), None)),
                _ => c.0.clone().map(|x| (None, Some(x))),
            }
        };
        for kind in 0..3u8 {
            let unique = |cs: &[Case], used: &[bool]| {
                let mut by: HashMap<(Option<String>, Option<String>), Vec<usize>> = HashMap::new();
                for (i, c) in cs.iter().enumerate().filter(|(i, _)| !used[*i]) {
                    if let Some(k) = key(kind, c) {
                        by.entry(k).or_default().push(i);
                    }
                }
                by.into_iter()
                    .filter(|(_, v)| v.len() == 1)
                    .map(|(k, v)| (k, v[0]))
                    .collect::<HashMap<_, _>>()
            };
            let (uo, un) = (unique(&oc, &used_o), unique(&nc, &used_n));
            for (k, &i) in &uo {
                if let Some(&j) = un.get(k) {
                    pairs.push((i, j));
                    used_o[i] = true;
                    used_n[j] = true;
                }
            }
        }
        // The rest by an order-preserving alignment of what still identifies them (a shared
        // condition or name among duplicates, or the content of unnamed cases). Never by
        // place alone: a case left over between aligned neighbours whose name and condition
        // both changed is another case (removed and added), not this one edited.
        let ro: Vec<usize> = (0..oc.len()).filter(|&i| !used_o[i]).collect();
        let rn: Vec<usize> = (0..nc.len()).filter(|&j| !used_n[j]).collect();
        let chain = align_dp(ro.len(), rn.len(), |a, b| score(ro[a], rn[b]));
        let sub: Vec<(usize, usize)> = chain.iter().map(|&(a, b, _)| (a, b)).collect();
        pairs.extend(sub.iter().map(|&(a, b)| (ro[a], rn[b])));
        pairs.sort();
        pairs
            .into_iter()
            .map(|(i, j)| (i as u32 + 1, j as u32 + 1))
            .collect()
    }

    /// Dice coefficient (‰) of two activity lists: how many of their nodes (all depths)
    /// correspond through the current matching.
    fn dice_lists(&self, ol: &[usize], nl: &[usize]) -> u32 {
        let size = |t: &Tree, l: &[usize]| l.iter().map(|&p| t.desc_count(p) + 1).sum::<usize>();
        let (so, sn) = (size(self.old, ol), size(self.new, nl));
        if so + sn == 0 {
            return 0;
        }
        let in_new = |x: usize| nl.iter().any(|&q| x >= q && x <= self.new.end(q));
        let common = ol
            .iter()
            .flat_map(|&p| p..=self.old.end(p))
            .filter(|&d| self.m.o2n[d].is_some_and(in_new))
            .count();
        (2000 * common / (so + sn)) as u32
    }

    /// Dice coefficient (‰) of the descendants of two containers.
    fn dice(&self, o: usize, n: usize) -> u32 {
        let (so, sn) = (self.old.desc_count(o), self.new.desc_count(n));
        if so == 0 || sn == 0 {
            return 0;
        }
        let common = (o + 1..=self.old.end(o))
            .filter(|&d| self.m.o2n[d].is_some_and(|x| self.new.is_desc(x, n)))
            .count();
        (2000 * common / (so + sn)) as u32
    }

    /// A limit was hit: record it with the fallback taken.
    fn limit_hit(&mut self, limit: Limit, at: Option<ActivityRef>) {
        self.m.issues.push(MatchIssue::LimitHit {
            limit,
            fallback: limit.fallback().into(),
            at,
        });
    }

    /// How alike two activities are and what that means; `None` when they are not candidates.
    fn score(&self, o: usize, n: usize) -> Option<(u32, MatchVia)> {
        if self.m.o2n[o] == Some(n) {
            return Some((
                SCORE_ALREADY_MATCHED,
                self.m.via[o].unwrap_or(MatchVia::Exact),
            ));
        }
        if self.m.o2n[o].is_some()
            || self.m.n2o[n].is_some()
            || self.m.blocked[o]
            || self.old.element(o) != self.new.element(n)
        {
            return None;
        }
        let (ot, nt) = (self.old, self.new);
        if other_activity(ot, o, nt, n) || self.is_refused(o, n) {
            return None;
        }
        let dice = self.dice(o, n);
        let bonus = (dice / SCORE_DICE_DIVISOR).min(SCORE_DICE_BONUS_MAX);
        let (level, via) = if ot.hash[o] == nt.hash[n] {
            (SCORE_EXACT, MatchVia::ExactAligned)
        } else if ot.key[o] == nt.key[n] {
            (SCORE_KEY, MatchVia::Key)
        } else if ot.nodes[o].name.is_some() && ot.nodes[o].name == nt.nodes[n].name {
            (SCORE_NAME, MatchVia::Name)
        } else if (ot.rename_key[o].is_some() && ot.rename_key[o] == nt.rename_key[n])
            || ot.shape[o] == nt.shape[n]
        {
            (SCORE_RENAME, MatchVia::Rename)
        } else if dice >= CONTAINER_MIN_DICE_PERMILLE {
            (SCORE_CONTAINER_BASE, MatchVia::Children)
        } else {
            return None;
        };
        Some((level + bonus, via))
    }

    fn align_lists(&mut self, parent: usize, ol: &[usize], nl: &[usize]) {
        if ol.is_empty() || nl.is_empty() {
            return;
        }
        if ol.len().saturating_mul(nl.len()) > self.limits.align_cells {
            let limit = Limit::AlignCells {
                max: self.limits.align_cells,
                old: ol.len(),
                new: nl.len(),
            };
            self.limit_hit(limit, Some(self.old.aref(parent)));
            self.align_by_keys(ol, nl);
            return;
        }
        let scores: Vec<Vec<Option<(u32, MatchVia)>>> = ol
            .iter()
            .map(|&o| nl.iter().map(|&n| self.score(o, n)).collect())
            .collect();
        let chain = align_dp(ol.len(), nl.len(), |i, j| scores[i][j].map_or(0, |s| s.0));
        self.align_chain(ol, nl, &scores, &chain);
        self.unwrap_gaps(parent, ol, nl);
    }

    /// The stretches of two sibling lists between their matched pairs (the longest chain of
    /// matches that keeps both orders), as `(lo_i, hi_i, lo_j, hi_j)` index ranges.
    fn sibling_gaps(&self, ol: &[usize], nl: &[usize]) -> Vec<(usize, usize, usize, usize)> {
        let anchors = increasing_chain(super::matched_pairs(&self.m.o2n, ol, nl));
        gaps(&anchors, ol.len(), nl.len())
    }

    /// The old activities of a stretch still free to match (unmatched, not blocked) and the
    /// new ones still unmatched.
    fn free_in(&self, ol: &[usize], nl: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let free_o = ol
            .iter()
            .copied()
            .filter(|&x| self.m.o2n[x].is_none() && !self.m.blocked[x])
            .collect();
        let free_n = nl
            .iter()
            .copied()
            .filter(|&y| self.m.n2o[y].is_none())
            .collect();
        (free_o, free_n)
    }

    /// Activities left over between two aligned neighbours, where the other side has a new
    /// (or removed) container in the same stretch: the container was wrapped around them (or
    /// unwrapped), so they are aligned with its body.
    fn unwrap_gaps(&mut self, parent: usize, ol: &[usize], nl: &[usize]) {
        for (lo_i, hi_i, lo_j, hi_j) in self.sibling_gaps(ol, nl) {
            let (free_o, free_n) = self.free_in(&ol[lo_i..hi_i], &nl[lo_j..hi_j]);
            if free_o.is_empty() || free_n.is_empty() {
                continue;
            }
            // A new wrapper around old leftovers. A leftover with an identical copy in more
            // than one of its lists, at any depth (both branches of a new <if>), is not the
            // wrapper's to decide: it stays for the move pass, which reports the tie.
            for &c in &free_n {
                let lists = wrapper_lists(self.new, c);
                let copies = |x: usize| {
                    lists
                        .iter()
                        .filter(|l| {
                            l.iter().flat_map(|&y| y..=self.new.end(y)).any(|y| {
                                self.m.n2o[y].is_none() && self.new.hash[y] == self.old.hash[x]
                            })
                        })
                        .count()
                };
                let tied: Vec<usize> = free_o.iter().copied().filter(|&x| copies(x) > 1).collect();
                for list in &lists {
                    let left: Vec<usize> = free_o
                        .iter()
                        .copied()
                        .filter(|&x| self.m.o2n[x].is_none() && !tied.contains(&x))
                        .collect();
                    if !left.is_empty() {
                        self.align_lists(parent, &left, list);
                    }
                }
            }
            // An old wrapper whose contents now stand in the list itself.
            for &c in &free_o {
                if self.m.o2n[c].is_some() {
                    continue;
                }
                for list in wrapper_lists(self.old, c) {
                    let left: Vec<usize> = free_n
                        .iter()
                        .copied()
                        .filter(|&y| self.m.n2o[y].is_none())
                        .collect();
                    if !left.is_empty() {
                        self.align_lists(c, &list, &left);
                    }
                }
            }
        }
    }

    fn align_chain(
        &mut self,
        ol: &[usize],
        nl: &[usize],
        scores: &[Vec<Option<(u32, MatchVia)>>],
        chain: &[(usize, usize, u32)],
    ) {
        let mut fresh = Vec::new();
        for &(i, j, s) in chain {
            if let (true, Some((_, via))) = (s < SCORE_ALREADY_MATCHED, scores[i][j]) {
                self.m.set(ol[i], nl[j], via);
                fresh.push((i, j, s));
            }
            self.work.insert(ol[i]);
        }
        // A tie that the order decided: another leftover scored as well as the chosen one.
        for (i, j, s) in fresh {
            let other_old: Vec<usize> = (0..ol.len())
                .filter(|&x| {
                    x != i
                        && self.m.o2n[ol[x]].is_none()
                        && scores[x][j].is_some_and(|(v, _)| v >= s)
                })
                .collect();
            let other_new: Vec<usize> = (0..nl.len())
                .filter(|&y| {
                    y != j
                        && self.m.n2o[nl[y]].is_none()
                        && scores[i][y].is_some_and(|(v, _)| v >= s)
                })
                .collect();
            if other_old.is_empty() && other_new.is_empty() {
                continue;
            }
            let mut olds = vec![ol[i]];
            olds.extend(other_old.iter().map(|&x| ol[x]));
            olds.sort();
            let mut news = vec![nl[j]];
            news.extend(other_new.iter().map(|&y| nl[y]));
            news.sort();
            self.m.issues.push(MatchIssue::Ambiguous {
                old: olds.iter().map(|&p| self.old.aref(p)).collect(),
                new: news.iter().map(|&p| self.new.aref(p)).collect(),
                chosen: Some((self.old.aref(ol[i]), self.new.aref(nl[j]))),
                reason: format!(
                    "{} old and {} new activities in the same list look alike; the first in document order was paired",
                    olds.len(),
                    news.len()
                ),
            });
        }
    }

    /// Fallback for very long lists: pair equal exact hashes, then equal keys, in order.
    fn align_by_keys(&mut self, ol: &[usize], nl: &[usize]) {
        for exact in [true, false] {
            let mut next = 0;
            for &o in ol {
                if self.m.o2n[o].is_some() || self.m.blocked[o] {
                    continue;
                }
                let hit = (next..nl.len()).find(|&j| {
                    let n = nl[j];
                    self.m.n2o[n].is_none()
                        && if exact {
                            self.old.hash[o] == self.new.hash[n]
                        } else {
                            self.old.key[o] == self.new.key[n]
                        }
                });
                if let Some(j) = hit {
                    self.m.set(
                        o,
                        nl[j],
                        if exact {
                            MatchVia::ExactAligned
                        } else {
                            MatchVia::Key
                        },
                    );
                    self.work.insert(o);
                    next = j + 1;
                }
            }
        }
    }

    // ---- pass 4: moves --------------------------------------------------------------------

    fn leftovers(&self) -> (Vec<usize>, Vec<usize>) {
        let lo = (0..self.old.len())
            .filter(|&p| self.m.o2n[p].is_none() && !self.m.blocked[p])
            .collect();
        let ln = (0..self.new.len())
            .filter(|&p| self.m.n2o[p].is_none())
            .collect();
        (lo, ln)
    }

    /// Pair leftovers that are unique on both sides by some identity. Returns whether any
    /// pair was made.
    fn move_pass(&mut self) -> bool {
        let mut any = false;
        // Keys, then names, then rename keys: each a 1:1 grouping over the leftovers.
        type KeyFn = fn(&Tree, usize) -> Option<String>;
        let identities: [(KeyFn, MatchVia, &str); 3] = [
            (
                |t, p| (!key_is_trivial(t, p)).then(|| keys(t.nodes[p]).0),
                MatchVia::Key,
                "the same key attributes",
            ),
            (
                |t, p| {
                    t.nodes[p]
                        .name
                        .as_ref()
                        .map(|n| format!("{}\u{1e}{}", t.element(p), n))
                },
                MatchVia::Name,
                "the same name",
            ),
            (
                |t, p| keys(t.nodes[p]).1,
                MatchVia::Rename,
                "the same attributes except the name",
            ),
        ];
        for (f, via, what) in identities {
            let (lo, ln) = self.leftovers();
            let mut groups: BTreeMap<String, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
            for &o in &lo {
                if let Some(k) = f(self.old, o) {
                    groups.entry(k).or_default().0.push(o);
                }
            }
            for &n in &ln {
                if let Some(k) = f(self.new, n) {
                    groups.entry(k).or_default().1.push(n);
                }
            }
            for (_, (os, ns)) in groups {
                match (os.as_slice(), ns.as_slice()) {
                    ([], _) | (_, []) => {}
                    ([o], [n]) if !self.crossing_ok(*o, *n, Crossing::of(via)) => {}
                    ([o], [n]) => {
                        self.m.set(*o, *n, via);
                        self.work.insert(*o);
                        any = true;
                    }
                    _ => {
                        if via == MatchVia::Key || (os.len() != ns.len()) {
                            self.ambiguous_move(&os, &ns, what);
                        }
                    }
                }
            }
            if any {
                return true;
            }
        }
        // Containers whose descendants went along.
        let (lo, ln) = self.leftovers();
        let lo: Vec<usize> = lo
            .into_iter()
            .filter(|&p| self.old.desc_count(p) > 0)
            .collect();
        let ln: Vec<usize> = ln
            .into_iter()
            .filter(|&p| self.new.desc_count(p) > 0)
            .collect();
        if lo.len().saturating_mul(ln.len()) > self.limits.move_pairs {
            let limit = Limit::MovePairs {
                max: self.limits.move_pairs,
                old: lo.len(),
                new: ln.len(),
            };
            self.limit_hit(limit, None);
            return false;
        }
        let best = |from: &[usize],
                    to: &[usize],
                    d: &dyn Fn(usize, usize) -> u32|
         -> BTreeMap<usize, Vec<usize>> {
            let mut out = BTreeMap::new();
            for &a in from {
                let mut top = 0;
                let mut who = Vec::new();
                for &b in to {
                    let s = d(a, b);
                    if s < CONTAINER_MIN_DICE_PERMILLE || s < top {
                        continue;
                    }
                    if s > top {
                        top = s;
                        who.clear();
                    }
                    who.push(b);
                }
                if !who.is_empty() {
                    out.insert(a, who);
                }
            }
            out
        };
        let same = |o: usize, n: usize| {
            self.old.element(o) == self.new.element(n) && !other_activity(self.old, o, self.new, n)
        };
        let fwd = best(&lo, &ln, &|o, n| {
            if same(o, n) {
                self.dice(o, n)
            } else {
                0
            }
        });
        let back = best(&ln, &lo, &|n, o| {
            if same(o, n) {
                self.dice(o, n)
            } else {
                0
            }
        });
        let mut pairs = Vec::new();
        for (o, ns) in &fwd {
            match ns.as_slice() {
                [n] if back.get(n).is_some_and(|os| os.as_slice() == [*o]) => pairs.push((*o, *n)),
                [_] => {}
                many => self.ambiguous_move(&[*o], many, "children that correspond equally well"),
            }
        }
        for (o, n) in pairs {
            if self.m.o2n[o].is_none()
                && self.m.n2o[n].is_none()
                && self.crossing_ok(o, n, Crossing::Similar)
            {
                self.m.set(o, n, MatchVia::Children);
                self.work.insert(o);
                any = true;
            }
        }
        any
    }

    fn ambiguous_move(&mut self, os: &[usize], ns: &[usize], what: &str) {
        let key = (os.to_vec(), ns.to_vec(), what.to_string());
        if !self.unresolved.contains(&key) {
            self.unresolved.push(key);
        }
    }

    /// Report the ties of the move pass that are still open: only the activities no later
    /// pass paired, and only while both sides still have one.
    /// An old state-bearing activity paired with one of several identical new copies (the
    /// same subtree twice or more in the new version, fewer times in the old) when nothing
    /// structural chose that copy (its parent is not the counterpart of the old parent, and
    /// no pin above it): that choice was document order, a guess. It is undone with its
    /// subtree and reported as an open tie, to be pinned.
    fn untie_copies(&mut self) {
        let (ot, nt) = (self.old, self.new);
        let count = |t: &Tree| {
            let mut c: HashMap<[u8; 16], usize> = HashMap::new();
            for p in 0..t.len() {
                *c.entry(t.hash[p]).or_insert(0) += 1;
            }
            c
        };
        let (co, cn) = (count(ot), count(nt));
        let mut o = 1;
        while o < ot.len() {
            let Some(n) = self.m.o2n[o] else {
                o += 1;
                continue;
            };
            let guessed = allocates(ot, o)
                && ot.hash[o] == nt.hash[n]
                && co[&ot.hash[o]] < cn[&nt.hash[n]]
                && ot.parent(o).and_then(|p| self.m.o2n[p]) != nt.parent(n)
                && !std::iter::once(o)
                    .chain(ot.ancestors(o))
                    .any(|a| self.m.via[a] == Some(MatchVia::Pinned));
            if !guessed {
                o += 1;
                continue;
            }
            let copies: Vec<usize> = (0..nt.len())
                .filter(|&y| nt.hash[y] == nt.hash[n])
                .collect();
            for x in o..=ot.end(o) {
                if let Some(y) = self.m.o2n[x].filter(|&y| nt.is_desc(y, n) || y == n) {
                    self.m.o2n[x] = None;
                    self.m.n2o[y] = None;
                    self.m.via[x] = None;
                }
            }
            // This tie covers the ties of its contents.
            let inside = |x: usize| x >= o && x <= ot.end(o);
            self.m.issues.retain(|i| match i {
                MatchIssue::Ambiguous { old, .. } => {
                    !old.iter().any(|r| ot.pos(r.id).is_some_and(inside))
                }
                _ => true,
            });
            self.unresolved
                .retain(|(os, _, _)| !os.iter().any(|&x| inside(x)));
            self.m.issues.push(MatchIssue::Ambiguous {
                old: vec![ot.aref(o)],
                new: copies.iter().map(|&p| nt.aref(p)).collect(),
                chosen: None,
                reason: format!(
                    "the new version holds {} identical copies of it and nothing but their order tells them apart; none was paired",
                    copies.len()
                ),
            });
            o = ot.end(o) + 1;
        }
    }

    fn report_unresolved(&mut self) {
        // A pair an earlier pass reported as chosen or positional that a later pass undid
        // (a container that followed its children) is no longer a claim of the matching.
        let (ot, nt) = (self.old, self.new);
        let o2n = &self.m.o2n;
        let holds = |o: &crate::states::ActivityRef, n: &crate::states::ActivityRef| matches!((ot.pos(o.id), nt.pos(n.id)), (Some(x), Some(y)) if o2n[x] == Some(y));
        self.m.issues.retain(|i| match i {
            MatchIssue::Ambiguous {
                chosen: Some((o, n)),
                ..
            } => holds(o, n),
            MatchIssue::Positional { old, new } => holds(old, new),
            _ => true,
        });
        let mut seen = BTreeSet::new();
        let mut open = Vec::new();
        for (os, ns, what) in std::mem::take(&mut self.unresolved) {
            let os: Vec<usize> = os
                .into_iter()
                .filter(|&o| self.m.o2n[o].is_none())
                .collect();
            let ns: Vec<usize> = ns
                .into_iter()
                .filter(|&n| self.m.n2o[n].is_none())
                .collect();
            if os.is_empty() || ns.is_empty() || !seen.insert((os.clone(), ns.clone())) {
                continue;
            }
            open.push((os, ns, what));
        }
        // A tie of a container covers the ties of its contents (their copies lie in its
        // copies): only the outermost is reported.
        let covered = |os: &[usize], ns: &[usize]| {
            open.iter().any(|(po, pn, _)| {
                os.iter().all(|&x| po.iter().any(|&a| ot.is_desc(x, a)))
                    && ns.iter().all(|&y| pn.iter().any(|&b| nt.is_desc(y, b)))
            })
        };
        let keep: Vec<bool> = open.iter().map(|(os, ns, _)| !covered(os, ns)).collect();
        for ((os, ns, what), keep) in open.iter().zip(keep) {
            if !keep {
                continue;
            }
            // Every candidate an identical copy of the one old activity: only order differs.
            let reason = match os.as_slice() {
                [o] if ns.iter().all(|&n| nt.hash[n] == ot.hash[*o]) => format!(
                    "the new version holds {} identical copies of it and nothing but their order tells them apart; none was paired",
                    ns.len()
                ),
                _ => format!(
                    "{} old and {} new activities elsewhere in the tree share {what}; none was paired",
                    os.len(),
                    ns.len()
                ),
            };
            self.m.issues.push(MatchIssue::Ambiguous {
                old: os.iter().map(|&p| ot.aref(p)).collect(),
                new: ns.iter().map(|&p| nt.aref(p)).collect(),
                chosen: None,
                reason,
            });
        }
    }

    /// See [`crossing_ok`].
    fn crossing_ok(&self, o: usize, n: usize, how: Crossing) -> bool {
        !self.is_refused(o, n) && crossing_ok(self.old, self.new, &self.m, o, n, how)
    }

    /// Was `(o, n)` undone by [`Matcher::unpair_replaced_branches`], and do the branches that
    /// made it so still both lack a counterpart?
    fn is_refused(&self, o: usize, n: usize) -> bool {
        self.refused
            .get(&(o, n))
            .is_some_and(|&(ro, rn)| unrelated_branches(self.old, self.new, &self.m, ro, rn))
    }

    /// Undo the pairs (identical subtrees, matched before the conditionals around them were)
    /// from a branch of an `<if>`/`<switch>` that has no counterpart into a branch that has
    /// none either: a case or conditional replaced by another one that happens to share an
    /// activity. Rows there chose the old branch by data; the copy in the new one belongs to
    /// rows that choose it, so it is not where they are. A pin decides otherwise. Returns
    /// whether anything was undone.
    fn unpair_replaced_branches(&mut self) -> bool {
        let (ot, nt) = (self.old, self.new);
        let mut changed = false;
        let mut o = 1;
        while o < ot.len() {
            let Some(n) = self.m.o2n[o] else {
                o += 1;
                continue;
            };
            let pinned = std::iter::once(o)
                .chain(ot.ancestors(o))
                .any(|a| self.m.via[a] == Some(MatchVia::Pinned));
            if pinned || !unrelated_branches(ot, nt, &self.m, o, n) {
                o += 1;
                continue;
            }
            for x in o..=ot.end(o) {
                if let Some(y) = self.m.o2n[x].filter(|&y| y == n || nt.is_desc(y, n)) {
                    self.m.o2n[x] = None;
                    self.m.n2o[y] = None;
                    self.m.via[x] = None;
                    self.refused.insert((x, y), (o, n));
                    // Paired again elsewhere, its child lists are aligned anew.
                    self.done.remove(&x);
                }
            }
            // Its branch is aligned again: what stayed in place (a namesake) pairs there.
            if let Some(a) = branch_owner(ot, o).filter(|&a| self.m.o2n[a].is_some()) {
                self.done.remove(&a);
                self.work.insert(a);
            }
            changed = true;
            o = ot.end(o) + 1;
        }
        changed
    }

    // ---- pass 6: containers follow their children -------------------------------------------

    /// A matched container whose matched state-bearing descendants all went into one other
    /// new activity of its element (a copy of it) follows them there; when they went into
    /// several such copies and none holds them all, the container and the pair are left
    /// unmatched and reported. Returns whether anything changed.
    fn follow_children(&mut self) -> bool {
        let (ot, nt) = (self.old, self.new);
        let mut changed = false;
        for o in 0..ot.len() {
            let Some(n) = self.m.o2n[o] else { continue };
            if ot.desc_count(o) == 0 || self.m.via[o] == Some(MatchVia::Pinned) || o == 0 {
                continue;
            }
            let images: Vec<usize> = (o + 1..=ot.end(o))
                .filter(|&d| allocates(ot, d))
                .filter_map(|d| self.m.o2n[d])
                .collect();
            if images.is_empty() {
                continue;
            }
            let all_inside = images.iter().all(|&x| nt.is_desc(x, n));
            // The deepest new activity of the same element holding every image.
            let first = images[0];
            let target = nt.ancestors(first).find(|&c| {
                nt.element(c) == ot.element(o) && images.iter().all(|&x| nt.is_desc(x, c))
            });
            let by_content = self.m.via[o] == Some(MatchVia::Children);
            // A copy with the old key beats a match without it, or one with it too that holds
            // none of its children (two copies alike by key: the children decide); a match by
            // content alone follows its children out of the container it was paired with.
            let better = |c: usize| {
                if nt.key[c] == ot.key[o] {
                    nt.key[n] != ot.key[o] || !images.iter().any(|&x| nt.is_desc(x, n))
                } else {
                    by_content && !all_inside
                }
            };
            match target {
                Some(c) if c == n => {}
                Some(c) if self.m.n2o[c].is_none() && better(c) => {
                    self.m.n2o[n] = None;
                    self.m.set(o, c, MatchVia::Children);
                    self.done.remove(&o);
                    self.work.insert(o);
                    if let Some(p) = ot.parent(o) {
                        self.done.remove(&p);
                        self.work.insert(p);
                    }
                    changed = true;
                }
                Some(_) => {}
                None if all_inside => {}
                None => {
                    // Its children went to different places: no copy is the container.
                    let copies: Vec<usize> = (0..nt.len())
                        .filter(|&c| {
                            nt.element(c) == ot.element(o)
                                && (by_content
                                    || (nt.key[c] == ot.key[o] && !key_is_trivial(nt, c)))
                                && images.iter().any(|&x| nt.is_desc(x, c))
                        })
                        .collect();
                    if by_content || copies.len() > 1 {
                        self.m.o2n[o] = None;
                        self.m.n2o[n] = None;
                        self.m.via[o] = None;
                        self.m.blocked[o] = true;
                        let mut ns = copies;
                        if !ns.contains(&n) {
                            ns.push(n);
                            ns.sort();
                        }
                        self.m.issues.push(MatchIssue::Ambiguous {
                            old: vec![ot.aref(o)],
                            new: ns.iter().map(|&p| nt.aref(p)).collect(),
                            chosen: None,
                            reason: "its state-bearing activities went to different copies, so none of them is this one; it was left unmatched".into(),
                        });
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    // ---- identical branch tails merged after the conditional --------------------------------

    /// A new activity right after an `<if>`/`<switch>` whose old counterpart ended two or more
    /// of its branches (or cases) with identical copies of it: the release hoisted the common
    /// tail out of the branches. A row resting in any copy has finished the rest of its branch
    /// (the copy was its last activity) and resumes in the hoisted one with nothing in
    /// between, so every copy's states map to the new one's. The first copy in document order
    /// is paired with it (the activity matching stays one-to-one); the others are recorded in
    /// [`Matching::merged`]. Only when these copies are every unmatched old copy and the new
    /// one the only unmatched new copy: any other copy makes it a tie, left to a pin.
    fn merged_tails(&mut self) -> bool {
        let (ot, nt) = (self.old, self.new);
        let mut any = false;
        for n in 0..nt.len() {
            if self.m.n2o[n].is_some() || !allocates(nt, n) || !nt.effective[n] {
                continue;
            }
            let Some(pn) = nt.parent(n) else { continue };
            let Some(list) = slot_list(nt, pn, nt.slot[n].as_str()) else {
                continue;
            };
            let i = nt.index[n] as usize;
            let Some(&a2) = i.checked_sub(1).and_then(|k| list.get(k)) else {
                continue;
            };
            if !matches!(nt.element(a2), "if" | "switch") {
                continue;
            }
            let Some(a) = self.m.n2o[a2].filter(|&a| ot.element(a) == nt.element(a2)) else {
                continue;
            };
            // The last activity of each branch or case of the old conditional.
            let copies: Vec<usize> = ot.slots[a]
                .iter()
                .filter_map(|(_, l)| l.last().copied())
                .filter(|&o| {
                    ot.hash[o] == nt.hash[n]
                        && ot.effective[o]
                        && self.m.o2n[o].is_none()
                        && !self.m.blocked[o]
                })
                .collect();
            if copies.len() < 2 {
                continue;
            }
            let free_old = (0..ot.len())
                .filter(|&o| ot.hash[o] == nt.hash[n] && self.m.o2n[o].is_none())
                .count();
            let free_new = (0..nt.len())
                .filter(|&y| nt.hash[y] == nt.hash[n] && self.m.n2o[y].is_none())
                .count();
            if free_old != copies.len()
                || free_new != 1
                || !copies
                    .iter()
                    .all(|&o| self.crossing_ok(o, n, Crossing::Exact))
            {
                continue;
            }
            let first = copies[0];
            for k in 0..=ot.desc_count(first) {
                let via = if k == 0 {
                    MatchVia::Merged
                } else {
                    MatchVia::Inside
                };
                self.m.set(first + k, n + k, via);
            }
            self.m.merged.extend(copies[1..].iter().map(|&o| (o, n)));
            self.work.insert(first);
            any = true;
        }
        any
    }

    // ---- catch whose fault was renamed ------------------------------------------------------

    /// Pairs a scope's `<catch>` with a catch of another fault in its counterpart when the
    /// release renamed the fault rather than replaced the handler ([`renamed_fault`]): the
    /// catch keeps its name (or, unnamed, its place among the scope's catches, its body and a
    /// `<throw>` that raises it), and the fault moved over whole: no catch and no `<throw>` of
    /// the new version still names the old fault, none of the old version the new one. Rows
    /// inside the catch were dispatched already (the scope's F is popped while it runs, spec
    /// 4.3); the fault only decides a dispatch they will not take again. Runs before
    /// [`widened_catches`](Self::widened_catches), which would otherwise pair the catch with
    /// the catchall its old fault now reaches.
    fn renamed_fault_catches(&mut self) -> bool {
        let (ot, nt) = (self.old, self.new);
        let mut cands = Vec::new();
        for so in 0..ot.len() {
            if ot.element(so) != "scope" {
                continue;
            }
            let Some(sn) = self.m.o2n[so].filter(|&sn| nt.element(sn) == "scope") else {
                continue;
            };
            let free_o: Vec<usize> = ot
                .catches(so)
                .into_iter()
                .filter(|&o| self.m.o2n[o].is_none() && !self.m.blocked[o])
                .collect();
            let free_n: Vec<usize> = nt
                .catches(sn)
                .into_iter()
                .filter(|&n| self.m.n2o[n].is_none())
                .collect();
            for &o in &free_o {
                for &n in &free_n {
                    cands.push((o, n));
                }
            }
        }
        if cands.is_empty() {
            return false;
        }
        let (throws_o, throws_n) = self
            .thrown
            .get_or_init(|| (thrown_faults(ot), thrown_faults(nt)));
        let fits: Vec<(usize, usize)> = cands
            .into_iter()
            .filter(|&(o, n)| renamed_fault(ot, o, nt, n, throws_o, throws_n))
            .collect();
        // Only a pair that is the one candidate of both its catches.
        let made: Vec<(usize, usize)> = fits
            .iter()
            .copied()
            .filter(|&(o, n)| fits.iter().filter(|&&(x, y)| x == o || y == n).count() == 1)
            .collect();
        let any = !made.is_empty();
        for (o, n) in made {
            self.m.set(o, n, MatchVia::FaultRenamed);
            self.work.insert(o);
        }
        any
    }

    // ---- catch widened to catchall --------------------------------------------------------

    /// Pairs a scope's `<catch>` with the `<catchall>` of its counterpart when the catch was
    /// widened to it: the new scope has no catch of that fault (so the fault now goes to the
    /// catchall) and the catch is the only one of its scope left over that way. Rows inside
    /// the old catch took that fault; the catchall takes it too, so they are where it left
    /// them. Never the reverse: rows in an old catchall may have come from any fault, and a
    /// new catch runs for its fault only.
    fn widened_catches(&mut self) -> bool {
        let (ot, nt) = (self.old, self.new);
        let mut made = Vec::new();
        for n in 0..nt.len() {
            if nt.element(n) != "catchall" || self.m.n2o[n].is_some() {
                continue;
            }
            let Some(sn) = nt.parent(n) else { continue };
            let Some(so) = self.m.n2o[sn] else { continue };
            let olds: Vec<usize> = ot
                .catches(so)
                .into_iter()
                .filter(|&o| {
                    ot.parent(o) == Some(so)
                        && self.m.o2n[o].is_none()
                        && !self.m.blocked[o]
                        && widened_catch(ot, o, nt, n)
                })
                .collect();
            if let [o] = olds.as_slice() {
                made.push((*o, n));
            }
        }
        let any = !made.is_empty();
        for (o, n) in made {
            self.m.set(o, n, MatchVia::Widened);
            self.work.insert(o);
        }
        any
    }

    // ---- pass 5: position ------------------------------------------------------------------

    fn positional_pass(&mut self) -> bool {
        let mut made = Vec::new();
        let matched: Vec<usize> = (0..self.old.len())
            .filter(|&o| self.m.o2n[o].is_some())
            .collect();
        for o in matched {
            let Some(n) = self.m.o2n[o] else { continue };
            for (ol, nl) in self.slot_pairs(o, n) {
                for (lo_i, hi_i, lo_j, hi_j) in self.sibling_gaps(&ol, &nl) {
                    let (free_o, free_n) = self.free_in(&ol[lo_i..hi_i], &nl[lo_j..hi_j]);
                    let elements: BTreeSet<&str> =
                        free_o.iter().map(|&x| self.old.element(x)).collect();
                    for e in elements {
                        let os: Vec<usize> = free_o
                            .iter()
                            .copied()
                            .filter(|&x| self.old.element(x) == e)
                            .collect();
                        let ns: Vec<usize> = free_n
                            .iter()
                            .copied()
                            .filter(|&y| self.new.element(y) == e)
                            .collect();
                        if let ([x], [y]) = (os.as_slice(), ns.as_slice()) {
                            // A call with another name *and* another target is another
                            // call; a catch of another fault another handler; a test that
                            // changed with nothing kept another conditional or loop.
                            if position_may_pair(self.old, *x, self.new, *y)
                                && self.crossing_ok(*x, *y, Crossing::Similar)
                            {
                                made.push((*x, *y));
                            }
                        }
                    }
                }
            }
        }
        let any = !made.is_empty();
        for (x, y) in made {
            if self.m.o2n[x].is_none() && self.m.n2o[y].is_none() {
                self.m.set(x, y, MatchVia::Position);
                self.m.issues.push(MatchIssue::Positional {
                    old: self.old.aref(x),
                    new: self.new.aref(y),
                });
                self.work.insert(x);
            }
        }
        any
    }
}

/// Two activities of one element that are not the same activity, however alike their
/// contents look or wherever they stand:
/// - a call with another name *and* another target;
/// - a `<catch>` of another fault: a fault handler is identified by its fault (rows in it took
///   that fault; another fault never runs it). Only a fault renamed whole is paired, by its
///   own pass ([`renamed_fault`]);
/// - an `<if>` with another name *and* another condition: rows in its branches chose them by
///   a test that is gone (a renamed `<if>` keeps its condition, an edited one its name).
fn other_activity(ot: &Tree, o: usize, nt: &Tree, n: usize) -> bool {
    let (a, b) = (ot.nodes[o], nt.nodes[n]);
    if a.element != b.element {
        return false;
    }
    // Tests and faults compare as expressions: a re-spaced test is the same test.
    let differ = |k: &str| !same_expr(a.attrs.get(k), b.attrs.get(k));
    match a.element.as_str() {
        "call" => a.name != b.name && differ("target"),
        "catch" => differ("fault"),
        "if" => a.name != b.name && differ("condition"),
        _ => false,
    }
}

/// The faults the `<throw>`s of a tree raise (normalized, disabled ones too: conservative).
fn thrown_faults(t: &Tree) -> BTreeSet<String> {
    (0..t.len())
        .filter(|&p| t.element(p) == "throw")
        .filter_map(|p| t.nodes[p].attrs.get("fault").map(normalize_expr))
        .collect()
}

/// Is new `<catch>` `n` old `<catch>` `o` with its fault renamed (their scopes are each
/// other's counterpart, checked by the caller)? A rename moves the fault over whole: the new
/// scope catches the old fault nowhere and the old scope never caught the new one (else the
/// old fault still has, or the new one already had, a handler of its own: another handler,
/// `catch_replaced`), no `<throw>` of the new version raises the old fault and none of the old
/// version the new one, and both catches are reached (the first of their fault). Then the
/// catch must still be itself: its name kept, or both unnamed at the same place among the
/// scope's catches, with the same body and the rename seen in a `<throw>` (the old version
/// raises the old fault, the new version the new one). A catch of another fault with the same
/// content and nothing else to tell stays another handler.
fn renamed_fault(
    ot: &Tree,
    o: usize,
    nt: &Tree,
    n: usize,
    throws_o: &BTreeSet<String>,
    throws_n: &BTreeSet<String>,
) -> bool {
    let (a, b) = (ot.nodes[o], nt.nodes[n]);
    let (Some(fo), Some(fn_)) = (a.attrs.get("fault"), b.attrs.get("fault")) else {
        return false;
    };
    let (fo, fn_) = (normalize_expr(fo), normalize_expr(fn_));
    if fo == fn_ {
        return false;
    }
    let (Some(so), Some(sn)) = (ot.parent(o), nt.parent(n)) else {
        return false;
    };
    let catches_fault = |t: &Tree, s: usize, f: &str| {
        t.catches(s).into_iter().any(|c| {
            t.nodes[c]
                .attrs
                .get("fault")
                .is_some_and(|x| normalize_expr(x) == f)
        })
    };
    if catches_fault(nt, sn, &fo)
        || catches_fault(ot, so, &fn_)
        || throws_n.contains(&fo)
        || throws_o.contains(&fn_)
        || ot.unreached_handler(o).is_some()
        || nt.unreached_handler(n).is_some()
    {
        return false;
    }
    match (&a.name, &b.name) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            let place = |t: &Tree, s: usize, c: usize| t.catches(s).iter().position(|&x| x == c);
            place(ot, so, o) == place(nt, sn, n)
                && ot.inner[o] == nt.inner[n]
                && throws_o.contains(&fo)
                && throws_n.contains(&fn_)
        }
        _ => false,
    }
}

/// Is new `<catchall>` `n` old `<catch>` `o` widened (their scopes are each other's
/// counterpart, checked by the caller)? Both are the handlers their faults reach (not a catch
/// after another of its fault, not a catchall before the last), and no catch of the new scope
/// catches `o`'s fault (a disabled one still does, running nothing: spec 2.4 exception 2), so
/// that fault now goes to `n`.
fn widened_catch(ot: &Tree, o: usize, nt: &Tree, n: usize) -> bool {
    if ot.element(o) != "catch" || nt.element(n) != "catchall" {
        return false;
    }
    let Some(sn) = nt.parent(n).filter(|&s| nt.element(s) == "scope") else {
        return false;
    };
    let fault = ot.nodes[o].attrs.get("fault");
    ot.unreached_handler(o).is_none()
        && nt.unreached_handler(n).is_none()
        && !nt
            .catches(sn)
            .into_iter()
            .any(|c| same_expr(nt.nodes[c].attrs.get("fault"), fault))
}

/// May the position between aligned neighbours alone pair `o` and `n`? Not when they are
/// [other activities](other_activity), and not a conditional or loop whose test (condition,
/// or the property and key of a `<foreach>`) changed without its name to tell it is the same
/// one: then only corresponding contents may pair it.
fn position_may_pair(ot: &Tree, o: usize, nt: &Tree, n: usize) -> bool {
    if other_activity(ot, o, nt, n) {
        return false;
    }
    if matches!(ot.element(o), "if" | "while" | "until" | "foreach") {
        let (a, b) = (ot.nodes[o], nt.nodes[n]);
        let same_name = a.name.is_some() && a.name == b.name;
        let same_test = ot.rename_key[o].is_some() && ot.rename_key[o] == nt.rename_key[n];
        return same_name || same_test;
    }
    true
}

/// The child lists of an unmatched container that could have been wrapped around (or
/// unwrapped from) a run of activities: its body, branches and cases, never its fault or
/// compensation handlers (an instance cannot walk into those).
fn wrapper_lists(t: &Tree, c: usize) -> Vec<Vec<usize>> {
    if !matches!(
        t.element(c),
        "scope" | "sequence" | "if" | "while" | "until" | "foreach" | "switch"
    ) {
        return Vec::new();
    }
    t.slots[c]
        .iter()
        .filter(|(s, _)| {
            !matches!(
                s.as_str(),
                "faulthandlers" | "handlers" | "request" | "response"
            )
        })
        .map(|(_, l)| l.clone())
        .collect()
}

/// Can an instance inside old `o` be inside new `n`? Never across a fault or compensation
/// handler boundary (normal flow ↔ catch/catchall/compensationhandler) unless the
/// handlers themselves correspond; and a match found by similarity elsewhere in the tree
/// (not an identical subtree) never pairs activities in branches of two conditionals
/// that are not each other's counterpart.
pub(crate) fn crossing_ok(
    ot: &Tree,
    nt: &Tree,
    m: &Matching,
    o: usize,
    n: usize,
    how: Crossing,
) -> bool {
    let handler_ok = match (ot.handler(o), nt.handler(n)) {
        (None, None) => true,
        (Some(ho), Some(hn)) => {
            // The same kind of handler: a catch is identified by its fault.
            let same_kind = ot.element(ho) == nt.element(hn)
                && same_expr(
                    ot.nodes[ho].attrs.get("fault"),
                    nt.nodes[hn].attrs.get("fault"),
                );
            if ho == o && hn == n {
                // A catch widened to the catchall is paired as such (`widened_catches`).
                same_kind || m.o2n[o] == Some(n)
            } else {
                m.o2n[ho] == Some(hn)
                    // Handlers not matched yet: at least the same kind of handler.
                    || (m.o2n[ho].is_none() && m.n2o[hn].is_none() && same_kind)
            }
        }
        _ => false,
    };
    if !handler_ok {
        return false;
    }
    if how == Crossing::Exact {
        // Identical subtrees are matched before the conditionals around them; a pair across
        // replaced branches is undone once those are known (`unpair_replaced_branches`).
        return true;
    }
    if replaced_branches(ot, nt, m, o, n) {
        return false;
    }
    // Out of a conditional into another one: only within the counterpart of the old one
    // (the same branch, or — for the same key or name — a branch switch the plan
    // reports). Into or out of conditionals alone is a re-nesting the plan reports
    // (BPM0206).
    match (branch_owner(ot, o), branch_owner(nt, n)) {
        (Some(a), Some(_)) => {
            let Some(a2) = m.o2n[a].filter(|&a2| nt.is_desc(n, a2)) else {
                return false;
            };
            if how == Crossing::Identity {
                // Another branch or case, for the same key or name: a move the plan reports,
                // only between two branches that each have a counterpart.
                // A namesake left in the corresponding branch is the activity, edited.
                return !lost_branch(ot, nt, m, o, n) && !namesake_in_place(ot, nt, m, o, n);
            }
            // A rename or a content match stays in the corresponding branch or case.
            match (ot.child_towards(a, o), nt.child_towards(a2, n)) {
                (Some((_, so, _)), Some((_, sn, _))) => match (case_index(so), case_index(sn)) {
                    (Some(i), Some(j)) => {
                        m.cases.get(&a).is_some_and(|v| v.contains(&(i + 1, j + 1)))
                    }
                    _ => so == sn,
                },
                _ => false,
            }
        }
        _ => true,
    }
}

/// Do `o` and `n` lie in branches of an `<if>`/`<switch>` that both have no counterpart (a
/// removed case and an added one, or the branches of an `<if>` replaced by another)? Then
/// they are not the same activity, whatever they share: a row in the old branch chose it by
/// data, and the new branch is chosen by another test. False while a switch's cases are not
/// paired yet.
fn replaced_branches(ot: &Tree, nt: &Tree, m: &Matching, o: usize, n: usize) -> bool {
    branch_kept(ot, nt, m, o, true) == Some(false)
        && branch_kept(nt, ot, m, n, false) == Some(false)
}

/// [`replaced_branches`], [`lost_branch`] or [`namesake_in_place`]: `o` and `n` are not the
/// same activity, whatever they share.
fn unrelated_branches(ot: &Tree, nt: &Tree, m: &Matching, o: usize, n: usize) -> bool {
    replaced_branches(ot, nt, m, o, n)
        || lost_branch(ot, nt, m, o, n)
        || namesake_in_place(ot, nt, m, o, n)
}

/// The `<if>`/`<switch>` `a` whose branch holds `o`, its counterpart `a2` when that holds `n`,
/// and the slots (branches) of each that hold them.
fn branches_of<'t>(
    ot: &'t Tree,
    nt: &'t Tree,
    m: &Matching,
    o: usize,
    n: usize,
) -> Option<(usize, usize, &'t str, &'t str)> {
    let a = branch_owner(ot, o)?;
    let a2 = m.o2n[a].filter(|&a2| nt.is_desc(n, a2))?;
    let (_, so, _) = ot.child_towards(a, o)?;
    let (_, sn, _) = nt.child_towards(a2, n)?;
    Some((a, a2, so, sn))
}
/// Do `o` and `n` lie in two branches of an `<if>`/`<switch>` and its counterpart that are not
/// each other's counterpart, while the counterpart of `o`'s branch still holds an activity of
/// its element and name at the same place (under the same chain of elements), not taken by
/// another activity of `o`'s branch? Then the name stayed where it was: `o` is that activity,
/// its attributes edited (a target swapped between two cases' `Send` calls), not moved into
/// another branch with its attributes — rows resting there keep the branch they chose. A
/// name is the activity's identity (a call's response and `<sync>` go by it); attributes are
/// what a release edits. An activity whose name left its branch (another name in its place)
/// still moves.
fn namesake_in_place(ot: &Tree, nt: &Tree, m: &Matching, o: usize, n: usize) -> bool {
    let Some(name) = ot.nodes[o].name.as_deref() else {
        return false;
    };
    let Some((a, a2, so, sn)) = branches_of(ot, nt, m, o, n) else {
        return false;
    };
    // The counterpart of o's branch in a2.
    let twin = match case_index(so) {
        Some(i) => {
            let Some(&(_, j)) = m
                .cases
                .get(&a)
                .and_then(|v| v.iter().find(|&&(x, _)| x == i + 1))
            else {
                return false;
            };
            format!("case[{}]", j - 1)
        }
        None => so.to_string(),
    };
    if twin == sn {
        return false;
    }
    let Some(list) = slot_list(nt, a2, &twin) else {
        return false;
    };
    let path = |t: &Tree, p: usize, top: usize| -> Vec<String> {
        t.ancestors(p)
            .take_while(|&q| q != top)
            .map(|q| {
                // The branch itself differs (its counterpart): only what lies below it counts.
                let slot = if t.parent(q) == Some(top) {
                    ""
                } else {
                    &*t.slot[q]
                };
                format!("{slot}\u{1e}{}", t.element(q))
            })
            .collect()
    };
    let (branch_o, here) = (ot.child_towards(a, o).map(|c| c.0), path(ot, o, a));
    list.iter()
        .flat_map(|&y| y..=nt.end(y))
        .filter(|&y| {
            !nt.in_message[y]
                && nt.element(y) == ot.element(o)
                && nt.nodes[y].name.as_deref() == Some(name)
                && path(nt, y, a2) == here
        })
        .any(|y| match m.n2o[y] {
            None => true,
            Some(x) => {
                x == o
                    || !branch_o.is_some_and(|b| {
                        ot.child_towards(a, x)
                            .is_some_and(|c| ot.slot[c.0] == ot.slot[b])
                    })
            }
        })
}

/// Do `o` and `n` lie in two branches of an `<if>`/`<switch>` and its counterpart that are
/// not each other's counterpart, one of which has none (a case added, or one removed)? Then
/// they are not the same activity moved: rows in the old branch still have its counterpart to
/// be in (or, the old branch gone, the new one is chosen by a test they never took), and the
/// copy in the new branch belongs to the rows that choose it. A move between two kept branches
/// is reported as such ([`crate::diff::statemap::branch_switch`]). False while the cases of a
/// switch are not paired yet.
fn lost_branch(ot: &Tree, nt: &Tree, m: &Matching, o: usize, n: usize) -> bool {
    let Some((a, a2, so, sn)) = branches_of(ot, nt, m, o, n) else {
        return false;
    };
    let (ci, cj) = (case_index(so), case_index(sn));
    let pairs = m.cases.get(&a);
    if (ci.is_some() || cj.is_some()) && pairs.is_none() {
        return false;
    }
    let corresponding = match (ci, cj) {
        (Some(i), Some(j)) => pairs.is_some_and(|v| v.contains(&(i + 1, j + 1))),
        (None, None) => so == sn,
        _ => false,
    };
    let old_kept = match ci {
        Some(i) => pairs.is_some_and(|v| v.iter().any(|&(x, _)| x == i + 1)),
        None => nt.slots[a2].iter().any(|(s, _)| s.as_str() == so),
    };
    let new_kept = match cj {
        Some(j) => pairs.is_some_and(|v| v.iter().any(|&(_, y)| y == j + 1)),
        None => ot.slots[a].iter().any(|(s, _)| s.as_str() == sn),
    };
    !(corresponding || (old_kept && new_kept))
}

/// Does the branch or case of the nearest `<if>`/`<switch>` holding `p` (in `t`, the old tree
/// when `old`) have a counterpart in `u`? `None` when `p` lies in no branch, or when the cases
/// of its switch were not paired yet.
fn branch_kept(t: &Tree, u: &Tree, m: &Matching, p: usize, old: bool) -> Option<bool> {
    let a = branch_owner(t, p)?;
    let (_, slot, _) = t.child_towards(a, p)?;
    let image = if old { m.o2n[a] } else { m.n2o[a] };
    let Some(a2) = image else {
        return Some(false);
    };
    Some(match case_index(slot) {
        Some(i) => {
            let (sw, nth) = if old { (a, i + 1) } else { (a2, i + 1) };
            let pairs = m.cases.get(&sw)?;
            pairs
                .iter()
                .any(|&(x, y)| if old { x == nth } else { y == nth })
        }
        None => u.slots[a2].iter().any(|(s, _)| s.as_str() == slot),
    })
}

/// How a candidate pair was found, for [`crossing_ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// An identical subtree, unique in both trees.
    Exact,
    /// The same key attributes or the same name.
    Identity,
    /// A rename or corresponding contents.
    Similar,
}

impl Crossing {
    fn of(via: MatchVia) -> Crossing {
        match via {
            MatchVia::Key | MatchVia::Name => Crossing::Identity,
            _ => Crossing::Similar,
        }
    }
}

/// The nearest `<if>`/`<switch>` whose branch or case holds `p` (not `p` itself).
fn branch_owner(t: &Tree, p: usize) -> Option<usize> {
    t.ancestors(p)
        .find(|&q| matches!(t.element(q), "if" | "switch"))
}

/// Does the activity itself own a state or a response handler (so an instance can rest in
/// it)? Calls, syncs, delays and every container; not simple activities or message parts.
fn allocates(t: &Tree, p: usize) -> bool {
    !t.in_message[p]
        && matches!(
            t.element(p),
            "call"
                | "sync"
                | "delay"
                | "if"
                | "switch"
                | "while"
                | "until"
                | "foreach"
                | "scope"
                | "flow"
        )
}

fn slot_list<'t>(t: &'t Tree, p: usize, slot: &str) -> Option<&'t Vec<usize>> {
    t.slots[p].iter().find(|(s, _)| s == slot).map(|(_, l)| l)
}

/// Maximum-weight order-preserving alignment of `0..m` with `0..k` (pairs scoring 0 are not
/// allowed). Ties go to the leftmost pairing. Returns (i, j, score) in order.
pub(crate) fn align_dp(
    m: usize,
    k: usize,
    score: impl Fn(usize, usize) -> u32,
) -> Vec<(usize, usize, u32)> {
    // dp[i][j] = best total for the suffixes i.., j..
    let w = k + 1;
    let mut dp = vec![0u64; (m + 1) * w];
    let mut s = vec![0u32; m * k];
    for i in (0..m).rev() {
        for j in (0..k).rev() {
            let sc = score(i, j);
            s[i * k + j] = sc;
            let diag = if sc > 0 {
                dp[(i + 1) * w + j + 1] + u64::from(sc)
            } else {
                0
            };
            dp[i * w + j] = diag.max(dp[(i + 1) * w + j]).max(dp[i * w + j + 1]);
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < m && j < k {
        let sc = s[i * k + j];
        if sc > 0 && dp[i * w + j] == dp[(i + 1) * w + j + 1] + u64::from(sc) {
            out.push((i, j, sc));
            i += 1;
            j += 1;
        } else if dp[i * w + j] == dp[(i + 1) * w + j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The longest chain of pairs increasing in both coordinates (input sorted by i).
pub(crate) fn increasing_chain(pairs: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    // Patience LIS on j, O(n log n); ties impossible (j distinct).
    let mut tails: Vec<usize> = Vec::new(); // index into pairs
    let mut prev: Vec<Option<usize>> = vec![None; pairs.len()];
    for (x, &(_, j)) in pairs.iter().enumerate() {
        let at = tails.partition_point(|&t| pairs[t].1 < j);
        if at > 0 {
            prev[x] = Some(tails[at - 1]);
        }
        if at == tails.len() {
            tails.push(x);
        } else {
            tails[at] = x;
        }
    }
    let mut out = Vec::new();
    let mut cur = tails.last().copied();
    while let Some(x) = cur {
        out.push(pairs[x]);
        cur = prev[x];
    }
    out.reverse();
    out
}

/// The stretches between consecutive anchors: (old from, old to, new from, new to), half-open.
fn gaps(anchors: &[(usize, usize)], m: usize, k: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let (mut pi, mut pj) = (0, 0);
    for &(i, j) in anchors.iter().chain(std::iter::once(&(m, k))) {
        if i > pi && j > pj {
            out.push((pi, i, pj, j));
        }
        pi = i + 1;
        pj = j + 1;
    }
    out
}
