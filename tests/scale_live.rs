//! Scale properties of a reconcile, counted rather than timed (the timings are
//! `cargo bench --bench attach`'s job): one host (ovsdb-server + ovs-vswitchd in
//! a namespace, userspace datapath) with many named-netns containers. The host's
//! links are dumped once per reconcile, not once per lookup; containers are
//! plumbed and can talk; a reconcile with nothing to do writes nothing, to OVSDB
//! or to the kernel. One test in this binary: the counters are process-wide.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;

const CONTAINERS: usize = 24;

#[test]
#[ignore = "needs root + OVS"]
fn a_reconcile_reads_the_hosts_links_once_and_a_no_op_writes_nothing() {
    let server = OvsdbServer::start(None, false);
    let host = Netns::new("osc");
    host.exec(
        "ip",
        &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
    );
    host.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "u0"]);
    host.exec("ip", &["link", "set", "u0", "up"]);
    let _vswitchd = Vswitchd::start_in(&server, &host);
    let prefix = unique("sc");
    let mut text = String::from(
        "[mesh]\nname = \"scale\"\n[hosts.A]\nunderlay_address = \"192.0.2.1/24\"\ndatapath = \"netdev\"\nunderlay_nic = \"u0\"\n[networks.blue]\nkind = \"vlan\"\nvlan = 100\nsubnet = \"192.168.0.0/24\"\n[networks.red]\nkind = \"vlan\"\nvlan = 200\nsubnet = \"192.168.1.0/24\"\n",
    );
    let mut containers = Vec::new();
    for i in 0..CONTAINERS {
        let (network, subnet) = if i % 2 == 0 { ("blue", 0) } else { ("red", 1) };
        let _ = write!(
            text,
            "[containers.c{i}]\nhost = \"A\"\nnetns = \"{prefix}-c{i}\"\nnetwork = \"{network}\"\naddress = \"192.168.{subnet}.{}\"\n",
            i + 1
        );
        containers.push(Netns::named(&format!("{prefix}-c{i}")));
    }
    let topology = topology(&text);
    let wait = Some(Duration::from_secs(60));

    let dumps = ovsmesh::netlink::link_dumps();
    let (outcome, writes) = engine_run(&server, &host, &topology, "A", false, wait);
    assert!(!outcome.failed(), "{:?}", outcome.netlink.failures);
    assert_eq!(writes, 1, "one OVSDB transaction");
    let cold = ovsmesh::netlink::link_dumps() - dumps;
    // The host's links once, then each container's once, per look at the host
    // (observe, and verify after applying); lookups are single requests.
    // Before: a dump per lookup, five per container.
    assert!(
        cold <= 2 * (CONTAINERS as u64 + 1) + 1,
        "{cold} link dumps to plumb {CONTAINERS} containers"
    );
    // Plumbed side by side, and for real: first and last of each VLAN talk.
    for (from, to) in [(0, CONTAINERS - 2), (1, CONTAINERS - 1)] {
        let address = format!("192.168.{}.{}", from % 2, to + 1);
        let ns = ovsmesh::netns::open(&containers[from].name).unwrap();
        assert!(
            eventually(Duration::from_secs(10), || {
                ovsmesh::netns::output(&ns, "ping", &["-n", "-c", "1", "-W", "1", &address])
                    .is_ok_and(|o| o.status.success())
            }),
            "c{from} cannot reach c{to}"
        );
    }

    let kernel = ovsmesh::netlink::writes();
    let dumps = ovsmesh::netlink::link_dumps();
    let (outcome, writes) = engine_run(&server, &host, &topology, "A", false, wait);
    assert!(
        outcome.plan.is_empty(),
        "not a no-op: {:?}",
        outcome.plan.changes
    );
    assert_eq!(writes, 0, "OVSDB write transactions of a no-op");
    assert_eq!(
        ovsmesh::netlink::writes() - kernel,
        0,
        "kernel writes of a no-op"
    );
    assert!(ovsmesh::netlink::link_dumps() - dumps <= CONTAINERS as u64 + 1);
}
