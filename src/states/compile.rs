//! The GEN walk of the IRIS BPL compiler (spec section 3): hands out thread, state and
//! response-handler numbers exactly as the compiler does, and records for every state its owner,
//! role, edges (4.4), stack operations and persisted stack contents (4.3).
//!
//! The walk is one recursive pass over the activity tree. Compile-global items (thread and
//! handler counters, break/continue stacks, compensation registry; 3.1) live in [`Gen`]; the
//! per-thread items (3.2) in [`ThreadBuild`], kept on a stack because flow children are
//! generated in the middle of their parent (3.4.14).

use super::model::*;
use crate::bpl::{Activity, ActivityKind, Bpl, BplError, Case, Pos};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::BTreeMap;

/// Compile `bpl` the way the given IRIS compiler generation would (spec section 3).
///
/// Errors are the ones IRIS itself raises (break/continue outside a loop, unresolved branch
/// label) plus constructs whose runtime effect is unknown and which the tool therefore refuses
/// (spec Open Q6, Q8): each is located at the offending activity.
pub fn compile(bpl: &Bpl, compiler: Compiler) -> Result<CompiledProcess, BplError> {
    let file = bpl.source.origin.as_str();
    let version = match &bpl.process.version {
        Some(v) => Some(version_number(v).ok_or_else(|| {
            BplError::at(
                file,
                bpl.process.pos,
                format!("version=\"{v}\" is not a plain non-negative integer; IRIS's class naming for it is unverified (spec 6.1, Open Q6)"),
            )
        })?),
        None => None,
    };
    let package = match version {
        Some(n) => format!("{}.V{n}", bpl.class_name),
        None => bpl.class_name.clone(),
    };
    let mut g = Gen {
        bpl,
        file,
        compiler,
        package: package.clone(),
        thread_counter: 0,
        handlers: Vec::new(),
        break_targets: Vec::new(),
        continue_targets: Vec::new(),
        comp_registry: HashMap::new(),
        comp_cleared: HashMap::new(),
        unresolved: Vec::new(),
        active: Vec::new(),
        done: Vec::new(),
        refs: ActivityRefs::default(),
    };
    // 3.3 COMPILE: Thread1 runs the (last) top-level sequence; a disabled one leaves S1 -> Stop.
    let root = &bpl.process.sequence;
    g.start_thread(root, None);
    g.gen(root)?;
    g.end_thread()?;

    // Threads end children first: back to number order.
    let mut threads = std::mem::take(&mut g.done);
    threads.sort_by_key(|t| t.number);
    threads.shrink_to_fit();
    g.handlers.shrink_to_fit();
    let context_class = format!("{package}.Context");
    let context_table = SqlTable::for_class(&context_class);
    let response_handler_table = context_table.child("%ResponseHandlers");
    Ok(CompiledProcess {
        class: bpl.class_name.clone(),
        package,
        version,
        compiler,
        context_class,
        context_table,
        response_handler_table,
        threads,
        response_handlers: g.handlers,
        unresolved_compensates: g.unresolved,
    })
}

/// `<n>` of `P.V<n>` (spec 6.1): the numeric value of the attribute. Only plain digit strings are
/// accepted (`"03"` gives 3); anything else is unsupported (Open Q6).
pub fn version_number(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Whether a `<call>` gets a synthesized `<sync>` (spec 2.5). A missing attribute means
/// asynchronous in both generations.
pub fn is_synchronous(async_attr: Option<&str>, compiler: Compiler) -> bool {
    match (async_attr, compiler) {
        (None, _) => false,
        (Some(v), Compiler::Legacy) => v == "0",
        (Some(v), Compiler::Current) => v != "true" && v != "1",
    }
}

/// `Sn` (1-based state number) or `Stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    S(u32),
    Stop,
}

#[derive(Debug, Clone)]
struct EdgeBuild {
    to: Target,
    /// Added to a state after a break/continue/throw/transfer left it.
    dead: bool,
}

