//! Property tests over generated processes (proptest):
//! - the emulation never panics: every generated process loads, and compiling it with either
//!   compiler returns a result (a process IRIS would refuse is an error, never a panic), whose
//!   state graph can be built and checked;
//! - plan(A, A) is the identity: verdict `identical`, every state maps to itself unchanged,
//!   every handler to itself, no warning or error.
//!
//! (verify-numbering against thread classes rendered from the emulation is not tested here:
//! bplmigrate has no thread-class renderer.)

use bplmigrate::bpl::parse_bare;
use bplmigrate::plan::{Severity, StateChange, Verdict};
use bplmigrate::states::{check_invariants, compile, graph, Compiler};
use proptest::prelude::*;

/// A generated activity, rendered as BPL XML.
#[derive(Debug, Clone)]
enum Act {
    Assign,
    Trace,
    Call { sync: bool },
    Delay,
    Sync,
    Break,
    Continue,
    Label,
    Branch,
    If(Vec<Act>, Vec<Act>),
    While(Vec<Act>),
    Until(Vec<Act>),
    ForEach(Vec<Act>),
    Sequence(Vec<Act>),
    Flow(Vec<Vec<Act>>),
    Switch(Vec<Vec<Act>>, Vec<Act>),
    Scope(Vec<Act>, Vec<Act>),
}

fn leaf() -> impl Strategy<Value = Act> {
    // Break, continue and branch are rarer: outside a loop (or without their label) the
    // emulation refuses the process, which is tested but should not be most cases.
    prop_oneof![
        6 => Just(Act::Assign),
        3 => Just(Act::Trace),
        8 => any::<bool>().prop_map(|sync| Act::Call { sync }),
        3 => Just(Act::Delay),
        3 => Just(Act::Sync),
        1 => Just(Act::Break),
        1 => Just(Act::Continue),
        2 => Just(Act::Label),
        1 => Just(Act::Branch),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        let list = prop::collection::vec(inner, 0..4);
        prop_oneof![
            (list.clone(), list.clone()).prop_map(|(a, b)| Act::If(a, b)),
            list.clone().prop_map(Act::While),
            list.clone().prop_map(Act::Until),
            list.clone().prop_map(Act::ForEach),
            list.clone().prop_map(Act::Sequence),
            prop::collection::vec(list.clone(), 1..3).prop_map(Act::Flow),
            (prop::collection::vec(list.clone(), 1..3), list.clone())
                .prop_map(|(c, d)| Act::Switch(c, d)),
            (list.clone(), list).prop_map(|(b, h)| Act::Scope(b, h)),
        ]
    })
}

struct Render {
    out: String,
    n: usize,
}

