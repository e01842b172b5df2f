//! `verify-numbering`: the emulation against thread classes exported from the user's IRIS.

use super::states_cmd::CompilerArg;
use super::{compile, emit, exit, load_bpl, pretty_json, CmdResult, Failure, Format};
use crate::states::import::{self, ImportedThread, NumberingDifference};
use crate::states::Compiler;
use anyhow::anyhow;
use clap::Args;
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The BPL source: a .cls (UDL), an XML export, a bare <process> file, or REV:path.
    pub bpl: String,
    /// Generated thread classes exported from IRIS (UDL .cls or XML export, one or more classes
    /// per file). Other classes in these files (e.g. the Context class) are ignored.
    #[arg(required = true)]
    pub thread_classes: Vec<String>,
    /// The compiler generation that produced the export (only `<call async="false">` differs).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub compiler: CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub format: Format,
}

pub fn verify(a: VerifyArgs) -> CmdResult {
    let bpl = load_bpl(&a.bpl, &a.class)?;
    let compiled = compile(&bpl, a.compiler.into())?;
    let mut threads: Vec<ImportedThread> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for path in &a.thread_classes {
        let file = import::load_generated(path).map_err(Failure::input)?;
        for t in file.threads {
            if let Some(first) = seen.insert(t.class.clone(), path.clone()) {
                return Err(Failure::input(anyhow!(
                    "thread class {} is given twice ({first} and {path}); pass each exported class once",
                    t.class
                )));
            }
            threads.push(t);
        }
    }
    if threads.is_empty() {
        return Err(Failure::input(anyhow!(
            "no generated thread class (a class extending Ens.BP.Thread) in {}; export {}.Thread1 and its siblings",
            a.thread_classes.join(", "),
            compiled.package
        )));
    }
    let differences = import::compare(&compiled, &threads);
    let state_count: usize = compiled.threads.iter().map(|t| t.states.len()).sum();
    let text = match a.format {
        Format::Json => {
            let doc = serde_json::json!({
                "class": compiled.class,
                "compiler": compiled.compiler,
                "identical": differences.is_empty(),
                "thread_classes": compiled.threads.len(),
                "states": state_count,
                "differences": differences,
            });
            pretty_json(&doc, exit::INPUT)?
        }
        Format::Human => human(
            &compiled.class,
            compiled.compiler,
            compiled.threads.len(),
            state_count,
            &differences,
        ),
    };
    emit(&text)?;
    Ok(if differences.is_empty() {
        exit::OK
    } else {
        exit::FOUND
    })
}

fn human(
    class: &str,
    compiler: Compiler,
    threads: usize,
    states: usize,
    differences: &[NumberingDifference],
) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let scope = format!(
        "{} ({}, {} compiler)",
        class,
        [
            plural(threads, "thread class", "thread classes"),
            plural(states, "state", "states")
        ]
        .join(", "),
        compiler.as_str()
    );
    if differences.is_empty() {
        return format!("{scope}: all match the exported classes\n");
    }
    let mut out = String::new();
    for d in differences {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{scope}: {} found\n",
        plural(differences.len(), "difference", "differences")
    ));
    out
}