#[derive(Debug, Clone)]
struct StateBuild<'a> {
    role: Role,
    /// Borrowed from the tree: the `ActivityRef` (with its strings) is made once, for the output.
    owner: &'a Activity,
    wait: bool,
    join: bool,
    edges: Vec<EdgeBuild>,
    /// The generated method already left the state (break, continue, throw, transfer): code and
    /// edges appended later are dead.
    left: bool,
    pushes: Option<u32>,
    pops: bool,
    /// `GoSub(H, R)`; H is None when the registry lookup failed (3.4.11).
    gosub: Option<(Option<u32>, u32)>,
    starts: Vec<String>,
    /// Call names, shared with the calls' `ActivityRef`s.
    sends: Vec<SharedStr>,
    /// F states of this thread's scopes whose *body* is being generated when the state is
    /// allocated, outermost first: the static `%HandlerStack` at entry to the state (4.3).
    protection: Vec<u32>,
    /// A scope's body entry: protected by its own F although F is pushed only inside it (4.4).
    own_fault: Option<u32>,
    /// Innermost compensation handler (its H state) being generated: the state then runs as a
    /// subroutine of every `<compensate>` that targets H (4.3).
    in_handler: Option<u32>,
}

#[derive(Debug, Default)]
struct LabelScope {
    labels: HashMap<String, u32>,
    /// (label, branch state, the `<branch>`'s position).
    branches: Vec<(String, u32, Pos)>,
}

#[derive(Debug, Clone, Copy)]
struct CompSite {
    /// The state that runs `GoSub`.
    site: u32,
    handler: u32,
    ret: u32,
}

#[derive(Debug)]
struct ThreadBuild<'a> {
    number: u32,
    root: &'a Activity,
    parent: Option<ThreadParent>,
    states: Vec<StateBuild<'a>>,
    cur: u32,
    label_scopes: Vec<LabelScope>,
    /// F states of scopes whose generation is in progress (3.2; used by the transfer default).
    catch_stack: Vec<u32>,
    /// F states of scopes whose body is being generated (4.3).
    protection: Vec<u32>,
    /// Compensation handlers being generated (their H states).
    handler_gen: Vec<u32>,
    comp_sites: Vec<CompSite>,
    /// H → the handler's last state (the one that runs `Return()`).
    handler_ends: BTreeMap<u32, u32>,
}

/// A loop target on the global break/continue stacks: the thread matters.
#[derive(Debug, Clone, Copy)]
struct LoopTarget {
    thread: u32,
    state: u32,
}

struct Gen<'a> {
    bpl: &'a Bpl,
    file: &'a str,
    compiler: Compiler,
    package: String,
    thread_counter: u32,
    handlers: Vec<ResponseHandler>,
    break_targets: Vec<LoopTarget>,
    continue_targets: Vec<LoopTarget>,
    /// Handler name → (thread, H). Global and reset by scopes with handlers (3.4.11, Q-8).
    comp_registry: HashMap<String, (u32, u32, &'a Activity)>,
    /// Handler name → (the handler registered under it, the scope whose handlers reset the
    /// registry after that), for the names a reset dropped and no handler registered again.
    comp_cleared: HashMap<String, (&'a Activity, &'a Activity)>,
    /// The `<compensate>`s the registry had no entry for, in generation order.
    unresolved: Vec<UnresolvedCompensate>,
    /// Threads whose generation is in progress; the last is the current one.
    active: Vec<ThreadBuild<'a>>,
    /// Threads whose generation ended, made into their classes right away (so the memory of
    /// one build serves the next), in the order they ended.
    done: Vec<ThreadClass>,
    /// One `ActivityRef` per owning activity, shared by its states.
    refs: ActivityRefs,
}

