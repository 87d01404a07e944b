//! Routes and container addresses: which are a mesh's (protocol
//! [`ROUTE_PROTOCOL`] and the mesh's metric, or the container default-route
//! metrics), the rules the module docs of `marks` state for them.

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::{Policy, ROUTE_PROTOCOL};

/// Route metrics of meshes: 79 in the top byte, 24 bits of the mesh's hash below.
const METRIC_BASE: u32 = (ROUTE_PROTOCOL as u32) << 24;

/// Metric of the default route ovsmesh gives a container: the lowest there
/// is, so that the gateway the topology names wins over a default route
/// another network put in the container (Docker's on `eth0` has metric 0 too;
/// ovsmesh adds its own first among equals, `ip route prepend`, so the kernel
/// uses it, and replaces nothing). Still recognisably ours: protocol 79, on the
/// container interface ovsmesh made. The mesh's own metric (about 1.3e9) would
/// lose to any other default route. Other container routes keep the mesh's
/// metric.
pub const CONTAINER_DEFAULT_METRIC: u32 = 0;

/// Metric of the IPv6 default route ovsmesh gives a container. IPv6 has no
/// metric 0 (the kernel stores 0 as 1024, where Docker's and router
/// advertisements' default routes sit), and two IPv6 routes of one metric to
/// one destination become one multipath route rather than first and second:
/// 1 wins over them without sharing their metric.
pub const CONTAINER_DEFAULT_METRIC6: u32 = 1;

/// The marks on every route a mesh installs (part of the kernel's route key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMark {
    pub protocol: u8,
    pub metric: u32,
}

impl Policy<'_> {
    /// This mesh's route metric: 79·2²⁴ plus the first 24 bits of
    /// SHA-256(mesh name). Distinct meshes get distinct metrics (but for a
    /// 1 in 2²⁴ chance), and a route of one mesh is never another's.
    pub fn route_metric(&self) -> u32 {
        let hash = Sha256::digest(self.mesh.as_bytes());
        METRIC_BASE | u32::from_be_bytes([0, hash[0], hash[1], hash[2]])
    }

    /// The marks on every route this mesh installs.
    pub fn route_mark(&self) -> RouteMark {
        RouteMark {
            protocol: ROUTE_PROTOCOL,
            metric: self.route_metric(),
        }
    }

    /// Whether a route of the main table is this mesh's.
    pub fn owns_route(&self, protocol: u8, metric: u32) -> bool {
        protocol == ROUTE_PROTOCOL && metric == self.route_metric()
    }

    /// The metric of a route this mesh makes inside a container (see
    /// [`CONTAINER_DEFAULT_METRIC`] and [`CONTAINER_DEFAULT_METRIC6`]).
    pub fn container_route_metric(&self, to: IpNet) -> u32 {
        match to {
            IpNet::V4(to) if to.prefix_len() == 0 => CONTAINER_DEFAULT_METRIC,
            IpNet::V6(to) if to.prefix_len() == 0 => CONTAINER_DEFAULT_METRIC6,
            _ => self.route_metric(),
        }
    }

    /// Whether a route on one of this mesh's container interfaces is this
    /// mesh's: protocol 79 and the metric it gives such a route (or the mesh's
    /// metric, which an older ovsmesh gave the default route: stale, ours to
    /// remove).
    pub fn owns_container_route(&self, to: IpNet, protocol: u8, metric: u32) -> bool {
        protocol == ROUTE_PROTOCOL
            && (metric == self.container_route_metric(to) || metric == self.route_metric())
    }

    /// Whether an address on one of this mesh's container interfaces is this
    /// mesh's: one of the topology's exact addresses for it (`wanted`, IPv4 and
    /// IPv6), or one ovsmesh added (protocol 79; a kernel before 6.1 keeps no
    /// address protocol, and then only the exact addresses are recognised).
    /// IPv6 link-local addresses are the kernel's, never ours.
    pub fn owns_container_address(&self, address: IpNet, protocol: u8, wanted: &[IpNet]) -> bool {
        let link_local =
            matches!(address, IpNet::V6(a) if a.addr().segments()[0] & 0xffc0 == 0xfe80);
        !link_local && (wanted.contains(&address) || protocol == ROUTE_PROTOCOL)
    }

    /// Whether a route not ours holds the key a route of ours needs (same
    /// destination, same metric): writing ours would overwrite it.
    pub fn route_in_the_way(&self, protocol: u8, metric: u32) -> bool {
        metric == self.route_metric() && !self.owns_route(protocol, metric)
    }
}
