//! BPM04xx: the runtime environment and the process's identity — another class, a
//! versioned package, the process's request/response classes, the actor pool.

use super::{Context, Findings};
use crate::plan::findings::{finding, Code};

pub(super) fn run(cx: &Context, out: &mut Findings) {
    let (old_c, new_c) = (cx.old_c, cx.new_c);
    class_name_source(cx, out);
    if cx.scope.class_changed {
        out.findings.push(finding(
            Code::ClassChanged,
            format!(
                "old is {} but new is {}: their instances live in different tables",
                old_c.class, new_c.class
            ),
        ));
    }
    if cx.scope.versioned {
        out.findings.push(finding(
            Code::VersionedProcess,
            format!("{} compiles into {} (old) and {} (new): in-flight instances keep running on the old classes", old_c.class, old_c.package, new_c.package),
        ));
        if old_c.version.is_none() || new_c.version.is_none() {
            out.findings.push(finding(
                Code::UnversionedToVersioned,
                format!(
                    "{} changed from {} to {}",
                    old_c.class,
                    describe_version(old_c.version),
                    describe_version(new_c.version)
                ),
            ));
        }
    } else {
        messages(cx, out);
    }
}

/// BPM0407: a class name that is not in its file (see `bpl::settle_class_names`).
fn class_name_source(cx: &Context, out: &mut Findings) {
    let (old, new) = (cx.old, cx.new);
    let message = match (old.class_from_file_name, new.class_from_file_name) {
        (false, false) => return,
        (true, true) if old.class_name == new.class_name => format!(
            "neither {} nor {} names its class (bare <process> documents): the class name {} was taken from the file name of {}; --class sets it",
            old.source.origin, new.source.origin, old.class_name, old.source.origin
        ),
        (true, true) => format!(
            "neither {} nor {} names its class (bare <process> documents): the class names {} and {} were taken from their file names; --class sets it",
            old.source.origin, new.source.origin, old.class_name, new.class_name
        ),
        (o, _) => {
            let (this, other) = if o { (old, new) } else { (new, old) };
            let from = if this.class_name == other.class_name {
                format!("the class {} names", other.source.origin)
            } else {
                "its file name".to_string()
            };
            format!(
                "{} does not name its class (a bare <process> document): the class name {} was taken from {from}; --class sets it",
                this.source.origin, this.class_name
            )
        }
    };
    out.findings
        .push(finding(Code::ClassNameFromFileName, message));
}

/// BPM0401, for a plan that something will be applied for: the host must be disabled.
pub(in crate::plan) fn actor_pool(cx: &Context, out: &mut Findings) {
    out.findings.push(finding(
        Code::ActorPool,
        format!("if {} runs with PoolSize = 0 (the shared actor pool) it cannot be disabled on its own: stop the production before applying", cx.old_c.class),
    ));
}

/// BPM0405: the process's own request/response classes.
fn messages(cx: &Context, out: &mut Findings) {
    let (old, new) = (cx.old, cx.new);
    for (what, o, n) in [
        ("request", &old.process.request, &new.process.request),
        ("response", &old.process.response, &new.process.response),
    ] {
        if o != n {
            out.findings.push(finding(
                Code::ProcessMessageChanged,
                format!(
                    "the process {what} class changed from {} to {}: in-flight instances hold a {what} of the old class",
                    o.as_deref().unwrap_or("(none)"),
                    n.as_deref().unwrap_or("(none)")
                ),
            ));
        }
    }
}

fn describe_version(v: Option<u64>) -> String {
    match v {
        Some(n) => format!("version {n}"),
        None => "unversioned".to_string(),
    }
}
