//! Docker's legacy (v1) network and IPAM plugin protocol: the calls and their
//! replies, with Docker's exact field names. Pure: the server hands a path and a
//! body to [`Call::parse`] and serializes what the handler answers.
//!
//! Unknown fields are ignored (Docker adds some between versions) and `null`
//! stands for "not given" wherever Docker sends it; `docker` prints errors to the user. What Docker 20.10 really
//! sends is written down in the tests below (recorded on a real dockerd).
//! Errors go back as `{"Err": ..., "Error": ...}`: the two protocols name the
//! field differently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The IPAM option (`--ipam-opt`) and driver option (`-o`) naming the topology network.
pub const NETWORK_OPTION: &str = "ovsmesh.network";
/// Where Docker puts the `-o` options of `docker network create` in `CreateNetwork`.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";
/// `RequestAddress` option saying the address asked for is the network's gateway.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
pub const GATEWAY_REQUEST: &str = "com.docker.network.gateway";
/// The media type plugin replies carry.
pub const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", default)]
    pub pool: String,
    #[serde(rename = "Gateway", default)]
    pub gateway: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, Value>>,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
}

impl CreateNetwork {
    /// The `-o ovsmesh.network=NET` of `docker network create`, if given.
    pub fn topology_network(&self) -> Option<String> {
        self.options
            .as_ref()?
            .get(GENERIC_OPTIONS)?
            .get(NETWORK_OPTION)?
            .as_str()
            .map(str::to_string)
    }

