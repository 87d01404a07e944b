//! Links, addresses and routes over rtnetlink — never by running `ip`.
//!
//! A [`Netlink`] is a route-netlink socket bound to the network namespace it was
//! opened in. Inside a container's namespace, [`in_netns`] opens one on the
//! dedicated thread [`crate::netns`] enters it on (never a tokio worker) and
//! drops it with that thread. The namespace fd is held for that one call only.

mod addresses;
mod counters;
pub mod ethtool;
pub mod index;
pub mod many;
mod neighbour;
pub mod sysctl;

use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::topology::Mac;
pub use addresses::{is_link_local, RTPROT_RA};
use counters::wrote;
pub use counters::{link_dumps, writes};
pub use neighbour::{resolved, Neighbour};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// Whether a netlink error says the object is already gone (ESRCH, ENODEV, EADDRNOTAVAIL, ENOENT).
fn already_gone(error: &rtnetlink::Error) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            [libc::ESRCH, libc::ENODEV, libc::EADDRNOTAVAIL, libc::ENOENT]
                .contains(&-message.raw_code())
        }
        _ => false,
    }
}

/// A delete that finds nothing to delete has done its job.
fn deleted(result: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match result {
        Err(error) if already_gone(&error) => Ok(()),
        other => other,
    }
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Netlink { what, source }
}

/// A network interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub mac: Option<Mac>,
    pub mtu: u32,
    pub up: bool,
    /// For a veth: the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
}

/// A route of the main table, IPv4 or IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub to: IpNet,
    pub via: Option<IpAddr>,
    pub oif: Option<u32>,
    pub onlink: bool,
    pub protocol: u8,
    /// The route's priority (`metric`): with the destination, its key in the table.
    pub metric: u32,
}

impl Route {
    /// The route as conflict messages and warnings name it, e.g. `default via
    /// 172.17.0.1 dev eth0 proto 3 metric 0` (`dev` names a device by index).
    pub fn describe<'a>(&self, dev: impl Fn(u32) -> Option<&'a str>) -> String {
        let mut text = if self.to.prefix_len() == 0 {
            "default".to_string()
        } else {
            self.to.to_string()
        };
        if let Some(via) = self.via {
            text.push_str(&format!(" via {via}"));
        }
        if let Some(name) = self.oif.and_then(dev) {
            text.push_str(&format!(" dev {name}"));
        }
        format!("{text} proto {} metric {}", self.protocol, self.metric)
    }
}

/// An address of a link (either family), and the protocol that added it
/// (`IFA_PROTO`, Linux 6.1 and later; 0 where unset or unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpNet,
    pub protocol: u8,
}

