//! The host firewall for real, inside network namespaces: a router namespace whose
//! routing bridge is the topology's overlay bridge, FORWARD policy DROP as Docker
//! leaves it. Packets routed in and out of the bridge (the hairpin of tunnel mode)
//! pass only with ovsmesh's accept rules; `remove` (down) puts the firewall back
//! exactly as it was; Docker's DOCKER-USER chain is used when it exists, other
//! meshes' and the admin's rules stay, and `manage_firewall = false` removes them.

mod common;

use std::path::Path;

use common::*;
use ovsmesh::desired::desired;
use ovsmesh::host::firewall;
use ovsmesh::topology::Topology;

const TOPOLOGY: &str = r#"
[mesh]
name = "{mesh}"
overlay_bridge = "{bridge}"
{manage}

[hosts.host1]
underlay_address = "203.0.113.1/24"

[hosts.host2]
underlay_address = "203.0.113.2/24"

[networks.pods]
kind = "routed"
subnets = { host1 = "198.51.100.0/26", host2 = "198.51.100.64/26" }
"#;

fn topology(mesh: &str, bridge: &str, manage: &str) -> Topology {
    let text = TOPOLOGY
        .replace("{mesh}", mesh)
        .replace("{bridge}", bridge)
        .replace("{manage}", manage);
    ovsmesh::topology::parse(Path::new("fw.toml"), &text).unwrap()
}

/// Router R with bridge `bridge` holding both subnets' gateways (198.51.100.1/26
/// and .65/26), client A (.10) and client B (.70) on it: A → B is routed by R in
/// and out of the bridge.
struct Lab {
    router: Netns,
    a: Netns,
    _b: Netns,
    bridge: String,
}

impl Lab {
    fn new() -> Self {
        let router = Netns::new("fwr");
        let a = Netns::new("fwa");
        let b = Netns::new("fwb");
        let bridge = unique("ob");
        router.exec("ip", &["link", "add", &bridge, "type", "bridge"]);
        for (client, address, gateway) in [
            (&a, "198.51.100.10/26", "198.51.100.1"),
            (&b, "198.51.100.70/26", "198.51.100.65"),
        ] {
            let port = unique("fp");
            router.exec(
                "ip",
                &[
                    "link",
                    "add",
                    &port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    &client.name,
                ],
            );
            router.exec("ip", &["link", "set", &port, "master", &bridge, "up"]);
            client.exec("ip", &["addr", "add", address, "dev", "eth0"]);
            client.exec("ip", &["link", "set", "eth0", "up"]);
            client.exec("ip", &["route", "add", "default", "via", gateway]);
        }
        for address in ["198.51.100.1/26", "198.51.100.65/26"] {
            router.exec("ip", &["addr", "add", address, "dev", &bridge]);
        }
        router.exec("ip", &["link", "set", &bridge, "up"]);
        router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        router.exec("iptables", &["-P", "FORWARD", "DROP"]);
        Self {
            router,
            a,
            _b: b,
            bridge,
        }
    }

    fn a_reaches_b(&self) -> bool {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.a.name, "ping", "-c", "1", "-W", "1"])
            .arg("198.51.100.70")
            .output()
            .unwrap()
            .status
            .success()
    }

    fn rules(&self) -> String {
        self.router.exec("iptables", &["-S"])
    }

    fn reconcile(&self, topology: &Topology) -> Vec<String> {
        let want = desired(topology, "host1").unwrap();
        in_netns(&self.router, || firewall::reconcile(topology, &want)).unwrap()
    }

    fn check(&self, topology: &Topology) -> firewall::Check {
        let want = desired(topology, "host1").unwrap();
        in_netns(&self.router, || firewall::check(topology, &want))
    }
}

#[test]
fn routed_hairpin_passes_a_drop_policy_only_with_the_mesh_rules() {
    let lab = Lab::new();
    let topo = topology("fw", &lab.bridge, "");
    let before = lab.rules();
    assert!(!lab.a_reaches_b(), "the DROP policy stops the routed path");
    let missing = lab.check(&topo);
    assert!(!missing.converged());
    assert_eq!(missing.missing, [format!("-i {0} -o {0}", lab.bridge)]);

    let changes = lab.reconcile(&topo);
    assert_eq!(changes.len(), 3, "chain, rule, jump: {changes:?}");
    let rules = lab.rules();
    assert!(rules.contains("-A FORWARD -j OVSMESH-FORWARD"), "{rules}");
    assert!(
        rules.contains(&format!(
            "-A OVSMESH-FORWARD -i {0} -o {0} -m comment --comment \"ovsmesh:fw\" -j ACCEPT",
            lab.bridge
        )) || rules.contains(&format!(
            "-A OVSMESH-FORWARD -i {0} -o {0} -m comment --comment ovsmesh:fw -j ACCEPT",
            lab.bridge
        )),
        "{rules}"
    );
    assert!(
        lab.a_reaches_b(),
        "the accept rule lets the hairpin through"
    );
    assert!(lab.reconcile(&topo).is_empty(), "idempotent");
    let check = lab.check(&topo);
    assert!(check.converged(), "{check:?}");
    assert_eq!(check.forward_policy.as_deref(), Some("DROP"));
    assert!(check.summary().contains("1 of 1 accept rule(s)"));

    let removed = in_netns(&lab.router, || firewall::remove("fw")).unwrap();
    assert_eq!(removed.len(), 2, "rule, chain: {removed:?}");
    assert_eq!(lab.rules(), before, "down puts the firewall back as it was");
    assert!(!lab.a_reaches_b());
}

#[test]
fn docker_user_chain_is_used_and_foreign_rules_stay() {
    let lab = Lab::new();
    // What Docker leaves: its chain, a jump to it, a final RETURN; and an admin's rule.
    for args in [
        &["-N", "DOCKER-USER"][..],
        &["-A", "DOCKER-USER", "-i", "lo", "-j", "DROP"],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-I", "FORWARD", "1", "-j", "DOCKER-USER"],
    ] {
        lab.router.exec("iptables", args);
    }
    let other = topology("other", &lab.bridge, "");
    let mine = topology("mine", &lab.bridge, "");
    let before = lab.rules();
    lab.reconcile(&other);
    lab.reconcile(&mine);
    assert!(lab.a_reaches_b());
    let listing = lab.router.exec("iptables", &["-S", "DOCKER-USER"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 5, "{listing}");
    assert!(
        lines[1].contains("-i lo"),
        "the admin's rule first: {listing}"
    );
    assert!(lines[4].ends_with("-j RETURN"), "RETURN last: {listing}");
    assert!(!lab.rules().contains("OVSMESH-FORWARD"), "no own chain");

    // Opting out removes this mesh's rule only.
    let opted_out = topology("mine", &lab.bridge, "manage_firewall = false");
    let changes = lab.reconcile(&opted_out);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let listing = lab.router.exec("iptables", &["-S", "DOCKER-USER"]);
    assert!(!listing.contains("ovsmesh:mine") && listing.contains("ovsmesh:other"));
    let check = lab.check(&opted_out);
    assert!(check.converged() && !check.managed);
    assert!(check.warnings(true)[0].contains("manage_firewall = false"));

    in_netns(&lab.router, || firewall::remove("other")).unwrap();
    assert_eq!(lab.rules(), before);
    assert!(!lab.a_reaches_b());
}
