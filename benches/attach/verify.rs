//! Before a timing counts: both tools must end with the same thing.
//!
//! - OVS: exactly one port per container on `ovs0`, with the container's VLAN
//!   tag (ovs-docker marks its interfaces `external_ids:container_id`, ovsmesh
//!   `ovsmesh-container`; both are read back and compared with the spec);
//! - inside every container: `eth1` up, with the spec's address, MAC and MTU;
//! - pings: a sample of pairs per VLAN, both directions.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::eventually;
use crate::fleet::{Fleet, Host, Spec, MTU, VLANS};

/// Which marks identify a container's port.
#[derive(Debug, Clone, Copy)]
pub enum Tool {
    OvsDocker,
    Ovsmesh,
}

fn rows(host: &Host, table: &str, columns: &str) -> Vec<BTreeMap<String, Value>> {
    let out = host.vsctl(&[
        "--format=json",
        &format!("--columns={columns}"),
        "list",
        table,
    ]);
    let json: Value = serde_json::from_str(&out).expect("ovs-vsctl json");
    let headings: Vec<String> = json["headings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            headings
                .iter()
                .cloned()
                .zip(row.as_array().unwrap().iter().cloned())
                .collect()
        })
        .collect()
}

/// `["map", [[k, v], ...]]` → the value of `key`.
fn map_get(datum: &Value, key: &str) -> Option<String> {
    datum[1]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == key)
        .and_then(|pair| pair[1].as_str().map(str::to_string))
}

/// Container (by docker name) → VLAN tag of its port, as OVS has it.
pub fn ovs_tags(host: &Host, spec: &Spec, tool: Tool) -> BTreeMap<String, i64> {
    let key = match tool {
        Tool::OvsDocker => "container_id",
        Tool::Ovsmesh => ovsmesh::marks::CONTAINER,
    };
    // ovsmesh names containers by their topology key `cI`; map back to docker names.
    let by_key: BTreeMap<String, &str> = spec
        .members
        .iter()
        .map(|m| (format!("c{}", m.index), m.docker.as_str()))
        .collect();
    let owner: BTreeMap<String, String> = rows(host, "Interface", "name,external_ids")
        .into_iter()
        .filter_map(|row| {
            let container = map_get(&row["external_ids"], key)?;
            let docker = match tool {
                Tool::OvsDocker => container,
                Tool::Ovsmesh => by_key.get(&container)?.to_string(),
            };
            Some((row["name"].as_str()?.to_string(), docker))
        })
        .collect();
    let ports = rows(host, "Port", "name,tag");
    let mut tags = BTreeMap::new();
    for port in ports {
        let name = port["name"].as_str().unwrap_or_default();
        if let Some(container) = owner.get(name) {
            let tag = port["tag"].as_i64().unwrap_or(-1);
            assert!(
                tags.insert(container.clone(), tag).is_none(),
                "{container} has two ports"
            );
        }
    }
    tags
}

/// Everything above; panics with what differs.
pub fn verify(host: &Host, fleet: &Fleet, spec: &Spec, tool: Tool) {
    let expected: BTreeMap<String, i64> = spec
        .members
        .iter()
        .map(|m| (m.docker.clone(), i64::from(m.vlan)))
        .collect();
    let tags = ovs_tags(host, spec, tool);
    assert_eq!(tags, expected, "{tool:?}: OVS ports and tags");
    for member in &spec.members {
        let ns = fleet.netns(member.index);
        let (link, addresses) = ovsmesh::netlink::in_netns(&ns, |netlink| async move {
            let link = netlink.link_by_name("eth1").await?;
            Ok((link, netlink.addresses().await?))
        })
        .expect("read the container");
        let link = link.unwrap_or_else(|| panic!("{tool:?}: {} has no eth1", member.docker));
        assert!(link.up, "{tool:?}: {} eth1 down", member.docker);
        assert_eq!(link.mtu, MTU, "{tool:?}: {} MTU", member.docker);
        assert_eq!(
            link.mac,
            Some(member.mac),
            "{tool:?}: {} MAC",
            member.docker
        );
        assert!(
            addresses
                .iter()
                .any(|(i, a)| *i == link.index && *a == ipnet::IpNet::V4(member.address)),
            "{tool:?}: {} lacks {}",
            member.docker,
            member.address
        );
    }
    for (from, to) in sample_pairs(spec) {
        let ns = fleet.netns(from);
        let target = spec.members[to].address.addr().to_string();
        let pings = eventually(Duration::from_secs(15), || {
            ovsmesh::netns::output(&ns, "ping", &["-n", "-c", "1", "-W", "1", &target])
                .is_ok_and(|o| o.status.success())
        });
        assert!(
            pings,
            "{tool:?}: {} cannot ping {} ({target})",
            spec.members[from].docker, spec.members[to].docker
        );
    }
}

/// Up to 4 pairs per VLAN, both directions: first↔last, second↔middle.
pub fn sample_pairs(spec: &Spec) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for v in 0..VLANS {
        let members: Vec<usize> = spec
            .members
            .iter()
            .filter(|m| m.index % VLANS == v)
            .map(|m| m.index)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let (a, b) = (members[0], members[members.len() - 1]);
        pairs.extend([(a, b), (b, a)]);
        if members.len() >= 4 {
            let (c, d) = (members[1], members[members.len() / 2]);
            pairs.extend([(c, d), (d, c)]);
        }
    }
    pairs
}
