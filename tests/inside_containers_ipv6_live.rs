//! Inside a container, ovsmesh's IPv6 follows the same ownership rules as its
//! IPv4 (see inside_containers_live.rs): on the interface it made, its IPv6
//! address (the topology's, or one it marked) and its IPv6 routes (protocol 79
//! and its metrics; the default route metric 1, IPv6 having no 0) are its own;
//! someone else's IPv6 address or route there stays. The address is usable at
//! once (no duplicate address detection) and router advertisements are off.
//! ovsdb-server only: everything checked here is netlink, inside the container.

mod common;
mod one_host;

use one_host::OneHost;

const TOPOLOGY: &str = r#"
[mesh]
name = "{mesh}"
[hosts.A]
underlay_address = "192.0.2.1/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
gateway = "192.168.0.254"
subnet6 = "fd00:100::/64"
gateway6 = "fd00:100::fe"
[containers.c1]
host = "A"
netns = "{c1}"
network = "blue"
address = "192.168.0.1"
address6 = "ADDRESS6"
routes = [{ to = "2001:db8:77::/48", via = "fd00:100::fe" }]
"#;

fn write(host: &OneHost, address6: &str) {
    host.write(&TOPOLOGY.replace("ADDRESS6", address6));
}

fn apply(host: &OneHost) {
    let (code, text) = host.cli(&["apply", "--no-wait"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
#[ignore = "needs root + OVS"]
fn only_what_ovsmesh_marked_of_ipv6_inside_a_container_is_changed_or_removed() {
    let host = OneHost::new();
    write(&host, "fd00:100::1");
    apply(&host);
    let inside = |args: &[&str]| host.c1.exec("ip", args);
    let addresses = inside(&["-o", "-6", "addr", "show", "dev", "eth1"]);
    // Added without DAD: usable at once (the kernel's link-local address
    // next to it may still be tentative).
    assert!(
        addresses.lines().any(|l| l.contains("fd00:100::1/64")
            && l.contains("nodad")
            && !l.contains("tentative")),
        "{addresses}"
    );
    let accept_ra = host
        .c1
        .exec("cat", &["/proc/sys/net/ipv6/conf/eth1/accept_ra"]);
    assert_eq!(accept_ra.trim(), "0");
    let routes = inside(&["-6", "route"]);
    assert!(
        routes.contains("default via fd00:100::fe dev eth1 proto 79 metric 1 "),
        "{routes}"
    );
    assert!(
        routes.contains("2001:db8:77::/48 via fd00:100::fe dev eth1 proto 79"),
        "{routes}"
    );

    // Someone else's IPv6 address and route on ovsmesh's interface: no drift.
    inside(&[
        "-6",
        "addr",
        "add",
        "fd00:100::99/128",
        "dev",
        "eth1",
        "nodad",
    ]);
    inside(&[
        "-6",
        "route",
        "add",
        "2001:db8:99::/48",
        "via",
        "fd00:100::9",
        "dev",
        "eth1",
    ]);
    let (code, text) = host.cli(&["plan"]);
    assert_eq!(
        code,
        Some(0),
        "someone else's objects are no drift:\n{text}"
    );

    // The topology moves the container's IPv6 address: the old one was
    // ovsmesh's and goes; someone else's stay.
    write(&host, "fd00:100::5");
    apply(&host);
    let addresses = inside(&["-o", "-6", "addr", "show", "dev", "eth1"]);
    assert!(addresses.contains("fd00:100::5/64"), "{addresses}");
    assert!(addresses.contains("fd00:100::99/128"), "{addresses}");
    assert!(!addresses.contains("fd00:100::1/64"), "{addresses}");
    assert!(
        addresses.contains("fe80::"),
        "the kernel's link-local stays"
    );
    let routes = inside(&["-6", "route"]);
    assert!(
        routes.contains("2001:db8:99::/48 via fd00:100::9 dev eth1"),
        "{routes}"
    );
    let (code, text) = host.cli(&["plan"]);
    assert_eq!(code, Some(0), "{text}");

    // Someone else's address with the topology's IPv6 address and another
    // prefix (IPv6 keys an address without its prefix: it takes the place of
    // ovsmesh's): a conflict, left alone by plan and apply.
    inside(&["-6", "addr", "del", "fd00:100::5/64", "dev", "eth1"]);
    inside(&[
        "-6",
        "addr",
        "add",
        "fd00:100::5/48",
        "dev",
        "eth1",
        "nodad",
    ]);
    for args in [&["plan"][..], &["apply", "--no-wait"]] {
        let command = args[0];
        let (code, text) = host.cli(args);
        assert_eq!(code, Some(1), "{command}: {text}");
        assert!(
            text.contains("address fd00:100::5/48 (not ovsmesh's) has the topology's address fd00:100::5/64 with another prefix"),
            "{command}: {text}"
        );
    }
    let addresses = inside(&["-o", "-6", "addr", "show", "dev", "eth1"]);
    assert!(addresses.contains("fd00:100::5/48"), "{addresses}");
}
