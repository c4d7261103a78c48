//! Threads inside the test's network namespaces: `setns` moves only the calling thread, so
//! sockets a thread makes there live in that namespace and can be used from anywhere.

#![allow(dead_code)]

use std::thread::JoinHandle;

/// Moves the calling thread into network namespace `ns` (made by `ip netns add`).
pub(crate) fn enter(ns: &str) {
    let path = format!("/var/run/netns/{ns}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// Runs `f` on a thread of its own inside `ns`.
pub(crate) fn spawn_in<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            enter(&ns);
            f()
        })
        .expect("thread")
}

/// Runs `f` inside `ns` and waits for its result.
pub(crate) fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(ns, "in-ns", f).join().expect("namespace thread")
}
