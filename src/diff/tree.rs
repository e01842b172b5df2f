//! A flat, indexed view of one activity tree for the matcher: pre-order positions, parents,
//! slots, subtree hashes, matching keys and order relations ("does `a` run before `w`?").

use crate::bpl::{Activity, ActivityId, ActivityKind, Bpl};
use crate::states::{ActivityRef, ActivityRefs, SharedStr};
use foldhash::{HashMap, HashMapExt};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

/// Attributes that identify an activity, per element (besides `name`, which is always part of
/// the key). Attributes not listed here (timeouts, `xpos`, annotations, `value` of an assign …)
/// are content: they make two activities differ exactly but not by identity.
const KEY_ATTRS: &[(&str, &[&str])] = &[
    ("call", &["target", "async"]),
    ("sync", &["calls", "type"]),
    ("delay", &["duration", "until"]),
    ("assign", &["property", "action", "key"]),
    ("if", &["condition"]),
    ("while", &["condition"]),
    ("until", &["condition"]),
    ("branch", &["label", "condition"]),
    ("foreach", &["property", "key"]),
    ("catch", &["fault"]),
    ("compensate", &["target"]),
    ("trace", &["value"]),
    ("alert", &["value"]),
    ("milestone", &["value"]),
    ("transform", &["class", "source", "target"]),
    ("rule", &["rule"]),
    ("throw", &["fault"]),
    ("xslt", &["xslURL"]),
    ("xpath", &["source", "property"]),
];

fn key_attrs(element: &str) -> &'static [&'static str] {
    KEY_ATTRS
        .iter()
        .find(|(e, _)| *e == element)
        .map(|(_, a)| *a)
        .unwrap_or(&[])
}

pub(crate) type Hash = [u8; 16];

/// No position (an id not in the tree, no parent, no handler).
const NONE: u32 = u32::MAX;

/// A position as stored: the position vectors hold `u32`s (a tree of 100k activities keeps
/// seven of them), read back as `usize` through the accessors.
fn stored(p: usize) -> u32 {
    u32::try_from(p).expect("an activity tree has fewer than 2^32 - 1 nodes")
}

fn stored_opt(p: Option<usize>) -> u32 {
    p.map_or(NONE, stored)
}

fn read_opt(p: u32) -> Option<usize> {
    (p != NONE).then_some(p as usize)
}

/// How `a` relates to `w` in execution order within the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// `a` completes before `w` starts (same list, earlier; or part of `w`'s request).
    Before,
    /// `a` starts after `w` (same list, later).
    After,
    /// `a` encloses `w`.
    Ancestor,
    /// `a` is inside `w` (other than its request).
    Inside,
    /// `a` lies in the body of a scope and `w` in one of that scope's fault handlers: a thread
    /// at `w` ran some prefix of the body before a fault took it there (every body state's
    /// error edge goes to the scope's fault dispatch, spec 4.4), so it may have run `a`.
    Faulted,
    /// Different branches/cases/handlers/threads: no sequential order.
    Unordered,
    Same,
}

pub(crate) struct Tree<'a> {
    pub bpl: &'a Bpl,
    pub nodes: Vec<&'a Activity>,
    /// Parent position (`parent()`), `NONE` for the root.
    parent: Vec<u32>,
    /// Slot name inside the parent (`children`, `body`, `true`, `case[1]`, `request`, …),
    /// interned.
    pub slot: Vec<SharedStr>,
    /// Index within the slot.
    pub index: Vec<u32>,
    /// Last descendant position (pre-order), so `desc(p) = p+1 ..= end(p)`.
    end: Vec<u32>,
    /// The slot list holding `p` spans `list_first(p) ..= list_end(p)` in pre-order: its first
    /// activity up to the last descendant of its last one (`p ..= end(p)` for the root).
    list_first: Vec<u32>,
    list_end: Vec<u32>,
    pub depth: Vec<u32>,
    /// Whole subtree, ignoring layout attributes, annotations and positions.
    pub hash: Vec<Hash>,
    /// The children only (all slots).
    pub inner: Vec<Hash>,
    /// Like `hash`, but blind to every `name` attribute: equal shapes differ by renames only.
    pub shape: Vec<Hash>,
    /// Hash of the own attributes except `name` and `disabled`, plus message types / branch
    /// shapes (`own_signature`): equal exactly when the signatures are.
    pub own: Vec<Hash>,
    /// Exact-pass weight: nodes plus key attribute values in the subtree.
    pub weight: Vec<u32>,
    /// Identity key: element, name, key attributes (and request type / sync-ness for calls),
    /// hashed ([`keys`] spells it out where its order matters).
    pub key: Vec<Hash>,
    /// The key without the name, hashed; None when nothing but the name identifies the element.
    pub rename_key: Vec<Option<Hash>>,
    /// Enabled, and every ancestor enabled: the compiler generates it.
    pub effective: Vec<bool>,
    /// How many positions before `p` are effective: `effective_in(a..b)` in O(1).
    effective_before: Vec<u32>,
    /// Position of the root of the thread the activity runs in (0 or a flow child sequence).
    thread_root: Vec<u32>,
    /// Nearest enclosing catch / catchall / compensation handler (or itself), `NONE` outside.
    handler: Vec<u32>,
    /// Inside a call's `<request>`/`<response>`.
    pub in_message: Vec<bool>,
    /// Child lists: (slot, positions), in `Activity::child_slots` order.
    pub slots: Vec<Vec<(SharedStr, Vec<usize>)>>,
    /// Position by `ActivityId` (ids are dense, `NONE` where an id is not in the tree).
    by_id: Vec<u32>,
    /// Another activity of the same element carries the same name: labels add the position.
    pub shared_name: Vec<bool>,
    /// Every activity's `ActivityRef` (made once, cloned cheaply) and the interned slot names.
    refs: ActivityRefs,
}

