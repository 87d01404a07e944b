//! The host firewall for real, inside network namespaces (no OVS: the firewall
//! part of the pipeline alone — desired rules, one read, settle, plan, one
//! batch): a router namespace whose routing bridge is the topology's overlay
//! bridge, FORWARD policy DROP as Docker leaves it. Packets routed in and out of
//! the bridge (the hairpin of tunnel mode) pass only with ovsmesh's accept
//! rules; `down` puts the firewall back exactly as it was; Docker's DOCKER-USER
//! chain is used when it exists (before its RETURN, also after someone moved a
//! rule past it), other meshes' and the admin's rules stay, and
//! `manage_firewall = false` removes them. On a native nftables host the rules
//! go into ovsmesh's own table, and another table's drop is a conflict.

mod common;

use std::path::Path;

use common::*;
use ovsmesh::desired::{desired, settle};
use ovsmesh::host::firewall;
use ovsmesh::plan::{plan, Kind, Op, Plan};
use ovsmesh::state::HostState;
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
{egress}
"#;

fn topology(mesh: &str, bridge: &str, manage: &str) -> Topology {
    topology_with(mesh, bridge, manage, "")
}

fn topology_with(mesh: &str, bridge: &str, manage: &str, egress: &str) -> Topology {
    let text = TOPOLOGY
        .replace("{mesh}", mesh)
        .replace("{bridge}", bridge)
        .replace("{manage}", manage)
        .replace("{egress}", egress);
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
        Self {
            router,
            a,
            _b: b,
            bridge,
        }
    }

    /// The router's FORWARD policy DROP, as Docker leaves it.
    fn with_drop_policy() -> Self {
        let lab = Self::new();
        lab.router.exec("iptables", &["-P", "FORWARD", "DROP"]);
        lab
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

    /// The router's rules, user chains and policies other than ACCEPT, by table
    /// (counters and empty tables left out).
    fn rules(&self) -> String {
        let mut table = String::new();
        let mut out = String::new();
        for line in self.router.exec("iptables-save", &[]).lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = name.to_string();
            } else if line.starts_with("-A")
                || (line.starts_with(':') && !line.contains(" ACCEPT "))
            {
                let line = line.split(" [").next().unwrap_or(line);
                out.push_str(&format!("{table} {line}\n"));
            }
        }
        out
    }

    /// The firewall part of host1's plan, from one read; applied when `write`.
    fn reconcile_with(&self, topology: &Topology, down: bool, write: bool) -> Plan {
        let mesh = topology.mesh.name.clone();
        let full = desired(topology, "host1").unwrap();
        let want = HostState {
            host: "host1".into(),
            firewall: if down {
                Default::default()
            } else {
                full.firewall
            },
            ..HostState::default()
        };
        in_netns(&self.router, || {
            runtime().block_on(async {
                let snapshot = firewall::read().await;
                let (rules, occupied) = snapshot.observe(&mesh, &want);
                let observed = HostState {
                    host: "host1".into(),
                    firewall: rules,
                    firewall_host: Some(snapshot.host.clone()),
                    occupied,
                    ..HostState::default()
                };
                let plan = plan(&settle(&mesh, &want, &observed));
                if write {
                    let (written, failure) = firewall::apply(&snapshot, &mesh, &plan).await;
                    assert_eq!(failure, None);
                    assert_eq!(written.len(), plan.changes.len());
                }
                plan
            })
        })
    }

    fn reconcile(&self, topology: &Topology) -> Plan {
        self.reconcile_with(topology, false, true)
    }

    fn plan(&self, topology: &Topology) -> Plan {
        self.reconcile_with(topology, false, false)
    }

    fn down(&self, topology: &Topology) -> Plan {
        self.reconcile_with(topology, true, true)
    }
}

