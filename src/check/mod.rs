//! `ovsmesh check`: prove reachability and isolation with packets.
//!
//! From every container interface ovsmesh pings every member of the same
//! network (expected reachable) and every member of other VLAN networks whose
//! address is on-link for it (expected isolated — also when subnets overlap).
//! With overlapping subnets a bare ping success is ambiguous, so a reply only
//! counts as coming from the target when the source's neighbour entry for the
//! address carries the target's MAC. Reachable pairs also get a don't-fragment
//! ping at the path MTU; in a lab, one short TCP transfer per network catches
//! offload and MTU faults ping misses. This module computes what to expect (pure,
//! unit-tested); `probe` sends the packets.
//!
//! A dual-stack interface is two endpoints, one per address: IPv4 is probed
//! against IPv4 and IPv6 against IPv6, the IPv6 one labelled with `/6` after
//! the interface (`blue1/eth1/6`), so each family's reachability and isolation
//! is proven on its own (a reply's MAC is checked against the neighbour table
//! of its family: ARP or NDP).

pub mod probe;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use serde::Serialize;

use crate::topology::{Mac, Network, Runtime, Topology};

/// One container interface.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub container: String,
    pub ifname: String,
    pub host: String,
    pub network: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub mac: Mac,
    pub mtu: u32,
    pub runtime: Runtime,
}

impl Endpoint {
    pub fn label(&self) -> String {
        match self.address {
            IpAddr::V4(_) => format!("{}/{}", self.container, self.ifname),
            IpAddr::V6(_) => format!("{}/{}/6", self.container, self.ifname),
        }
    }

    fn on_link(&self, address: IpAddr) -> bool {
        IpNet::new(self.address, self.prefix_len).is_ok_and(|net| net.contains(&address))
    }

    /// The ICMP echo payload that fills the interface's MTU (IPv4 20 + ICMP 8,
    /// IPv6 40 + ICMPv6 8).
    pub fn payload_for(&self, mtu: u32) -> u32 {
        let headers = if self.address.is_ipv4() { 28 } else { 48 };
        mtu.saturating_sub(headers)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Reachable,
    Isolated,
}

/// One ping to make.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub from: usize,
    pub to: usize,
    pub expect: Expect,
    /// Whether the reply's sender can be checked by its MAC (target on-link).
    pub check_mac: bool,
}

/// Every endpoint and every probe the topology implies. `from_hosts` limits the
/// sources (a real host checks its own containers against everyone).
pub fn expectations(topology: &Topology, from_hosts: Option<&str>) -> (Vec<Endpoint>, Vec<Probe>) {
    let mut endpoints = Vec::new();
    for container in topology.containers.values() {
        for iface in &container.interfaces {
            for address in iface.addresses() {
                endpoints.push(Endpoint {
                    container: container.name.clone(),
                    ifname: iface.ifname.clone(),
                    host: container.host.clone(),
                    network: iface.network.clone(),
                    address: address.addr(),
                    prefix_len: address.prefix_len(),
                    mac: iface.mac,
                    mtu: iface.mtu,
                    runtime: container.runtime.clone(),
                });
            }
        }
    }
    let is_vlan = |name: &str| matches!(topology.networks.get(name), Some(Network::Vlan(_)));
    let mut probes = Vec::new();
    for (i, from) in endpoints.iter().enumerate() {
        if from_hosts.is_some_and(|h| h != from.host) {
            continue;
        }
        for (j, to) in endpoints.iter().enumerate() {
            // Pinging one's own address proves nothing (overlapping subnets make it possible).
            if from.container == to.container
                || from.address == to.address
                || from.address.is_ipv4() != to.address.is_ipv4()
            {
                continue;
            }
            if from.network == to.network {
                probes.push(Probe {
                    from: i,
                    to: j,
                    expect: Expect::Reachable,
                    check_mac: from.on_link(to.address),
                });
            } else if is_vlan(&from.network) && is_vlan(&to.network) && from.on_link(to.address) {
                probes.push(Probe {
                    from: i,
                    to: j,
                    expect: Expect::Isolated,
                    check_mac: true,
                });
            }
        }
    }
    (endpoints, probes)
}

/// What a probe saw.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Seen {
    /// A reply came back from the target itself (by MAC, where checkable).
    pub reached: bool,
    /// A reply came back from someone else with the same address.
    pub other_replied: bool,
    /// Don't-fragment ping at the path MTU, for reachable pairs.
    pub mtu_ok: Option<bool>,
}

/// One row of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub from: String,
    pub to: String,
    pub address: IpAddr,
    pub expect: Expect,
    pub seen: Seen,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A TCP transfer through one network.
#[derive(Debug, Clone, Serialize)]
pub struct TcpResult {
    pub network: String,
    pub from: String,
    pub to: String,
    pub bytes: usize,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub probes: Vec<ProbeResult>,
    pub tcp: Vec<TcpResult>,
}

impl Report {
    pub fn mismatches(&self) -> usize {
        self.probes.iter().filter(|p| !p.ok).count() + self.tcp.iter().filter(|t| !t.ok).count()
    }
}

