//! The netlink half of observe → plan → apply: host addresses, routes,
//! forwarding and container interfaces (veth pairs into container namespaces);
//! and what the host itself has that the topology only assumes (`facts`,
//! `warnings`, read-only `iptables_read` and `networkd`).

pub mod apply;
pub mod facts;
pub mod iptables_read;
pub mod networkd;
pub mod observe;
pub mod warnings;

pub use apply::{apply, Failure, HostContext, NetlinkReport};
pub use observe::{observe, Devices, NetlinkRows, ObserveError};
