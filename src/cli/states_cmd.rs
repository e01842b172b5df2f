//! `states` (`verify-numbering` lives in `verify_cmd`).

use super::{compile, emit, load_bpl, write_failure, CmdResult, Exit, Failure};
use crate::bpl::{ActivityKind, Bpl, SourceFormat};
use crate::plan::render::table;
use crate::states::{self, ActivityRef, CompiledProcess, Compiler};
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct StatesArgs {
    /// BPL source: a .cls (UDL), an XML export, a bare <process> file, or REV:path.
    pub file: String,
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub format: StatesFormat,
    /// The IRIS compiler generation that numbers the process (spec 2.5): `legacy` up to
    /// 2021.x, `current` from 2022.1.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub compiler: CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
}

/// Output formats of `states` (a superset of the common `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum StatesFormat {
    /// Aligned tables per thread class, then the response handlers.
    #[default]
    Human,
    /// The `CompiledProcess` document.
    Json,
    /// Graphviz digraph of the state graphs.
    Dot,
    /// Mermaid flowchart of the state graphs.
    Mermaid,
    /// An SVG picture of the state graphs (laid out without Graphviz: one titled column per
    /// thread class, a legend, wait/join states, dead and error edges).
    Svg,
    /// The canonical line listing used by the fixture tests.
    Listing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CompilerArg {
    /// Ensemble / IRIS up to 2021.x: only async="0" is synchronous.
    Legacy,
    /// IRIS 2022.1 and later: async other than "true"/"1" is synchronous.
    #[default]
    Current,
}

impl From<CompilerArg> for Compiler {
    fn from(c: CompilerArg) -> Compiler {
        match c {
            CompilerArg::Legacy => Compiler::Legacy,
            CompilerArg::Current => Compiler::Current,
        }
    }
}

pub fn states(a: StatesArgs) -> CmdResult {
    let bpl = load_bpl(&a.file, &a.class)?;
    let cp = compile(&bpl, a.compiler.into())?;
    let text = match a.format {
        StatesFormat::Human => human(&bpl, &cp),
        StatesFormat::Json => {
            emit_states_json(&cp)?;
            // The process ends right after this: freeing ~100k states and the activity tree
            // one allocation at a time would cost more than the output took to write (issue
            // 12). The OS takes the memory back at exit.
            std::mem::forget(cp);
            std::mem::forget(bpl);
            return Ok(Exit::Clean);
        }
        StatesFormat::Dot => states::to_dot(&cp),
        StatesFormat::Mermaid => states::to_mermaid(&cp),
        StatesFormat::Svg => crate::picture::states_svg(&cp),
        StatesFormat::Listing => states::listing(&cp),
    };
    emit(&text)?;
    Ok(Exit::Clean)
}

/// [`super::emit_json`] for the compiled process, byte for byte: serde_json's pretty layout
/// through [`Pretty`], straight into a buffered stdout.
fn emit_states_json(cp: &CompiledProcess) -> Result<(), Failure> {
    use serde::Serialize;
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Pretty::default());
    cp.serialize(&mut ser).map_err(|e| {
        if e.is_io() {
            write_failure(std::io::Error::from(e), Exit::Clean)
        } else {
            Failure::new(Exit::Input, e)
        }
    })?;
    out.write_all(b"\n")
        .and_then(|_| out.flush())
        .map_err(|e| write_failure(e, Exit::Clean))
}

/// serde_json's `PrettyFormatter` (two-space indent) with each line break and indentation
/// written in one piece: it writes the indentation a level at a time, which cost more than
/// the rest of the layout for the ~3M keys and values of a 100k-activity compile.
#[derive(Default)]
struct Pretty {
    level: usize,
    has_value: bool,
}