/// One arm of the switch rule (3.4.5), user switch or synthesized fault switch (3.4.10).
enum Arm<'a> {
    /// A `<case>`/`<default>`: a state iff its activity count (disabled ones included) is > 0.
    Case(&'a [Activity]),
    /// A `<catch>`/`<catchall>`: always a state; its body in a label scope when enabled.
    Handler(&'a Activity),
    /// The synthesized default of a scope without `<catchall>`.
    Transfer,
    /// The never-true case of a catchall-only scope: no state, edge to the post state.
    Dummy,
}

impl<'a> Gen<'a> {
    fn t(&mut self) -> &mut ThreadBuild<'a> {
        // `active` is never empty while GEN runs: COMPILE starts Thread1 before the walk.
        self.active.last_mut().expect("a thread is being generated")
    }

    fn thread_number(&self) -> u32 {
        self.active.last().map_or(0, |t| t.number)
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> BplError {
        BplError::at(self.file, pos, msg)
    }

    fn cur(&mut self) -> u32 {
        self.t().cur
    }

    fn set_cur(&mut self, s: u32) {
        self.t().cur = s;
    }

    /// ALLOC: the next state of the current thread.
    fn alloc(&mut self, role: Role, owner: &'a Activity) -> u32 {
        let t = self.t();
        let state = StateBuild {
            role,
            owner,
            wait: false,
            join: false,
            edges: Vec::new(),
            left: false,
            pushes: None,
            pops: false,
            gosub: None,
            starts: Vec::new(),
            sends: Vec::new(),
            protection: t.protection.clone(),
            own_fault: None,
            in_handler: t.handler_gen.last().copied(),
        };
        t.states.push(state);
        t.states.len() as u32
    }

    fn st(&mut self, s: u32) -> &mut StateBuild<'a> {
        let i = s as usize - 1;
        &mut self.t().states[i]
    }

    fn edge(&mut self, from: u32, to: Target) {
        let st = self.st(from);
        let dead = st.left;
        st.edges.push(EdgeBuild { to, dead });
    }

    fn leave(&mut self, s: u32) {
        self.st(s).left = true;
    }

    fn start_thread(&mut self, root: &'a Activity, parent: Option<ThreadParent>) {
        self.thread_counter += 1;
        self.active.push(ThreadBuild {
            number: self.thread_counter,
            root,
            parent,
            states: Vec::new(),
            cur: 0,
            label_scopes: vec![LabelScope::default()],
            catch_stack: Vec::new(),
            protection: Vec::new(),
            handler_gen: Vec::new(),
            comp_sites: Vec::new(),
            handler_ends: BTreeMap::new(),
        });
        let s1 = self.alloc(Role::Entry, root);
        self.set_cur(s1);
    }

    fn end_thread(&mut self) -> Result<(), BplError> {
        let cur = self.cur();
        self.edge(cur, Target::Stop);
        self.close_label_scope()?;
        if let Some(t) = self.active.pop() {
            let class = finish_thread(t, &self.package, &mut self.refs);
            self.done.push(class);
        }
        Ok(())
    }

    fn open_label_scope(&mut self) {
        self.t().label_scopes.push(LabelScope::default());
    }

    /// RESOLVE_LABEL_SCOPE (3.4.12): every branch of the scope jumps to its label's state.
    fn close_label_scope(&mut self) -> Result<(), BplError> {
        let Some(scope) = self.t().label_scopes.pop() else {
            return Ok(());
        };
        for (label, b, pos) in scope.branches {
            match scope.labels.get(&label) {
                Some(&l) => self.edge(b, Target::S(l)),
                None => return Err(self.err(pos, self.unresolved_label_message(&label))),
            }
        }
        Ok(())
    }

    fn unresolved_label_message(&self, label: &str) -> String {
        let mut found = Vec::new();
        collect_labels(&self.bpl.process.sequence, false, label, &mut found);
        if found.iter().any(|(_, off)| *off) && found.iter().all(|(_, off)| *off) {
            format!(
                "<branch> targets label '{label}', which is disabled or inside a disabled activity, so IRIS never registers it (spec 2.4): enable the label or remove the branch"
            )
        } else if let Some((pos, _)) = found.iter().find(|(_, off)| !*off) {
            format!(
                "<branch> targets label '{label}' at {pos}, which is in a different label scope; a branch reaches only labels of its own thread, scope body, catch or compensation handler (spec 2.10)"
            )
        } else {
            format!("<branch> targets label '{label}', but no <label name='{label}'> exists")
        }
    }

    fn gen_list(&mut self, list: &'a [Activity]) -> Result<(), BplError> {
        list.iter().try_for_each(|a| self.gen(a))
    }

    /// GEN (3.4): every GEN starts with "if disabled, return".
    fn gen(&mut self, a: &'a Activity) -> Result<(), BplError> {
        if a.disabled {
            return Ok(());
        }
        match &a.kind {
            ActivityKind::Simple => {
                if a.element == "throw" {
                    // 3.4.1 + Q-13: the fault leaves the state; later code in it is dead.
                    let cur = self.cur();
                    self.leave(cur);
                }
                Ok(())
            }
            ActivityKind::Sequence { children } => self.gen_list(children),
            ActivityKind::Call {
                async_attr,
                response,
                ..
            } => self.gen_call(a, async_attr.as_deref(), response.as_ref()),
            ActivityKind::Sync { any } => {
                self.sync(a, *any);
                Ok(())
            }
            ActivityKind::Delay => {
                self.sync(a, false);
                Ok(())
            }
            ActivityKind::If {
                true_branch,
                false_branch,
            } => self.gen_if(
                a,
                true_branch.as_ref().map_or(&[][..], |b| &b.activities),
                false_branch.as_ref().map_or(&[][..], |b| &b.activities),
            ),
            ActivityKind::Switch { cases, default } => self.gen_switch(a, cases, default.as_ref()),
            ActivityKind::While { body } => self.gen_loop(a, body, LoopKind::While),
            ActivityKind::Until { body } => self.gen_loop(a, body, LoopKind::Until),
            ActivityKind::Foreach { body } => self.gen_loop(a, body, LoopKind::Foreach),
            ActivityKind::Break => self.gen_jump(a, true),
            ActivityKind::Continue => self.gen_jump(a, false),
            ActivityKind::Scope {
                body,
                compensation_handlers,
                fault_handlers,
            } => self.gen_scope(a, body, compensation_handlers.as_deref(), fault_handlers),
            ActivityKind::Compensate { target } => self.gen_compensate(a, target),
            ActivityKind::Label => {
                let cur = self.cur();
                let l = self.alloc(Role::Label, a);
                self.edge(cur, Target::S(l));
                let name = a.name.as_deref().unwrap_or_default().to_string();
                if let Some(scope) = self.t().label_scopes.last_mut() {
                    // "If two labels share a name in one scope, the later one wins" (2.10).
                    scope.labels.insert(name, l);
                }
                let n = self.alloc(Role::LabelAfter, a);
                self.edge(l, Target::S(n));
                self.set_cur(n);
                Ok(())
            }
            ActivityKind::Branch { label } => {
                let cur = self.cur();
                let b = self.alloc(Role::Branch, a);
                let k = self.alloc(Role::BranchAfter, a);
                self.edge(cur, Target::S(b));
                self.edge(cur, Target::S(k));
                if let Some(scope) = self.t().label_scopes.last_mut() {
                    scope.branches.push((label.clone(), b, a.pos));
                }
                self.set_cur(k);
                Ok(())
            }
            ActivityKind::Flow { children } => self.gen_flow(a, children),
            ActivityKind::CompensationHandler { .. }
            | ActivityKind::Catch { .. }
            | ActivityKind::Catchall { .. } => Err(self.err(
                a.pos,
                format!(
                    "<{}> is only allowed inside a <scope>'s handlers",
                    a.element
                ),
            )),
        }
    }

    /// 3.4.3 + 5.1.
    fn gen_call(
        &mut self,
        a: &'a Activity,
        async_attr: Option<&str>,
        response: Option<&crate::bpl::Message>,
    ) -> Result<(), BplError> {
        let call = a.name.as_deref().unwrap_or_default().to_string();
        // The handler number is taken before anything else; disabled response activities count.
        if response.is_some_and(|r| !r.activities.is_empty()) {
            let name = format!("OnResponse{}", self.handlers.len() + 1);
            let thread = self.thread_number();
            self.handlers.push(ResponseHandler {
                name,
                call: call.clone(),
                target: a.attrs.get("target").map(str::to_string),
                activity: self.refs.get(a),
                thread,
            });
        }
        let cur = self.cur();
        let sent = self.refs.get(a).name.unwrap_or_else(|| SharedStr::from(""));
        self.st(cur).sends.push(sent);
        if is_synchronous(async_attr, self.compiler) {
            self.sync(a, false);
        }
        Ok(())
    }

    /// SYNC (3.4.4a): W then C; `cur -> C`, `cur -> W`, `W -> C` and, unless type="any", `W -> W`.
    fn sync(&mut self, owner: &'a Activity, any: bool) {
        let m0 = self.cur();
        let w = self.alloc(Role::SyncWait, owner);
        self.st(w).wait = true;
        let c = self.alloc(Role::SyncAfter, owner);
        self.edge(m0, Target::S(c));
        self.edge(m0, Target::S(w));
        self.edge(w, Target::S(c));
        if !any {
            self.edge(w, Target::S(w));
        }
        self.set_cur(c);
    }

    /// 3.4.4: post first; layout by list counts, both-empty is two-branch.
    fn gen_if(
        &mut self,
        a: &'a Activity,
        t_list: &'a [Activity],
        f_list: &'a [Activity],
    ) -> Result<(), BplError> {
        let m0 = self.cur();
        let p = self.alloc(Role::IfPost, a);
        if !t_list.is_empty() && f_list.is_empty() || t_list.is_empty() && !f_list.is_empty() {
            let (role, list) = if f_list.is_empty() {
                (Role::IfTrue, t_list)
            } else {
                (Role::IfFalse, f_list)
            };
            let b = self.alloc(role, a);
            self.edge(m0, Target::S(b));
            self.edge(m0, Target::S(p));
            self.set_cur(b);
            self.gen_list(list)?;
        } else {
            let t = self.alloc(Role::IfTrue, a);
            self.edge(m0, Target::S(t));
            self.set_cur(t);
            self.gen_list(t_list)?;
            let cur = self.cur();
            self.edge(cur, Target::S(p));
            // F is allocated after every state of the true branch.
            let f = self.alloc(Role::IfFalse, a);
            self.edge(m0, Target::S(f));
            self.set_cur(f);
            self.gen_list(f_list)?;
        }
        let cur = self.cur();
        self.edge(cur, Target::S(p));
        self.set_cur(p);
        Ok(())
    }

    /// 3.4.5 with the parser's synthesized empty default (2.7).
    fn gen_switch(
        &mut self,
        a: &'a Activity,
        cases: &'a [Case],
        default: Option<&'a Case>,
    ) -> Result<(), BplError> {
        let mut arms: Vec<(Role, Arm<'a>)> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| (Role::SwitchCase(i as u32 + 1), Arm::Case(&c.activities)))
            .collect();
        arms.push((
            Role::SwitchDefault,
            Arm::Case(default.map_or(&[][..], |d| &d.activities)),
        ));
        self.switch_rule(a, Role::SwitchPost, arms)
    }

    /// The switch rule (3.4.5): post state first, then each arm's state followed at once by
    /// the states nested in it.
    fn switch_rule(
        &mut self,
        owner: &'a Activity,
        post_role: Role,
        arms: Vec<(Role, Arm<'a>)>,
    ) -> Result<(), BplError> {
        let m0 = self.cur();
        let p = self.alloc(post_role, owner);
        for (role, arm) in arms {
            match arm {
                Arm::Case(list) if !list.is_empty() => {
                    let n = self.alloc(role, owner);
                    self.edge(m0, Target::S(n));
                    self.set_cur(n);
                    self.gen_list(list)?;
                }
                Arm::Case(_) | Arm::Dummy => {
                    self.edge(m0, Target::S(p));
                    continue;
                }
                Arm::Handler(h) => {
                    let n = self.alloc(role, owner);
                    self.edge(m0, Target::S(n));
                    self.set_cur(n);
                    // A disabled catch/catchall still gets its (empty) state (2.4 exception 2).
                    if !h.disabled {
                        self.open_label_scope();
                        self.gen_list(handler_body(h))?;
                        self.close_label_scope()?;
                    }
                }
                Arm::Transfer => {
                    let d = self.alloc(role, owner);
                    self.edge(m0, Target::S(d));
                    self.set_cur(d);
                    // 3.4.10: jump to the F just below the top of this thread's catch stack;
                    // the nominal `-> post` is then dead. Without an enclosing scope the
                    // fault is re-raised and `-> post` is the only edge.
                    let stack = &self.t().catch_stack;
                    if stack.len() >= 2 {
                        let enclosing = stack[stack.len() - 2];
                        self.edge(d, Target::S(enclosing));
                        self.leave(d);
                    }
                }
            }
            let cur = self.cur();
            self.edge(cur, Target::S(p));
        }
        self.set_cur(p);
        Ok(())
    }

    /// 3.4.6–3.4.8; allocation order differs for foreach.
    fn gen_loop(
        &mut self,
        a: &'a Activity,
        body: &'a [Activity],
        kind: LoopKind,
    ) -> Result<(), BplError> {
        let m0 = self.cur();
        let (test, post, b) = match kind {
            LoopKind::While => {
                let t = self.alloc(Role::WhileTest, a);
                let p = self.alloc(Role::WhilePost, a);
                (t, p, self.alloc(Role::WhileBody, a))
            }
            LoopKind::Until => {
                let t = self.alloc(Role::UntilTest, a);
                let p = self.alloc(Role::UntilPost, a);
                (t, p, self.alloc(Role::UntilBody, a))
            }
            LoopKind::Foreach => {
                let t = self.alloc(Role::ForeachTest, a);
                let b = self.alloc(Role::ForeachBody, a);
                (t, self.alloc(Role::ForeachPost, a), b)
            }
        };
        let thread = self.thread_number();
        self.continue_targets.push(LoopTarget {
            thread,
            state: test,
        });
        self.break_targets.push(LoopTarget {
            thread,
            state: post,
        });
        match kind {
            // until enters its body directly.
            LoopKind::Until => self.edge(m0, Target::S(b)),
            LoopKind::While | LoopKind::Foreach => self.edge(m0, Target::S(test)),
        }
        self.edge(test, Target::S(b));
        self.edge(test, Target::S(post));
        self.set_cur(b);
        let r = self.gen_list(body);
        self.continue_targets.pop();
        self.break_targets.pop();
        r?;
        let cur = self.cur();
        self.edge(cur, Target::S(test));
        self.set_cur(post);
        Ok(())
    }

    /// 3.4.9 with the global target stacks of Q-7.
    fn gen_jump(&mut self, a: &'a Activity, is_break: bool) -> Result<(), BplError> {
        let stack = if is_break {
            &self.break_targets
        } else {
            &self.continue_targets
        };
        let Some(top) = stack.last().copied() else {
            return Err(self.err(a.pos, format!("<{}> is not inside a <while>, <until> or <foreach>; IRIS refuses to compile it", a.element)));
        };
        if top.thread != self.thread_number() {
            return Err(self.err(
                a.pos,
                format!(
                    "<{}> inside a <flow> branch targets a loop of the parent thread; IRIS compiles it into a jump to state S{} of the wrong thread class (spec Q-7, Open Q8): move the loop into the flow branch or restructure",
                    a.element, top.state
                ),
            ));
        }
        let cur = self.cur();
        self.edge(cur, Target::S(top.state));
        self.leave(cur);
        Ok(())
    }

    /// 3.4.10.
    fn gen_scope(
        &mut self,
        a: &'a Activity,
        body: &'a [Activity],
        comp_handlers: Option<&'a [Activity]>,
        fault_handlers: &'a [Activity],
    ) -> Result<(), BplError> {
        let m0 = self.cur();
        let scope_a = self.alloc(Role::ScopeBody, a);
        self.edge(m0, Target::S(scope_a));
        let f = self.alloc(Role::ScopeFault, a);
        self.st(scope_a).own_fault = Some(f);
        self.t().catch_stack.push(f);

        // Compensation handlers before the body. Any <compensationhandler> element, even a
        // disabled or unnamed one, resets the global registry (2.4 exception 4, Q-8).
        if let Some(hs) = comp_handlers.filter(|hs| !hs.is_empty()) {
            for (name, (_, _, h)) in self.comp_registry.drain() {
                self.comp_cleared.insert(name, (h, a));
            }
            for h in hs {
                let Some(name) = h.name.as_deref().filter(|_| !h.disabled) else {
                    continue;
                };
                let hs_state = self.alloc(Role::CompHandler(name.to_string()), a);
                let thread = self.thread_number();
                self.comp_registry
                    .insert(name.to_string(), (thread, hs_state, h));
                self.comp_cleared.remove(name);
                self.t().handler_gen.push(hs_state);
                // The handler's own first state runs as part of the subroutine too.
                self.st(hs_state).in_handler = Some(hs_state);
                self.set_cur(hs_state);
                self.open_label_scope();
                self.gen_list(handler_body(h))?;
                self.close_label_scope()?;
                let end = self.cur();
                let t = self.t();
                t.handler_ends.insert(hs_state, end);
                t.handler_gen.pop();
            }
        }

        self.set_cur(scope_a);
        self.st(scope_a).pushes = Some(f);
        self.t().protection.push(f);
        self.open_label_scope();
        self.gen_list(body)?;
        self.close_label_scope()?;
        let last = self.cur();
        self.st(last).pops = true;
        self.t().protection.pop();
        let e = self.alloc(Role::ScopeEnd, a);
        self.edge(last, Target::S(e));

        // FAULT_SWITCH: every catch (document order) gets a state; then the last catchall
        // or the transfer default; a catchall-only scope has a dummy first case.
        self.set_cur(f);
        let catches: Vec<&'a Activity> = fault_handlers
            .iter()
            .filter(|h| matches!(h.kind, ActivityKind::Catch { .. }))
            .collect();
        let catchall = fault_handlers
            .iter()
            .rfind(|h| matches!(h.kind, ActivityKind::Catchall { .. }));
        let mut arms: Vec<(Role, Arm<'a>)> = catches
            .iter()
            .enumerate()
            .map(|(i, c)| (Role::Catch(i as u32 + 1), Arm::Handler(c)))
            .collect();
        if arms.is_empty() {
            arms.push((Role::FaultPost, Arm::Dummy));
        }
        arms.push(match catchall {
            Some(c) => (Role::Catchall, Arm::Handler(c)),
            None => (Role::CatchDefault, Arm::Transfer),
        });
        self.switch_rule(a, Role::FaultPost, arms)?;
        let psw = self.cur();
        self.edge(psw, Target::S(e));
        self.set_cur(e);
        self.t().catch_stack.pop();
        Ok(())
    }

    /// 3.4.11: the registry is read now, at generation time.
    fn gen_compensate(&mut self, a: &'a Activity, target: &str) -> Result<(), BplError> {
        let thread = self.thread_number();
        let handler = match self.comp_registry.get(target).copied() {
            Some((t, h, _)) if t == thread => Some(h),
            Some((t, h, _)) => {
                let class = format!("{}.Thread{t}", self.package);
                return Err(self.err(
                    a.pos,
                    format!(
                        "<compensate target='{target}'> finds the compensation handler of thread class {class}; IRIS compiles a jump to state S{h} of this thread's class instead (spec 3.4.11): keep compensation handlers and their <compensate> in the same flow branch"
                    ),
                ));
            }
            None => None,
        };
        let site = self.cur();
        let r = self.alloc(Role::CompensateReturn, a);
        if let Some(h) = handler {
            self.edge(site, Target::S(h));
            self.t().comp_sites.push(CompSite {
                site,
                handler: h,
                ret: r,
            });
        }
        self.st(site).gosub = Some((handler, r));
        if handler.is_none() {
            let cleared = self.comp_cleared.get(target).copied();
            self.unresolved.push(UnresolvedCompensate {
                thread,
                compensate: self.refs.get(a),
                target: target.to_string(),
                return_state: sname(r),
                dropped: cleared.map(|(h, _)| self.refs.get(h)),
                cleared_by: cleared.map(|(_, s)| self.refs.get(s)),
            });
        }
        self.set_cur(r);
        Ok(())
    }

    /// 3.4.14: children become threads in place (depth-first pre-order numbering), then J.
    fn gen_flow(&mut self, a: &'a Activity, children: &'a [Activity]) -> Result<(), BplError> {
        // The parent's flow label scope always stays empty: nothing to model.
        if children.is_empty() {
            return Ok(());
        }
        let m0 = self.cur();
        let parent_thread = self.thread_number();
        let mut starts = Vec::new();
        for (i, child) in children.iter().enumerate() {
            let parent = ThreadParent {
                thread: parent_thread,
                flow: self.refs.get(a),
                child_index: i as u32,
            };
            self.start_thread(child, Some(parent));
            starts.push(format!("{}.Thread{}", self.package, self.thread_counter));
            // A disabled child still gets its thread, holding only S1 -> Stop (2.4 exception 1).
            self.gen(child)?;
            self.end_thread()?;
        }
        // Started in string order of class names: Thread10 before Thread2.
        starts.sort();
        self.st(m0).starts = starts;
        let j = self.alloc(Role::FlowJoin, a);
        self.st(j).join = true;
        self.edge(m0, Target::S(j));
        self.set_cur(j);
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum LoopKind {
    While,
    Until,
    Foreach,
}

fn handler_body(h: &Activity) -> &[Activity] {
    match &h.kind {
        ActivityKind::Catch { body, .. }
        | ActivityKind::Catchall { body }
        | ActivityKind::CompensationHandler { body } => body,
        ActivityKind::Sequence { children } => children,
        _ => &[],
    }
}

/// Every `<label name=…>` in the tree with whether it is effectively disabled.
fn collect_labels(a: &Activity, off: bool, name: &str, out: &mut Vec<(Pos, bool)>) {
    let off = off || a.disabled;
    if matches!(a.kind, ActivityKind::Label) && a.name.as_deref() == Some(name) {
        out.push((a.pos, off));
    }
    for (_, list) in a.child_slots() {
        for c in list {
            collect_labels(c, off, name, out);
        }
    }
}

/// Upper bound on the `%SubroutineStack` alternatives listed for one state (deeply nested,
/// repeatedly compensated handlers would otherwise multiply them).
const MAX_STACK_ALTERNATIVES: usize = 32;

/// Possible `%SubroutineStack` values at entry to state `s` (4.3), first `<compensate>` first.
/// Outside compensation handlers it is empty. Inside handler H the thread runs as a subroutine
/// of some `<compensate>` targeting H: that site's stack plus its return state R. The second
/// value is false when a cycle (a handler compensating itself) cut the search.
///
/// `%HandlerStack` and the error target follow the static scope nesting instead (4.3, 4.4):
/// they differ from the run-time value only when a handler is compensated from outside its own
/// scope's catches (registry quirk, 3.4.11; Open Q7).
fn subroutine_stacks(
    t: &ThreadBuild,
    s: u32,
    visiting: &mut HashSet<u32>,
    memo: &mut HashMap<u32, Vec<Vec<u32>>>,
) -> (Vec<Vec<u32>>, bool) {
    // Outside compensation handlers (nearly every state): one empty stack, nothing to memoize.
    let Some(h) = t.states[s as usize - 1].in_handler else {
        return (vec![Vec::new()], true);
    };
    if let Some(m) = memo.get(&s) {
        return (m.clone(), true);
    }
    let mut v: Vec<Vec<u32>> = Vec::new();
    let mut complete = true;
    visiting.insert(s);
    for site in t.comp_sites.iter().filter(|c| c.handler == h) {
        if visiting.contains(&site.site) {
            // A handler that (indirectly) compensates itself: recursion without end at run time.
            complete = false;
            continue;
        }
        let (stacks, ok) = subroutine_stacks(t, site.site, visiting, memo);
        complete &= ok;
        for mut stack in stacks {
            stack.push(site.ret);
            if !v.contains(&stack) {
                v.push(stack);
            }
        }
    }
    visiting.remove(&s);
    v.truncate(MAX_STACK_ALTERNATIVES);
    if v.is_empty() {
        // Never compensated: the handler never runs.
        v.push(Vec::new());
    }
    if complete {
        memo.insert(s, v.clone());
    }
    (v, complete)
}

fn sname(n: u32) -> StateName {
    StateName::s(n)
}

fn names(v: &[u32]) -> StateNames {
    v.iter().map(|&n| sname(n)).collect()
}

fn finish_thread(t: ThreadBuild<'_>, package: &str, refs: &mut ActivityRefs) -> ThreadClass {
    let class = format!("{package}.Thread{}", t.number);
    let mut returns: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for site in &t.comp_sites {
        if let Some(&end) = t.handler_ends.get(&site.handler) {
            returns.entry(end).or_default().push(site.ret);
        }
    }
    let mut memo = HashMap::new();
    let mut states = Vec::with_capacity(t.states.len());
    let mut all: Vec<Target> = Vec::new();
    for (i, st) in t.states.iter().enumerate() {
        let n = i as u32 + 1;
        // Distinct targets, sorted (`Stop` last); dead = reached only by dead edges.
        all.clear();
        all.extend(st.edges.iter().map(|e| e.to));
        all.sort_unstable();
        all.dedup();
        let is_live = |x: &Target| st.edges.iter().any(|e| !e.dead && e.to == *x);
        let tname = |x: &Target| match x {
            Target::S(n) => sname(*n),
            Target::Stop => StateName::STOP,
        };
        let mut state = State {
            wait: st.wait,
            join: st.join,
            pops_handler: st.pops,
            error_target: st
                .own_fault
                .or_else(|| st.protection.last().copied())
                .map(sname),
            pushes_handler: st.pushes.map(sname),
            successors: all.iter().map(tname).collect(),
            ..State::new(sname(n), st.role.clone(), refs.get(st.owner))
        };
        // Nearly every state is outside compensation handlers, has only live edges and no
        // stack: it gets no box.
        let plain = st.in_handler.is_none()
            && !returns.contains_key(&n)
            && st.protection.is_empty()
            && st.gosub.is_none()
            && st.starts.is_empty()
            && st.sends.is_empty()
            && st.edges.iter().all(|e| !e.dead);
        if !plain {
            let (mut stacks, _) = subroutine_stacks(&t, n, &mut HashSet::new(), &mut memo);
            let primary = if stacks.is_empty() {
                StateNames::EMPTY
            } else {
                names(&stacks[0])
            };
            if stacks.len() < 2 {
                stacks.clear();
            }
            let mut ret: Vec<u32> = returns.get(&n).cloned().unwrap_or_default();
            ret.sort_unstable();
            ret.dedup();
            state.set_more(StateMore {
                handler_stack: names(&st.protection),
                starts_threads: st.starts.as_slice().into(),
                sends: st.sends.as_slice().into(),
                rare: StateRare {
                    dead_successors: all.iter().filter(|x| !is_live(x)).map(tname).collect(),
                    return_successors: names(&ret),
                    subroutine_stack: primary,
                    subroutine_stack_alternatives: stacks.iter().map(|x| names(x)).collect(),
                    gosub: st.gosub.map(|(h, r)| (h.map(sname), sname(r))),
                }
                .boxed(),
            });
        }
        states.push(state);
    }
    ThreadClass {
        number: t.number,
        table: SqlTable::for_class(&class),
        class,
        root: refs.get(t.root),
        parent: t.parent,
        states,
    }
}
