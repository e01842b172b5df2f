//! The census: how many rows rest where. Thread rows per table × `%NextState` × `%Status` ×
//! stacks, pending responses per table × key, response handlers per value — and the census the
//! plan predicts after its rewrite, which `apply` compares with the real one before commit.

use super::conn::{Db, Value};
use super::error::DbFailure;
use super::listcodec::{decode_list, hex};
use super::progress::{Event, Progress};
use crate::plan::MigrationPlan;
use crate::sql::{
    self, ELEMENT_KEY, HANDLER_STACK, NEXT_STATE, RESPONSE_HANDLER_COLUMN, SUBROUTINE_STACK,
    THREAD_STATUS,
};
use crate::states::{CompiledProcess, SqlTable, StateNames};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A `%HandlerStack` / `%SubroutineStack` value. NULL and an empty `$List` are the same
/// empty stack (the rewrite writes NULL for an empty stack, IRIS may hold `''`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Stack {
    /// The decoded `$List`, outermost first.
    List(Vec<String>),
    /// Bytes that are not a `$List` of strings, in hex.
    Raw { raw: String },
}

impl Stack {
    pub fn from_value(v: &Value) -> Stack {
        match v {
            Value::Null => Stack::List(Vec::new()),
            Value::Bytes(b) => {
                decode_list(b).map_or_else(|| Stack::Raw { raw: hex(b) }, Stack::List)
            }
            // A driver that hands a binary column over as text: keep what it gave.
            Value::Text(t) => {
                decode_list(t.as_bytes()).map_or_else(|| Stack::Raw { raw: t.clone() }, Stack::List)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Stack::List(l) if l.is_empty())
    }

    /// `[S5,S9]`, `-` when empty.
    pub fn label(&self) -> String {
        match self {
            Stack::List(l) if l.is_empty() => "-".into(),
            Stack::List(l) => format!("[{}]", l.join(",")),
            Stack::Raw { raw } => format!("0x{raw}"),
        }
    }
}

/// Rows of the census that share a key, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group<K> {
    #[serde(flatten)]
    pub key: K,
    pub rows: i64,
}

/// Thread rows of one table that share state, status and stacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ThreadKey {
    pub table: SqlTable,
    pub next_state: Option<String>,
    pub status: Option<i64>,
    pub handler_stack: Stack,
    pub subroutine_stack: Stack,
}

pub type ThreadGroup = Group<ThreadKey>;

/// Pending responses (`<Thread>__PendingResponses`) of one thread table with one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PendingKey {
    /// The thread table the responses belong to.
    pub table: SqlTable,
    pub key: Option<String>,
}

pub type PendingGroup = Group<PendingKey>;

/// Context `%ResponseHandlers` rows naming one handler method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct HandlerKey {
    pub table: SqlTable,
    pub handler: Option<String>,
}

pub type HandlerGroup = Group<HandlerKey>;

/// The whole census, sorted (tables by name, states by number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LiveCensus {
    pub threads: Vec<ThreadGroup>,
    pub pending: Vec<PendingGroup>,
    pub handlers: Vec<HandlerGroup>,
    /// Tables that were asked for but do not exist (only `status` tolerates them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_tables: Vec<SqlTable>,
    /// Rows per thread table that a guard condition of [`CensusTargets::foreign`] holds for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub foreign: BTreeMap<SqlTable, i64>,
}

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CensusTargets {
    pub thread_tables: Vec<SqlTable>,
    pub handler_table: Option<SqlTable>,
    /// Thread tables whose rows are grouped by their stacks too; None: every table. `apply`
    /// groups stacks only where the plan rewrites them (binary GROUP BY keys are what a census
    /// of a big table costs); elsewhere the stacks read as empty and the script's guards check
    /// their values.
    pub stack_tables: Option<BTreeSet<SqlTable>>,
    /// Thread tables whose pending responses are counted; None: every table.
    pub pending_tables: Option<BTreeSet<SqlTable>>,
    /// Per thread table, a guard condition counted in the same scan ([`LiveCensus::foreign`]).
    pub foreign: BTreeMap<SqlTable, crate::sql::ForeignRows>,
}

