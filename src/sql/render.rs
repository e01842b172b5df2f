//! Plan → [`SqlScript`]: guards, census, one swap-safe UPDATE per affected table, defaults.
//!
//! Swap safety: every affected table gets exactly one UPDATE whose SET expressions are all
//! `CASE "%NextState" WHEN <old> THEN <new> … ELSE <column> END`. All SET expressions of one
//! UPDATE read the row as it was before the statement, so `S5 → S7, S7 → S5` (or a cycle
//! `S3 → S4 → S5 → S3`) cannot re-map a row twice, and the stack columns are keyed on the
//! OLD `%NextState`.

use super::check::{check, Expect, Shape};
use super::queries::census_query;
use super::text::{comment_text, default_literal, quote_ident, quote_literal, quote_table};
use super::{
    Census, CheckedSql, DefaultFill, Dialect, Direction, ForeignRows, Guard, GuardKind, Rewrite,
    SqlError, SqlScript,
};
use crate::plan::{MigrationPlan, Precondition, PropertyChange, Severity, ThreadMapping};
use crate::states::SqlTable;
use std::collections::{BTreeMap, BTreeSet};

/// Thread-row columns the scripts read or write.
pub const NEXT_STATE: &str = "%NextState";
/// The `%NextState` of a finished thread: a literal, not a state method.
pub const STOP: &str = "Stop";
/// The thread's run status (1 ready, 2 completed, 3 waiting, 4 errored); the census counts it.
pub const THREAD_STATUS: &str = "%Status";
pub const HANDLER_STACK: &str = "%HandlerStack";
pub const SUBROUTINE_STACK: &str = "%SubroutineStack";
/// Value column of the context `%ResponseHandlers` child table.
pub const RESPONSE_HANDLER_COLUMN: &str = "_ResponseHandlers";
/// Key column of array-property child tables (call name / completion key).
pub const ELEMENT_KEY: &str = "element_key";
/// Row id column of a parent table (`%ID` projects as `ID`).
pub const ID_COLUMN: &str = "ID";

/// `Ens_Config.Item`, the production item definitions.
pub fn config_item_table() -> SqlTable {
    SqlTable {
        schema: "Ens_Config".into(),
        table: "Item".into(),
    }
}

/// `Ens.Job_Enumerate()`: the live-job stored query (a table function `"Ens"."Job_Enumerate"()`
/// in the postgres test schema).
pub fn job_enumerate_table() -> SqlTable {
    SqlTable {
        schema: "Ens".into(),
        table: "Job_Enumerate".into(),
    }
}

/// The FROM item of the job enumeration: IRIS's class query `Ens.Job_Enumerate()`, or the
/// `"Ens"."Job_Enumerate"()` function of the postgres test schema.
pub(super) fn job_enumerate_call(d: Dialect) -> Result<String, SqlError> {
    Ok(match d {
        Dialect::Iris => "Ens.Job_Enumerate()".to_string(),
        Dialect::Postgres => format!("{}()", quote_table(&job_enumerate_table(), d)?),
    })
}

/// The `$List` builder: `$LISTBUILD` in IRIS, `bplm_listbuild` in the postgres test schema.
pub fn listbuild_function(d: Dialect) -> &'static str {
    match d {
        Dialect::Iris => "$LISTBUILD",
        Dialect::Postgres => "bplm_listbuild",
    }
}

/// The `$List` comparison: `$LISTSAME` in IRIS, `bplm_listsame` in the postgres test schema.
pub fn listsame_function(d: Dialect) -> &'static str {
    match d {
        Dialect::Iris => "$LISTSAME",
        Dialect::Postgres => "bplm_listsame",
    }
}

/// A stack column change for rows resting at one state.
#[derive(Debug, Clone)]
struct StackChange {
    column: &'static str,
    from: Vec<String>,
    to: Vec<String>,
}

/// Rows at `from` move to `to` (possibly equal when only a stack changes).
#[derive(Debug, Clone)]
struct Move {
    from: String,
    to: String,
    stacks: Vec<StackChange>,
}

/// A stack value and what it becomes.
type StackPair = (Vec<String>, Vec<String>);
/// A stack value naming states without counterpart: (value, those states, the states that
/// predict it and rewrite it per state).
type DeadStack = (Vec<String>, Vec<String>, Vec<String>);

