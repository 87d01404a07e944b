//! The netlink half of observe → plan → apply: host addresses, routes,
//! forwarding and container interfaces (veth pairs into container namespaces);
//! and what the host itself has that the topology only assumes (`facts`,
//! `warnings`, `iptables_read` (the one parser of iptables listings) and
//! `networkd`); and the host firewall, read once and written in one batch per
//! reconcile (`firewall`).

pub mod apply;
mod container_side;
mod context;
pub mod endpoint;
pub mod facts;
pub mod firewall;
mod inside;
pub mod iptables_read;
pub mod networkd;
pub mod observe;
mod plumb;
pub mod warnings;

pub use apply::{apply, Failure, NetlinkReport};
pub use context::HostContext;
pub use observe::{observe, Devices, NetlinkRows};

/// Observing a host's netlink side (and its containers') failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Netlink(#[from] crate::netlink::NetlinkError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
}
