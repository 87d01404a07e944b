//! The netlink half of observe → plan → apply: host addresses, routes,
//! forwarding and container interfaces (veth pairs into container namespaces).

pub mod apply;
mod inside;
pub mod observe;
mod plumb;

pub use apply::{apply, Failure, HostContext, NetlinkReport};
pub use observe::{observe, Devices, NetlinkRows, ObserveError};
