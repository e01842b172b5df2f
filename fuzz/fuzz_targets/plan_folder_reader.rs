//! The migration folder reader `apply` and `plan --verify` run. The input is either the
//! checksum file (first byte even) or `plan.json` under a matching checksum (first byte odd),
//! so the fuzzer reaches the plan checks. A `plan.json` that parses is also re-identified
//! (its `plan_id` set to its content hash, as an attacker could) and rendered in both
//! dialects, so the SQL layer's refusals are fuzzed too.
#![no_main]
use bplmigrate::apply::Migration;
use bplmigrate::plan::MigrationPlan;
use bplmigrate::sql::{normalized_sha256, Dialect, Direction, CHECKSUM_FILE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    if mode % 2 == 0 {
        std::fs::write(d.join("plan.json"), b"{}").unwrap();
        std::fs::write(d.join(CHECKSUM_FILE), body).unwrap();
    } else {
        std::fs::write(d.join("plan.json"), body).unwrap();
        let sums = format!("{}  plan.json\n", normalized_sha256(body));
        std::fs::write(d.join(CHECKSUM_FILE), sums).unwrap();
    }
    let _ = bplmigrate::sql::verify_migration_folder(d);
    let _ = Migration::load(d);
    if let Ok(mut plan) = serde_json::from_slice::<MigrationPlan>(body) {
        if let Ok(id) = bplmigrate::plan::plan_id(&plan) {
            plan.plan_id = id;
        }
        if let Ok(m) = Migration::from_plan(plan) {
            for dialect in [Dialect::Iris, Dialect::Postgres] {
                for direction in [Direction::Apply, Direction::Revert] {
                    let _ = m.script(dialect, direction);
                }
            }
            let _ = bplmigrate::sql::render_objectscript(&m.plan);
        }
    }
});