impl Render {
    fn name(&mut self) -> String {
        self.n += 1;
        format!("A{}", self.n)
    }
    /// A container's body, always in a `<sequence>` (some containers take only a few
    /// activity kinds directly).
    fn list(&mut self, v: &[Act]) {
        self.out.push_str("<sequence>\n");
        for a in v {
            self.act(a);
        }
        self.out.push_str("</sequence>\n");
    }
    fn act(&mut self, a: &Act) {
        let name = self.name();
        let o = |r: &mut Render, s: String| r.out.push_str(&s);
        match a {
            Act::Assign => o(self, format!("<assign name='{name}' property='context.X' value='1'/>\n")),
            Act::Trace => o(self, format!("<trace name='{name}' value='1'/>\n")),
            Act::Call { sync } => o(
                self,
                format!(
                    "<call name='{name}' target='T' async='{}'><request type='Ens.Request'/><response type='Ens.Response'><assign property='context.X' value='2'/></response></call>\n",
                    if *sync { 0 } else { 1 }
                ),
            ),
            Act::Delay => o(self, format!("<delay name='{name}' duration='\"PT1S\"'/>\n")),
            Act::Sync => o(self, format!("<sync name='{name}' calls='*' type='all'/>\n")),
            Act::Break => o(self, "<break/>\n".into()),
            Act::Continue => o(self, "<continue/>\n".into()),
            Act::Label => o(self, format!("<label name='L{name}'/>\n")),
            Act::Branch => o(self, "<branch name='Br' label='LA1' condition='1'/>\n".into()),
            Act::If(t, f) => {
                o(self, format!("<if name='{name}' condition='1'><true>\n"));
                self.list(t);
                o(self, "</true><false>\n".into());
                self.list(f);
                o(self, "</false></if>\n".into());
            }
            Act::While(b) => {
                o(self, format!("<while name='{name}' condition='1'>\n"));
                self.list(b);
                o(self, "</while>\n".into());
            }
            Act::Until(b) => {
                o(self, format!("<until name='{name}' condition='1'>\n"));
                self.list(b);
                o(self, "</until>\n".into());
            }
            Act::ForEach(b) => {
                o(self, format!("<foreach name='{name}' property='context.L' key='context.K'>\n"));
                self.list(b);
                o(self, "</foreach>\n".into());
            }
            Act::Sequence(b) => {
                o(self, format!("<sequence name='{name}'>\n"));
                self.list(b);
                o(self, "</sequence>\n".into());
            }
            Act::Flow(branches) => {
                o(self, format!("<flow name='{name}'>\n"));
                for b in branches {
                    o(self, "<sequence>\n".into());
                    self.list(b);
                    o(self, "</sequence>\n".into());
                }
                o(self, "</flow>\n".into());
            }
            Act::Switch(cases, default) => {
                o(self, format!("<switch name='{name}'>\n"));
                for c in cases {
                    o(self, "<case condition='1'>\n".into());
                    self.list(c);
                    o(self, "</case>\n".into());
                }
                o(self, "<default>\n".into());
                self.list(default);
                o(self, "</default></switch>\n".into());
            }
            Act::Scope(body, handler) => {
                o(self, format!("<scope name='{name}'>\n"));
                self.list(body);
                o(self, "<faulthandlers><catchall>\n".into());
                self.list(handler);
                o(self, "</catchall></faulthandlers></scope>\n".into());
            }
        }
    }
}

fn process(acts: &[Act]) -> String {
    let mut r = Render {
        out: String::new(),
        n: 0,
    };
    r.list(acts);
    format!(
        "<process request='Ens.Request' response='Ens.Response'>\n<context><property name='X' type='%Integer'/><property name='L' type='%String'/><property name='K' type='%String'/></context>\n<sequence>\n{}</sequence>\n</process>\n",
        r.out
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn emulation_never_panics(acts in prop::collection::vec(act(), 0..6)) {
        let xml = process(&acts);
        let bpl = parse_bare("gen.xml", &xml, "Demo.Gen").expect("generated BPL is well-formed");
        for compiler in [Compiler::Current, Compiler::Legacy] {
            if let Ok(c) = compile(&bpl, compiler) {
                for t in &c.threads {
                    let _ = graph(t);
                }
                let problems = check_invariants(&c, Some(&bpl));
                prop_assert!(problems.is_empty(), "{xml}\n{problems:?}");
            }
        }
    }

    #[test]
    fn plan_of_a_process_against_itself_is_the_identity(acts in prop::collection::vec(act(), 0..6)) {
        let xml = process(&acts);
        let bpl = parse_bare("gen.xml", &xml, "Demo.Gen").expect("generated BPL is well-formed");
        let Ok(c) = compile(&bpl, Compiler::Current) else { return Ok(()) };
        let planned = bplmigrate::plan::build(&bpl, &bpl, &c, &c, None).expect("plan(A, A)");
        let p = &planned;
        prop_assert_eq!(p.verdict, Verdict::Identical, "{}", xml);
        for t in &p.threads {
            prop_assert_eq!(Some(&t.old_class), t.new_class.as_ref());
            for s in &t.states {
                prop_assert_eq!(Some(&s.old), s.new.as_ref(), "{}", xml);
                prop_assert_eq!(s.change, StateChange::Unchanged);
            }
        }
        for h in &p.response_handlers {
            prop_assert_eq!(Some(&h.old), h.new.as_ref());
        }
        prop_assert!(p.context_properties.is_empty());
        prop_assert!(
            p.findings.iter().all(|f| f.severity == Severity::Info),
            "{xml}\n{:?}",
            p.findings
        );
    }
}
