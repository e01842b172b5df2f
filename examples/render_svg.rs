//! Render an SVG file to PNG with resvg (used by scripts/render-pictures.sh for the README).
//! Usage: cargo run --example render_svg -- IN.svg OUT.png [ZOOM]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: render_svg IN.svg OUT.png [ZOOM]".into());
    };
    let zoom: f32 = rest.first().map(|z| z.parse()).transpose()?.unwrap_or(1.0);
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_data(&std::fs::read(input)?, &opt)?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(zoom)
        .ok_or("empty picture")?;
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("picture too large")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(zoom, zoom),
        &mut pixmap.as_mut(),
    );
    pixmap.save_png(output)?;
    eprintln!("{output}: {}x{}", size.width(), size.height());
    Ok(())
}
