//! What every netlink step of a host's apply shares: the host's context (its
//! mesh, its underlay NIC) and small helpers for errors that name the object.

use crate::marks::Policy;
use crate::netlink::{Netlink, NetlinkError};
use crate::plan::Change;
use crate::state::Item;

/// Context for the netlink steps of one host.
pub struct HostContext<'a> {
    pub mesh: &'a str,
    pub underlay_nic: Option<&'a str>,
}

impl<'a> HostContext<'a> {
    pub(super) fn policy(&self) -> Policy<'a> {
        Policy::new(self.mesh)
    }
}

/// The index of device `name`; an error naming it when it is missing.
pub(super) async fn index_of(netlink: &Netlink, name: &str) -> Result<u32, NetlinkError> {
    netlink
        .link_by_name(name)
        .await?
        .map(|l| l.index)
        .ok_or_else(|| NetlinkError::Io {
            what: format!("device {name}"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "does not exist (is ovs-vswitchd running?)",
            ),
        })
}

pub(super) fn io(what: String) -> impl FnOnce(std::io::Error) -> NetlinkError {
    move |source| NetlinkError::Io { what, source }
}

/// The object a change makes (create, update, replace).
pub(super) fn after<'c, T>(
    change: &'c Change,
    get: impl Fn(&'c Item) -> Option<T>,
) -> Result<T, NetlinkError> {
    change
        .after
        .as_ref()
        .and_then(get)
        .ok_or_else(|| NetlinkError::Io {
            what: format!("{} {}", change.kind.as_str(), change.id),
            source: std::io::Error::other("the plan carries no target for this change"),
        })
}