impl<'a> Tree<'a> {
    pub fn new(bpl: &'a Bpl) -> Tree<'a> {
        let n = bpl.process.flat.len().max(1);
        let mut t = Tree {
            bpl,
            nodes: Vec::with_capacity(n),
            parent: Vec::with_capacity(n),
            slot: Vec::with_capacity(n),
            index: Vec::with_capacity(n),
            end: Vec::with_capacity(n),
            list_first: Vec::with_capacity(n),
            list_end: Vec::with_capacity(n),
            depth: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            inner: Vec::with_capacity(n),
            shape: Vec::with_capacity(n),
            own: Vec::with_capacity(n),
            weight: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            rename_key: Vec::with_capacity(n),
            effective: Vec::with_capacity(n),
            effective_before: Vec::with_capacity(n),
            thread_root: Vec::with_capacity(n),
            handler: Vec::with_capacity(n),
            in_message: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            by_id: vec![NONE; n],
            shared_name: Vec::new(),
            refs: ActivityRefs::default(),
        };
        let process = t.refs.intern("process");
        t.walk(&bpl.process.sequence, None, process, 0, 0);
        // One look-up per named activity: its (element, name) group, then the group sizes.
        let mut groups: HashMap<(&str, &str), u32> = HashMap::with_capacity(t.nodes.len());
        let mut sizes: Vec<u32> = Vec::new();
        let group: Vec<u32> = t
            .nodes
            .iter()
            .map(|n| {
                let Some(name) = &n.name else {
                    return u32::MAX;
                };
                let next = sizes.len() as u32;
                let g = *groups
                    .entry((n.element.as_str(), name.as_str()))
                    .or_insert(next);
                if g == next {
                    sizes.push(0);
                }
                sizes[g as usize] += 1;
                g
            })
            .collect();
        t.shared_name = group
            .into_iter()
            .map(|g| g != u32::MAX && sizes[g as usize] > 1)
            .collect();
        t
    }

    fn walk(
        &mut self,
        a: &'a Activity,
        parent: Option<usize>,
        slot: SharedStr,
        index: u32,
        depth: u32,
    ) -> usize {
        let p = self.nodes.len();
        self.nodes.push(a);
        self.parent.push(stored_opt(parent));
        self.index.push(index);
        self.end.push(stored(p));
        self.list_first.push(stored(p));
        self.list_end.push(stored(p));
        self.depth.push(depth);
        self.hash.push([0; 16]);
        self.inner.push([0; 16]);
        self.shape.push([0; 16]);
        self.own.push([0; 16]);
        self.weight.push(0);
        let (key, rename_key) = keys(a);
        self.key.push(fingerprint_of(&key));
        self.rename_key.push(rename_key.map(|k| fingerprint_of(&k)));
        let parent_effective = parent.map(|q| self.effective[q]).unwrap_or(true);
        let before = match p.checked_sub(1) {
            Some(q) => self.effective_before[q] + u32::from(self.effective[q]),
            None => 0,
        };
        self.effective_before.push(before);
        self.effective.push(parent_effective && !a.disabled);
        let thread_root = match parent {
            None => p,
            Some(q) if self.nodes[q].element == "flow" => p,
            Some(q) => self.thread_root(q),
        };
        self.thread_root.push(stored(thread_root));
        let handler = if matches!(
            a.element.as_str(),
            "catch" | "catchall" | "compensationhandler"
        ) {
            Some(p)
        } else {
            parent.and_then(|q| self.handler(q))
        };
        self.handler.push(stored_opt(handler));
        let in_message = matches!(slot.as_str(), "request" | "response")
            || parent.is_some_and(|q| self.in_message[q]);
        self.in_message.push(in_message);
        self.slot.push(slot);
        self.slots.push(Vec::new());
        let i = a.id.0 as usize;
        if i >= self.by_id.len() {
            self.by_id.resize(i + 1, NONE);
        }
        self.by_id[i] = stored(p);
        let child_slots = a.child_slots();
        let mut slots = Vec::with_capacity(child_slots.len());
        for (name, list) in child_slots {
            let name = self.refs.intern(&name);
            let mut ps = Vec::with_capacity(list.len());
            for (i, c) in list.iter().enumerate() {
                ps.push(self.walk(c, Some(p), name.clone(), i as u32, depth + 1));
            }
            if let (Some(&first), Some(&last)) = (ps.first(), ps.last()) {
                let span_end = self.end[last];
                for &c in &ps {
                    self.list_first[c] = stored(first);
                    self.list_end[c] = span_end;
                }
            }
            slots.push((name, ps));
        }
        self.slots[p] = slots;
        self.end[p] = stored(self.nodes.len() - 1);
        if parent.is_none() {
            self.list_end[p] = self.end[p];
        }
        // Post-order, while the activity is still in cache: the children are done.
        self.compute_hash(p);
        self.weight[p] = self.own_weight(p)
            + self.slots[p]
                .iter()
                .flat_map(|(_, l)| l)
                .map(|&c| self.weight[c])
                .sum::<u32>();
        p
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Every position's last descendant (`end`), as stored.
    pub fn ends(&self) -> &[u32] {
        &self.end
    }

    pub fn parent(&self, p: usize) -> Option<usize> {
        read_opt(self.parent[p])
    }

    /// The last descendant of `p` in pre-order (`p` itself for a leaf).
    pub fn end(&self, p: usize) -> usize {
        self.end[p] as usize
    }

    /// The first position of the slot list holding `p`.
    pub fn list_first(&self, p: usize) -> usize {
        self.list_first[p] as usize
    }

    /// The last position (last descendant of the last activity) of the slot list holding `p`.
    pub fn list_end(&self, p: usize) -> usize {
        self.list_end[p] as usize
    }

    pub fn thread_root(&self, p: usize) -> usize {
        self.thread_root[p] as usize
    }

    pub fn handler(&self, p: usize) -> Option<usize> {
        read_opt(self.handler[p])
    }

    /// Frees what only matching reads (`inner`, `shape`, `own`, `weight`, `key`, `rename_key`:
    /// ~90 bytes an activity) once the trees are matched and classified: the later stages keep
    /// the trees, and a plan of 100k activities should not carry them. They are empty after.
    pub(crate) fn release_matching_data(&mut self) {
        for v in [
            &mut self.inner,
            &mut self.shape,
            &mut self.own,
            &mut self.key,
        ] {
            *v = Vec::new();
        }
        self.weight = Vec::new();
        self.rename_key = Vec::new();
    }

    pub fn pos(&self, id: ActivityId) -> Option<usize> {
        self.by_id.get(id.0 as usize).copied().and_then(read_opt)
    }

    pub fn id(&self, p: usize) -> ActivityId {
        self.nodes[p].id
    }

    /// The activity's reference; clones share its strings.
    pub fn aref(&self, p: usize) -> ActivityRef {
        ActivityRef::of(self.nodes[p])
    }

    /// `call "Lookup"`, `assign@12:5`, or `if "Check"@17:5` when another `<if>` is also
    /// named "Check".
    pub fn label(&self, p: usize) -> String {
        let n = self.nodes[p];
        if self.shared_name[p] {
            format!("{}@{}", n.label(), n.pos)
        } else {
            n.label()
        }
    }

    /// A fault handler as the source writes it: `<catchall>`, `<catch fault='"Timeout"'>`.
    pub fn handler_tag(&self, c: usize) -> String {
        match &self.nodes[c].kind {
            crate::bpl::ActivityKind::Catch {
                fault: Some(fault), ..
            } => format!("<catch fault={}>", xml_attr(fault)),
            _ => format!("<{}>", self.element(c)),
        }
    }

    /// The `<catch>`/`<catchall>` holding `p` (or `p` itself) that no fault reaches: a catch
    /// after an earlier one of the same fault (the fault dispatch is a `<switch>` with a case
    /// per catch in document order, disabled ones included: spec 3.4.10, 3.4.5), or a
    /// catchall other than the last (dropped, spec 3.4.10).
    pub fn unreached_handler(&self, p: usize) -> Option<usize> {
        std::iter::once(p).chain(self.ancestors(p)).find(|&c| {
            let Some(s) = self.parent(c).filter(|&s| self.element(s) == "scope") else {
                return false;
            };
            let mut handlers = self.slots[s]
                .iter()
                .filter(|(slot, _)| slot == "faulthandlers")
                .flat_map(|(_, l)| l.iter().copied());
            match &self.nodes[c].kind {
                crate::bpl::ActivityKind::Catch { fault, .. } => handlers
                    .take_while(|&x| x != c)
                    .any(|x| matches!(&self.nodes[x].kind, crate::bpl::ActivityKind::Catch { fault: f, .. } if same_expr(f.as_deref(), fault.as_deref()))),
                crate::bpl::ActivityKind::Catchall { .. } => {
                    handlers.rfind(|&x| self.element(x) == "catchall") != Some(c)
                }
                _ => false,
            }
        })
    }

    /// [`label`](Tree::label), but an unnamed `<catch>`/`<catchall>` as the source writes it,
    /// with its scope: `<catch fault='"NACK"'> of scope "Deliver"` (and its position when
    /// another handler of that scope reads the same).
    pub fn describe(&self, p: usize) -> String {
        if self.nodes[p].name.is_some() || !matches!(self.element(p), "catch" | "catchall") {
            return self.label(p);
        }
        let tag = self.handler_tag(p);
        let Some(s) = self.parent(p) else { return tag };
        let twin = self.slots[s]
            .iter()
            .filter(|(slot, _)| slot == "faulthandlers")
            .flat_map(|(_, l)| l.iter().copied())
            .any(|c| c != p && self.nodes[c].name.is_none() && self.handler_tag(c) == tag);
        let at = if twin {
            format!("@{}", self.nodes[p].pos)
        } else {
            String::new()
        };
        format!("the {tag}{at} of {}", self.label(s))
    }

    pub fn element(&self, p: usize) -> &str {
        &self.nodes[p].element
    }

    /// The call names a `<sync>` at `p` lists (trimmed, empty entries skipped); none for any
    /// other element.
    pub fn sync_calls(&self, p: usize) -> impl Iterator<Item = &'a str> {
        let n: &'a Activity = self.nodes[p];
        n.attrs
            .get("calls")
            .filter(|_| n.element == "sync")
            .into_iter()
            .flat_map(|c| c.split(',').map(str::trim).filter(|c| !c.is_empty()))
    }

    /// Number of descendants.
    pub fn desc_count(&self, p: usize) -> usize {
        self.end(p) - p
    }

    pub fn is_desc(&self, d: usize, of: usize) -> bool {
        d > of && d <= self.end(of)
    }

    /// Ancestors from the parent up to the root.
    pub fn ancestors(&self, p: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.parent(p), move |&q| self.parent(q))
    }

