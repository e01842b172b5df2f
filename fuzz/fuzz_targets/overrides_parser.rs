//! The overrides parser, and every overrides file it accepts applied to a fixed change
//! (a removed wait state), then rendered as SQL in both dialects.
#![no_main]
use bplmigrate::bpl::{load_bytes, LoadOptions};
use bplmigrate::plan::Overrides;
use bplmigrate::states::{compile, Compiler};
use libfuzzer_sys::fuzz_target;

const OLD: &[u8] = include_bytes!("../../fixtures/changes/removed_wait_state/old.cls");
const NEW: &[u8] = include_bytes!("../../fixtures/changes/removed_wait_state/new.cls");

fuzz_target!(|data: &[u8]| {
    let Ok(ov) = Overrides::parse_bytes("fuzz.toml", data) else {
        return;
    };
    let o = load_bytes("old.cls", OLD, &LoadOptions::default()).expect("fixture");
    let n = load_bytes("new.cls", NEW, &LoadOptions::default()).expect("fixture");
    let oc = compile(&o, Compiler::Current).expect("fixture");
    let nc = compile(&n, Compiler::Current).expect("fixture");
    if let Ok(p) = bplmigrate::plan::build(&o, &n, &oc, &nc, Some(&ov)) {
        for d in [bplmigrate::sql::Dialect::Iris, bplmigrate::sql::Dialect::Postgres] {
            let _ = bplmigrate::sql::render(&p.plan, d);
            let _ = bplmigrate::sql::render_revert(&p.plan, d);
        }
        let _ = bplmigrate::sql::render_objectscript(&p.plan);
    }
});
