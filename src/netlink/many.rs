//! Netlink work in many namespaces at once: a few dedicated threads (see
//! [`crate::netns::run_each`]), each with one runtime for all its visits, and
//! a socket pair kept in the caller's namespace ([`Home`]) for the host side of
//! work that spans both, such as creating a veth whose peer is born inside.
//!
//! Before this, every container cost a fresh thread, a fresh runtime and a
//! fresh socket, one container after the other, blocking the caller; now the
//! namespaces are visited by a bounded number of threads side by side. The
//! kernel still serialises most link changes (RTNL), so more threads than cores
//! buy little.

use std::fs::File;
use std::future::Future;
use std::sync::Arc;

use super::{ethtool, Netlink, NetlinkError};

/// What a worker keeps of the caller's namespace while it visits others:
/// sockets opened there before the thread entered any other namespace.
#[derive(Clone)]
pub struct Home {
    pub netlink: Netlink,
    pub ethtool: Arc<ethtool::Socket>,
    /// The caller's namespace itself, for [`crate::netns::visit`]; `None` where
    /// the work never leaves it.
    pub netns: Option<Arc<File>>,
}

struct Worker {
    runtime: tokio::runtime::Runtime,
    home: Home,
}

fn start_worker() -> Result<Worker, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start a runtime: {e}"))?;
    // Netlink::open spawns its connection on the runtime it is called in.
    let netlink = {
        let _inside = runtime.enter();
        Netlink::open().map_err(|e| e.to_string())?
    };
    let ethtool = ethtool::Socket::open().map_err(|e| format!("open an ethtool socket: {e}"))?;
    let netns = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("open the caller's namespace: {e}"))?;
    Ok(Worker {
        runtime,
        home: Home {
            netlink,
            ethtool: Arc::new(ethtool),
            netns: Some(Arc::new(netns)),
        },
    })
}

/// The threads to use: the cores, at least 2 (the work waits on the kernel
/// often enough to overlap), at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}

fn failed(error: impl std::fmt::Display) -> NetlinkError {
    NetlinkError::Io {
        what: "netlink worker".into(),
        source: std::io::Error::other(error.to_string()),
    }
}

/// Run `work` for every item inside its namespace, with a [`Netlink`] opened
/// there and the caller's [`Home`]; results in the order of `items`.
pub fn in_each_netns<I, T, F, Fut>(
    items: Vec<(&File, I)>,
    threads: usize,
    work: F,
) -> Vec<Result<T, NetlinkError>>
where
    I: Send,
    T: Send,
    F: Fn(Home, Netlink, I) -> Fut + Sync,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    crate::netns::run_each(items, threads, start_worker, |worker, item| {
        let worker = worker.as_ref().map_err(failed)?;
        worker.runtime.block_on(async {
            let inner = Netlink::open()?;
            work(worker.home.clone(), inner, item).await
        })
    })
    .into_iter()
    .map(|result| result.map_err(NetlinkError::from).and_then(|r| r))
    .collect()
}