    /// The IPv4 pool Docker's IPAM answer gave the network.
    pub fn pool(&self) -> Option<&str> {
        self.ipv4_data
            .as_ref()?
            .first()
            .map(|d| d.pool.as_str())
            .filter(|p| !p.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointInterface {
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
}

/// `DeleteEndpoint`, `Leave`, `EndpointOperInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "SandboxKey", default)]
    pub sandbox_key: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RequestPool {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", default)]
    pub pool: String,
    #[serde(rename = "SubPool", default)]
    pub sub_pool: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PoolRef {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
}

impl RequestAddress {
    /// Whether Docker asks for the network's gateway (at `docker network create`).
    pub fn for_gateway(&self) -> bool {
        self.options
            .as_ref()
            .and_then(|o| o.get(REQUEST_ADDRESS_TYPE))
            .is_some_and(|t| t == GATEWAY_REQUEST)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address", default)]
    pub address: String,
}

/// One call Docker makes, by its path.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Activate,
    NetworkCapabilities,
    CreateNetwork(CreateNetwork),
    DeleteNetwork(NetworkRef),
    CreateEndpoint(CreateEndpoint),
    DeleteEndpoint(EndpointRef),
    EndpointOperInfo(EndpointRef),
    Join(Join),
    Leave(EndpointRef),
    /// Calls that need nothing of a local-scope driver (external connectivity,
    /// discovery, network allocation): answered `{}`.
    Nothing(&'static str),
    IpamCapabilities,
    DefaultAddressSpaces,
    RequestPool(RequestPool),
    ReleasePool(PoolRef),
    RequestAddress(RequestAddress),
    ReleaseAddress(ReleaseAddress),
}

/// A request that is not one of Docker's calls, or not as Docker sends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown call {0}")]
    Unknown(String),
    #[error("{call}: {error}")]
    Body { call: String, error: String },
}

fn body<T: for<'de> Deserialize<'de> + Default>(
    call: &str,
    body: &[u8],
) -> Result<T, ProtocolError> {
    // Docker sends an empty body (or `null`) for calls without arguments.
    if body.iter().all(u8::is_ascii_whitespace) || body == b"null" {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| ProtocolError::Body {
        call: call.to_string(),
        error: error.to_string(),
    })
}

impl Call {
    /// The call at `path` (`/NetworkDriver.Join`, …) with its JSON body.
    pub fn parse(path: &str, raw: &[u8]) -> Result<Call, ProtocolError> {
        let name = path.trim_start_matches('/');
        Ok(match name {
            "Plugin.Activate" => Call::Activate,
            "NetworkDriver.GetCapabilities" => Call::NetworkCapabilities,
            "NetworkDriver.CreateNetwork" => Call::CreateNetwork(body(name, raw)?),
            "NetworkDriver.DeleteNetwork" => Call::DeleteNetwork(body(name, raw)?),
            "NetworkDriver.CreateEndpoint" => Call::CreateEndpoint(body(name, raw)?),
            "NetworkDriver.DeleteEndpoint" => Call::DeleteEndpoint(body(name, raw)?),
            "NetworkDriver.EndpointOperInfo" => Call::EndpointOperInfo(body(name, raw)?),
            "NetworkDriver.Join" => Call::Join(body(name, raw)?),
            "NetworkDriver.Leave" => Call::Leave(body(name, raw)?),
            "NetworkDriver.ProgramExternalConnectivity" => {
                Call::Nothing("ProgramExternalConnectivity")
            }
            "NetworkDriver.RevokeExternalConnectivity" => {
                Call::Nothing("RevokeExternalConnectivity")
            }
            "NetworkDriver.DiscoverNew" => Call::Nothing("DiscoverNew"),
            "NetworkDriver.DiscoverDelete" => Call::Nothing("DiscoverDelete"),
            "NetworkDriver.AllocateNetwork" => Call::Nothing("AllocateNetwork"),
            "NetworkDriver.FreeNetwork" => Call::Nothing("FreeNetwork"),
            "IpamDriver.GetCapabilities" => Call::IpamCapabilities,
            "IpamDriver.GetDefaultAddressSpaces" => Call::DefaultAddressSpaces,
            "IpamDriver.RequestPool" => Call::RequestPool(body(name, raw)?),
            "IpamDriver.ReleasePool" => Call::ReleasePool(body(name, raw)?),
            "IpamDriver.RequestAddress" => Call::RequestAddress(body(name, raw)?),
            "IpamDriver.ReleaseAddress" => Call::ReleaseAddress(body(name, raw)?),
            _ => return Err(ProtocolError::Unknown(path.to_string())),
        })
    }

    /// The call's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Activate => "Activate",
            Call::NetworkCapabilities => "NetworkDriver.GetCapabilities",
            Call::CreateNetwork(_) => "CreateNetwork",
            Call::DeleteNetwork(_) => "DeleteNetwork",
            Call::CreateEndpoint(_) => "CreateEndpoint",
            Call::DeleteEndpoint(_) => "DeleteEndpoint",
            Call::EndpointOperInfo(_) => "EndpointOperInfo",
            Call::Join(_) => "Join",
            Call::Leave(_) => "Leave",
            Call::Nothing(name) => name,
            Call::IpamCapabilities => "IpamDriver.GetCapabilities",
            Call::DefaultAddressSpaces => "GetDefaultAddressSpaces",
            Call::RequestPool(_) => "RequestPool",
            Call::ReleasePool(_) => "ReleasePool",
            Call::RequestAddress(_) => "RequestAddress",
            Call::ReleaseAddress(_) => "ReleaseAddress",
        }
    }
}

/// `/Plugin.Activate`: both protocols.
pub fn activated() -> Value {
    json!({"Implements": ["NetworkDriver", "IpamDriver"]})
}

/// The network driver's capabilities: local scope (every host decides alone).
pub fn network_capabilities() -> Value {
    json!({"Scope": "local", "ConnectivityScope": "local"})
}

pub fn ipam_capabilities() -> Value {
    json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
}

pub fn default_address_spaces() -> Value {
    json!({"LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global"})
}

/// An error as Docker reads it: the network driver's replies carry it as
/// `Err`, the IPAM driver's as `Error` (measured: an IPAM reply with only `Err`
/// makes `docker run` print "No address returned"), so both are set.
pub fn error(message: &str) -> Value {
    json!({ "Err": message, "Error": message })
}

/// `CreateEndpoint`'s reply: the MAC only when Docker gave none (returning a
/// field Docker filled is an error).
pub fn endpoint_created(mac: Option<String>) -> Value {
    match mac {
        Some(mac) => json!({"Interface": {"MacAddress": mac}}),
        None => json!({}),
    }
}

/// A static route of a `Join` reply (RouteType 0: via a next hop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RouteType")]
    pub route_type: u8,
    #[serde(rename = "NextHop")]
    pub next_hop: String,
}

/// `Join`'s reply: the interface Docker moves in (it must exist in dockerd's
/// namespace), the default gateway and routes it sets before the process
/// starts, and no `docker_gwbridge`.
pub fn joined(
    src_name: &str,
    dst_prefix: &str,
    gateway: Option<std::net::Ipv4Addr>,
    routes: Vec<StaticRoute>,
) -> Value {
    let mut reply = json!({
        "InterfaceName": {"SrcName": src_name, "DstPrefix": dst_prefix},
        "DisableGatewayService": true,
    });
    if let Some(gateway) = gateway {
        reply["Gateway"] = json!(gateway.to_string());
    }
    if !routes.is_empty() {
        reply["StaticRoutes"] = json!(routes);
    }
    reply
}

pub fn pool(pool_id: &str, pool: &str) -> Value {
    json!({"PoolID": pool_id, "Pool": pool, "Data": {}})
}

pub fn address(address: &str) -> Value {
    json!({"Address": address, "Data": {}})
}

pub fn empty() -> Value {
    json!({})
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