    /// The `<catch>` children of a scope, in document order.
    pub fn catches(&self, scope: usize) -> Vec<usize> {
        self.slots[scope]
            .iter()
            .filter(|(s, _)| s == "faulthandlers")
            .flat_map(|(_, l)| l.iter().copied())
            .filter(|&c| self.nodes[c].element == "catch")
            .collect()
    }

    /// The `<compensationhandler>` children of a scope.
    pub fn comp_handlers(&self, scope: usize) -> Vec<usize> {
        self.slots[scope]
            .iter()
            .filter(|(s, _)| s == "handlers")
            .flat_map(|(_, l)| l.iter().copied())
            .collect()
    }

    fn own_weight(&self, p: usize) -> u32 {
        let a = self.nodes[p];
        let keyed = key_attrs(&a.element)
            .iter()
            .filter(|k| a.attrs.contains_key(**k))
            .count() as u32;
        1 + keyed + u32::from(a.name.is_some())
    }

    fn compute_hash(&mut self, p: usize) {
        let a = self.nodes[p];
        let mut inner = fingerprint();
        for (slot, list) in &self.slots[p] {
            field(&mut inner, slot);
            for &c in list {
                inner.write(&self.hash[c]);
            }
            field(&mut inner, "/");
        }
        self.inner[p] = inner.finish128().as_bytes();
        let own = own_signature(a);
        let mut shape = fingerprint();
        field(&mut shape, &a.element);
        field(&mut shape, if a.disabled { "disabled" } else { "enabled" });
        field(&mut shape, &own);
        for (slot, list) in &self.slots[p] {
            field(&mut shape, slot);
            for &c in list {
                shape.write(&self.shape[c]);
            }
            field(&mut shape, "/");
        }
        self.shape[p] = shape.finish128().as_bytes();
        let mut h = fingerprint();
        field(&mut h, &a.element);
        field(&mut h, if a.disabled { "disabled" } else { "enabled" });
        field(&mut h, a.name.as_deref().unwrap_or("\u{0}"));
        field(&mut h, &own);
        h.write(&self.inner[p]);
        self.hash[p] = h.finish128().as_bytes();
        self.own[p] = fingerprint_of(&own);
    }