impl CensusTargets {
    /// Every old and new thread table of a plan, and its response-handler table.
    pub fn for_plan(plan: &MigrationPlan) -> CensusTargets {
        let mut tables = BTreeSet::new();
        for t in &plan.threads {
            tables.insert(t.old_table.clone());
            if let Some(n) = &t.new_table {
                tables.insert(n.clone());
            }
        }
        CensusTargets {
            thread_tables: tables.into_iter().collect(),
            handler_table: Some(plan.response_handler_table.clone()),
            stack_tables: None,
            pending_tables: None,
            foreign: BTreeMap::new(),
        }
    }

    /// The thread tables of one compiled process.
    pub fn for_process(p: &CompiledProcess) -> CensusTargets {
        let tables: BTreeSet<SqlTable> = p.threads.iter().map(|t| t.table.clone()).collect();
        CensusTargets {
            thread_tables: tables.into_iter().collect(),
            handler_table: Some(p.response_handler_table.clone()),
            stack_tables: None,
            pending_tables: None,
            foreign: BTreeMap::new(),
        }
    }

    /// Whether the census counts the pending responses of thread table `t`.
    pub fn counts_pending(&self, t: &SqlTable) -> bool {
        self.pending_tables.as_ref().is_none_or(|p| p.contains(t))
    }

    pub fn pending_table(thread: &SqlTable) -> SqlTable {
        thread.child("PendingResponses")
    }
}

/// The columns each census reads and groups by; `check_tables` verifies they exist before
/// anything runs.
pub const THREAD_COLUMNS: &[&str] = &[NEXT_STATE, THREAD_STATUS, HANDLER_STACK, SUBROUTINE_STACK];
pub const PENDING_COLUMNS: &[&str] = &[ELEMENT_KEY];
pub const HANDLER_COLUMNS: &[&str] = &[RESPONSE_HANDLER_COLUMN];

/// Runs the census query of each table in turn, reporting progress; a table known to be
/// missing is recorded instead of counted.
struct Counter<'a> {
    db: &'a Db,
    missing: &'a BTreeSet<SqlTable>,
    progress: &'a dyn Progress,
    done: usize,
    total: usize,
    missing_tables: Vec<SqlTable>,
}

impl Counter<'_> {
    /// The rows of `SELECT <keys>, COUNT(*) FROM table GROUP BY <keys>` (none when missing);
    /// with `flag`, each row ends with the count of rows its condition holds for.
    fn rows(
        &mut self,
        table: &SqlTable,
        keys: &[&str],
        flag: Option<&crate::sql::ForeignRows>,
    ) -> Result<Vec<Vec<Value>>, DbFailure> {
        self.done += 1;
        self.progress.event(&Event::Census {
            table,
            done: self.done,
            total: self.total,
        });
        if self.missing.contains(table) {
            self.missing_tables.push(table.clone());
            return Ok(Vec::new());
        }
        let step = format!("census of {table}");
        let sql = match flag {
            None => sql::census_query(self.db.dialect(), table, keys),
            Some(f) => sql::flagged_census_query(self.db.dialect(), table, keys, f),
        }
        .map_err(|e| DbFailure::refused_sql(&step, &e))?;
        self.db.query(&step, sql.as_str(), &[])
    }
}

/// `(key, rows)` of the rows of a one-key census.
fn keyed(rows: Vec<Vec<Value>>) -> impl Iterator<Item = (Option<String>, i64)> {
    rows.into_iter().filter_map(|row| match row.as_slice() {
        [key, n] => Some((key.text().map(str::to_string), n.int().unwrap_or(0))),
        _ => None,
    })
}