/// Judge what a probe saw against what was expected.
pub fn judge(expect: Expect, seen: &Seen) -> (bool, Option<String>) {
    match expect {
        Expect::Reachable if !seen.reached && seen.other_replied => (
            false,
            Some("another member with this address answered".into()),
        ),
        Expect::Reachable if !seen.reached => (false, Some("unreachable".into())),
        Expect::Reachable if seen.mtu_ok == Some(false) => (
            false,
            Some("a don't-fragment ping at the path MTU was lost".into()),
        ),
        Expect::Reachable => (true, None),
        Expect::Isolated if seen.reached => (
            false,
            Some("isolation broken: the other network's member answered".into()),
        ),
        Expect::Isolated => (true, None),
    }
}

/// The matrix as text: one row per source interface, one column per target.
pub fn render_text(report: &Report) -> String {
    let mut rows: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    let mut columns: Vec<&str> = Vec::new();
    for probe in &report.probes {
        let cell = match (probe.expect, probe.ok) {
            (Expect::Reachable, true) => "ok".to_string(),
            (Expect::Isolated, true) => "iso".to_string(),
            (Expect::Reachable, false) => "FAIL".to_string(),
            (Expect::Isolated, false) => "LEAK".to_string(),
        };
        rows.entry(&probe.from).or_default().insert(&probe.to, cell);
        if !columns.contains(&probe.to.as_str()) {
            columns.push(&probe.to);
        }
    }
    columns.sort();
    let width = columns
        .iter()
        .chain(rows.keys())
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:width$}", "from \\ to");
    for column in &columns {
        out.push_str(&format!(" {column:>width$}"));
    }
    out.push('\n');
    for (from, cells) in &rows {
        out.push_str(&format!("{from:width$}"));
        for column in &columns {
            let cell = cells.get(column).map(String::as_str).unwrap_or(".");
            out.push_str(&format!(" {cell:>width$}"));
        }
        out.push('\n');
    }
    out.push_str("ok = reachable as expected, iso = isolated as expected, . = not probed\n");
    for tcp in &report.tcp {
        out.push_str(&format!(
            "tcp {}: {} -> {}: {} ({})\n",
            tcp.network,
            tcp.from,
            tcp.to,
            if tcp.ok { "ok" } else { "FAIL" },
            tcp.detail
        ));
    }
    for probe in report.probes.iter().filter(|p| !p.ok) {
        out.push_str(&format!(
            "MISMATCH {} -> {} ({}): expected {:?}: {}\n",
            probe.from,
            probe.to,
            probe.address,
            probe.expect,
            probe.problem.as_deref().unwrap_or("")
        ));
    }
    let total = report.probes.len() + report.tcp.len();
    out.push_str(&format!(
        "check: {total} probes, {} mismatches\n",
        report.mismatches()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_topology_expects_vlan_members_reachable_and_other_vlans_isolated() {
        let topology = crate::topology::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topology/lab.toml"
        )))
        .unwrap();
        let (endpoints, probes) = expectations(&topology, None);
        let find = |label: &str| endpoints.iter().position(|e| e.label() == label).unwrap();
        let expect = |from: &str, to: &str| {
            probes
                .iter()
                .find(|p| p.from == find(from) && p.to == find(to))
                .map(|p| p.expect)
        };
        assert_eq!(expect("blue1/eth1", "blue2/eth1"), Some(Expect::Reachable));
        assert_eq!(expect("blue1/eth1", "red2/eth1"), Some(Expect::Isolated));
        assert_eq!(expect("pod1/eth1", "pod3/eth1"), Some(Expect::Reachable));
        assert_eq!(expect("edge/eth2", "pod2/eth1"), Some(Expect::Reachable));
        assert_eq!(
            expect("edge/eth1", "pod2/eth1"),
            None,
            "VLAN to routed is not probed"
        );
        assert_eq!(expect("pod1/eth1", "blue1/eth1"), None);
        let routed = probes
            .iter()
            .find(|p| p.from == find("pod1/eth1") && p.to == find("pod2/eth1"))
            .unwrap();
        assert!(
            !routed.check_mac,
            "across hosts the neighbour is the gateway"
        );
        // Only node2's containers as sources with --host node2.
        let (_, mine) = expectations(&topology, Some("node2"));
        assert!(mine.iter().all(|p| endpoints[p.from].host == "node2"));
    }

    #[test]
    fn judging_tells_a_leak_from_a_same_address_neighbour() {
        let seen = |reached, other_replied, mtu_ok| Seen {
            reached,
            other_replied,
            mtu_ok,
        };
        assert!(
            judge(Expect::Isolated, &seen(false, true, None)).0,
            "an own-VLAN twin answering is not a leak"
        );
        assert!(!judge(Expect::Isolated, &seen(true, false, None)).0);
        assert!(!judge(Expect::Reachable, &seen(true, false, Some(false))).0);
        assert!(judge(Expect::Reachable, &seen(true, false, Some(true))).0);
        assert!(!judge(Expect::Reachable, &seen(false, false, None)).0);
    }
}