    /// The slot of `a`'s ancestor-or-self that is a direct child of `anc`: (slot, index, child).
    pub fn child_towards(&self, anc: usize, a: usize) -> Option<(usize, &str, u32)> {
        let mut c = a;
        loop {
            let p = self.parent(c)?;
            if p == anc {
                return Some((c, self.slot[c].as_str(), self.index[c]));
            }
            c = p;
        }
    }

    /// How many of the positions `range` are effective (not disabled, nor inside a disabled
    /// activity).
    pub fn effective_in(&self, range: std::ops::Range<usize>) -> usize {
        let at = |p: usize| match p.checked_sub(1) {
            Some(q) => self.effective_before[q] as usize + usize::from(self.effective[q]),
            None => 0,
        };
        at(range.end).saturating_sub(at(range.start))
    }

    pub fn lca(&self, a: usize, b: usize) -> usize {
        let (mut x, mut y) = (a, b);
        while self.depth[x] > self.depth[y] {
            x = self.parent(x).unwrap_or(0);
        }
        while self.depth[y] > self.depth[x] {
            y = self.parent(y).unwrap_or(0);
        }
        while x != y {
            x = self.parent(x).unwrap_or(0);
            y = self.parent(y).unwrap_or(0);
        }
        x
    }

    /// Execution-order relation of `a` to `w`, in the sense of "has a thread that reached `w`
    /// already run `a`?". Only sequential lists order things: siblings in different slots
    /// (true/false, cases, body/handlers) and different flow children are unordered.
    pub fn order(&self, a: usize, w: usize) -> Order {
        if a == w {
            return Order::Same;
        }
        if self.is_desc(w, a) {
            return Order::Ancestor;
        }
        if self.is_desc(a, w) {
            // A call's request is built before the call is sent, so before its wait state.
            return match self.child_towards(w, a) {
                Some((_, "request", _)) => Order::Before,
                _ => Order::Inside,
            };
        }
        let l = self.lca(a, w);
        let (Some((_, sa, ia)), Some((_, sw, iw))) =
            (self.child_towards(l, a), self.child_towards(l, w))
        else {
            return Order::Unordered;
        };
        if self.nodes[l].element == "scope" && sa == "body" && sw == "faulthandlers" {
            return Order::Faulted;
        }
        if sa != sw || self.nodes[l].element == "flow" {
            return Order::Unordered;
        }
        if ia < iw {
            Order::Before
        } else {
            Order::After
        }
    }

