//! `apply --revert` of a plan whose mapping cannot be inverted (two old states onto one new
//! one, a state removed by an override, …): put back exactly the rows the apply rewrote, from
//! the values it recorded in `BplMigrate.Undo` in its own transaction (`sql::undo`).
//!
//! The same frame as `apply` — probe, lock then look, one transaction, history row, commit,
//! read back — with these checks, all collected before anything is written:
//! - the history: the plan is applied, its entry is the last migration of the class (the
//!   chain), nothing is dirty;
//! - the entry recorded undo rows (`RowCounts.undo`) and the undo table holds exactly that
//!   many for it (an entry of the ObjectScript runner, or of a version before undo, has none:
//!   refused, restore from a backup);
//! - every recorded row still exists and holds exactly the values the apply wrote (state and
//!   both stacks) — otherwise refused, naming the table and how many changed;
//! - no row the entry did not record rests at a state whose old meaning is ambiguous (a state
//!   that is not kept as it is by the plan): such rows reached it after the apply, and the
//!   revert cannot tell where they came from;
//! - the hosts are quiet, as for `apply`.
//!
//! Then one UPDATE per rewritten table restores the old values of exactly the recorded rows,
//! each checked against the recorded count. Default fills of new context properties are not
//! undone (the old version does not read those columns).

use super::census::{census, CensusTargets};
use super::conn::Db;
use super::error::{ApplyError, Refusal};
use super::folder::Migration;
use super::history::{self, Outcome};
use super::lock;
use super::progress::{Event, Progress};
use super::run::{
    check_apply_target, conclude, history_checks, lock_plan_tables, new_entry, probe_tables,
    quiet_all, quiet_classes, row_counts_json, ApplyOptions, ApplyReport, StatementOutcome,
};
use crate::plan::MigrationPlan;
use crate::sql::{
    self, Direction, SqlScript, HANDLER_STACK, ID_COLUMN, NEXT_STATE, SUBROUTINE_STACK,
};
use crate::states::SqlTable;
use std::collections::BTreeSet;

/// One table the apply rewrote, as the revert sees it.
struct Work {
    table: SqlTable,
    /// `%NextState` or the response-handler column.
    key: String,
    /// A thread table (rows have stacks).
    stacks: bool,
    /// The stack columns the apply's rewrite set (the revert puts back only those).
    set_stacks: Vec<&'static str>,
    /// Values of `key` that mean the same in both versions: rows the apply did not record may
    /// rest there.
    keep: Vec<String>,
}

fn work(plan: &MigrationPlan, script: &SqlScript) -> Vec<Work> {
    script
        .rewrites
        .iter()
        .map(|rw| {
            let stacks = rw.key_column == NEXT_STATE;
            let stack_only: BTreeSet<&str> = rw
                .mapping
                .iter()
                .filter(|(a, b)| a == b)
                .map(|(a, _)| a.as_str())
                .collect();
            let keep: Vec<String> = if stacks {
                let mut k: Vec<String> = plan
                    .threads
                    .iter()
                    .filter(|t| t.old_table == rw.table)
                    .flat_map(|t| &t.states)
                    .filter(|s| s.new == Some(s.old))
                    .map(|s| s.old.to_string())
                    .filter(|old| !stack_only.contains(old.as_str()))
                    .collect();
                k.push("Stop".into());
                k
            } else {
                plan.response_handlers
                    .iter()
                    .filter(|h| h.new.as_deref() == Some(h.old.as_str()))
                    .map(|h| h.old.clone())
                    .collect()
            };
            Work {
                table: rw.table.clone(),
                key: rw.key_column.clone(),
                stacks,
                set_stacks: [HANDLER_STACK, SUBROUTINE_STACK]
                    .into_iter()
                    .filter(|c| rw.columns.iter().any(|x| x == c))
                    .collect(),
                keep,
            }
        })
        .collect()
}

