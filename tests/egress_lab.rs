//! Egress in a lab (real OVS per host, userspace datapath): the routed network
//! has `egress = "nat"`. An "upstream" namespace sits beyond host1 (a link of
//! host1's leading outside, 203.0.113.0/24) with no route to the container
//! subnets. A container on host1 reaches it and the upstream sees host1's
//! address; a container on host2 reaching the host1 container still shows its
//! own address (the mesh's subnets are never translated). `down` takes the NAT
//! away: the upstream is out of reach again.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use ovsmesh::lab::{self, Lab};

const TOPOLOGY: &str = r#"
[mesh]
name = "egress"
encap = "gre"
underlay_mtu = 1500

[hosts.host1]
underlay_address = "192.0.2.1/24"

[hosts.host2]
underlay_address = "192.0.2.2/24"

[networks.pods]
kind = "routed"
subnets = { host1 = "198.51.100.0/26", host2 = "198.51.100.64/26" }
EGRESS

[containers.c1]
host = "host1"
netns = "c1"
network = "pods"
address = "198.51.100.10"

[containers.c2]
host = "host2"
netns = "c2"
network = "pods"
address = "198.51.100.70"
"#;

const UPSTREAM: &str = "203.0.113.1";
const HOST1_OUTSIDE: &str = "203.0.113.254";

struct Guard {
    lab: Lab,
    upstream: Netns,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = runtime().block_on(lab::down(&self.lab));
    }
}

/// The peer address a TCP connection from `client` to `server:port` arrives with,
/// or `None` when it does not connect.
fn seen_from(server: &Netns, address: &str, client: &Netns) -> Option<SocketAddr> {
    let listener = in_netns(server, || {
        TcpListener::bind(format!("{address}:0")).unwrap()
    });
    let to = listener.local_addr().unwrap();
    let connected = in_netns(client, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).is_ok()
    });
    if !connected {
        return None;
    }
    listener.set_nonblocking(false).unwrap();
    let (_, peer) = listener.accept().unwrap();
    Some(peer)
}

fn up(egress: bool) -> (Guard, Netns, Netns, Netns) {
    let text = TOPOLOGY.replace("EGRESS", if egress { "egress = \"nat\"" } else { "" });
    let topology = topology(&text);
    let guard = Guard {
        lab: Lab::new(&unique("g")),
        upstream: Netns::new("gup"),
    };
    let report = runtime()
        .block_on(lab::up(&guard.lab, &topology, false))
        .unwrap_or_else(|e| panic!("{e}"));
    for (host, outcome) in &report.outcomes {
        assert!(
            !outcome.failed(),
            "{host}: {:?} {:?}",
            outcome.netlink.failures,
            outcome.plan.conflicts
        );
    }
    // The upstream: a link of host1's leading outside; only its own subnet is routed there.
    let upstream = &guard.upstream;
    // The lab's namespaces are the lab's to delete.
    let host1 = Netns::existing(&guard.lab.host_ns("host1"));
    host1.exec(
        "ip",
        &[
            "link",
            "add",
            "up0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &upstream.name,
        ],
    );
    host1.exec(
        "ip",
        &["addr", "add", &format!("{HOST1_OUTSIDE}/24"), "dev", "up0"],
    );
    host1.exec("ip", &["link", "set", "up0", "up"]);
    upstream.exec(
        "ip",
        &["addr", "add", &format!("{UPSTREAM}/24"), "dev", "eth0"],
    );
    upstream.exec("ip", &["link", "set", "eth0", "up"]);
    upstream.exec("ip", &["link", "set", "lo", "up"]);
    let c1 = Netns::existing(&format!("{}-c1", guard.lab.prefix));
    let c2 = Netns::existing(&format!("{}-c2", guard.lab.prefix));
    (guard, host1, c1, c2)
}

#[test]
#[ignore = "needs root + OVS"]
fn a_container_reaches_the_outside_as_its_host_and_the_mesh_keeps_source_addresses() {
    let (guard, host1, c1, c2) = up(true);
    let upstream = &guard.upstream;
    let peer = seen_from(upstream, UPSTREAM, &c1).expect("c1 reaches the upstream");
    assert_eq!(
        peer.ip().to_string(),
        HOST1_OUTSIDE,
        "masqueraded to host1's outgoing address"
    );
    let peer = seen_from(&c1, "198.51.100.10", &c2).expect("c2 reaches c1 across the mesh");
    assert_eq!(
        peer.ip().to_string(),
        "198.51.100.70",
        "never translated inside the mesh"
    );
    let nat = host1.exec("iptables", &["-t", "nat", "-S", "OVSMESH-POSTROUTING"]);
    assert!(nat.contains("-j MASQUERADE --random-fully"), "{nat}");

    // down takes the masquerade away with the rest.
    let twin = guard
        .lab
        .twin(&topology(&TOPOLOGY.replace("EGRESS", "egress = \"nat\"")));
    let outcome = lab::apply_host(&guard.lab, &twin, "host1", None, true).unwrap();
    assert!(!outcome.failed());
    let nat = host1.exec("iptables-save", &["-t", "nat"]);
    assert!(!nat.contains("ovsmesh"), "{nat}");
}

#[test]
#[ignore = "needs root + OVS"]
fn without_egress_the_outside_is_out_of_reach() {
    let (guard, _host1, c1, _c2) = up(false);
    let upstream = &guard.upstream;
    assert_eq!(
        seen_from(upstream, UPSTREAM, &c1),
        None,
        "no route back to 198.51.100.10"
    );
}