    /// Every `a` with `order(a, w) == Before` (into `before`) and every `a` with
    /// `order(a, w) == After` (into `after`), as disjoint inclusive pre-order ranges in
    /// ascending order, in O(depth): for `w` and each of its ancestors `x` below the root, the
    /// earlier and the later siblings of `x` in its slot list (with their subtrees; none when
    /// the parent is a `<flow>`), and `w`'s own `<request>`. A slot list and every part of it
    /// are contiguous in pre-order, and slot names are unique per parent, so this is exactly
    /// the "same slot, lower/higher index below the lowest common ancestor" rule of [`order`].
    ///
    /// [`order`]: Tree::order
    pub fn order_ranges(
        &self,
        w: usize,
        before: &mut Vec<(usize, usize)>,
        after: &mut Vec<(usize, usize)>,
    ) {
        before.clear();
        after.clear();
        let mut x = w;
        while let Some(l) = self.parent(x) {
            if self.nodes[l].element != "flow" {
                if self.list_first(x) < x {
                    before.push((self.list_first(x), x - 1));
                }
                if self.end(x) < self.list_end(x) {
                    after.push((self.end(x) + 1, self.list_end(x)));
                }
            }
            x = l;
        }
        // Outer levels came last: their earlier siblings lie before the inner ones.
        before.reverse();
        for (slot, list) in &self.slots[w] {
            if let (true, Some(&first), Some(&last)) =
                (slot == "request", list.first(), list.last())
            {
                before.push((first, self.end(last)));
            }
        }
    }

    /// Find an activity by a selector: `call "Lookup"`, `"Lookup"` (a unique name),
    /// `assign@12:5`, `@12:5` or `12:5` (line:column of the element).
    pub fn select(&self, selector: &str) -> Result<usize, String> {
        let s = selector.trim();
        let by_pos = |rest: &str, element: Option<&str>| -> Result<usize, String> {
            let (l, c) = rest
                .split_once(':')
                .ok_or_else(|| format!("bad position in {selector:?}: expected LINE:COLUMN"))?;
            let (l, c): (u32, u32) = (
                l.trim()
                    .parse()
                    .map_err(|_| format!("bad line in {selector:?}"))?,
                c.trim()
                    .parse()
                    .map_err(|_| format!("bad column in {selector:?}"))?,
            );
            let hits: Vec<usize> = (0..self.len())
                .filter(|&p| {
                    let n = self.nodes[p];
                    n.pos.line == l && n.pos.column == c && element.is_none_or(|e| n.element == e)
                })
                .collect();
            match hits.as_slice() {
                [p] => Ok(*p),
                [] => Err(format!(
                    "no activity at {l}:{c} in {}",
                    self.bpl.source.origin
                )),
                _ => Err(format!(
                    "several activities at {l}:{c} in {}",
                    self.bpl.source.origin
                )),
            }
        };
        if let Some((el, rest)) = s.split_once('@') {
            let el = el.trim();
            return by_pos(rest, (!el.is_empty()).then_some(el));
        }
        if s.split_once(':').is_some_and(|(l, c)| {
            l.trim().parse::<u32>().is_ok() && c.trim().parse::<u32>().is_ok()
        }) {
            return by_pos(s, None);
        }
        let (element, name) = match s.split_once(char::is_whitespace) {
            Some((e, n)) if n.trim().starts_with('"') => (Some(e), n.trim().trim_matches('"')),
            _ => (None, s.trim_matches('"')),
        };
        let hits: Vec<usize> = (0..self.len())
            .filter(|&p| {
                let n = self.nodes[p];
                n.name.as_deref() == Some(name) && element.is_none_or(|e| n.element == e)
            })
            .collect();
        match hits.as_slice() {
            [p] => Ok(*p),
            [] => Err(format!(
                "no activity {selector:?} in {}",
                self.bpl.source.origin
            )),
            many => Err(format!(
                "{selector:?} names {} activities in {} ({}); select one by position, e.g. {}",
                many.len(),
                self.bpl.source.origin,
                many.iter()
                    .map(|&p| format!("{}@{}", self.nodes[p].element, self.nodes[p].pos))
                    .collect::<Vec<_>>()
                    .join(", "),
                format_args!(
                    "\"{}@{}\"",
                    self.nodes[many[0]].element, self.nodes[many[0]].pos
                )
            )),
        }
    }
}

/// Content attributes (not part of the key) that a plan's "(modified: …)" shows all the same,
/// because rows parked at the activity were set up with the old value: a `<sync>`'s timeout
/// (BPM0212 reports it), like a `<delay>`'s duration, which is a key attribute.
const SHOWN_ATTRS: &[(&str, &[&str])] = &[("sync", &["timeout"])];

