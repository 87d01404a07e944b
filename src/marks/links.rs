//! Links are a mesh's by their alias: a container's veth host end
//! (`ovsmesh:MESH/CONTAINER/IFNAME`) or a Docker endpoint's, whose alias
//! carries the endpoint's facts so they outlive any process.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Policy;

/// Start of the alias of a Docker endpoint's veth host end (see [`EndpointMark`]).
const ENDPOINT_ALIAS_PREFIX: &str = "ovsmesh-ep:";

/// Start of every veth host end's alias.
const ALIAS_PREFIX: &str = "ovsmesh:";

/// What a Docker endpoint's veth host end says of it (its alias): enough to
/// rebuild its OVS port after any restart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointMark {
    /// The topology network.
    pub network: String,
    /// Docker's endpoint id.
    pub endpoint: String,
    /// The container's address on it.
    pub address: Ipv4Net,
    /// The MAC of the container's interface.
    pub mac: crate::topology::Mac,
}

impl Policy<'_> {
    /// The alias of a veth host end this mesh makes.
    pub fn veth_alias(&self, container: &str, ifname: &str) -> String {
        format!("{ALIAS_PREFIX}{}/{container}/{ifname}", self.mesh)
    }

    /// The (container, ifname) a link's alias says it is, if it is this mesh's veth.
    pub fn veth_identity(&self, alias: Option<&str>) -> Option<(String, String)> {
        let rest = alias?
            .strip_prefix(ALIAS_PREFIX)?
            .strip_prefix(self.mesh)?
            .strip_prefix('/')?;
        let (container, ifname) = rest.split_once('/')?;
        Some((container.to_string(), ifname.to_string()))
    }

    /// The alias of a Docker endpoint's veth host end: the endpoint's facts, so
    /// that they outlive any process (the kernel keeps them while the veth lives).
    pub fn endpoint_alias(&self, mark: &EndpointMark) -> String {
        format!(
            "{ENDPOINT_ALIAS_PREFIX}{} {} {} {} {}",
            self.mesh, mark.network, mark.endpoint, mark.address, mark.mac
        )
    }

    /// The endpoint a link's alias says it is, if it is this mesh's endpoint veth.
    pub fn endpoint_identity(&self, alias: Option<&str>) -> Option<EndpointMark> {
        let mut words = alias?.strip_prefix(ENDPOINT_ALIAS_PREFIX)?.split(' ');
        if words.next()? != self.mesh {
            return None;
        }
        let mark = EndpointMark {
            network: words.next()?.to_string(),
            endpoint: words.next()?.to_string(),
            address: words.next()?.parse().ok()?,
            mac: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(mark)
    }

    /// Whether a link with `alias` is this mesh's host end of `container`'s `ifname`.
    pub fn owns_veth(&self, alias: Option<&str>, container: &str, ifname: &str) -> bool {
        alias == Some(self.veth_alias(container, ifname).as_str())
    }
}
