//! Unit tests of the firewall rules, the `iptables -S` parser and the change computation.

use std::path::Path;

use super::*;
use crate::desired::desired;
use crate::topology::{self, names};

const MESH: &str = r#"
[mesh]
name = "m"
MANAGE

[hosts.node1]
underlay_address = "203.0.113.11/25"

[hosts.node2]
underlay_address = "203.0.113.12/25"

[hosts.node3]
underlay_address = "203.0.113.13/25"

[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.0.2.0/24"
gateway = { host = "node1", address = "192.0.2.254" }

[networks.pods]
kind = "routed"
mode = "MODE"
subnets = { node1 = "203.0.113.128/27", node2 = "203.0.113.160/27" }

[containers.b1]
host = "node1"
network = "blue"
address = "192.0.2.1"

[containers.b3]
host = "node3"
network = "blue"
address = "192.0.2.3"
"#;

fn rules_for(mode: &str, manage: &str, host: &str) -> Vec<Rule> {
    let text = MESH.replace("MODE", mode).replace("MANAGE", manage);
    let topology = topology::parse(Path::new("t.toml"), &text).unwrap();
    wanted(&topology, &desired(&topology, host).unwrap())
}

fn rule(i: Option<&str>, o: Option<&str>, s: Option<&str>, d: Option<&str>) -> Rule {
    Rule {
        in_if: i.map(String::from),
        out_if: o.map(String::from),
        src: s.map(|n| n.parse().unwrap()),
        dst: d.map(|n| n.parse().unwrap()),
    }
}

#[test]
fn tunnel_mode_accepts_the_obr0_hairpin_and_between_routing_interfaces() {
    let gw = names::gateway_port("m", "blue");
    let rules = rules_for("tunnel", "", "node1");
    let mut expected = vec![
        rule(Some(&gw), Some("obr0"), None, None),
        rule(Some("obr0"), Some(&gw), None, None),
        rule(Some("obr0"), Some("obr0"), None, None),
    ];
    let mut got = rules.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    // node2 has only the routed subnet: the hairpin alone.
    assert_eq!(
        rules_for("tunnel", "", "node2"),
        vec![rule(Some("obr0"), Some("obr0"), None, None)]
    );
    // node3 routes nothing (a VLAN member only).
    assert!(rules_for("tunnel", "", "node3").is_empty());
}

#[test]
fn direct_mode_accepts_only_between_own_and_peer_subnets() {
    let rules = rules_for("direct", "", "node2");
    assert_eq!(
        rules,
        vec![
            rule(
                Some("obr0"),
                None,
                Some("203.0.113.160/27"),
                Some("203.0.113.128/27")
            ),
            rule(
                None,
                Some("obr0"),
                Some("203.0.113.128/27"),
                Some("203.0.113.160/27")
            ),
        ]
    );
    assert_eq!(
        rules[0].spec("m"),
        "-s 203.0.113.160/27 -d 203.0.113.128/27 -i obr0 -m comment --comment ovsmesh:m -j ACCEPT"
            .split(' ')
            .collect::<Vec<_>>()
    );
}

#[test]
fn opting_out_wants_no_rules() {
    assert!(rules_for("tunnel", "manage_firewall = false", "node1").is_empty());
}

/// `iptables-nft -S` on a Debian 12 VM with Docker 20.10 and ovsmesh's rules.
const DOCKER_HOST: &str = r#"-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A DOCKER-USER -i eth0 -m comment --comment "admin: keep this" -j DROP
-A DOCKER-USER -i obr0 -o obr0 -m comment --comment "ovsmesh:m" -j ACCEPT
-A DOCKER-USER -i obr0 -o obr0 -m comment --comment "ovsmesh:other" -j ACCEPT
-A DOCKER-USER -j RETURN
"#;

#[test]
fn parses_iptables_nft_listing() {
    let set = parse(DOCKER_HOST);
    assert_eq!(set.policies["FORWARD"], "DROP");
    assert!(set.chains.contains("DOCKER-USER") && set.chains.contains("INPUT"));
    assert_eq!(set.rules.len(), 8);
    assert_eq!(
        set.rules[4].args,
        [
            "-i",
            "eth0",
            "-m",
            "comment",
            "--comment",
            "admin: keep this",
            "-j",
            "DROP"
        ]
    );
    assert_eq!(
        ours(&set.rules[5].args, "m"),
        Some(Some(rule(Some("obr0"), Some("obr0"), None, None)))
    );
    assert_eq!(ours(&set.rules[6].args, "m"), None, "another mesh's rule");
    assert_eq!(ours(&set.rules[4].args, "m"), None, "the admin's rule");
    assert_eq!(
        split_words(r#"-A X --comment "a \"b\" c""#)[3],
        r#"a "b" c"#
    );
}

#[test]
fn converged_docker_host_needs_nothing() {
    let set = parse(DOCKER_HOST);
    let want = [rule(Some("obr0"), Some("obr0"), None, None)];
    assert!(changes(&set, "m", &want).is_empty());
}

#[test]
fn rules_go_into_docker_user_before_its_return() {
    let set = parse(DOCKER_HOST);
    let gw = rule(Some("gblue"), Some("obr0"), None, None);
    let want = [rule(Some("obr0"), Some("obr0"), None, None), gw.clone()];
    let c = changes(&set, "m", &want);
    assert_eq!(c.chain, DOCKER_CHAIN);
    assert_eq!(c.add, vec![gw]);
    // Four rules in DOCKER-USER, the last RETURN: insert at 4, after the admin's rule.
    assert_eq!(c.position, Some(4));
    assert!(!c.create_chain && !c.add_jump && c.delete.is_empty() && !c.drop_own_chain);
}

#[test]
fn without_docker_an_own_chain_and_its_jump() {
    let set = parse("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n");
    let want = [rule(Some("obr0"), Some("obr0"), None, None)];
    let c = changes(&set, "m", &want);
    assert_eq!(c.chain, OWN_CHAIN);
    assert!(c.create_chain && c.add_jump && c.position.is_none());
    assert_eq!(c.add.len(), 1);
    // Nothing wanted, nothing there: nothing to do, no chain made.
    assert!(changes(&set, "m", &[]).is_empty());
}

#[test]
fn stale_duplicate_and_misplaced_rules_go_other_meshes_stay() {
    let set = parse(
        "-P FORWARD DROP\n-N OVSMESH-FORWARD\n-A FORWARD -j OVSMESH-FORWARD\n\
         -A OVSMESH-FORWARD -i obr0 -o obr0 -m comment --comment ovsmesh:m -j ACCEPT\n\
         -A OVSMESH-FORWARD -i obr0 -o obr0 -m comment --comment ovsmesh:m -j ACCEPT\n\
         -A OVSMESH-FORWARD -i old -o obr0 -m comment --comment ovsmesh:m -j ACCEPT\n\
         -A OVSMESH-FORWARD -p tcp -i obr0 -m comment --comment ovsmesh:m -j ACCEPT\n\
         -A OVSMESH-FORWARD -i obr0 -o obr0 -m comment --comment ovsmesh:other -j ACCEPT\n",
    );
    let want = [rule(Some("obr0"), Some("obr0"), None, None)];
    let c = changes(&set, "m", &want);
    assert!(c.add.is_empty() && !c.create_chain && !c.add_jump);
    assert_eq!(c.delete.len(), 3, "{:?}", c.delete);
    assert!(!c.drop_own_chain, "still used");
    // down of m: m's four rules go; the chain stays for mesh "other".
    let down = changes(&set, "m", &[]);
    assert_eq!(down.delete.len(), 4);
    assert!(!down.drop_own_chain);
    // down of mesh "other": its rule goes, the chain stays for m's rules.
    let last = changes(&set, "other", &[]);
    assert_eq!(last.delete.len(), 1);
    assert!(!last.drop_own_chain, "m's rules are still in it");
}

#[test]
fn own_chain_emptied_by_down_is_removed_and_moves_to_docker_user() {
    let own = "-P FORWARD DROP\n-N OVSMESH-FORWARD\n-A FORWARD -j OVSMESH-FORWARD\n\
         -A OVSMESH-FORWARD -i obr0 -o obr0 -m comment --comment ovsmesh:m -j ACCEPT\n";
    let down = changes(&parse(own), "m", &[]);
    assert_eq!(down.delete.len(), 1);
    assert!(down.drop_own_chain);
    // Docker started after ovsmesh: the rule moves into DOCKER-USER, the own chain goes.
    let docker =
        format!("{own}-N DOCKER-USER\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j RETURN\n");
    let want = [rule(Some("obr0"), Some("obr0"), None, None)];
    let moved = changes(&parse(&docker), "m", &want);
    assert_eq!(moved.chain, DOCKER_CHAIN);
    assert_eq!(moved.add.len(), 1);
    assert_eq!(moved.delete.len(), 1);
    assert!(moved.drop_own_chain && !moved.add_jump && !moved.create_chain);
}

#[test]
fn status_check_explains_missing_and_opt_out() {
    let missing = Check {
        managed: true,
        forward_policy: Some("DROP".into()),
        chain: Some(DOCKER_CHAIN.into()),
        rules: 1,
        missing: vec!["-i obr0 -o obr0".into()],
        ..Check::default()
    };
    assert!(!missing.converged());
    assert!(missing.warnings(true)[0].contains("missing in DOCKER-USER (-i obr0 -o obr0)"));
    assert!(missing.summary().contains("0 of 1 accept rule(s)"));
    let opted_out = Check {
        managed: false,
        forward_policy: Some("DROP".into()),
        ..Check::default()
    };
    assert!(opted_out.converged());
    assert!(opted_out.warnings(true)[0].contains("manage_firewall = false"));
    assert!(opted_out.warnings(false).is_empty());
}