/// What changed about an activity between two matched versions: its name, the key attributes
/// of its element, the [`SHOWN_ATTRS`], a call's message types and the conditions of a
/// `<switch>`'s cases (`cases`: the matcher's pairs of them), as `what "old" → "new"`.
pub(crate) fn key_changes(a: &Activity, b: &Activity, cases: &[(u32, u32)]) -> Vec<String> {
    let mut out = Vec::new();
    let q = |v: Option<&str>| {
        v.map(|x| format!("{x:?}"))
            .unwrap_or_else(|| "(none)".into())
    };
    if a.name != b.name {
        out.push(format!(
            "name {} → {}",
            q(a.name.as_deref()),
            q(b.name.as_deref())
        ));
    }
    let shown = SHOWN_ATTRS
        .iter()
        .filter(|(e, _)| *e == a.element)
        .flat_map(|(_, attrs)| attrs.iter());
    for k in key_attrs(&a.element).iter().chain(shown) {
        let (x, y) = (a.attrs.get(*k), b.attrs.get(*k));
        if x != y {
            out.push(format!("{k} {} → {}", q(x), q(y)));
        }
    }
    if let (
        ActivityKind::Call {
            request: rq1,
            response: rs1,
            ..
        },
        ActivityKind::Call {
            request: rq2,
            response: rs2,
            ..
        },
    ) = (&a.kind, &b.kind)
    {
        let ty = |m: &Option<crate::bpl::Message>| m.as_ref().and_then(|m| m.type_name.clone());
        for (what, x, y) in [
            ("request", ty(rq1), ty(rq2)),
            ("response", ty(rs1), ty(rs2)),
        ] {
            if x != y {
                out.push(format!("{what} {} → {}", q(x.as_deref()), q(y.as_deref())));
            }
        }
    }
    if let (ActivityKind::Switch { cases: c1, .. }, ActivityKind::Switch { cases: c2, .. }) =
        (&a.kind, &b.kind)
    {
        // A case is the one the matcher paired it with (`cases`: 1-based old and new user
        // cases, paired by condition, name and contents).
        for (i, x) in c1.iter().enumerate() {
            let y = cases
                .iter()
                .find(|&&(o, _)| o as usize == i + 1)
                .and_then(|&(_, n)| c2.get((n as usize).checked_sub(1)?));
            if let Some(y) =
                y.filter(|y| !same_expr(y.condition.as_deref(), x.condition.as_deref()))
            {
                let case = match &x.name {
                    Some(n) => format!("case {n:?}"),
                    None => format!("case #{}", i + 1),
                };
                out.push(format!(
                    "{case} condition {} → {}",
                    q(x.condition.as_deref()),
                    q(y.condition.as_deref())
                ));
            }
        }
    }
    out
}

/// A fresh hasher for the 128-bit fingerprints the matcher compares (subtrees, shapes, keys):
/// SipHash-1-3 with a key drawn once per process. The fingerprints are only ever compared
/// for equality within one run, never stored or printed; a random key means no input can be
/// written to make two different subtrees collide (a collision would pair them).
fn fingerprint() -> SipHasher13 {
    static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    let &(k0, k1) = KEY.get_or_init(|| {
        // Two std hashers seeded from the process's random keys: two random 64-bit words.
        let word = |i: u8| std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), i);
        (word(0), word(1))
    });
    SipHasher13::new_with_keys(k0, k1)
}

/// The fingerprint of one string.
fn fingerprint_of(s: &str) -> Hash {
    let mut h = fingerprint();
    field(&mut h, s);
    h.finish128().as_bytes()
}

/// A length-prefixed field, so that no two sequences of fields feed the same bytes.
fn field(h: &mut SipHasher13, s: &str) {
    h.write(&(s.len() as u64).to_le_bytes());
    h.write(s.as_bytes());
}

/// Own attributes that are neither the name nor `disabled`, plus what the element's shape says
/// (message types, which `<if>` branches exist, the `<switch>` case conditions).
fn own_signature(a: &Activity) -> String {
    use std::fmt::Write;
    // Written in place (no string per part): two of these per activity and tree.
    let mut s = String::new();
    for (k, v) in &a.attrs {
        // `disabled` is compared parsed ("0" and absent are the same); the name separately.
        if k != "disabled" && k != "name" {
            let _ = write!(s, "{k}={v}\u{1f}");
        }
    }
    if let Some(code) = &a.code {
        let _ = write!(s, "code:{}\u{1f}", code.trim());
    }
    match &a.kind {
        ActivityKind::Call {
            request, response, ..
        } => {
            let _ = write!(s, "req:{:?}\u{1f}", request.as_ref().map(|m| &m.type_name));
            let _ = write!(
                s,
                "resp:{:?}\u{1f}",
                response.as_ref().map(|m| &m.type_name)
            );
        }
        ActivityKind::If {
            true_branch,
            false_branch,
        } => {
            let _ = write!(
                s,
                "if:{}:{}\u{1f}",
                true_branch.is_some(),
                false_branch.is_some()
            );
        }
        ActivityKind::Switch { cases, default } => {
            for c in cases {
                let _ = write!(s, "case:{:?}:{:?}\u{1f}", c.name, c.condition);
            }
            let _ = write!(s, "default:{}\u{1f}", default.is_some());
        }
        _ => {}
    }
    s
}