/// Counts the rows. `missing` lists tables known not to exist (skipped, recorded as missing).
pub fn census(
    db: &Db,
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    progress: &dyn Progress,
) -> Result<LiveCensus, DbFailure> {
    let mut out = LiveCensus::default();
    let mut counter = Counter {
        db,
        missing,
        progress,
        done: 0,
        total: targets.thread_tables.len()
            + targets
                .thread_tables
                .iter()
                .filter(|t| targets.counts_pending(t))
                .count()
            + usize::from(targets.handler_table.is_some()),
        missing_tables: Vec::new(),
    };
    for t in &targets.thread_tables {
        let stacks = targets.stack_tables.as_ref().is_none_or(|s| s.contains(t));
        let keys = if stacks {
            THREAD_COLUMNS
        } else {
            &THREAD_COLUMNS[..2]
        };
        let flag = targets.foreign.get(t);
        for mut row in counter.rows(t, keys, flag)? {
            if flag.is_some() {
                let n = row.pop().and_then(|v| v.int()).unwrap_or(0);
                *out.foreign.entry(t.clone()).or_default() += n;
            }
            let (state, status, hs, ss, n) = match row.as_slice() {
                [state, status, hs, ss, n] => (state, status, hs, ss, n),
                [state, status, n] => (state, status, &Value::Null, &Value::Null, n),
                _ => continue,
            };
            out.threads.push(ThreadGroup {
                key: ThreadKey {
                    table: t.clone(),
                    next_state: state.text().map(str::to_string),
                    status: status.int(),
                    handler_stack: Stack::from_value(hs),
                    subroutine_stack: Stack::from_value(ss),
                },
                rows: n.int().unwrap_or(0),
            });
        }
        if !targets.counts_pending(t) {
            continue;
        }
        let pending = counter.rows(&CensusTargets::pending_table(t), PENDING_COLUMNS, None)?;
        out.pending
            .extend(keyed(pending).map(|(key, rows)| PendingGroup {
                key: PendingKey {
                    table: t.clone(),
                    key,
                },
                rows,
            }));
    }
    if let Some(h) = &targets.handler_table {
        let handlers = counter.rows(h, HANDLER_COLUMNS, None)?;
        out.handlers
            .extend(keyed(handlers).map(|(handler, rows)| HandlerGroup {
                key: HandlerKey {
                    table: h.clone(),
                    handler,
                },
                rows,
            }));
    }
    out.missing_tables = counter.missing_tables;
    out.normalize();
    Ok(out)
}

/// `S12` → (1, 12, ""), `Stop` → (2, 0, "Stop"), anything else after; for natural ordering.
pub fn state_order(s: Option<&str>) -> (u8, u64, String) {
    match s {
        None => (3, 0, String::new()),
        Some(s) => match s.strip_prefix('S').and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => (0, n, String::new()),
            None if s == "Stop" => (1, 0, s.to_string()),
            None => (2, 0, s.to_string()),
        },
    }
}

/// `OnResponse12` sorts after `OnResponse2`.
fn handler_order(s: Option<&str>) -> (u8, u64, String) {
    match s {
        None => (2, 0, String::new()),
        Some(h) => match h
            .strip_prefix("OnResponse")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n) => (0, n, String::new()),
            None => (1, 0, h.to_string()),
        },
    }
}

impl LiveCensus {
    /// Merges equal keys, drops zero counts and sorts naturally.
    pub fn normalize(&mut self) {
        merge(&mut self.threads);
        self.threads.sort_by(|a, b| {
            (
                &a.key.table,
                state_order(a.key.next_state.as_deref()),
                a.key.status,
                &a.key.handler_stack,
                &a.key.subroutine_stack,
            )
                .cmp(&(
                    &b.key.table,
                    state_order(b.key.next_state.as_deref()),
                    b.key.status,
                    &b.key.handler_stack,
                    &b.key.subroutine_stack,
                ))
        });
        merge(&mut self.pending);
        merge(&mut self.handlers);
        self.handlers.sort_by(|a, b| {
            (&a.key.table, handler_order(a.key.handler.as_deref()))
                .cmp(&(&b.key.table, handler_order(b.key.handler.as_deref())))
        });
        self.missing_tables.sort();
        self.missing_tables.dedup();
    }

    /// Thread rows of `table` resting at `state`.
    pub fn rows_at(&self, table: &SqlTable, state: &str) -> i64 {
        self.threads
            .iter()
            .filter(|g| &g.key.table == table && g.key.next_state.as_deref() == Some(state))
            .map(|g| g.rows)
            .sum()
    }

    /// Rows of `table` that can still run (not finished at `Stop`).
    pub fn rows_in(&self, table: &SqlTable) -> i64 {
        self.threads
            .iter()
            .filter(|g| &g.key.table == table && g.key.next_state.as_deref() != Some("Stop"))
            .map(|g| g.rows)
            .sum()
    }

