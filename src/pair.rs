//! The old and the new version side by side: the pipeline reads, compiles and indexes the two
//! versions independently, and does each such pair of steps on two threads.

/// Run `old` and `new` at the same time, the second on its own thread, and return both
/// results. The callers hand it the two versions' independent work (reading, compiling,
/// building the diff trees), which a two-core machine then does in the time of one; a
/// caller that reports the first error reports the old version's, as when they ran one
/// after the other.
pub fn side_by_side<A, B: Send>(old: impl FnOnce() -> A, new: impl FnOnce() -> B + Send) -> (A, B) {
    // Taken by the thread, or by this one when no thread can be had (then one after the other).
    let new = std::sync::Mutex::new(Some(new));
    let run_new = || new.lock().ok().and_then(|mut n| n.take()).map(|f| f());
    std::thread::scope(|s| {
        // The main thread's stack size: the readers recurse once per nesting level.
        let second = std::thread::Builder::new()
            .stack_size(8 << 20)
            .spawn_scoped(s, run_new);
        let a = old();
        let b = match second {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => run_new(),
        };
        (a, b.expect("the second closure runs exactly once"))
    })
}
