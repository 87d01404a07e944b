//! Drift inside plumbed containers: their namespaces' netlink notifications.
//!
//! Notifications about a container's interfaces are sent in the container's
//! namespace, where the daemon's own socket does not listen. So for every
//! container the last reconcile plumbed, the daemon opens a netlink socket
//! inside its namespace (on a short-lived thread: `netlink::in_netns`), joined
//! to the link, IPv4 address and IPv4 route groups, and any notification there
//! wakes it. Idle, that costs one socket per container and no CPU.
//!
//! A socket keeps its namespace alive, and with it the container's end of the
//! veth: a dead container must be let go at once. So the daemon checks each
//! watched namespace's identity (one `stat`) every second and before every
//! reconcile, and drops the socket of a namespace that is gone or replaced
//! (which also wakes it, as a container event).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::triggers::Trigger;
use crate::netlink::in_netns;
use crate::netns::is_netns;
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
    let socket =
        in_netns(&file, |_| async { Ok(multicast_socket()) }).map_err(std::io::Error::other)??;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
    let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
    let task = tokio::spawn(async move {
        loop {
            let Ok(mut ready) = socket.readable().await else {
                return;
            };
            // Drain: one wake-up for a burst (ENOBUFS, an overrun, counts as news too).
            // Only the arrival matters, not the message: a few bytes of each are read
            // and the rest of the datagram discarded, so an idle watch holds no buffer
            // (a 16 KiB one each was half the daemon's RSS at 1000 containers).
            let mut buffer = [0u8; 64];
            loop {
                // SAFETY: recv writes at most `buffer.len()` bytes into the buffer.
                let n = unsafe {
                    libc::recv(
                        socket.get_ref().as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
                {
                    break;
                }
                if n == 0 {
                    return;
                }
            }
            ready.clear_ready();
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

/// A non-blocking rtnetlink socket in the calling thread's namespace, joined to
/// the link, IPv4 address and IPv4 route groups.
fn multicast_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid start.
    let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    address.nl_groups =
        (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV4_ROUTE) as u32;
    // SAFETY: the address is a valid sockaddr_nl of the given size.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if bound != 0 {
        return Err(std::io::Error::last_os_error());
    }
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