    pub fn pending_for(&self, table: &SqlTable, key: &str) -> i64 {
        self.pending
            .iter()
            .filter(|g| {
                &g.key.table == table && crate::sql::pending_key_matches(key, g.key.key.as_deref())
            })
            .map(|g| g.rows)
            .sum()
    }

    pub fn total_thread_rows(&self) -> i64 {
        self.threads.iter().map(|g| g.rows).sum()
    }

    /// Human-readable differences between two censuses (`self` expected, `other` found).
    pub fn differences(&self, other: &LiveCensus) -> Vec<String> {
        let mut out = Vec::new();
        count_differences(&self.threads, &other.threads, &mut out, |k| {
            format!(
                "{} state {} status {} stacks {} {}",
                k.table,
                k.next_state.as_deref().unwrap_or("NULL"),
                k.status.map_or("NULL".into(), |s| s.to_string()),
                k.handler_stack.label(),
                k.subroutine_stack.label()
            )
        });
        count_differences(&self.pending, &other.pending, &mut out, |k| {
            format!(
                "{} pending response {}",
                k.table,
                k.key.as_deref().unwrap_or("NULL")
            )
        });
        count_differences(&self.handlers, &other.handlers, &mut out, |k| {
            format!(
                "{} handler {}",
                k.table,
                k.handler.as_deref().unwrap_or("NULL")
            )
        });
        out
    }
}

/// Sums the rows of equal keys and drops zero counts; the groups end up in key order.
fn merge<K: Ord>(groups: &mut Vec<Group<K>>) {
    let mut acc: BTreeMap<K, i64> = BTreeMap::new();
    for g in groups.drain(..) {
        *acc.entry(g.key).or_default() += g.rows;
    }
    *groups = acc
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .map(|(key, rows)| Group { key, rows })
        .collect();
}

/// `<what>: expected X rows, found Y` for every key whose counts differ, in key order.
fn count_differences<K: Ord>(
    expected: &[Group<K>],
    found: &[Group<K>],
    out: &mut Vec<String>,
    what: impl Fn(&K) -> String,
) {
    let a: BTreeMap<_, _> = expected.iter().map(|g| (&g.key, g.rows)).collect();
    let b: BTreeMap<_, _> = found.iter().map(|g| (&g.key, g.rows)).collect();
    for k in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let (x, y) = (
            a.get(k).copied().unwrap_or(0),
            b.get(k).copied().unwrap_or(0),
        );
        if x != y {
            out.push(format!(
                "{}: expected {}, found {y}",
                what(k),
                super::error::counted(x, "row", "rows")
            ));
        }
    }
}

/// Where the rows resting at one state go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMove {
    pub to: String,
    /// The stack the rewrite writes for rows holding the stack predicted here (`.0`), when it
    /// is not that value mapped element-wise (re-nested into or out of a scope); None: the
    /// value maps of [`Renaming::stacks`] apply.
    pub handler_stack: Option<(Vec<String>, Vec<String>)>,
    pub subroutine_stack: Option<(Vec<String>, Vec<String>)>,
}

/// Per thread table, the stack values the rewrite maps element-wise at every state:
/// `[%HandlerStack, %SubroutineStack]`, old value → new value (only values that change).
pub type StackValueMaps = [BTreeMap<Vec<String>, Vec<String>>; 2];

/// What a plan does to the rows (or, for a revert, undoes), in the terms of the census. It
/// mirrors the rewrite `sql` renders: rows are selected by their old `%NextState`, get the
/// new state and, where the plan changes them, the new stacks; handler values are renamed.
/// Thread classes that change table cannot be rewritten (their rows are guarded to be absent).
#[derive(Debug, Clone, Default)]
pub struct Renaming {
    pub states: BTreeMap<SqlTable, BTreeMap<String, StateMove>>,
    pub stacks: BTreeMap<SqlTable, StackValueMaps>,
    pub handlers: BTreeMap<SqlTable, BTreeMap<String, String>>,
}