#[derive(Debug, Clone)]
struct ThreadWork {
    class: String,
    table: SqlTable,
    moves: Vec<Move>,
    /// Every state the version the rows come from has (for a revert: the mapped new states):
    /// rows resting anywhere else were not written by that version, and are refused.
    known: Vec<String>,
    /// Per stack column, every value that version can leave in it (besides empty).
    known_stacks: Vec<(&'static str, Vec<Vec<String>>)>,
    /// Per stack column, the values rewritten whatever state the row rests at: each element
    /// mapped through the state map (stale entries of a `<break>`/`<continue>` or a transfer
    /// default, spec 4.3, are state names like any other). Only values that change.
    value_maps: Vec<(&'static str, Vec<StackPair>)>,
    /// Apply only: per stack column, the old values naming a state without counterpart (no
    /// rewrite keeps their meaning: rows holding one are refused), with those states.
    /// The third element: states where that value is the predicted one, rewritten per state.
    dead_values: Vec<(&'static str, Vec<DeadStack>)>,
}

/// The `%ResponseHandlers` entries (call name, handler) the version a script starts from can
/// hold: what its guard accepts.
struct HandlerPairs {
    /// (handler, the call name it is registered under), in the plan's handler order; a
    /// handler may be listed under two names (a revert of a renamed call).
    keyed: Vec<(String, String)>,
    /// Handlers of calls named at runtime (`@expr`): under any key.
    any_key: Vec<String>,
}

impl HandlerPairs {
    /// Apply: every old handler under its call's name (a removed handler's entries too: they
    /// stay as they are). Revert: every new handler an old one became, under the name the
    /// apply left its entries under (the old call's) and, for a renamed call, under the new
    /// name the new version registers it under after the apply.
    fn of(plan: &MigrationPlan, direction: Direction) -> Self {
        let mut out = HandlerPairs {
            keyed: Vec::new(),
            any_key: Vec::new(),
        };
        let mut seen: std::collections::HashSet<(String, String)> = Default::default();
        for h in &plan.response_handlers {
            let (handler, calls): (&String, Vec<&String>) = match direction {
                Direction::Apply => (&h.old, vec![&h.call]),
                Direction::Revert => match &h.new {
                    Some(n) => (n, std::iter::once(&h.call).chain(&h.new_call).collect()),
                    None => continue,
                },
            };
            for call in calls {
                if call.starts_with('@') {
                    if seen.insert((handler.clone(), "@".to_string())) {
                        out.any_key.push(handler.clone());
                    }
                } else {
                    let pair = (handler.clone(), call.clone());
                    if seen.insert(pair.clone()) {
                        out.keyed.push(pair);
                    }
                }
            }
        }
        out
    }
}

fn is_handler_name(s: &str) -> bool {
    s.strip_prefix("OnResponse").is_some_and(|n| {
        !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
    })
}

fn plan_err(reason: impl Into<String>) -> SqlError {
    SqlError::Plan {
        reason: reason.into(),
    }
}

/// Structural checks on the plan before anything is rendered.
fn validate_plan(plan: &MigrationPlan) -> Result<(), SqlError> {
    if plan.plan_id.is_empty() || !plan.plan_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(plan_err(format!(
            "plan id {:?} is not a hex digest",
            plan.plan_id
        )));
    }
    for t in &plan.threads {
        let mut seen = BTreeSet::new();
        let mut state_map = None;
        for s in &t.states {
            if !seen.insert(&s.old) {
                return Err(plan_err(format!(
                    "state {} of {} is mapped twice",
                    s.old, t.old_class
                )));
            }
            // Every state and stack entry is a state name by type: a plan.json naming
            // anything else does not load (`StateName`'s serde, with line and column).
            // The other %SubroutineStack values are rewritten by their element-wise image (as
            // every stack value): a plan saying otherwise was edited, and is refused.
            if !s.other_subroutine_stacks.is_empty() {
                let map = state_map.get_or_insert_with(|| t.state_map());
                for a in s.other_subroutine_stacks.iter() {
                    let image = ThreadMapping::map_stack(map, &a.old).ok();
                    if a.new != image {
                        return Err(plan_err(format!(
                            "state {} of {}: %SubroutineStack [{}] becomes {} in the plan, but its \
                             entries mapped through the state map give {}",
                            s.old,
                            t.old_class,
                            a.old.join(","),
                            a.new.as_ref().map_or("nothing".into(), |n| format!("[{}]", n.join(","))),
                            image.map_or("nothing".into(), |n| format!("[{}]", n.join(",")))
                        )));
                    }
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    for h in &plan.response_handlers {
        if !seen.insert(&h.old) {
            return Err(plan_err(format!(
                "response handler {} is mapped twice",
                h.old
            )));
        }
        for name in std::iter::once(&h.old).chain(h.new.iter()) {
            if !is_handler_name(name) {
                return Err(plan_err(format!(
                    "{name:?} is not a response handler name (OnResponse<n>)"
                )));
            }
        }
    }
    Ok(())
}

/// Thread tables whose rows can be rewritten in place (same table before and after).
fn thread_work(plan: &MigrationPlan, direction: Direction) -> Vec<ThreadWork> {
    let mut out = Vec::new();
    for t in &plan.threads {
        if t.new_table.as_ref() != Some(&t.old_table) {
            continue;
        }
        let mut moves = Vec::new();
        let mut known = Vec::new();
        let mut handler_stacks: BTreeSet<Vec<String>> = BTreeSet::new();
        let mut subroutine_stacks: BTreeSet<Vec<String>> = BTreeSet::new();
        let state_map = t.state_map();
        let mut value_maps = Vec::new();
        let mut dead_values = Vec::new();
        for (column, subroutine, set) in [
            (HANDLER_STACK, false, &mut handler_stacks),
            (SUBROUTINE_STACK, true, &mut subroutine_stacks),
        ] {
            let mut maps = Vec::new();
            let mut dead = Vec::new();
            for v in t.stack_values(subroutine) {
                match (v.new, direction) {
                    (Some(n), Direction::Apply) => {
                        set.insert(v.old.to_strings());
                        if n != v.old {
                            maps.push((v.old.to_strings(), n.to_strings()));
                        }
                    }
                    (Some(n), Direction::Revert) => {
                        set.insert(n.to_strings());
                        if n != v.old {
                            maps.push((n.to_strings(), v.old.to_strings()));
                        }
                    }
                    (None, Direction::Apply) => {
                        // Known (so the foreign-rows guard does not misname it), refused by
                        // its own guard.
                        set.insert(v.old.to_strings());
                        // A handler stack is written per state where that state predicts it
                        // (its new nesting); elsewhere it is a stale entry, refused.
                        let covered: Vec<String> = if subroutine {
                            Vec::new()
                        } else {
                            t.states
                                .iter()
                                .filter(|s| s.new.is_some() && s.old_handler_stack == v.old)
                                .map(|s| s.old.to_string())
                                .collect()
                        };
                        dead.push((
                            v.old.to_strings(),
                            v.unmapped.iter().map(|e| e.to_string()).collect(),
                            covered,
                        ));
                    }
                    (None, Direction::Revert) => {}
                }
            }
            value_maps.push((column, maps));
            dead_values.push((column, dead));
        }
        let value_mapped = value_maps.iter().any(|(_, m)| !m.is_empty());
        for s in &t.states {
            if direction == Direction::Apply {
                known.push(s.old.to_string());
                handler_stacks.insert(s.old_handler_stack.to_strings());
                subroutine_stacks.insert(s.old_subroutine_stack.to_strings());
            }
            let Some(new) = s.new else { continue };
            if direction == Direction::Revert {
                known.push(new.to_string());
                handler_stacks.insert(s.new_handler_stack.to_strings());
                subroutine_stacks.insert(s.new_subroutine_stack.to_strings());
            }
            let pairs = [
                (HANDLER_STACK, &s.old_handler_stack, &s.new_handler_stack),
                (
                    SUBROUTINE_STACK,
                    &s.old_subroutine_stack,
                    &s.new_subroutine_stack,
                ),
            ];
            let (from, to) = match direction {
                Direction::Apply => (s.old.to_string(), new.to_string()),
                Direction::Revert => (new.to_string(), s.old.to_string()),
            };
            // Only where the new stack is not the old one mapped element-wise (re-nested into or
            // out of a scope): the value map rewrites the rest.
            let stacks: Vec<StackChange> = pairs
                .iter()
                .filter(|(_, o, n)| {
                    o != n && ThreadMapping::map_stack(&state_map, o).as_ref() != Ok(*n)
                })
                .map(|(column, o, n)| match direction {
                    Direction::Apply => StackChange {
                        column,
                        from: o.to_strings(),
                        to: n.to_strings(),
                    },
                    Direction::Revert => StackChange {
                        column,
                        from: n.to_strings(),
                        to: o.to_strings(),
                    },
                })
                .collect();
            // A value map applies to rows at every state, so every mapped state is selected.
            if from != to || !stacks.is_empty() || value_mapped {
                moves.push(Move { from, to, stacks });
            }
        }
        let known_stacks = [
            (HANDLER_STACK, handler_stacks),
            (SUBROUTINE_STACK, subroutine_stacks),
        ]
        .into_iter()
        .map(|(c, set)| (c, set.into_iter().filter(|v| !v.is_empty()).collect()))
        .collect();
        out.push(ThreadWork {
            class: t.old_class.clone(),
            table: t.old_table.clone(),
            moves,
            known,
            known_stacks,
            value_maps,
            dead_values,
        });
    }
    out
}

/// Why the plan cannot be reverted (empty when it can): a removed state or thread class, two
/// old states (or handlers) mapped onto one new one, a removed response handler.
/// What a revert requires of the rows the new version wrote, as the forward preconditions do
/// of the old version's: for every call the plan renamed (a `NoPendingResponse` precondition
/// with a `new_call`), no thread of the new table waits on a response under the new name —
/// the old version waits under the old name and would never match it. Used by both reverts
/// (the inverse script's guards and the undo-based revert).
pub fn revert_preconditions(plan: &MigrationPlan) -> Vec<Precondition> {
    let mut out: Vec<Precondition> = Vec::new();
    for p in &plan.preconditions {
        let Precondition::NoPendingResponse {
            table,
            call,
            new_call: Some(nc),
            ..
        } = p
        else {
            continue;
        };
        let Some(new_table) = plan
            .threads
            .iter()
            .find(|t| &t.old_table == table)
            .and_then(|t| t.new_table.clone())
        else {
            continue;
        };
        let q = Precondition::NoPendingResponse {
            table: new_table,
            call: nc.clone(),
            reason: format!(
                "call {call:?} was renamed to {nc:?}: the old version waits on {call:?} and would never match a response pending under {nc:?}; wait until none is pending"
            ),
            new_call: None,
        };
        if !out.contains(&q) {
            out.push(q);
        }
    }
    out
}

/// The guards of [`revert_preconditions`], rendered for `d`.
pub fn revert_guards(plan: &MigrationPlan, d: Dialect) -> Result<Vec<Guard>, SqlError> {
    let r = Renderer { plan, d };
    revert_preconditions(plan)
        .iter()
        .map(|p| r.precondition(p))
        .collect()
}

pub fn revert_blockers(plan: &MigrationPlan) -> Vec<String> {
    let mut why = Vec::new();
    for t in &plan.threads {
        if t.new_table.as_ref() != Some(&t.old_table) {
            let to = t.new_class.as_deref().unwrap_or("nothing");
            why.push(format!(
                "thread class {} became {to}: its rows cannot be moved back by an UPDATE",
                t.old_class
            ));
            continue;
        }
        // Spelled out: the messages list targets in the order of their spelling.
        let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in &t.states {
            match s.new {
                None => why.push(format!(
                    "state {} of {} was removed: the new version has nothing to map back",
                    s.old, t.old_class
                )),
                Some(n) => by_target
                    .entry(n.to_string())
                    .or_default()
                    .push(s.old.to_string()),
            }
        }
        for (n, olds) in by_target {
            if olds.len() > 1 {
                why.push(format!(
                    "states {} of {} all map to {n}: the revert cannot tell them apart",
                    olds.join(", "),
                    t.old_class
                ));
            }
        }
    }
    let mut by_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for h in &plan.response_handlers {
        match &h.new {
            None => why.push(format!(
                "response handler {} (call {:?}) was removed",
                h.old, h.call
            )),
            Some(n) => by_target.entry(n).or_default().push(&h.old),
        }
    }
    for (n, olds) in by_target {
        if olds.len() > 1 {
            why.push(format!(
                "response handlers {} all map to {n}",
                olds.join(", ")
            ));
        }
    }
    why
}

/// The census a table should show after a rewrite with `mapping`, given its census before.
/// Keys absent from `mapping` keep their counts (so a NULL or unknown state, represented by
/// any key that is not mapped, passes through). Pure; `apply` compares this with the
/// after-census.
pub fn predict_after(
    before: &BTreeMap<String, u64>,
    mapping: &[(String, String)],
) -> BTreeMap<String, u64> {
    let map: BTreeMap<&str, &str> = mapping
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut after = BTreeMap::new();
    for (k, n) in before {
        if *n == 0 {
            continue;
        }
        let to = map.get(k.as_str()).copied().unwrap_or(k.as_str());
        *after.entry(to.to_string()).or_insert(0) += n;
    }
    after
}

impl SqlScript {
    /// The write statements in execution order: the rewrites, then the context defaults.
    pub fn writes(&self) -> Vec<(&SqlTable, &CheckedSql)> {
        self.rewrites
            .iter()
            .map(|r| (&r.table, &r.sql))
            .chain(self.defaults.iter().map(|d| (&d.table, &d.sql)))
            .collect()
    }

    /// Predicted after-census for `census` (see [`predict_after`]); tables without a rewrite
    /// keep their counts.
    pub fn predict(
        &self,
        census: &Census,
        before: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        match self
            .rewrites
            .iter()
            .find(|r| r.table == census.table && r.key_column == census.key_column)
        {
            Some(r) => predict_after(before, &r.mapping),
            None => predict_after(before, &[]),
        }
    }

    /// Rows the rewrite of `table` must touch, from its before-census.
    pub fn expected_rows(&self, table: &SqlTable, before: &BTreeMap<String, u64>) -> u64 {
        self.rewrites
            .iter()
            .filter(|r| &r.table == table)
            .flat_map(|r| {
                r.mapping
                    .iter()
                    .map(|(k, _)| before.get(k).copied().unwrap_or(0))
            })
            .sum()
    }
}

/// Renders statements for one plan/direction/dialect.
struct Renderer<'p> {
    plan: &'p MigrationPlan,
    d: Dialect,
}

/// Join lines of a statement; the text keeps newlines (they are never inside a literal).
fn lines(parts: &[String]) -> String {
    parts.join("\n")
}

impl Renderer<'_> {
    fn id(&self, name: &str) -> Result<String, SqlError> {
        quote_ident(name, self.d)
    }
    fn lit(&self, v: &str) -> Result<String, SqlError> {
        quote_literal(v, self.d)
    }
    fn table(&self, t: &SqlTable) -> Result<String, SqlError> {
        quote_table(t, self.d)
    }
    fn lit_list(&self, vs: &[String]) -> Result<String, SqlError> {
        Ok(vs
            .iter()
            .map(|v| self.lit(v))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "))
    }
    fn list_value(&self, elems: &[String]) -> Result<String, SqlError> {
        if elems.is_empty() {
            return Ok("NULL".into());
        }
        Ok(format!(
            "{}({})",
            listbuild_function(self.d),
            self.lit_list(elems)?
        ))
    }

    fn count(
        &self,
        sql: String,
        tables: Vec<SqlTable>,
        columns: &[&str],
        functions: &[&str],
    ) -> Result<CheckedSql, SqlError> {
        let mut fns = vec!["COUNT".to_string()];
        fns.extend(functions.iter().map(|f| f.to_string()));
        let expect = Expect {
            shape: Shape::Count,
            tables,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            functions: fns,
            params: 0,
        };
        check(&sql, self.d, &expect)
    }

    fn host_guard(&self, class: &str) -> Result<Guard, SqlError> {
        let t = config_item_table();
        // Not known to be quiet: enabled (or Enabled unknown) outside the actor pool, or an
        // unknown PoolSize. An actor-pool item (PoolSize = 0) is quiet only when the production
        // is stopped: the job guard counts any live job for it.
        let (pool, enabled) = (self.id("PoolSize")?, self.id("Enabled")?);
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = {} AND ({pool} IS NULL OR ({pool} <> 0 AND ({enabled} IS NULL OR {enabled} <> 0)))",
            self.table(&t)?,
            self.id("ClassName")?,
            self.lit(class)?,
        );
        Ok(Guard {
            description: format!(
                "a production item running {class} is enabled (or its Enabled / PoolSize is unknown): disable it (Ens.Director.EnableConfigItem(name, 0)) or stop the production"
            ),
            sql: self.count(sql, vec![t], &["ClassName", "Enabled", "PoolSize"], &[])?,
            kind: GuardKind::HostEnabled,
        })
    }

    fn job_guard(&self, class: &str) -> Result<Guard, SqlError> {
        let jobs = job_enumerate_table();
        let items = config_item_table();
        let from = job_enumerate_call(self.d)?;
        // A job is live unless its State is exactly 'Dead' (NULL or any other value: live).
        // Jobs of the class's items count; with an item in the actor pool (PoolSize = 0) every
        // live job of the production does (its instances run in Ens.Actor jobs).
        let state = self.id("State")?;
        let (name, class_col, pool) = (
            self.id("Name")?,
            self.id("ClassName")?,
            self.id("PoolSize")?,
        );
        let items_t = self.table(&items)?;
        let class_lit = self.lit(class)?;
        let sql = format!(
            "SELECT COUNT(*) FROM {from} WHERE ({state} IS NULL OR {state} <> 'Dead') AND ({} IN (SELECT {name} FROM {items_t} WHERE {class_col} = {class_lit}) OR 0 IN (SELECT {pool} FROM {items_t} WHERE {class_col} = {class_lit}))",
            self.id("ConfigName")?,
        );
        Ok(Guard {
            description: format!("a job is running a production item of {class} (or, for an actor-pool item, the production runs): wait until it is gone or stop the production"),
            sql: self.count(sql, vec![jobs, items], &["State", "ConfigName", "Name", "ClassName", "PoolSize"], &[])?,
            kind: GuardKind::LiveJob,
        })
    }

    fn rows_at_state(&self, table: &SqlTable, state: &str) -> Result<CheckedSql, SqlError> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = {}",
            self.table(table)?,
            self.id(NEXT_STATE)?,
            self.lit(state)?
        );
        self.count(sql, vec![table.clone()], &[NEXT_STATE], &[])
    }

    /// Rows of `table` that can still run: every row except finished ones at `Stop`, which
    /// IRIS keeps until the process is purged and never resumes.
    fn rows_in_table(&self, table: &SqlTable) -> Result<CheckedSql, SqlError> {
        let next = self.id(NEXT_STATE)?;
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {next} IS NULL OR {next} <> {}",
            self.table(table)?,
            self.lit(STOP)?
        );
        self.count(sql, vec![table.clone()], &[NEXT_STATE], &[])
    }

    /// Responses pending for `call` in threads of `table`; for an `@expr` call (a key only known
    /// at run time) every pending response counts (`crate::sql::pending_key_matches`).
    fn pending_response(&self, table: &SqlTable, call: &str) -> Result<CheckedSql, SqlError> {
        let child = table.child("%PendingResponses");
        let (c, p) = (self.table(&child)?, self.table(table)?);
        let key = if super::pending_any_key(call) {
            format!("{c}.{} IS NOT NULL", self.id(ELEMENT_KEY)?)
        } else {
            format!("{c}.{} = {}", self.id(ELEMENT_KEY)?, self.lit(call)?)
        };
        let sql = format!(
            "SELECT COUNT(*) FROM {c} JOIN {p} ON {p}.{} = {c}.{} WHERE {key}",
            self.id(ID_COLUMN)?,
            self.id(&table.table)?,
        );
        self.count(
            sql,
            vec![child, table.clone()],
            &[ID_COLUMN, &table.table, ELEMENT_KEY],
            &[],
        )
    }

    fn precondition(&self, p: &Precondition) -> Result<Guard, SqlError> {
        let with_reason = |base: String, reason: &str| {
            if reason.is_empty() {
                base
            } else {
                format!("{base}: {reason}")
            }
        };
        Ok(match p {
            Precondition::NoRowsAtState {
                table,
                state,
                reason,
            } => Guard {
                description: with_reason(format!("rows rest at state {state} of {table}"), reason),
                sql: self.rows_at_state(table, state)?,
                kind: GuardKind::Precondition,
            },
            Precondition::NoRowsInTable { table, reason } => Guard {
                description: with_reason(format!("{table} holds unfinished rows"), reason),
                sql: self.rows_in_table(table)?,
                kind: GuardKind::Precondition,
            },
            Precondition::NoPendingResponse {
                table,
                call,
                reason,
                ..
            } => Guard {
                description: with_reason(
                    format!("threads of {table} wait on a response to call {call:?}"),
                    reason,
                ),
                sql: self.pending_response(table, call)?,
                kind: GuardKind::Precondition,
            },
            Precondition::HostDisabled { class } => self.host_guard(class)?,
            Precondition::NoLiveJob { class } => self.job_guard(class)?,
        })
    }

    /// Rows at a state the new version nests differently (into or out of a `<scope>`, so its
    /// new stack is not the old one mapped element-wise) that hold another stack than the one
    /// that state predicts: the per-state rewrite only knows where the predicted value goes (a
    /// stale entry there would lose the new nesting).
    fn stack_guard(&self, w: &ThreadWork, m: &Move, s: &StackChange) -> Result<Guard, SqlError> {
        let col = self.id(s.column)?;
        let cond = if s.from.is_empty() {
            format!("{col} IS NOT NULL AND {col} <> ''")
        } else {
            format!(
                "({col} IS NULL OR {}({col}, {}) = 0)",
                listsame_function(self.d),
                self.list_value(&s.from)?
            )
        };
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = {} AND {cond}",
            self.table(&w.table)?,
            self.id(NEXT_STATE)?,
            self.lit(&m.from)?
        );
        let shown = if s.from.is_empty() {
            "empty".to_string()
        } else {
            s.from.join(",")
        };
        Ok(Guard {
            description: format!(
                "rows of {} at {} hold a {} other than the predicted {shown}: that state is nested differently in the new version and the rewrite only knows where the predicted stack goes",
                w.class, m.from, s.column
            ),
            sql: self.count(sql, vec![w.table.clone()], &[NEXT_STATE, s.column], &[listsame_function(self.d), listbuild_function(self.d)])?,
            kind: GuardKind::StackMismatch,
        })
    }

