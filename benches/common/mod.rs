//! Shared by the benches: deterministic synthetic BPLs, `VmHWM`, list-valued settings.
#![allow(dead_code)]

/// Peak resident set size of this process (`VmHWM`), Linux only.
pub fn vm_hwm() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line["VmHWM:".len()..].trim().to_string())
}

/// xorshift64*: deterministic, so every run measures the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Emits activities until `left` is used up: a wide top-level sequence of blocks, each a leaf
/// or a construct nested up to `max_depth` levels (calls, ifs, switches, loops, scopes with
/// fault handlers, flows).
struct Gen {
    rng: Rng,
    /// Activities emitted so far (every activity element, containers and branches included).
    n: usize,
    left: usize,
    /// Containers only above this depth; 0 gives a flat sequence of leaves.
    max_depth: u32,
    /// Extra weight (out of `100 + flow_extra`) given to `<flow>`s: more thread classes.
    flow_extra: u64,
}

impl Gen {
    fn id(&mut self) -> usize {
        self.n += 1;
        self.left = self.left.saturating_sub(1);
        self.n
    }

    /// One to `max` activities (always at least one: bodies are never empty).
    fn list(&mut self, depth: u32, max: u64, out: &mut String, ind: &str) {
        let k = 1 + self.rng.below(max);
        for j in 0..k {
            if j > 0 && self.left == 0 {
                break;
            }
            self.activity(depth, out, ind);
        }
    }