impl Lab {
    /// The plan is one replace of the hairpin rule, saying why.
    fn assert_hairpin_replaced(&self, topology: &Topology, says: &str) {
        let moved = self.plan(topology);
        let hairpin = format!("Replace accept -i {0} -o {0}", self.bridge);
        assert_eq!(ids(&moved), [hairpin]);
        let text = ovsmesh::plan::render_text(&moved);
        assert!(text.contains(says), "{text}");
    }
}

fn ids(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| format!("{:?} {}", c.op, c.id))
        .collect()
}

#[test]
#[ignore = "needs root"]
fn routed_hairpin_passes_a_drop_policy_only_with_the_mesh_rules() {
    let lab = Lab::with_drop_policy();
    let topo = topology("fw", &lab.bridge, "");
    let before = lab.rules();
    assert!(!lab.a_reaches_b(), "the DROP policy stops the routed path");
    let pending = lab.plan(&topo);
    let hairpin = format!("accept -i {0} -o {0}", lab.bridge);
    assert_eq!(
        ids(&pending),
        [
            format!("Create {hairpin}"),
            "Create jump FORWARD -> OVSMESH-FORWARD".to_string()
        ]
    );

    lab.reconcile(&topo);
    let rules = lab.rules();
    assert!(
        rules.contains("-A FORWARD -m comment --comment \"ovsmesh:fw\" -j OVSMESH-FORWARD"),
        "{rules}"
    );
    assert!(
        rules.contains(&format!(
            "-A OVSMESH-FORWARD -i {0} -o {0} -m comment --comment \"ovsmesh:fw\" -j ACCEPT",
            lab.bridge
        )),
        "{rules}"
    );
    assert!(
        lab.a_reaches_b(),
        "the accept rule lets the hairpin through"
    );
    assert!(
        lab.plan(&topo).is_empty(),
        "idempotent: {:?}",
        ids(&lab.plan(&topo))
    );

    let removed = lab.down(&topo);
    assert_eq!(
        removed.count(Op::Delete),
        2,
        "rule, jump: {:?}",
        ids(&removed)
    );
    assert_eq!(lab.rules(), before, "down puts the firewall back as it was");
    assert!(!lab.a_reaches_b());
}

/// What Docker leaves: its chain, a jump to it, a final RETURN; and an admin's rule.
fn docker_user(lab: &Lab) {
    for args in [
        &["-N", "DOCKER-USER"][..],
        &["-A", "DOCKER-USER", "-i", "lo", "-j", "DROP"],
        &["-A", "DOCKER-USER", "-j", "RETURN"],
        &["-I", "FORWARD", "1", "-j", "DOCKER-USER"],
    ] {
        lab.router.exec("iptables", args);
    }
}

#[test]
#[ignore = "needs root"]
fn docker_user_chain_is_used_and_foreign_rules_stay() {
    let lab = Lab::with_drop_policy();
    docker_user(&lab);
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
    assert_eq!(
        ids(&changes),
        [format!("Delete accept -i {0} -o {0}", lab.bridge)]
    );
    let listing = lab.router.exec("iptables", &["-S", "DOCKER-USER"]);
    assert!(!listing.contains("ovsmesh:mine") && listing.contains("ovsmesh:other"));
    assert!(lab.plan(&opted_out).is_empty());

    lab.down(&other);
    assert_eq!(lab.rules(), before);
    assert!(!lab.a_reaches_b());
}

