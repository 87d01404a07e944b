//! The netlink half of observe → plan → apply: host addresses, routes,
//! forwarding and container interfaces (veth pairs into container namespaces);
//! and the host firewall's accept rules for the mesh's routing interfaces.

pub mod apply;
pub mod firewall;
pub mod observe;

pub use apply::{apply, Failure, HostContext, NetlinkReport};
pub use observe::{observe, Devices, NetlinkRows, ObserveError};