    fn activity(&mut self, depth: u32, out: &mut String, ind: &str) {
        let leaf = depth >= self.max_depth || self.left < 4;
        // Weights out of 100: leaves 60, if 12, switch 8, while 5, foreach 3, scope 7, flow 5.
        let r = self
            .rng
            .below(if leaf { 60 } else { 100 + self.flow_extra });
        let i = self.id();
        let inner = format!("{ind}  ");
        match r {
            0..=11 => out.push_str(&format!(
                "{ind}<assign name='A{i}' property='context.P{}' value='{i}'/>\n",
                i % 5
            )),
            12..=17 => out.push_str(&format!("{ind}<trace name='T{i}' value='\"t{i}\"'/>\n")),
            18..=35 => {
                self.id(); // the <assign> in the response
                out.push_str(&format!(
                    "{ind}<call name='C{i}' target='Op{}' async='0'><request type='Ens.Request'/><response type='Ens.Response'><assign property='context.P0' value='{i}'/></response></call>\n",
                    i % 7
                ));
            }
            36..=43 => out.push_str(&format!(
                "{ind}<call name='C{i}' target='Op{}' async='1'><request type='Ens.Request'/></call>\n",
                i % 7
            )),
            44..=51 => out.push_str(&format!("{ind}<delay name='D{i}' duration='\"PT{i}S\"'/>\n")),
            52..=59 => out.push_str(&format!("{ind}<empty name='E{i}'/>\n")),
            60..=71 => {
                out.push_str(&format!("{ind}<if name='I{i}' condition='context.P1={i}'>\n"));
                let (t, f) = match self.rng.below(3) {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                for (has, tag) in [(t, "true"), (f, "false")] {
                    if has {
                        out.push_str(&format!("{inner}<{tag}>\n"));
                        self.list(depth + 1, 3, out, &format!("{inner}  "));
                        out.push_str(&format!("{inner}</{tag}>\n"));
                    }
                }
                out.push_str(&format!("{ind}</if>\n"));
            }
            72..=79 => {
                out.push_str(&format!("{ind}<switch name='SW{i}'>\n"));
                for c in 0..1 + self.rng.below(3) {
                    out.push_str(&format!("{inner}<case condition='context.P1={c}'>\n"));
                    self.list(depth + 1, 3, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</case>\n"));
                }
                out.push_str(&format!("{inner}<default>\n"));
                self.list(depth + 1, 2, out, &format!("{inner}  "));
                out.push_str(&format!("{inner}</default>\n"));
                out.push_str(&format!("{ind}</switch>\n"));
            }
            80..=84 => {
                out.push_str(&format!(
                    "{ind}<while name='W{i}' condition='context.P2&lt;{i}'>\n"
                ));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{ind}</while>\n"));
            }
            85..=87 => {
                out.push_str(&format!(
                    "{ind}<foreach name='FE{i}' property='context.L' key='context.K'>\n"
                ));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{ind}</foreach>\n"));
            }
            88..=94 => {
                out.push_str(&format!("{ind}<scope name='SC{i}'>\n"));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{inner}<faulthandlers>\n"));
                for c in 0..self.rng.below(3) {
                    // <flow> may not sit directly in a <catch>: wrap the body.
                    let s = self.id();
                    out.push_str(&format!(
                        "{inner}  <catch fault='\"F{c}\"'>\n{inner}    <sequence name='CS{s}'>\n"
                    ));
                    self.list(depth + 2, 2, out, &format!("{inner}      "));
                    out.push_str(&format!("{inner}    </sequence>\n{inner}  </catch>\n"));
                }
                self.id();
                out.push_str(&format!(
                    "{inner}  <catchall><trace value='\"all\"'/></catchall>\n"
                ));
                out.push_str(&format!("{inner}</faulthandlers>\n"));
                out.push_str(&format!("{ind}</scope>\n"));
            }
            _ => {
                out.push_str(&format!("{ind}<flow name='FL{i}'>\n"));
                for b in 0..2 + self.rng.below(2) {
                    self.id();
                    out.push_str(&format!("{inner}<sequence name='B{i}_{b}'>\n"));
                    self.list(depth + 1, 3, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</sequence>\n"));
                }
                out.push_str(&format!("{ind}</flow>\n"));
            }
        }
    }
}

/// The top-level blocks of a process with about `size` activities.
pub fn blocks(shape: Shape, size: usize) -> (Vec<String>, usize) {
    let mut g = Gen {
        rng: Rng((size as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        n: 0,
        left: size,
        max_depth: match shape {
            Shape::Nested => 4,
            Shape::Flat => 0,
            Shape::Scale => 7,
        },
        flow_extra: if shape == Shape::Scale { 15 } else { 0 },
    };
    let mut v = Vec::new();
    while g.left > 0 {
        if shape == Shape::Scale {
            // Blocks of every depth: wide stretches of leaves beside deep nests.
            g.max_depth = g.rng.below(8) as u32;
        }
        let mut b = String::new();
        g.activity(0, &mut b, "  ");
        v.push(b);
    }
    (v, g.n)
}

/// A UDL class file around the blocks.
pub fn class_file(class: &str, blocks: &[String]) -> String {
    let mut s = format!(
        "/// Synthetic benchmark process.\nClass {class} Extends Ens.BusinessProcessBPL\n{{\n\nXData BPL\n{{\n<process request='Ens.Request' response='Ens.Response'>\n<context>\n",
    );
    for p in 0..5 {
        s.push_str(&format!("  <property name='P{p}' type='%Integer'/>\n"));
    }
    s.push_str("  <property name='L' type='%String' collection='list'/>\n  <property name='K' type='%Integer'/>\n</context>\n<sequence>\n");
    for b in blocks {
        s.push_str(b);
    }
    s.push_str("</sequence>\n</process>\n}\n\n}\n");
    s
}

/// The old and the new version (one `<delay>` inserted in the middle of the top level).
pub fn versions(class: &str, shape: Shape, size: usize) -> (String, String, usize) {
    let (mut v, n) = blocks(shape, size);
    let old = class_file(class, &v);
    v.insert(
        v.len() / 2,
        "  <delay name='Inserted' duration='\"PT9S\"'/>\n".to_string(),
    );
    (old, class_file(class, &v), n)
}

/// The new version after `count` edits spread evenly over the leaf activities (one per line),
/// cycling through four kinds: insert a `<delay>` before the leaf (renumbers what follows),
/// insert a synchronous `<call>` before it (a new wait state and response handler), delete it
/// (when a sibling leaf stays, so no body becomes empty), change an attribute value (same
/// states, a changed activity).
pub fn edited(class: &str, blocks: &[String], count: usize) -> String {
    let text: String = blocks.concat();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let is_leaf = |l: &str| {
        let t = l.trim_start();
        ["<assign ", "<trace ", "<delay ", "<empty ", "<call "]
            .iter()
            .any(|p| t.starts_with(p))
            && (t.ends_with("/>") || t.ends_with("</call>"))
    };
    let leaves: Vec<usize> = (0..lines.len()).filter(|&i| is_leaf(&lines[i])).collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    // From the back, so earlier line numbers stay valid.
    for e in (0..count.min(leaves.len())).rev() {
        let at = leaves[(e + 1) * leaves.len() / (count + 1)];
        let ind = " ".repeat(indent(&lines[at]));
        let sibling = |j: Option<usize>| {
            j.and_then(|j| lines.get(j))
                .is_some_and(|l| is_leaf(l) && indent(l) == ind.len())
        };
        let kind = match e % 4 {
            2 if !(sibling(at.checked_sub(1)) || sibling(Some(at + 1))) => 3,
            k => k,
        };
        match kind {
            0 => lines.insert(
                at,
                format!("{ind}<delay name='NewDelay{e}' duration='\"PT{e}S\"'/>"),
            ),
            1 => lines.insert(
                at,
                format!("{ind}<call name='NewCall{e}' target='NewOp' async='0'><request type='Ens.Request'/><response type='Ens.Response'/></call>"),
            ),
            2 => {
                lines.remove(at);
            }
            _ => {
                let l = &mut lines[at];
                match [" value='", " duration='", " target='", " name='"]
                    .iter()
                    .find_map(|k| l.find(k).map(|i| i + k.len()))
                {
                    Some(i) => l.insert_str(i, "1+"),
                    None => l.push_str("<!-- edited -->"),
                }
            }
        }
    }
    let mut body = lines.join("\n");
    body.push('\n');
    class_file(class, &[body])
}

/// The form of the generated process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A wide top-level sequence of blocks nested up to four levels deep.
    Nested,
    /// One long top-level sequence of leaves (calls, delays, assigns…): every state in the
    /// main thread, the worst case for per-thread work.
    Flat,
    /// Nested up to seven levels, with more `<flow>`s (many thread classes) and scopes: the
    /// whole-process scale benchmark (`benches/scale.rs`).
    Scale,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Nested => "nested",
            Shape::Flat => "flat",
            Shape::Scale => "scale",
        }
    }
}

/// `NAME=a,b,c` as numbers (`NAME=` for none).
pub fn env_list<T: std::str::FromStr>(name: &str) -> Option<Vec<T>> {
    let s = std::env::var(name).ok()?;
    Some(
        s.split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: a comma-separated list, got {s:?}"))
            })
            .collect(),
    )
}
