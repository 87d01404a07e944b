//! What this process has asked of the kernel, counted: the benchmarks and the
//! scale tests check that a no-op reconcile writes nothing and that a host's
//! links are dumped once per reconcile, not once per lookup.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests that changed (or tried to change) something in the kernel, process-wide.
static WRITES: AtomicU64 = AtomicU64::new(0);

pub(super) fn wrote() {
    WRITES.fetch_add(1, Ordering::Relaxed);
}

/// How many kernel writes this process has sent: rtnetlink requests that add,
/// change or delete a link, address or route, and ethtool and forwarding
/// settings. A reconcile with nothing to do sends none (the benchmarks check it).
pub fn writes() -> u64 {
    WRITES.load(Ordering::Relaxed)
}

/// Dumps of every link of a namespace, process-wide.
static LINK_DUMPS: AtomicU64 = AtomicU64::new(0);

/// How many times this process has dumped a namespace's links: once per
/// namespace read, never per lookup (the tests check it).
pub fn link_dumps() -> u64 {
    LINK_DUMPS.load(Ordering::Relaxed)
}

pub(super) fn dumped_links() {
    LINK_DUMPS.fetch_add(1, Ordering::Relaxed);
}