/// The identity key of `a` and its key without the name (None when nothing but the name
/// identifies the element), as strings.
pub(crate) fn keys(a: &Activity) -> (String, Option<String>) {
    // `k=v` parts joined by U+001F, written in place (one string per activity and tree);
    // expressions compare as written but for spacing and outer parentheses.
    let request = match &a.kind {
        ActivityKind::Call { request, .. } => Some(
            request
                .as_ref()
                .and_then(|m| m.type_name.as_deref())
                .unwrap_or(""),
        ),
        _ => None,
    };
    let parts = key_attrs(&a.element)
        .iter()
        .map(|k| {
            let v = a.attrs.get(*k).unwrap_or("");
            let v = match EXPR_ATTRS.contains(k) {
                true => std::borrow::Cow::Owned(normalize_expr(v)),
                false => std::borrow::Cow::Borrowed(v),
            };
            (*k, v)
        })
        .chain(request.map(|r| ("request", std::borrow::Cow::Borrowed(r))));
    let mut rest = String::new();
    let mut meaningful = false;
    for (i, (k, v)) in parts.enumerate() {
        if i > 0 {
            rest.push('\u{1f}');
        }
        rest.push_str(k);
        rest.push('=');
        rest.push_str(&v);
        // As `k=v` not ending in `=` (a value ending in `=` says as little as none).
        meaningful |= !v.is_empty() && !v.ends_with('=');
    }
    let (element, name) = (a.element.as_str(), a.name.as_deref().unwrap_or(""));
    let mut key = String::with_capacity(element.len() + name.len() + rest.len() + 4);
    for part in [element, "\u{1e}", name, "\u{1e}", &rest] {
        key.push_str(part);
    }
    let rename_key = meaningful.then(|| {
        let mut k = String::with_capacity(element.len() + rest.len() + 2);
        for part in [element, "\u{1e}", &rest] {
            k.push_str(part);
        }
        k
    });
    (key, rename_key)
}

/// Key attributes holding an expression (compared by [`normalize_expr`]): a test, a fault, a
/// duration or a traced value.
const EXPR_ATTRS: &[&str] = &["condition", "fault", "duration", "until", "value"];

/// An ObjectScript expression as compared for identity: whitespace outside string literals
/// (`"…"`, `""` an escaped quote) dropped, then redundant outer parentheses. `context.Age<18`,
/// `context.Age < 18` and `(context.Age < 18)` are one test; `"a b"` and `"ab"` are not, nor
/// `<18` and `<=18`. Whitespace never separates two tokens that could merge into another
/// valid expression (operators are symbols; names and numbers never stand side by side).
pub(crate) fn normalize_expr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    for ch in s.chars() {
        if ch == '"' {
            in_str = !in_str;
            out.push(ch);
        } else if in_str || !ch.is_whitespace() {
            out.push(ch);
        }
    }
    let layers = outer_paren_layers(&out);
    out[layers..out.len() - layers].to_string()
}

/// How many `(`…`)` pairs enclose all of `s` (`((a)=(b))` has one, `(a)=(b)` none), in one
/// pass: an expression of deeply nested parentheses costs its length, not its length squared.
/// Parentheses inside string literals do not count.
fn outer_paren_layers(s: &str) -> usize {
    let b = s.as_bytes();
    let lead = b.iter().take_while(|&&c| c == b'(').count();
    if lead == 0 {
        return 0;
    }
    // For the j-th leading `(`, the byte index of its `)`; the j outermost enclose everything
    // while the j-th closes at `len - 1 - j`.
    let mut open: Vec<usize> = Vec::new();
    let mut closes = vec![usize::MAX; lead];
    let mut in_str = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'"' => in_str = !in_str,
            b'(' if !in_str => open.push(i),
            b')' if !in_str => match open.pop() {
                Some(o) if o < lead => closes[o] = i,
                Some(_) => {}
                None => return 0,
            },
            _ => {}
        }
    }
    (0..lead)
        .take_while(|&j| closes[j] == b.len() - 1 - j && j < b.len() - 1 - j)
        .count()
}

/// Are two expressions (conditions, faults) the same once [normalised](normalize_expr)?
pub(crate) fn same_expr(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(normalize_expr) == b.map(normalize_expr)
}

/// Elements that generate no code that does anything: `<empty>` generates nothing, and
/// `<receive>`, unimplemented, only a comment (spec 2.2). Skipping or re-running them changes
/// nothing.
pub(crate) fn does_nothing(element: &str) -> bool {
    matches!(element, "empty" | "receive")
}

/// Does the key say anything beyond the element name (a name or a key attribute value)?
pub(crate) fn key_is_trivial(t: &Tree, p: usize) -> bool {
    t.nodes[p].name.is_none() && t.rename_key[p].is_none()
}