/// The values of `w`'s key column found in the census (None: NULL), in census order.
fn key_values(w: &Work, census: &super::census::LiveCensus) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    let found: Vec<Option<String>> = if w.stacks {
        census
            .threads
            .iter()
            .filter(|g| g.key.table == w.table)
            .map(|g| g.key.next_state.clone())
            .collect()
    } else {
        census
            .handlers
            .iter()
            .filter(|g| g.key.table == w.table)
            .map(|g| g.key.handler.clone())
            .collect()
    };
    for v in found {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Why value `v` of `w`'s key column (a new state or handler) is not kept as it is by the
/// plan: what the old values that became it say.
fn why_not_kept(m: &Migration, w: &Work, v: &str) -> String {
    let sources: Vec<String> = if w.stacks {
        m.plan
            .threads
            .iter()
            .filter(|t| t.old_table == w.table)
            .flat_map(|t| &t.states)
            .filter(|s| s.new.is_some_and(|n| n == v))
            .map(|s| s.old.to_string())
            .collect()
    } else {
        m.plan
            .response_handlers
            .iter()
            .filter(|h| h.new.as_deref() == Some(v))
            .map(|h| h.old.clone())
            .collect()
    };
    match sources.as_slice() {
        [] => "no old value became it: the new version added it, or does not have it".into(),
        [one] if *one == v => "it kept its number, with other stacks".into(),
        [one] => format!("old {one} became it"),
        many => format!(
            "old {} all became it: which one such a row came from is ambiguous",
            many.join(", ")
        ),
    }
}

/// What the restore statement of `w` says it does.
fn restore_description(w: &Work, seq: i64) -> String {
    format!(
        "{}: {} restored from the undo rows of history entry {seq}",
        w.table, w.key
    )
}

/// Reverts `m` from its undo rows: see the module documentation.
pub(super) fn revert(
    db: &mut Db,
    m: &Migration,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let plan = &m.plan;
    // The apply's own script says which tables it rewrote, and how.
    let script = m.script(db.dialect(), Direction::Apply)?;
    let works = work(plan, &script);
    let targets = CensusTargets::for_plan(plan);
    progress.event(&Event::Session {
        id: lock::session_id(db),
    });
    // Not applied (no history at all, or its last entry for this plan is not an apply): that
    // is the answer, before any table is looked at. Checked again under the locks.
    let not_applied = || {
        Err(ApplyError::Refused {
            refusals: vec![Refusal::NotApplied {
                plan_id: plan.plan_id.clone(),
            }],
        })
    };
    if !history::exists(db).map_err(ApplyError::db)? {
        return not_applied();
    }
    let entries = history::entries_for_class(db, &plan.old.class)?;
    let (state, refusals) = history_checks(plan, &entries, Direction::Revert);
    // A dirty entry: undecided, not "not applied" (its rows may be migrated); it says what to do.
    let dirty: Vec<Refusal> = refusals
        .into_iter()
        .filter(|r| matches!(r, Refusal::DirtyHistory { .. }))
        .collect();
    if !dirty.is_empty() {
        return Err(ApplyError::Refused { refusals: dirty });
    }
    if state != super::run::PlanState::Applied {
        return not_applied();
    }
    progress.event(&Event::Step("checking tables"));
    let probed: Vec<(SqlTable, Vec<String>)> = works
        .iter()
        .map(|w| {
            let mut cols = vec![ID_COLUMN.to_string(), w.key.clone()];
            if w.stacks {
                cols.extend([HANDLER_STACK.to_string(), SUBROUTINE_STACK.to_string()]);
            }
            (w.table.clone(), cols)
        })
        .collect();
    let missing = probe_tables(db, &targets, &probed)?;
    check_apply_target(db, plan, &super::run::absent_tables(&missing))?;
    let refusals: Vec<Refusal> = missing
        .iter()
        .filter(|(t, _)| works.iter().any(|w| &w.table == *t))
        .map(|(t, why)| Refusal::MissingTable {
            table: t.clone(),
            detail: why.clone(),
            new_properties: Vec::new(),
        })
        .collect();
    if !refusals.is_empty() {
        return Err(ApplyError::Refused { refusals });
    }
    let undo_exists = history::undo_exists(db).map_err(ApplyError::db)?;
    let missing: BTreeSet<SqlTable> = missing.into_keys().collect();
    let pg_version = lock::pg_version(db);
    let unlocks = lock_plan_tables(db, plan, &script, &missing, pg_version, opts, progress)?;
    let release = |db: &Db| {
        lock::unlock(db, &unlocks);
        history::unlock(db);
    };
    let body = in_transaction(
        db,
        m,
        &works,
        &targets,
        &missing,
        undo_exists,
        opts,
        progress,
    );
    conclude(
        db,
        m,
        body,
        Vec::new(),
        &targets,
        &missing,
        &release,
        opts,
        progress,
    )
}

#[allow(clippy::too_many_arguments)]
fn in_transaction(
    db: &Db,
    m: &Migration,
    works: &[Work],
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    undo_exists: bool,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let plan = &m.plan;
    let class = plan.old.class.clone();
    progress.event(&Event::Step("taking the apply lock"));
    if !history::try_lock(db, &class)? {
        return Err(ApplyError::Refused {
            refusals: vec![Refusal::Locked { class }],
        });
    }
    let entries = history::entries_for_class(db, &class)?;
    let (_, mut refusals) = history_checks(plan, &entries, Direction::Revert);
    // The committed apply this revert undoes (history_checks refused when there is none).
    let applied = entries
        .iter()
        .rev()
        .find(|e| e.plan_id == plan.plan_id && e.committed())
        .filter(|e| e.direction == Direction::Apply);
    progress.event(&Event::Step("checking hosts and jobs"));
    let quiet = quiet_all(db, &quiet_classes(plan))?;
    refusals.extend(quiet.refusals());
    let before = census(db, targets, missing, progress)?;
    // What the inverse script's guards require of the new version's rows (a renamed call's
    // pending responses): the same conditions, counted here inside the transaction.
    let guards = sql::revert_guards(plan, db.dialect())
        .map_err(|e| ApplyError::db(super::error::DbFailure::refused_sql("revert guards", &e)))?;
    for g in guards {
        let rows = db.count(&format!("guard: {}", g.description), g.sql.as_str(), &[])?;
        if rows != 0 {
            refusals.push(Refusal::Precondition {
                description: g.description,
                rows,
            });
        }
    }

    // Per table: the rows the entry recorded (0 for a table it recorded none of).
    let mut recorded: Vec<i64> = vec![0; works.len()];
    // Per table: those of them whose value the restore changes (the count it reports).
    let mut changing: Vec<i64> = vec![0; works.len()];
    if let Some(e) = applied {
        let no_undo = |reason: &str| Refusal::NoUndo {
            plan_id: plan.plan_id.clone(),
            seq: e.seq,
            reason: reason.to_string(),
        };
        match e.undo_rows {
            None if !undo_exists => refusals.push(no_undo(
                "does not say it recorded undo rows, and BplMigrate.Undo does not exist (it ran before \
                 bplmigrate recorded them)",
            )),
            Some(_) if !undo_exists => {
                refusals.push(no_undo("recorded undo rows, but BplMigrate.Undo does not exist"))
            }
            // `None`: the entry does not say how many it recorded — a dirty entry repaired as
            // applied (its run never wrote the count) — but the rows it recorded are keyed by
            // its entry number, written in the same transaction as the rewrite: they are used
            // when there are any, with the same checks (every row unchanged since, every
            // migrated row covered).
            recorded_count => {
                progress.event(&Event::Step("checking the undo rows"));
                let d = db.dialect();
                let seq = e.seq.to_string();
                let sql_of = |r: Result<sql::CheckedSql, sql::SqlError>, step: &str| {
                    r.map_err(|e| ApplyError::db(super::error::DbFailure::refused_sql(step, &e)))
                };
                let count_rows = sql_of(sql::undo_rows(d), "count undo rows")?;
                for (i, w) in works.iter().enumerate() {
                    let name = sql::undo_table_name(&w.table);
                    let key: [&str; 3] = [&class, &seq, &name];
                    let total = db.count(
                        &format!("count undo rows of {}", w.table),
                        count_rows.as_str(),
                        &key,
                    )?;
                    recorded[i] = total;
                    let step = format!("count the undo rows of {} that change", w.table);
                    let q = sql_of(sql::undo_changing(d, &w.set_stacks), &step)?;
                    changing[i] = db.count(&step, q.as_str(), &key)?;
                    let step = format!("compare the undo rows of {}", w.table);
                    let same = sql_of(sql::undo_unchanged(d, &w.table, &w.key, w.stacks), &step)?;
                    let unchanged = db.count(&step, same.as_str(), &key)?;
                    if unchanged != total {
                        refusals.push(Refusal::UndoChanged {
                            table: w.table.clone(),
                            seq: e.seq,
                            changed: total - unchanged,
                            recorded: total,
                        });
                    }
                    let step = format!("rows of {} the undo rows do not cover", w.table);
                    let others = sql_of(sql::undo_strangers(d, &w.table, &w.key, &w.keep), &step)?;
                    let strangers = db.count(&step, others.as_str(), &key)?;
                    if strangers != 0 {
                        // Where they rest and why each of those states is not kept: only a
                        // state several old states became is ambiguous.
                        let values = key_values(w, &before);
                        let count_not = |keep_also: &[&String]| -> Result<i64, ApplyError> {
                            let mut keep = w.keep.clone();
                            keep.extend(keep_also.iter().map(|v| (*v).clone()));
                            let q = sql_of(sql::undo_strangers(d, &w.table, &w.key, &keep), &step)?;
                            Ok(db.count(&step, q.as_str(), &key)?)
                        };
                        let named: Vec<&String> = values.iter().flatten().collect();
                        let null_rows = if values.iter().any(Option::is_none) {
                            count_not(&named)?
                        } else {
                            0
                        };
                        let mut states = Vec::new();
                        for v in values.iter().flatten().filter(|v| !w.keep.contains(*v)) {
                            let others: Vec<&String> =
                                named.iter().copied().filter(|x| *x != v).collect();
                            let n = count_not(&others)? - null_rows;
                            if n > 0 {
                                states.push(format!(
                                    "{} ({}; {})",
                                    super::error::shown(v),
                                    super::error::counted(n, "row", "rows"),
                                    why_not_kept(m, w, v)
                                ));
                            }
                        }
                        if null_rows > 0 {
                            states.push(format!(
                                "NULL ({})",
                                super::error::counted(null_rows, "row", "rows")
                            ));
                        }
                        refusals.push(Refusal::UndoStrangers {
                            table: w.table.clone(),
                            seq: e.seq,
                            rows: strangers,
                            states,
                        });
                    }
                }
                let found: i64 = recorded.iter().sum();
                match recorded_count {
                    Some(n) if found != n => refusals.push(no_undo(&format!(
                        "recorded {n} undo rows, but BplMigrate.Undo holds {found} for it"
                    ))),
                    None if found == 0 => {
                        // Only these refusals: the others compare rows with undo rows there are not.
                        refusals.retain(|r| {
                            !matches!(r, Refusal::UndoChanged { .. } | Refusal::UndoStrangers { .. })
                        });
                        refusals.push(no_undo(
                            "does not say it recorded undo rows, and BplMigrate.Undo holds none for it \
                             (it ran before bplmigrate recorded them, or its rewrite never committed)",
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    if !refusals.is_empty() {
        return Err(ApplyError::Refused { refusals });
    }
    // Confirmed on a prompt: the counts under the locks must be the ones the operator saw.
    if let (Some(c), Some(e)) = (&opts.confirmed, applied) {
        let now: Vec<(String, i64)> = works
            .iter()
            .zip(&changing)
            .map(|(w, n)| (restore_description(w, e.seq), *n))
            .collect();
        let differences = c.differences(&before, &now);
        if !differences.is_empty() {
            return Err(ApplyError::Refused {
                refusals: vec![Refusal::ConfirmedCountsChanged {
                    differences,
                    revert: true,
                }],
            });
        }
    }
    let Some(entry) = applied else {
        // history_checks refuses a plan that is not applied; nothing to restore otherwise.
        return Err(ApplyError::Refused {
            refusals: vec![Refusal::NotApplied {
                plan_id: plan.plan_id.clone(),
            }],
        });
    };

    let mut statements = Vec::new();
    let mut mismatches = Vec::new();
    let seq = entry.seq.to_string();
    for (w, expected) in works.iter().zip(&changing) {
        let name = sql::undo_table_name(&w.table);
        let step = format!("restore {}", w.table);
        let restore = sql::undo_restore(db.dialect(), &w.table, &w.key, &w.set_stacks)
            .map_err(|e| ApplyError::db(super::error::DbFailure::refused_sql(&step, &e)))?;
        // The entry's key once per SET column (the key column and the stacks the apply set),
        // then once for the WHERE (`sql::undo_restore`).
        let sets = 1 + w.set_stacks.len();
        let params: Vec<&str> =
            std::iter::repeat_n([class.as_str(), seq.as_str(), name.as_str()], sets + 1)
                .flatten()
                .collect();
        progress.event(&Event::Rewrite {
            table: &w.table,
            column: &w.key,
            rows: Some(*expected),
        });
        let n = db
            .execute(&step, restore.as_str(), &params)?
            .map(|n| n as i64);
        progress.event(&Event::Rewritten {
            table: &w.table,
            rows: n.map(|n| n as usize),
        });
        if n != Some(*expected) {
            mismatches.push(format!(
                "{}: the restore changed {n:?} rows, the undo rows of history entry {} change {expected}",
                w.table, entry.seq
            ));
        }
        statements.push(StatementOutcome {
            description: restore_description(w, entry.seq),
            table: w.table.clone(),
            expected_rows: Some(*expected),
            rows: n,
        });
    }
    if !mismatches.is_empty() {
        return Err(ApplyError::Mismatch { mismatches });
    }
    // The locked tables allow no other change: this census is what the commit leaves (not
    // logged again: the progress log shows the census once).
    progress.event(&Event::Step("counting the rows restored"));
    let after = census(db, targets, missing, &super::progress::Silent)?;
    let restored: i64 = changing.iter().sum();
    // A dry run writes its history row too (rolled back with the rest): it runs every
    // statement the revert runs.
    let history_seq = {
        let next = history::next_seq(db, &class)?;
        let counts = row_counts_json(&before, &after, restored, None);
        let note = format!(
            "restored {restored} rows from the undo rows of history entry {}",
            entry.seq
        );
        history::insert(
            db,
            &new_entry(m, opts, next, &counts, Outcome::Applied, &note),
        )?;
        (!opts.dry_run).then_some(next)
    };
    let mut notes = vec![format!(
        "the mapping cannot be inverted: {restored} rows put back exactly as history entry {} found them",
        entry.seq
    )];
    let same: i64 = recorded.iter().sum::<i64>() - restored;
    if same > 0 {
        notes.push(format!(
            "{} the apply recorded but left as they were stay as they are",
            super::error::counted(same, "row", "rows")
        ));
    }
    if quiet.items.is_empty() {
        notes.push(format!("no production item runs {class}"));
    }
    Ok(ApplyReport {
        plan_id: plan.plan_id.clone(),
        class: class.clone(),
        direction: Direction::Revert,
        dry_run: opts.dry_run,
        dialect: db.dialect(),
        before,
        after,
        moves: Vec::new(),
        statements,
        quiet,
        history_seq,
        notes,
    })
}
