//! Drift inside plumbed containers: their namespaces' netlink notifications.
//!
//! Notifications about a container's interfaces are sent in the container's
//! namespace, where the daemon's own socket does not listen. So for every
//! container the last reconcile plumbed, the daemon opens a netlink socket
//! inside its namespace (on a short-lived thread: `netns::run`; the socket is `netlink-sys`'s), joined
//! to the link, address and route groups of both families, and any notification there
//! wakes it. Idle, that costs one socket per container and no CPU.
//!
//! A socket keeps its namespace alive, and with it the container's end of the
//! veth: a dead container must be let go at once. So the daemon checks each
//! watched namespace's identity (one `stat`) every second and before every
//! reconcile, and drops the socket of a namespace that is gone or replaced
//! (which also wakes it, as a container event).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{AsyncSocket, AsyncSocketExt, Socket, SocketAddr, TokioSocket};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::triggers::Trigger;
use crate::netns::{self, is_netns};
use crate::runtime::Runtimes;
use crate::state::HostState;
use crate::topology::Runtime;

/// How often the watched namespaces' identities are checked.
pub const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A container the last reconcile plumbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plumbed {
    pub runtime: Runtime,
}

/// The containers of `want` that are not waiting, by name.
pub fn plumbed(want: &HostState, waiting: &[String]) -> BTreeMap<String, Plumbed> {
    want.containers
        .values()
        .filter(|iface| !waiting.contains(&iface.container))
        .map(|iface| {
            let runtime = iface.runtime.clone();
            (iface.container.clone(), Plumbed { runtime })
        })
        .collect()
}

/// A namespace's identity: (device, inode) of its nsfs file.
type Identity = (u64, u64);

fn identity(path: &Path) -> Option<Identity> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

struct Watch {
    path: PathBuf,
    netns: Identity,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The task owns the socket: ending it closes the socket and lets the namespace go.
        self.task.abort();
    }
}

/// The sockets watching plumbed containers.
pub struct Watchers {
    watches: BTreeMap<String, Watch>,
    tx: UnboundedSender<Trigger>,
}

impl Watchers {
    pub fn new(tx: UnboundedSender<Trigger>) -> Self {
        Self {
            watches: BTreeMap::new(),
            tx,
        }
    }

    /// After a reconcile: watch the containers plumbed now, and only those.
    pub fn follow(&mut self, plumbed: &BTreeMap<String, Plumbed>, runtimes: &Runtimes) {
        self.watches.retain(|name, _| plumbed.contains_key(name));
        let mut added = false;
        for (name, container) in plumbed {
            let Some(path) = runtimes.netns_path(&container.runtime) else {
                continue;
            };
            if self
                .watches
                .get(name)
                .is_some_and(|w| w.path == path && identity(&path) == Some(w.netns))
            {
                continue;
            }
            self.watches.remove(name);
            match watch(&path, self.tx.clone()) {
                Ok(watch) => {
                    self.watches.insert(name.clone(), watch);
                    added = true;
                }
                Err(error) => {
                    tracing::debug!(container = %name, %error, "cannot watch inside the container")
                }
            }
        }
        // Whatever changed between that reconcile's look and the new socket: look again.
        if added {
            let _ = self.tx.send(Trigger::ContainerDrift);
        }
    }

    /// Let go of namespaces that are gone or replaced; whether there were any.
    pub fn prune(&mut self) -> bool {
        let before = self.watches.len();
        self.watches
            .retain(|_, w| identity(&w.path) == Some(w.netns));
        self.watches.len() != before
    }
}

/// A socket in the namespace at `path` and the task that turns its notifications into triggers.
fn watch(path: &Path, tx: UnboundedSender<Trigger>) -> std::io::Result<Watch> {
    let file = std::fs::File::open(path)?;
    if !is_netns(&file) {
        return Err(std::io::Error::other("not a network namespace (yet)"));
    }
    let meta = file.metadata()?;
    // Made on a thread inside the namespace, registered with this runtime's reactor.
    let runtime = tokio::runtime::Handle::current();
    let socket = netns::run(&file, move || {
        let _entered = runtime.enter();
        multicast_socket()
    })
    .map_err(std::io::Error::other)??;
    let task = tokio::spawn(async move {
        // Only the arrival matters, not the message: a few bytes of each are read
        // and the rest of the datagram discarded, so an idle watch holds no buffer
        // (a 16 KiB one each was half the daemon's RSS at 1000 containers).
        let mut buffer = [0u8; 64];
        loop {
            match socket.recv(&mut &mut buffer[..]).await {
                Ok(()) => {}
                // An overrun: news too.
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(error) => {
                    tracing::debug!(%error, "container netlink socket failed");
                    return;
                }
            }
            drain(socket.socket_ref(), &mut buffer);
            if tx.send(Trigger::ContainerDrift).is_err() {
                return;
            }
        }
    });
    Ok(Watch {
        path: path.to_path_buf(),
        netns: (meta.dev(), meta.ino()),
        task,
    })
}

/// Read whatever else is pending, so a burst makes one wake-up.
fn drain(socket: &Socket, buffer: &mut [u8]) {
    loop {
        match socket.recv(&mut &mut buffer[..], libc::MSG_DONTWAIT) {
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(_) => return,
        }
    }
}

/// A non-blocking rtnetlink socket in the calling thread's namespace, joined to
/// the link, address and route groups of IPv4 and IPv6 (on the entered runtime).
fn multicast_socket() -> std::io::Result<TokioSocket> {
    let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
    let groups = libc::RTMGRP_LINK
        | libc::RTMGRP_IPV4_IFADDR
        | libc::RTMGRP_IPV4_ROUTE
        | libc::RTMGRP_IPV6_IFADDR
        | libc::RTMGRP_IPV6_ROUTE;
    socket
        .socket_mut()
        .bind(&SocketAddr::new(0, groups as u32))?;
    Ok(socket)
}

/// One socket per plumbed container is watched: let the daemon hold as many
/// descriptors as the hard limit allows.
pub fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a plain struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
