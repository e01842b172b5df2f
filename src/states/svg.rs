//! State graphs as SVG pictures, laid out in pure Rust (layout-rs), so no Graphviz install is
//! needed. The picture is the `to_dot` graph: wait states highlighted, dead edges dashed,
//! compensation returns dotted.

use super::{to_dot, CompiledProcess};
use layout::backends::svg::SVGWriter;
use layout::gv::{DotParser, GraphBuilder};

/// Why a picture could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot draw the state graph of {class} as SVG: {reason}; use --format dot with Graphviz instead")]
pub struct SvgError {
    pub class: String,
    pub reason: String,
}

/// Render the state graphs of every thread class of `cp` as one SVG document.
pub fn to_svg(cp: &CompiledProcess) -> Result<String, SvgError> {
    let dot = to_dot(cp);
    let fail = |reason: String| SvgError {
        class: cp.class.clone(),
        reason,
    };
    let ast = DotParser::new(&dot)
        .process()
        .map_err(|e| fail(format!("layout-rs cannot read our DOT: {e}")))?;
    // The layout engine asserts its own invariants; one failing must not take the tool down.
    std::panic::catch_unwind(move || {
        let mut builder = GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut graph = builder.get();
        let mut svg = SVGWriter::new();
        graph.do_it(false, false, false, &mut svg);
        svg.finalize()
    })
    .map_err(|_| fail("the layout engine failed".to_string()))
}