    /// Rows holding a stack value that names a state without counterpart: no rewrite keeps
    /// its meaning (BPM0110).
    fn dead_stack(
        &self,
        w: &ThreadWork,
        column: &'static str,
        value: &[String],
        states: &[String],
        covered: &[String],
    ) -> Result<Guard, SqlError> {
        let mut sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} = {}",
            self.table(&w.table)?,
            self.id(column)?,
            self.list_value(value)?
        );
        let mut columns = vec![column];
        if !covered.is_empty() {
            sql.push_str(&format!(
                " AND {} NOT IN ({})",
                self.id(NEXT_STATE)?,
                self.lit_list(covered)?
            ));
            columns.push(NEXT_STATE);
        }
        let at = if covered.is_empty() {
            String::new()
        } else {
            format!(" at a state other than {}", covered.join(", "))
        };
        Ok(Guard {
            description: format!(
                "rows of {} hold {column} [{}]{at}: {} no counterpart in the new {} (BPM0110), so no rewrite keeps its meaning; let those instances finish first",
                w.class,
                value.join(","),
                match states {
                    [one] => format!("{one} has"),
                    _ => format!("{} have", states.join(", ")),
                },
                self.plan.new.class
            ),
            sql: self.count(sql, vec![w.table.clone()], &columns, &[listbuild_function(self.d)])?,
            // Not a plan precondition: `status` and `apply` evaluate it from the script (they
            // answer the plan's own preconditions from the census and skip that kind).
            kind: GuardKind::StackMismatch,
        })
    }

    /// Why a row the guard finds cannot be migrated: the rows were not written by the version
    /// the script starts from.
    /// `what`: `state` or `handler`. A revert cannot tell a value the new version added from
    /// one it does not have (the plan lists only the values with an old counterpart), so it
    /// names what it knows: no old value became it.
    fn foreign_rows(&self, direction: Direction, what: &str) -> String {
        match direction {
            Direction::Apply => format!(
                "the old {} does not have: is the new class already running, or was this migration applied by hand?",
                self.plan.old.class
            ),
            Direction::Revert => format!(
                "no {what} of the old {} became (a {what} the new version added, or one it does not have: reached after the migration?)",
                self.plan.old.class
            ),
        }
    }

    /// Rows of a thread table the source version cannot have written: a `%NextState` it does
    /// not have, or a stack value no state of it leaves (e.g. naming a state it does not
    /// have). One statement per table, so a big table is read once.
    fn unmapped_rows(
        &self,
        w: &ThreadWork,
        direction: Direction,
    ) -> Result<(Guard, ForeignRows), SqlError> {
        let mut keep = w.known.clone();
        if !keep.iter().any(|s| s == STOP) {
            keep.push(STOP.into());
        }
        // A NULL `%NextState` is no state the old BPL has either (`NOT IN` alone is NULL for it).
        let ns = self.id(NEXT_STATE)?;
        let mut conds = vec![format!(
            "({ns} IS NULL OR {ns} NOT IN ({}))",
            self.lit_list(&keep)?
        )];
        let mut columns = vec![NEXT_STATE];
        for (column, known) in &w.known_stacks {
            let col = self.id(column)?;
            let mut cond = format!("{col} IS NOT NULL AND {col} <> ''");
            if !known.is_empty() {
                let values = known
                    .iter()
                    .map(|v| self.list_value(v))
                    .collect::<Result<Vec<_>, _>>()?;
                cond.push_str(&format!(" AND {col} NOT IN ({})", values.join(", ")));
            }
            conds.push(format!("({cond})"));
            columns.push(column);
        }
        let condition = conds.join(" OR ");
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {condition}",
            self.table(&w.table)?,
        );
        let functions = [listbuild_function(self.d)];
        let guard = Guard {
            description: match direction {
                Direction::Apply => format!(
                    "rows of {} rest at states {} Or they hold a %HandlerStack / %SubroutineStack \
                     value the plan cannot map (none the old version's states leave, e.g. a deeper \
                     stale stack): nothing is changed while such a row exists",
                    w.class,
                    self.foreign_rows(direction, "state")
                ),
                Direction::Revert => format!(
                    "rows of {} rest at states {} Or they hold a %HandlerStack / %SubroutineStack \
                     value the revert cannot map back (none the new version's states leave): \
                     nothing is changed while such a row exists",
                    w.class,
                    self.foreign_rows(direction, "state")
                ),
            },
            sql: self.count(sql, vec![w.table.clone()], &columns, &functions)?,
            kind: GuardKind::Unmapped,
        };
        let foreign = ForeignRows {
            table: w.table.clone(),
            guard: 0,
            condition,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            functions: functions.iter().map(|f| f.to_string()).collect(),
        };
        Ok((guard, foreign))
    }

    /// Context `%ResponseHandlers` rows the source version cannot have written: an entry is
    /// the pair (call name, handler) a call registers when it is sent (spec 5.2), so a row is
    /// known only when its handler is one of `pairs` *under that handler's call name*. A NULL
    /// key or handler is known to no version. Handlers of a call named by a runtime
    /// expression (`@…`) are registered under whatever key it gives: for those only the
    /// handler can be checked, under any key.
    fn unmapped_handlers(
        &self,
        pairs: &HandlerPairs,
        direction: Direction,
    ) -> Result<(Guard, ForeignRows), SqlError> {
        let t = &self.plan.response_handler_table;
        let col = self.id(RESPONSE_HANDLER_COLUMN)?;
        let key = self.id(ELEMENT_KEY)?;
        // Flat lists only: a chain of one OR per call nests as deep as the process has calls
        // (tens of thousands), deeper than a parser or a checker walks. A pair is matched as
        // `handler || ' ' || key` in the list of `OnResponse<n> <call>`: the handler is one of
        // that list's (`OnResponse<n>`, no space), so the first space splits both sides alike,
        // whatever the call name holds.
        let mut known = Vec::new();
        if !pairs.any_key.is_empty() {
            known.push(format!("{col} IN ({})", self.lit_list(&pairs.any_key)?));
        }
        let mut handlers: Vec<String> = Vec::new();
        let mut joined: Vec<String> = Vec::new();
        for (h, call) in &pairs.keyed {
            if handlers.last() != Some(h) {
                handlers.push(h.clone());
            }
            joined.push(format!("{h} {call}"));
        }
        if !joined.is_empty() {
            known.push(format!(
                "({col} IN ({}) AND ({col} || ' ' || {key}) IN ({}))",
                self.lit_list(&handlers)?,
                self.lit_list(&joined)?
            ));
        }
        let condition = if known.is_empty() {
            format!("({col} IS NULL OR {col} IS NOT NULL)")
        } else {
            format!(
                "({key} IS NULL OR {col} IS NULL OR NOT ({}))",
                known.join(" OR ")
            )
        };
        let sql = format!("SELECT COUNT(*) FROM {} WHERE {condition}", self.table(t)?);
        let columns = [ELEMENT_KEY, RESPONSE_HANDLER_COLUMN];
        let guard = Guard {
            description: format!(
                "context rows pair a call name with a response handler {}",
                match direction {
                    Direction::Apply => format!(
                        "the old {} never registers for that call: is the new class already \
                         running, was this migration applied by hand, or did an earlier migration \
                         leave the entry (of a call it removed or renamed)?",
                        self.plan.old.class
                    ),
                    Direction::Revert => format!(
                        "no handler of the old {} became for that call (a handler the new \
                         version added, or a pair it does not have: reached after the migration?)",
                        self.plan.old.class
                    ),
                }
            ),
            sql: self.count(sql, vec![t.clone()], &columns, &[])?,
            kind: GuardKind::Unmapped,
        };
        let foreign = ForeignRows {
            table: t.clone(),
            guard: 0,
            condition,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            functions: Vec::new(),
        };
        Ok((guard, foreign))
    }

    fn census(&self, table: &SqlTable, key: &str) -> Result<Census, SqlError> {
        Ok(Census {
            table: table.clone(),
            key_column: key.into(),
            sql: census_query(self.d, table, &[key])?,
        })
    }

    fn thread_rewrite(&self, w: &ThreadWork) -> Result<Option<Rewrite>, SqlError> {
        if w.moves.is_empty() {
            return Ok(None);
        }
        let ns = self.id(NEXT_STATE)?;
        let mut sets = Vec::new();
        let mut columns = Vec::new();
        // What each set column becomes, for the undo capture.
        let mut news: Vec<(&str, String)> = Vec::new();
        let renames: Vec<&Move> = w.moves.iter().filter(|m| m.from != m.to).collect();
        if !renames.is_empty() {
            let mut s = vec![format!("CASE {ns}")];
            for m in &renames {
                s.push(format!(
                    "        WHEN {} THEN {}",
                    self.lit(&m.from)?,
                    self.lit(&m.to)?
                ));
            }
            s.push(format!("        ELSE {ns} END"));
            let value = lines(&s);
            sets.push(format!("{ns} = {value}"));
            news.push((NEXT_STATE, value));
            columns.push(NEXT_STATE.to_string());
        }
        for column in [HANDLER_STACK, SUBROUTINE_STACK] {
            let changes: Vec<(&Move, &StackChange)> = w
                .moves
                .iter()
                .flat_map(|m| {
                    m.stacks
                        .iter()
                        .filter(|s| s.column == column)
                        .map(move |s| (m, s))
                })
                .collect();
            let values: &[(Vec<String>, Vec<String>)] = w
                .value_maps
                .iter()
                .find(|(c, _)| *c == column)
                .map_or(&[], |(_, m)| m);
            if changes.is_empty() && values.is_empty() {
                continue;
            }
            let c = self.id(column)?;
            // Rows resting where the new version nests them differently get that state's new
            // stack; every other value is mapped element-wise, whatever the state.
            let simple = changes.is_empty();
            let mut s = vec![if simple {
                format!("CASE {c}")
            } else {
                "CASE".to_string()
            }];
            for (m, sc) in changes {
                let holds = if sc.from.is_empty() {
                    format!("({c} IS NULL OR {c} = '')")
                } else {
                    format!("{c} = {}", self.list_value(&sc.from)?)
                };
                s.push(format!(
                    "        WHEN {ns} = {} AND {holds} THEN {}",
                    self.lit(&m.from)?,
                    self.list_value(&sc.to)?
                ));
            }
            for (from, to) in values {
                let when = if simple {
                    self.list_value(from)?
                } else {
                    format!("{c} = {}", self.list_value(from)?)
                };
                s.push(format!("        WHEN {when} THEN {}", self.list_value(to)?));
            }
            s.push(format!("        ELSE {c} END"));
            let value = lines(&s);
            sets.push(format!("{c} = {value}"));
            news.push((column, value));
            columns.push(column.to_string());
        }
        let keys: Vec<String> = w.moves.iter().map(|m| m.from.clone()).collect();
        let sql = format!(
            "UPDATE {}\nSET {}\nWHERE {ns} IN ({})",
            self.table(&w.table)?,
            sets.join(",\n    "),
            self.lit_list(&keys)?
        );
        let expect = Expect {
            shape: Shape::Rewrite {
                key: NEXT_STATE.into(),
                keys: keys.clone(),
            },
            tables: vec![w.table.clone()],
            columns: vec![
                NEXT_STATE.into(),
                HANDLER_STACK.into(),
                SUBROUTINE_STACK.into(),
            ],
            functions: vec![listbuild_function(self.d).into()],
            params: 0,
        };
        let description = format!(
            "{}: {}{}",
            w.class,
            w.moves
                .iter()
                .map(|m| {
                    let stacks: Vec<&str> = m.stacks.iter().map(|s| s.column).collect();
                    let base = if m.from == m.to {
                        m.from.clone()
                    } else {
                        format!("{} -> {}", m.from, m.to)
                    };
                    if stacks.is_empty() {
                        base
                    } else {
                        format!("{base} (new {})", stacks.join(", "))
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            w.value_maps
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(c, _)| format!("; {c} mapped element-wise at every state"))
                .collect::<String>()
        );
        let undo = super::undo::capture(
            self.d,
            &w.table,
            NEXT_STATE,
            &keys,
            &news,
            true,
            &[listbuild_function(self.d)],
        )?;
        Ok(Some(Rewrite {
            table: w.table.clone(),
            key_column: NEXT_STATE.into(),
            mapping: w
                .moves
                .iter()
                .map(|m| (m.from.clone(), m.to.clone()))
                .collect(),
            columns,
            description,
            sql: check(&sql, self.d, &expect)?,
            undo,
            recorded: Vec::new(),
        }))
    }

    /// `kept`: values the rewrite leaves alone that its undo capture records all the same
    /// (entries naming a removed handler), so the revert knows every row that names an old
    /// handler the new version gives to another call.
    fn handler_rewrite(
        &self,
        pairs: &[(String, String)],
        kept: &[String],
    ) -> Result<Option<Rewrite>, SqlError> {
        if pairs.is_empty() {
            return Ok(None);
        }
        let t = &self.plan.response_handler_table;
        let c = self.id(RESPONSE_HANDLER_COLUMN)?;
        let mut value = vec![format!("CASE {c}")];
        for (a, b) in pairs {
            value.push(format!(
                "        WHEN {} THEN {}",
                self.lit(a)?,
                self.lit(b)?
            ));
        }
        value.push(format!("        ELSE {c} END"));
        let value = lines(&value);
        let mut s = vec![
            format!("UPDATE {}", self.table(t)?),
            format!("SET {c} = {value}"),
        ];
        let keys: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let recorded: Vec<String> = kept.iter().filter(|k| !keys.contains(k)).cloned().collect();
        let captured: Vec<String> = keys.iter().chain(&recorded).cloned().collect();
        let undo = super::undo::capture(
            self.d,
            t,
            RESPONSE_HANDLER_COLUMN,
            &captured,
            &[(RESPONSE_HANDLER_COLUMN, value.clone())],
            false,
            &[listbuild_function(self.d)],
        )?;
        s.push(format!("WHERE {c} IN ({})", self.lit_list(&keys)?));
        let expect = Expect {
            shape: Shape::Rewrite {
                key: RESPONSE_HANDLER_COLUMN.into(),
                keys,
            },
            tables: vec![t.clone()],
            columns: vec![RESPONSE_HANDLER_COLUMN.into()],
            functions: vec![],
            params: 0,
        };
        Ok(Some(Rewrite {
            table: t.clone(),
            key_column: RESPONSE_HANDLER_COLUMN.into(),
            mapping: pairs.to_vec(),
            columns: vec![RESPONSE_HANDLER_COLUMN.into()],
            description: format!(
                "{}: {}",
                t,
                pairs
                    .iter()
                    .map(|(a, b)| format!("{a} -> {b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            sql: check(&lines(&s), self.d, &expect)?,
            undo,
            recorded,
        }))
    }

    fn fill(&self, name: &str, default: &str) -> Result<DefaultFill, SqlError> {
        let t = &self.plan.context_table;
        let literal = default_literal(name, default, self.d)?;
        let c = self.id(name)?;
        let sql = format!(
            "UPDATE {} SET {c} = {literal} WHERE {c} IS NULL",
            self.table(t)?
        );
        let expect = Expect {
            shape: Shape::Fill {
                column: name.into(),
            },
            tables: vec![t.clone()],
            columns: vec![name.into()],
            functions: vec![],
            params: 0,
        };
        Ok(DefaultFill {
            table: t.clone(),
            column: name.into(),
            literal: literal.clone(),
            description: format!("{t}.{name} = {literal} where NULL (new context property)"),
            sql: check(&sql, self.d, &expect)?,
        })
    }

    fn header(&self, direction: Direction) -> String {
        let p = self.plan;
        let c = comment_text;
        let (errors, warnings) = p
            .findings
            .iter()
            .fold((0, 0), |(e, w), f| match f.severity {
                Severity::Error => (e + 1, w),
                Severity::Warning => (e, w + 1),
                Severity::Info => (e, w),
            });
        let what = match direction {
            Direction::Apply => "migration",
            Direction::Revert => "revert",
        };
        let dialect = match self.d {
            Dialect::Iris => "iris",
            Dialect::Postgres => "postgres (test stand-in)",
        };
        let mut h = vec![
            format!("-- bplmigrate {what} script for {}", c(&p.old.class)),
            format!(
                "-- plan {} (plan schema {}), verdict {}",
                c(&p.plan_id),
                p.schema_version,
                p.verdict.as_str()
            ),
            format!(
                "-- old BPL: {} sha256 {}",
                c(&p.old.origin),
                c(&p.old.sha256)
            ),
            format!(
                "-- new BPL: {} sha256 {}",
                c(&p.new.origin),
                c(&p.new.sha256)
            ),
            format!(
                "-- created by bplmigrate {} (compiler {}), dialect {dialect}",
                c(&p.tool_version),
                c(&p.compiler)
            ),
            format!("-- findings: {errors} error(s), {warnings} warning(s); see plan.json"),
        ];
        for o in &p.overrides {
            h.push(format!("-- override: {}", c(o)));
        }
        h.join("\n")
    }
}

fn push_guard(guards: &mut Vec<Guard>, seen: &mut BTreeSet<String>, g: Guard) {
    if seen.insert(g.sql.as_str().to_string()) {
        guards.push(g);
    }
}

fn build(plan: &MigrationPlan, d: Dialect, direction: Direction) -> Result<SqlScript, SqlError> {
    validate_plan(plan)?;
    let r = Renderer { plan, d };
    let class = plan.old.class.clone();
    let work = thread_work(plan, direction);
    let mut guards = Vec::new();
    let mut seen = BTreeSet::new();
    push_guard(&mut guards, &mut seen, r.host_guard(&class)?);
    push_guard(&mut guards, &mut seen, r.job_guard(&class)?);

    let handler_pairs: Vec<(String, String)> = plan
        .response_handlers
        .iter()
        .filter_map(|h| h.new.as_ref().map(|n| (h.old.clone(), n.clone())))
        .map(|(o, n)| {
            if direction == Direction::Apply {
                (o, n)
            } else {
                (n, o)
            }
        })
        .collect();

    if direction == Direction::Apply {
        for p in &plan.preconditions {
            push_guard(&mut guards, &mut seen, r.precondition(p)?);
        }
        // Preconditions implied by the mapping itself, in case the plan did not list them.
        for t in &plan.threads {
            if t.new_table.as_ref() != Some(&t.old_table) {
                let to = t.new_class.as_deref().unwrap_or("nothing");
                let reason = format!(
                    "thread class {} became {to}; its rows cannot be moved by an UPDATE",
                    t.old_class
                );
                push_guard(
                    &mut guards,
                    &mut seen,
                    r.precondition(&Precondition::NoRowsInTable {
                        table: t.old_table.clone(),
                        reason,
                    })?,
                );
                continue;
            }
            for s in t.states.iter().filter(|s| s.new.is_none()) {
                let reason = match &s.note {
                    Some(n) => comment_text(n),
                    None => format!(
                        "{} was removed; let those instances drain or map the state in overrides",
                        s.old_activity.label()
                    ),
                };
                let p = Precondition::NoRowsAtState {
                    table: t.old_table.clone(),
                    state: s.old.to_string(),
                    reason,
                };
                push_guard(&mut guards, &mut seen, r.precondition(&p)?);
            }
        }
        // No guard on the `%ResponseHandlers` entries naming a removed handler: they stay as
        // they are (spec 5.2: never removed, completed-but-unpurged instances keep them too).
        // Once nothing is pending under the call's key (its NoPendingResponse precondition),
        // such an entry is read again only when a call of the new version is sent under that
        // key without registering a handler of its own; the plan forbids rows where that can
        // happen (NoRowsAtState, `plan::stale_handlers`). The undo records them unchanged.
    }
    if direction == Direction::Revert {
        for p in revert_preconditions(plan) {
            push_guard(&mut guards, &mut seen, r.precondition(&p)?);
        }
    }
    // Rows the source version cannot have written (the new numbering already in place, a
    // migration run by hand): refused in both directions.
    let mut foreign_rows = Vec::new();
    for w in &work {
        let (g, mut f) = r.unmapped_rows(w, direction)?;
        let sql = g.sql.clone();
        push_guard(&mut guards, &mut seen, g);
        if let Some(i) = guards.iter().position(|x| x.sql == sql) {
            f.guard = i;
            foreign_rows.push(f);
        }
    }
    let (g, mut f) = r.unmapped_handlers(&HandlerPairs::of(plan, direction), direction)?;
    let sql = g.sql.clone();
    push_guard(&mut guards, &mut seen, g);
    let handler_rows = guards.iter().position(|x| x.sql == sql).map(|i| {
        f.guard = i;
        f
    });
    for w in &work {
        for m in &w.moves {
            for s in &m.stacks {
                push_guard(&mut guards, &mut seen, r.stack_guard(w, m, s)?);
            }
        }
    }
    if direction == Direction::Apply {
        for w in &work {
            for (column, dead) in &w.dead_values {
                for (value, states, covered) in dead {
                    push_guard(
                        &mut guards,
                        &mut seen,
                        r.dead_stack(w, column, value, states, covered)?,
                    );
                }
            }
        }
    }

    let mut census = Vec::new();
    for t in &plan.threads {
        census.push(r.census(&t.old_table, NEXT_STATE)?);
    }
    if !plan.response_handlers.is_empty() {
        census.push(r.census(&plan.response_handler_table, RESPONSE_HANDLER_COLUMN)?);
    }

    let mut rewrites = Vec::new();
    for w in &work {
        if let Some(rw) = r.thread_rewrite(w)? {
            rewrites.push(rw);
        }
    }
    let changed: Vec<(String, String)> =
        handler_pairs.into_iter().filter(|(a, b)| a != b).collect();
    let kept: Vec<String> = match direction {
        Direction::Apply => plan
            .response_handlers
            .iter()
            .filter(|h| h.new.is_none())
            .map(|h| h.old.clone())
            .collect(),
        Direction::Revert => Vec::new(),
    };
    if let Some(rw) = r.handler_rewrite(&changed, &kept)? {
        rewrites.push(rw);
    }

    let mut defaults = Vec::new();
    if direction == Direction::Apply {
        for p in &plan.context_properties {
            if let (PropertyChange::Added, Some(def)) = (p.change, &p.default) {
                defaults.push(r.fill(&p.name, def)?);
            }
        }
    }

    Ok(SqlScript {
        dialect: d,
        header: r.header(direction),
        guards,
        census,
        rewrites,
        defaults,
        foreign_rows,
        handler_rows,
        direction,
        plan_id: plan.plan_id.clone(),
        class,
    })
}

/// Render the migration of `plan` for `dialect`.
pub fn render(plan: &MigrationPlan, dialect: Dialect) -> Result<SqlScript, SqlError> {
    build(plan, dialect, Direction::Apply)
}

/// Render the reverse migration; refused with [`SqlError::NotInvertible`] when
/// [`revert_blockers`] names a reason.
pub fn render_revert(plan: &MigrationPlan, dialect: Dialect) -> Result<SqlScript, SqlError> {
    let reasons = revert_blockers(plan);
    if !reasons.is_empty() {
        return Err(SqlError::NotInvertible {
            class: plan.old.class.clone(),
            reasons,
        });
    }
    build(plan, dialect, Direction::Revert)
}

/// The script as a file: header, guards, census, the rewrite in one transaction.
impl SqlScript {
    pub fn to_sql_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.header);
        out.push_str("\n--\n");
        out.push_str(match self.direction {
            Direction::Apply => "-- Run with `bplmigrate apply DIR`, which checks the guards, takes the census, runs\n",
            Direction::Revert => "-- Run with `bplmigrate apply DIR --revert`, which checks the guards, takes the census, runs\n",
        });
        out.push_str(
            "-- the rewrite in one transaction and verifies the result. By hand, run the guards\n\
             -- first and stop unless every one returns 0 (a SQL shell does not stop by itself),\n\
             -- with every production item running the class disabled.\n",
        );
        out.push_str("\n-- 1. Guards: each query must return 0.\n");
        for g in &self.guards {
            out.push_str(&format!(
                "\n-- refuses when: {}\n{};\n",
                comment_text(&g.description),
                g.sql.as_str()
            ));
        }
        out.push_str("\n-- 2. Census (rows per state), before and after the rewrite.\n");
        for c in &self.census {
            out.push_str(&format!("\n{};\n", c.sql.as_str()));
        }
        if self.rewrites.is_empty() && self.defaults.is_empty() {
            out.push_str(
                "\n-- 3. Nothing to rewrite: no persisted state name, stack or handler changes.\n",
            );
            return out;
        }
        out.push_str("\n-- 3. Rewrite, in one transaction (one statement per table; swap-safe).\n\nSTART TRANSACTION;\n");
        for rw in &self.rewrites {
            out.push_str(&format!(
                "\n-- {}\n{};\n",
                comment_text(&rw.description),
                rw.sql.as_str()
            ));
        }
        for f in &self.defaults {
            out.push_str(&format!(
                "\n-- {}\n{};\n",
                comment_text(&f.description),
                f.sql.as_str()
            ));
        }
        out.push_str("\nCOMMIT;\n");
        out
    }
}