/// An rtnetlink socket in the namespace it was opened in (clones share it).
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Open a socket in the current thread's namespace; its connection task runs
    /// on the current tokio runtime.
    pub fn open() -> Result<Self, NetlinkError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetlinkError::Io {
                what: "open a netlink socket".into(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Every link of the namespace: one dump (without statistics, which ovsmesh
    /// never reads and which make up most of each message).
    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        counters::dumped_links();
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
            .execute()
            .try_collect()
            .await
            .map_err(nl("list links"))?;
        Ok(messages.iter().map(link_of).collect())
    }

    /// The link named `name`: one request for that link, not a dump.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Ok(None);
        }
        let mut replies = self.handle.link().get().match_name(name).execute();
        match replies.try_next().await {
            // The kernel also matches alternative names; only the name counts here.
            Ok(found) => Ok(found.map(|m| link_of(&m)).filter(|l| l.name == name)),
            Err(error) if already_gone(&error) => Ok(None),
            Err(error) => Err(nl(format!("get link {name}"))(error)),
        }
    }

    /// Create a veth whose peer, `peer_name` with its MAC and MTU, is born in
    /// `peer_netns` — or, with `None`, in this namespace (a Docker endpoint:
    /// Docker moves the peer into the container).
    pub async fn create_veth(
        &self,
        host_name: &str,
        peer_name: &str,
        peer_netns: Option<&File>,
        mac: Mac,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .address(mac.0.to_vec())
            .mtu(mtu);
        if let Some(netns) = peer_netns {
            peer = peer.setns_by_fd(netns.as_raw_fd());
        }
        self.add_veth(host_name, peer_name, peer.build(), Some(mtu))
            .await
    }

    /// Create a plain veth pair, the peer born in `peer_netns` (lab plumbing).
    pub async fn create_veth_pair(
        &self,
        name: &str,
        peer_name: &str,
        peer_netns: &File,
    ) -> Result<(), NetlinkError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer_name.to_string())
            .setns_by_fd(peer_netns.as_raw_fd())
            .build();
        self.add_veth(name, peer_name, peer, None).await
    }

    async fn add_veth(
        &self,
        name: &str,
        peer_name: &str,
        peer: LinkMessage,
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        wrote();
        let mut builder = LinkVeth::new(name, peer_name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let message = builder
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(nl(format!("create veth {name} with peer {peer_name}")))
    }

    /// Create a Linux bridge (it forwards VLAN-tagged frames as they are).
    pub async fn create_bridge(&self, name: &str) -> Result<(), NetlinkError> {
        wrote();
        self.handle
            .link()
            .add(rtnetlink::LinkBridge::new(name).up().build())
            .execute()
            .await
            .map_err(nl(format!("create bridge {name}")))
    }

    /// Enslave a link to a bridge and bring it up.
    pub async fn set_controller(&self, index: u32, bridge: u32) -> Result<(), NetlinkError> {
        wrote();
        let message = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(nl(format!("attach link {index} to bridge {bridge}")))
    }

    /// Bring a link up.
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let up = LinkChange {
            up: true,
            ..LinkChange::default()
        };
        self.set_link(index, up).await
    }

    /// Set what is given of a link's state.
    pub async fn set_link(&self, index: u32, change: LinkChange<'_>) -> Result<(), NetlinkError> {
        self.change_link(LinkUnspec::new_with_index(index), change, || {
            format!("set link {index}")
        })
        .await
    }

    /// [`Self::set_link`] for the link named `name` (the kernel finds it: no lookup first).
    pub async fn set_link_by_name(
        &self,
        name: &str,
        change: LinkChange<'_>,
    ) -> Result<(), NetlinkError> {
        self.change_link(LinkUnspec::new_with_name(name), change, || {
            format!("set link {name}")
        })
        .await
    }

    async fn change_link(
        &self,
        mut builder: LinkMessageBuilder<LinkUnspec>,
        change: LinkChange<'_>,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        wrote();
        if let Some(mtu) = change.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = change.mac {
            builder = builder.address(mac.0.to_vec());
        }
        if let Some(alias) = change.alias {
            builder = builder.alias(alias);
        }
        if change.up {
            builder = builder.up();
        }
        self.handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(nl(what()))
    }

    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        wrote();
        deleted(self.handle.link().del(index).execute().await)
            .map_err(nl(format!("delete link {index}")))
    }
}

/// Which parts of a link to change.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkChange<'a> {
    pub up: bool,
    pub mtu: Option<u32>,
    pub mac: Option<Mac>,
    pub alias: Option<&'a str>,
}

fn link_of(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        alias: None,
        mac: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
        peer_index: None,
    };
    let mut is_veth = false;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) if bytes.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(bytes);
                link.mac = Some(Mac(mac));
            }
            LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
            LinkAttribute::LinkInfo(infos) => {
                is_veth = infos.iter().any(|i| {
                    matches!(
                        i,
                        rtnetlink::packet_route::link::LinkInfo::Kind(InfoKind::Veth)
                    )
                });
            }
            _ => {}
        }
    }
    if !is_veth {
        link.peer_index = None;
    }
    link
}

/// Run `work` with a [`Netlink`] opened inside `netns`, on the dedicated thread
/// and runtime of [`crate::netns::block_on`]. The thread ends with the call.
pub fn in_netns<T, F, Fut>(netns: &File, work: F) -> Result<T, NetlinkError>
where
    T: Send,
    F: FnOnce(Netlink) -> Fut + Send,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    crate::netns::block_on(netns, || async { work(Netlink::open()?).await })?
}