#[test]
#[ignore = "needs root"]
fn a_rule_moved_after_dockers_return_is_put_back_before_it() {
    let lab = Lab::with_drop_policy();
    docker_user(&lab);
    let topo = topology("mv", &lab.bridge, "");
    lab.reconcile(&topo);
    assert!(lab.a_reaches_b());
    // Someone (a script, a Docker restart that re-adds its RETURN) leaves the rule
    // after the RETURN, where it is never evaluated.
    let spec = [
        "-i",
        &lab.bridge,
        "-o",
        &lab.bridge,
        "-m",
        "comment",
        "--comment",
        "ovsmesh:mv",
        "-j",
        "ACCEPT",
    ];
    let mut delete = vec!["-D", "DOCKER-USER"];
    delete.extend(spec);
    lab.router.exec("iptables", &delete);
    let mut append = vec!["-A", "DOCKER-USER"];
    append.extend(spec);
    lab.router.exec("iptables", &append);
    assert!(!lab.a_reaches_b(), "after the RETURN the rule does nothing");

    lab.assert_hairpin_replaced(&topo, "misplaced: after DOCKER-USER's final RETURN");
    lab.reconcile(&topo);
    let listing = lab.router.exec("iptables", &["-S", "DOCKER-USER"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 4, "{listing}");
    assert!(lines[2].contains("ovsmesh:mv"), "{listing}");
    assert!(lines[3].ends_with("-j RETURN"), "{listing}");
    assert!(lab.a_reaches_b());
    assert!(lab.plan(&topo).is_empty());
}

#[test]
#[ignore = "needs root"]
fn egress_rules_are_one_batch_and_read_back_as_written() {
    let lab = Lab::with_drop_policy();
    docker_user(&lab);
    let topo = topology_with("eg", &lab.bridge, "", "egress = \"nat\"");
    let before = lab.rules();
    let applied = lab.reconcile(&topo);
    assert!(
        ids(&applied).contains(&"Create masquerade -s 198.51.100.0/26".to_string()),
        "{:?}",
        ids(&applied)
    );
    let nat = lab
        .router
        .exec("iptables", &["-t", "nat", "-S", "OVSMESH-POSTROUTING"]);
    let lines: Vec<&str> = nat.lines().skip(1).collect();
    // Every mesh subnet (aggregated: the two /26 are one /25) keeps its source; then the masquerade.
    assert_eq!(lines.len(), 2, "{nat}");
    assert!(
        lines[0].contains("-s 198.51.100.0/26 -d 198.51.100.0/25")
            && lines[0].ends_with("-j RETURN"),
        "{nat}"
    );
    assert!(
        lines[1].contains("! -d 224.0.0.0/4") && lines[1].ends_with("-j MASQUERADE --random-fully"),
        "{nat}"
    );
    assert!(lab.plan(&topo).is_empty(), "{:?}", ids(&lab.plan(&topo)));
    // A kept destination deleted by hand: the masquerade is rewritten whole.
    lab.router
        .exec("iptables", &["-t", "nat", "-D", "OVSMESH-POSTROUTING", "1"]);
    assert_eq!(
        ids(&lab.plan(&topo)),
        ["Replace masquerade -s 198.51.100.0/26"]
    );
    lab.reconcile(&topo);
    assert!(lab.plan(&topo).is_empty());
    lab.down(&topo);
    assert_eq!(
        lab.rules(),
        before,
        "down removes the nat chain and its jump too"
    );
}

/// A native nftables firewall in the router: an `inet filter` table whose forward chain drops.
fn native_nftables(lab: &Lab, policy: &str) {
    lab.router.exec("nft", &["add", "table", "inet", "filter"]);
    let chain = format!("{{ type filter hook forward priority 0; policy {policy}; }}");
    lab.router.exec(
        "nft",
        &["add", "chain", "inet", "filter", "forward", &chain],
    );
    lab.router.exec(
        "nft",
        &[
            "add",
            "rule",
            "inet",
            "filter",
            "forward",
            "ct",
            "state",
            "established,related",
            "accept",
        ],
    );
}

#[test]
#[ignore = "needs root + nftables"]
fn on_native_nftables_the_rules_go_into_ovsmeshs_own_table() {
    let lab = Lab::new();
    native_nftables(&lab, "accept");
    let topo = topology_with("nf", &lab.bridge, "", "egress = \"nat\"");
    let applied = lab.reconcile(&topo);
    let places: Vec<String> = applied
        .changes
        .iter()
        .filter_map(|c| c.after.as_ref()?.firewall().map(|r| r.place.to_string()))
        .collect();
    assert!(
        places.iter().all(|p| p.starts_with("nft inet ovsmesh")),
        "{places:?}"
    );
    let table = lab
        .router
        .exec("nft", &["list", "table", "inet", "ovsmesh"]);
    assert!(
        table.contains(&format!(
            "iifname \"{0}\" oifname \"{0}\" accept comment \"ovsmesh:nf\"",
            lab.bridge
        )),
        "{table}"
    );
    assert!(table.contains("masquerade fully-random"), "{table}");
    assert!(lab.iptables_untouched(), "nothing in iptables");
    assert!(
        lab.plan(&topo).is_empty(),
        "read back as written: {:?}",
        ids(&lab.plan(&topo))
    );
    assert!(lab.a_reaches_b());
    lab.down(&topo);
    let tables = lab.router.exec("nft", &["list", "tables"]);
    assert!(
        !tables.contains("ovsmesh"),
        "the emptied table goes: {tables}"
    );
}

#[test]
#[ignore = "needs root + nftables"]
fn a_native_nftables_drop_is_a_conflict_naming_table_chain_and_rule_to_add() {
    let lab = Lab::new();
    native_nftables(&lab, "drop");
    let topo = topology("nd", &lab.bridge, "");
    let planned = lab.plan(&topo);
    assert_eq!(planned.conflicts.len(), 1, "{:?}", planned.conflicts);
    let conflict = &planned.conflicts[0];
    assert_eq!(conflict.kind, Kind::Firewall);
    assert_eq!(
        conflict.reason,
        format!(
            "nftables table inet filter, chain forward drops this traffic (policy drop), whatever ovsmesh accepts in its own rules; add e.g. `nft insert rule inet filter forward iifname \"{0}\" oifname \"{0}\" accept`",
            lab.bridge
        )
    );
    lab.reconcile(&topo);
    assert!(
        !lab.a_reaches_b(),
        "ovsmesh's own accept does not override the other table's drop"
    );
    assert_eq!(
        lab.plan(&topo).conflicts.len(),
        1,
        "still reported after apply"
    );
    // The admin adds what the conflict says: converged, and traffic passes.
    let rule = format!("iifname \"{0}\" oifname \"{0}\" accept", lab.bridge);
    lab.router.exec(
        "sh",
        &["-c", &format!("nft insert rule inet filter forward {rule}")],
    );
    assert!(
        lab.plan(&topo).is_empty(),
        "{:?}",
        lab.plan(&topo).conflicts
    );
    assert!(lab.a_reaches_b());
    lab.down(&topo);
}

impl Lab {
    fn iptables_untouched(&self) -> bool {
        !self.rules().contains("ovsmesh")
    }
}

#[test]
#[ignore = "needs root + nftables"]
fn when_docker_starts_on_a_native_nftables_host_the_rules_move_into_docker_user() {
    let lab = Lab::new();
    native_nftables(&lab, "accept");
    let topo = topology("mv2", &lab.bridge, "");
    lab.reconcile(&topo);
    assert!(lab
        .router
        .exec("nft", &["list", "tables"])
        .contains("inet ovsmesh"));
    // Docker starts: its chains and FORWARD policy DROP in iptables.
    lab.router.exec("iptables", &["-P", "FORWARD", "DROP"]);
    docker_user(&lab);
    lab.assert_hairpin_replaced(&topo, "place: nft inet ovsmesh forward -> DOCKER-USER");
    lab.reconcile(&topo);
    assert!(lab.rules().contains("ovsmesh:mv2"), "{}", lab.rules());
    assert!(!lab
        .router
        .exec("nft", &["list", "tables"])
        .contains("inet ovsmesh"));
    assert!(lab.a_reaches_b());
    assert!(lab.plan(&topo).is_empty());
    lab.down(&topo);
}
