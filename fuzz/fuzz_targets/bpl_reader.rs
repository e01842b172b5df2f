//! The BPL reader (format detection, UDL/XML/bare, `<process>` parse) and, for every BPL it
//! accepts, the compiler emulation, the state graph, and plan(A, A).
#![no_main]
use bplmigrate::bpl::{load_bytes, LoadOptions};
use bplmigrate::states::{compile, graph, Compiler};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bpl) = load_bytes("fuzz.cls", data, &LoadOptions::default()) else {
        return;
    };
    for compiler in [Compiler::Current, Compiler::Legacy] {
        let Ok(c) = compile(&bpl, compiler) else {
            continue;
        };
        for t in &c.threads {
            let _ = graph(t);
        }
        let _ = bplmigrate::plan::build(&bpl, &bpl, &c, &c, None);
    }
});
