//! Inside a container, ovsmesh changes only what is its own (issue 19): on the
//! interface it made, its address (the topology's, or one it marked) and its
//! routes (protocol 79 and its metrics). Someone else's address or route there
//! stays, and is a conflict only where it clashes with the topology. The
//! default route the topology names wins over another one already there
//! (Docker's on eth0), and `status` says when another one wins anyway.
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
[containers.c1]
host = "A"
netns = "{c1}"
network = "blue"
address = "ADDRESS"
routes = [{ to = "198.51.100.0/24", via = "192.168.0.254" }]
"#;

struct Setup(OneHost);

impl Setup {
    fn new() -> Self {
        let setup = Setup(OneHost::new());
        setup.write("192.168.0.1");
        setup
    }

    /// The topology, with c1 at `address`.
    fn write(&self, address: &str) {
        self.0.write(&TOPOLOGY.replace("ADDRESS", address));
    }

    fn cli(&self, command: &str) -> (Option<i32>, String) {
        match command {
            "apply" => self.0.cli(&["apply", "--no-wait"]),
            _ => self.0.cli(&[command]),
        }
    }

    fn apply(&self) -> String {
        let (code, text) = self.cli("apply");
        assert_eq!(code, Some(0), "{text}");
        text
    }

    fn inside(&self, args: &[&str]) -> String {
        self.0.c1.exec("ip", args)
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn only_what_ovsmesh_marked_inside_a_container_is_changed_or_removed() {
    let setup = Setup::new();
    setup.apply();
    // A keepalived address and an application's route on ovsmesh's interface.
    setup.inside(&["addr", "add", "192.168.0.100/32", "dev", "eth1"]);
    setup.inside(&[
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "192.168.0.9",
        "dev",
        "eth1",
    ]);
    let (code, text) = setup.cli("plan");
    assert_eq!(
        code,
        Some(0),
        "someone else's objects are no drift:\n{text}"
    );

    // The topology moves the container to another address: the old one was
    // ovsmesh's, it goes; the others stay.
    setup.write("192.168.0.5");
    setup.apply();
    let addresses = setup.inside(&["-o", "-4", "addr", "show", "dev", "eth1"]);
    assert!(addresses.contains("192.168.0.5/24"), "{addresses}");
    assert!(addresses.contains("192.168.0.100/32"), "{addresses}");
    assert!(!addresses.contains("192.168.0.1/24"), "{addresses}");
    let routes = setup.inside(&["route"]);
    assert!(
        routes.contains("203.0.113.0/24 via 192.168.0.9 dev eth1"),
        "{routes}"
    );
    assert!(
        routes.contains("198.51.100.0/24 via 192.168.0.254 dev eth1 proto 79"),
        "{routes}"
    );
    let (code, text) = setup.cli("plan");
    assert_eq!(code, Some(0), "{text}");

    // Someone else's address with the topology's address and another prefix,
    // and a route to a destination the topology routes there: conflicts.
    setup.inside(&["addr", "add", "192.168.0.5/16", "dev", "eth1"]);
    setup.inside(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.168.0.9",
        "dev",
        "eth1",
        "metric",
        "5",
    ]);
    for command in ["plan", "apply"] {
        let (code, text) = setup.cli(command);
        assert_eq!(code, Some(1), "{command}: {text}");
        for clash in [
            "conflict: container-interface c1/eth1: inside container c1, on its interface eth1: address 192.168.0.5/16 (not ovsmesh's) has the topology's address 192.168.0.5/24 with another prefix",
            "route 198.51.100.0/24 via 192.168.0.9 dev eth1 proto 3 metric 5 (not ovsmesh's) goes to a destination the topology routes through it",
        ] {
            assert!(text.contains(clash), "{command}: missing {clash:?} in\n{text}");
        }
    }
    let addresses = setup.inside(&["-o", "-4", "addr", "show", "dev", "eth1"]);
    assert!(addresses.contains("192.168.0.5/16"), "{addresses}");
    assert!(setup
        .inside(&["route"])
        .contains("198.51.100.0/24 via 192.168.0.9 dev eth1 metric 5"));
}

#[test]
#[ignore = "needs root + OVS"]
fn the_topologys_gateway_wins_over_another_default_route_and_status_says_when_it_does_not() {
    let setup = Setup::new();
    // Docker's eth0 with its default route (metric 0), there before ovsmesh.
    setup.inside(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    setup.inside(&["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    setup.inside(&["link", "set", "eth0p", "up"]);
    setup.inside(&["link", "set", "eth0", "up"]);
    setup.inside(&["route", "add", "default", "via", "10.99.0.1", "dev", "eth0"]);
    setup.apply();
    let chosen = setup.inside(&["route", "get", "203.0.113.77"]);
    assert!(
        chosen.contains("via 192.168.0.254 dev eth1"),
        "the topology's gateway is not used: {chosen}"
    );
    // Docker's route is still there, and ovsmesh's is recognisably its own.
    let defaults = setup.inside(&["route", "show", "default"]);
    assert!(
        defaults.contains("default via 10.99.0.1 dev eth0"),
        "{defaults}"
    );
    assert!(
        defaults.contains("default via 192.168.0.254 dev eth1 proto 79"),
        "{defaults}"
    );
    let (code, text) = setup.cli("status");
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("loses to"), "{text}");

    // Something puts its default route first: status names it.
    setup.inside(&["route", "del", "default", "via", "10.99.0.1", "dev", "eth0"]);
    setup.inside(&[
        "route",
        "prepend",
        "default",
        "via",
        "10.99.0.1",
        "dev",
        "eth0",
    ]);
    let (_, text) = setup.cli("status");
    assert!(
        text.contains("warning: container c1, interface eth1: its default route via 192.168.0.254 loses to default via 10.99.0.1 dev eth0 proto 3 metric 0, which is not ovsmesh's"),
        "{text}"
    );
}