/// An attribute value quoted as XML would (the fault of a catch is usually a quoted string:
/// `'"Timeout"'`).
pub(crate) fn xml_attr(v: &str) -> String {
    let v = v.replace('&', "&amp;").replace('<', "&lt;");
    if !v.contains('"') {
        format!("\"{v}\"")
    } else if !v.contains('\'') {
        format!("'{v}'")
    } else {
        format!("\"{}\"", v.replace('"', "&quot;"))
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_expr, same_expr, Order, Tree};

    #[test]
    fn expressions_compare_without_spacing_or_outer_parentheses() {
        let same = |a: &str, b: &str| same_expr(Some(a), Some(b));
        // Re-spaced, or wrapped in redundant parentheses: the same test.
        assert!(same("context.Age<18", "context.Age < 18"));
        assert!(same("context.Consent=\"Y\"", "(context.Consent = \"Y\")"));
        assert!(same("((a=1))", " ( a = 1 ) "));
        assert!(same("\"Timeout\"", " \"Timeout\""));
        // Another operator, another literal, or spaces inside a string: another test.
        assert!(!same("context.Age<18", "context.Age<=18"));
        assert!(!same("context.Age<18", "context.Age<19"));
        assert!(!same("context.Pri=\"A B\"", "context.Pri=\"AB\""));
        assert!(!same("x=\"a \"\" b\"", "x=\"a\"\"b\""));
        // Parentheses that do not enclose the whole expression stay (left-to-right
        // evaluation: they group), and so do parentheses inside strings.
        assert_eq!(normalize_expr("(a=1)&&(b=2)"), "(a=1)&&(b=2)");
        assert!(!same("(a+1)*2", "a+1*2"));
        assert_eq!(normalize_expr("x=\"(a b)\""), "x=\"(a b)\"");
        assert_eq!(normalize_expr("(x=\")\")"), "x=\")\"");
        assert!(same_expr(None, None));
        assert!(!same_expr(None, Some("1")));
        // Unbalanced or empty: kept as written.
        assert_eq!(normalize_expr("(a"), "(a");
        assert_eq!(normalize_expr("a)"), "a)");
        assert_eq!(normalize_expr("(())"), "");
        // Deep nesting is peeled in one pass (a hostile condition must not cost its length
        // squared): 200,000 layers around `a=1`, and the same with one unmatched layer.
        let deep = format!("{}a=1{}", "(".repeat(200_000), ")".repeat(200_000));
        assert_eq!(normalize_expr(&deep), "a=1");
        let lopsided = format!("{}a=1{}", "(".repeat(200_001), ")".repeat(200_000));
        assert_eq!(normalize_expr(&lopsided), lopsided);
    }
    use crate::bpl::{load, LoadOptions};
    use std::path::Path;

    /// Every BPL document among the fixtures (states examples and change pairs).
    fn fixture_documents() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut out = Vec::new();
        for dir in ["states", "changes"] {
            let mut cases: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            cases.sort();
            for case in cases {
                for f in ["process.cls", "process.xml", "old.cls", "new.cls"] {
                    let p = case.join(f);
                    if p.exists() {
                        out.push(p.to_string_lossy().into_owned());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn order_ranges_are_exactly_the_before_and_after_of_order() {
        let docs = fixture_documents();
        assert!(docs.len() > 40, "{docs:?}");
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for doc in &docs {
            let bpl = load(doc, &LoadOptions::default()).unwrap_or_else(|e| panic!("{doc}: {e}"));
            let t = Tree::new(&bpl);
            for w in 0..t.len() {
                t.order_ranges(w, &mut before, &mut after);
                for v in [&before, &after] {
                    assert!(v.iter().all(|&(s, e)| s <= e), "{doc} @{w}: {v:?}");
                    assert!(v.windows(2).all(|x| x[0].1 < x[1].0), "{doc} @{w}: {v:?}");
                }
                let inside =
                    |v: &[(usize, usize)], a: usize| v.iter().any(|&(s, e)| s <= a && a <= e);
                for a in 0..t.len() {
                    let o = t.order(a, w);
                    assert_eq!(
                        inside(&before, a),
                        o == Order::Before,
                        "{doc}: {a} vs {w}: {o:?}"
                    );
                    assert_eq!(
                        inside(&after, a),
                        o == Order::After,
                        "{doc}: {a} vs {w}: {o:?}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    use super::{keys, Tree};
    use crate::bpl::{load, LoadOptions};

    /// The 128-bit fingerprints stand for the strings: on every pair of activities of the
    /// change fixtures (old and new trees together), equal fingerprints exactly when the key,
    /// rename key and own signature strings are equal.
    #[test]
    fn key_fingerprints_are_equal_exactly_when_the_keys_are() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/changes");
        let mut cases: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        cases.sort();
        let mut compared = 0usize;
        for case in cases {
            let docs: Vec<_> = ["old.cls", "new.cls"]
                .iter()
                .map(|f| case.join(f))
                .filter(|p| p.exists())
                .filter_map(|p| load(&p.to_string_lossy(), &LoadOptions::default()).ok())
                .collect();
            let trees: Vec<Tree> = docs.iter().map(Tree::new).collect();
            let nodes: Vec<(&Tree, usize)> = trees
                .iter()
                .flat_map(|t| (0..t.len()).map(move |p| (t, p)))
                .collect();
            for &(t, p) in &nodes {
                let (k, rk) = keys(t.nodes[p]);
                let own = super::own_signature(t.nodes[p]);
                for &(u, q) in &nodes {
                    let (k2, rk2) = keys(u.nodes[q]);
                    assert_eq!(k == k2, t.key[p] == u.key[q], "{k:?} / {k2:?}");
                    assert_eq!(rk == rk2, t.rename_key[p] == u.rename_key[q]);
                    let own2 = super::own_signature(u.nodes[q]);
                    assert_eq!(own == own2, t.own[p] == u.own[q], "{own:?} / {own2:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 10_000, "{compared}");
    }
}