impl Pretty {
    /// `,` (unless `first`), a line break and the indentation of the current level.
    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        const LINE: &[u8] = b",\n                                                                ";
        let start = usize::from(first);
        let end = 2 + 2 * self.level;
        if end <= LINE.len() {
            return w.write_all(&LINE[start..end]);
        }
        w.write_all(&LINE[start..2])?;
        (0..self.level).try_for_each(|_| w.write_all(b"  "))
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.newline(w, true)?;
        }
        w.write_all(b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.newline(w, true)?;
        }
        w.write_all(b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// The activity without its position (the table has a separate line:col column).
fn activity_cell(r: &ActivityRef) -> String {
    match &r.name {
        Some(n) => format!("{} \"{n}\"", r.element),
        None => r.element.to_string(),
    }
}

fn human(bpl: &Bpl, cp: &CompiledProcess) -> String {
    let state_count: usize = cp.threads.iter().map(|t| t.states.len()).sum();
    let mut o = format!("process  {}\n", cp.class);
    o.push_str(&format!(
        "source   {} ({})\n",
        bpl.source.origin,
        source_format(bpl.source.format)
    ));
    o.push_str(&format!("compiler {}\n", cp.compiler.describe()));
    o.push_str(&format!(
        "context  {} (table {})\n",
        cp.context_class, cp.context_table
    ));
    o.push_str(&format!(
        "totals   {} thread class{}, {state_count} state{}, {} response handler{}\n",
        cp.threads.len(),
        plural_es(cp.threads.len()),
        plural(state_count),
        cp.response_handlers.len(),
        plural(cp.response_handlers.len())
    ));
    for t in &cp.threads {
        o.push('\n');
        o.push_str(&format!(
            "thread {}  {}  table {}",
            t.number, t.class, t.table
        ));
        if let Some(p) = &t.parent {
            o.push_str(&format!(
                "  (flow child {} of {} in Thread{})",
                p.child_index + 1,
                p.flow.label(),
                p.thread
            ));
        }
        o.push('\n');
        let mut rows = vec![[
            "State",
            "Role",
            "Activity",
            "Line:Col",
            "Successors",
            "Flags",
        ]
        .map(String::from)
        .to_vec()];
        for s in &t.states {
            rows.push(vec![
                s.name.to_string(),
                s.role.to_string(),
                activity_cell(&s.activity),
                format!("{}:{}", s.activity.line, s.activity.column),
                if s.successors.is_empty() {
                    "-".to_string()
                } else {
                    s.successors.join(" ")
                },
                states::flags(s).join(" "),
            ]);
        }
        o.push_str(&table(&rows, "  "));
    }
    o.push('\n');
    if cp.response_handlers.is_empty() {
        o.push_str(&format!(
            "response handlers on {}: none\n",
            cp.context_class
        ));
    } else {
        o.push_str(&format!(
            "response handlers on {} (table {})\n",
            cp.context_class, cp.response_handler_table
        ));
        let mut rows = vec![["Handler", "Call", "Target", "Thread", "Line:Col"]
            .map(String::from)
            .to_vec()];
        for h in &cp.response_handlers {
            rows.push(vec![
                h.name.clone(),
                format!("\"{}\"", h.call),
                h.target.clone().unwrap_or_default(),
                h.thread.to_string(),
                format!("{}:{}", h.activity.line, h.activity.column),
            ]);
        }
        o.push_str(&table(&rows, "  "));
    }
    let notes = notes(bpl, cp);
    if !notes.is_empty() {
        o.push('\n');
        for n in notes {
            o.push_str(&format!("note: {n}\n"));
        }
    }
    o
}

/// Things a reader of the listing should know: numbering that depends on the compiler
/// generation (2.5, Open Q2) and compensates whose handler lookup fails (3.4.11).
fn notes(bpl: &Bpl, cp: &CompiledProcess) -> Vec<String> {
    let mut n = Vec::new();
    for a in bpl.process.activities() {
        if let ActivityKind::Call {
            async_attr: Some(v),
            ..
        } = &a.kind
        {
            if states::is_synchronous(Some(v), Compiler::Legacy)
                != states::is_synchronous(Some(v), Compiler::Current)
            {
                n.push(format!(
                    "{} at {} has async=\"{v}\": synchronous for the current compiler, asynchronous for the legacy one (spec 2.5); check that --compiler matches the IRIS release that compiled it",
                    a.label(),
                    a.pos
                ));
            }
        }
    }
    for u in &cp.unresolved_compensates {
        let class = cp
            .threads
            .iter()
            .find(|t| t.number == u.thread)
            .map_or("?", |t| t.class.as_str());
        n.push(format!(
            "{} in {class} finds no compensation handler at compile time ({}; spec 3.4.11, Q-8): IRIS compiles a GoSub to an empty state, which fails at run time",
            u.compensate.label(),
            u.reason()
        ));
    }
    n
}

fn source_format(f: SourceFormat) -> &'static str {
    match f {
        SourceFormat::Udl => "UDL class",
        SourceFormat::Export => "XML export",
        SourceFormat::Bare => "bare <process>",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn plural_es(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}