impl Renaming {
    /// The renaming of `plan`; `reverse` inverts it. `None` when the plan cannot be reversed
    /// (two old states onto one new state, two handlers onto one).
    pub fn of_plan(plan: &MigrationPlan, reverse: bool) -> Option<Renaming> {
        let mut r = Renaming::default();
        for t in &plan.threads {
            if t.new_table.as_ref() != Some(&t.old_table) {
                continue;
            }
            let mut m = BTreeMap::new();
            let state_map = t.state_map();
            let mut values: StackValueMaps = Default::default();
            for (i, v) in [false, true].into_iter().enumerate() {
                for sv in t.stack_values(v) {
                    let Some(n) = sv.new else { continue };
                    let (from, to) = if reverse { (n, sv.old) } else { (sv.old, n) };
                    if from != to {
                        values[i].insert(from.to_strings(), to.to_strings());
                    }
                }
            }
            let value_mapped = values.iter().any(|v| !v.is_empty());
            // Only where the new stack is not the old one mapped element-wise.
            let exception = |o: &StateNames, n: &StateNames| {
                o != n && crate::plan::ThreadMapping::map_stack(&state_map, o).as_ref() != Ok(n)
            };
            for s in &t.states {
                // A removed state has no new name: its rows are guarded to be absent.
                let Some(new) = s.new else { continue };
                let (from, to, hs, ss) = if reverse {
                    (
                        new,
                        s.old,
                        (&s.new_handler_stack, &s.old_handler_stack),
                        (&s.new_subroutine_stack, &s.old_subroutine_stack),
                    )
                } else {
                    (
                        s.old,
                        new,
                        (&s.old_handler_stack, &s.new_handler_stack),
                        (&s.old_subroutine_stack, &s.new_subroutine_stack),
                    )
                };
                let (he, se) = if reverse {
                    (exception(hs.1, hs.0), exception(ss.1, ss.0))
                } else {
                    (exception(hs.0, hs.1), exception(ss.0, ss.1))
                };
                let mv = StateMove {
                    to: to.to_string(),
                    handler_stack: he.then(|| (hs.0.to_strings(), hs.1.to_strings())),
                    subroutine_stack: se.then(|| (ss.0.to_strings(), ss.1.to_strings())),
                };
                if m.insert(from.to_string(), mv).is_some() {
                    return None;
                }
            }
            // As the rewrite: a value map selects the rows of every mapped state.
            m.retain(|from, mv| {
                from != &mv.to
                    || mv.handler_stack.is_some()
                    || mv.subroutine_stack.is_some()
                    || value_mapped
            });
            if !m.is_empty() {
                r.states.insert(t.old_table.clone(), m);
            }
            if value_mapped {
                r.stacks.insert(t.old_table.clone(), values);
            }
        }
        let mut h = BTreeMap::new();
        for m in &plan.response_handlers {
            let Some(new) = &m.new else { continue };
            let (from, to) = if reverse {
                (new, &m.old)
            } else {
                (&m.old, new)
            };
            if h.insert(from.clone(), to.clone()).is_some() {
                return None;
            }
        }
        h.retain(|a, b| a != b);
        if !h.is_empty() {
            r.handlers.insert(plan.response_handler_table.clone(), h);
        }
        Some(r)
    }

    /// The census after the rewrite.
    pub fn predict(&self, before: &LiveCensus) -> LiveCensus {
        let mut after = before.clone();
        for g in &mut after.threads {
            let mv = self
                .states
                .get(&g.key.table)
                .and_then(|m| g.key.next_state.as_ref().and_then(|s| m.get(s)));
            if let Some(mv) = mv {
                g.key.next_state = Some(mv.to.clone());
                let values = self.stacks.get(&g.key.table);
                for (i, (stack, exception)) in [
                    (&mut g.key.handler_stack, &mv.handler_stack),
                    (&mut g.key.subroutine_stack, &mv.subroutine_stack),
                ]
                .into_iter()
                .enumerate()
                {
                    let Stack::List(held) = &*stack else { continue };
                    let to = match exception {
                        Some((from, to)) if from == held => Some(to.clone()),
                        _ => values.and_then(|v| v[i].get(held)).cloned(),
                    };
                    if let Some(to) = to {
                        *stack = Stack::List(to);
                    }
                }
            }
        }
        for g in &mut after.handlers {
            if let Some(m) = self.handlers.get(&g.key.table) {
                g.key.handler = g
                    .key
                    .handler
                    .as_ref()
                    .map(|h| m.get(h).cloned().unwrap_or_else(|| h.clone()));
            }
        }
        after.normalize();
        after
    }
}
