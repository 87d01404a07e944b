//! A Docker endpoint's veth, made in the host's namespace: Docker moves the
//! container end into the container (the network plugin's `Join` names it).
//! Like a `--net=none` container's veth, the host end carries an alias that
//! makes it this mesh's (here with the endpoint's facts, see
//! `marks::EndpointMark`), and a veth whose alias cannot be set is deleted at
//! once, so there are no half-made veths nobody owns.

use crate::marks::{EndpointMark, Policy};
use crate::netlink::{ethtool, sysctl, LinkChange, Netlink, NetlinkError};

/// Make the veth of endpoint `mark`: host end `host_end` (up, aliased),
/// container end `container_end` with the endpoint's MAC and `mtu`.
pub async fn make(
    netlink: &Netlink,
    policy: &Policy<'_>,
    (host_end, container_end): (&str, &str),
    mark: &EndpointMark,
    mtu: u32,
    tx_checksum_off: bool,
) -> Result<(), NetlinkError> {
    // A leftover of an earlier attempt for the same endpoint goes first.
    remove(netlink, policy, host_end, &mark.endpoint).await?;
    netlink
        .create_veth(host_end, container_end, None, mark.mac, mtu)
        .await?;
    let alias = policy.endpoint_alias(mark);
    let named = async {
        // Silent before it comes up, like a container's host end: the
        // container's first ARP for its gateway gets only the gateway's answer.
        sysctl::quiet_switch_port(host_end).map_err(|source| NetlinkError::Io {
            what: format!("quiet the host end {host_end}"),
            source,
        })?;
        netlink
            .set_link_by_name(
                host_end,
                LinkChange {
                    up: true,
                    alias: Some(&alias),
                    ..LinkChange::default()
                },
            )
            .await?;
        if tx_checksum_off {
            // The userspace datapath needs it on both ends for TCP; the setting moves with the device.
            for end in [host_end, container_end] {
                ethtool::set_tx_checksum(end, false).map_err(|source| NetlinkError::Io {
                    what: format!("tx checksum off on {end}"),
                    source,
                })?;
            }
        }
        Ok(())
    };
    if let Err(error) = named.await {
        if let Ok(Some(link)) = netlink.link_by_name(host_end).await {
            let _ = netlink.delete_link(link.index).await;
        }
        return Err(error);
    }
    Ok(())
}

/// Whether `host_end` exists and is this mesh's veth of `endpoint`.
pub async fn exists(
    netlink: &Netlink,
    policy: &Policy<'_>,
    host_end: &str,
    endpoint: &str,
) -> Result<Option<EndpointMark>, NetlinkError> {
    Ok(netlink
        .link_by_name(host_end)
        .await?
        .and_then(|l| policy.endpoint_identity(l.alias.as_deref()))
        .filter(|m| m.endpoint == endpoint))
}

/// Delete the veth of `endpoint` (both ends go together) if `host_end` is it;
/// a device by that name that is not ours stays.
pub async fn remove(
    netlink: &Netlink,
    policy: &Policy<'_>,
    host_end: &str,
    endpoint: &str,
) -> Result<(), NetlinkError> {
    if let Some(link) = netlink.link_by_name(host_end).await? {
        let ours = policy
            .endpoint_identity(link.alias.as_deref())
            .is_some_and(|m| m.endpoint == endpoint);
        if !ours {
            return Err(NetlinkError::Io {
                what: format!("device {host_end}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not this endpoint's veth: left alone",
                ),
            });
        }
        netlink.delete_link(link.index).await?;
    }
    Ok(())
}
