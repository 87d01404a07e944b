//! The nftables backend on `nft -j list ruleset` as nft 1.0.6 prints it (Debian 12):
//! this mesh's rules read back as written, the transaction, and another table's drop.

use super::*;
use crate::host::firewall::walk::dropped;
use crate::state::Family;

/// An `inet filter` of the admin's (forward: policy drop, established accepted,
/// `veth*` accepted, a jump to a chain dropping 10/8), ovsmesh's table with mesh
/// m's rules, and iptables-nft's `ip filter`.
const LISTING: &str = include_str!("listing.json");

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn accept(in_if: &str, out_if: &str) -> Accept {
    Accept {
        in_if: Some(in_if.into()),
        out_if: Some(out_if.into()),
        ..Accept::default()
    }
}

fn egress_replies() -> Accept {
    Accept {
        out_if: Some("obr0".into()),
        dst: Some(net("203.0.113.128/27")),
        replies: true,
        ..Accept::default()
    }
}

fn masquerade() -> Masquerade {
    Masquerade {
        source: net("203.0.113.128/27"),
        keep: vec![net("192.0.2.0/24"), net("203.0.113.128/25")],
    }
}

#[test]
fn the_listing_reads_as_tables_chains_and_typed_rules() {
    let listing = parse(LISTING).unwrap();
    assert!(listing.has_native_tables(), "inet filter is the admin's");
    assert!(listing.is_xtables("ip", "filter"));
    assert!(!listing.is_xtables("inet", "filter"));
    assert_eq!(listing.rules.len(), 8);
    assert!(
        listing.rules.iter().all(|r| r.expr.is_some()),
        "every rule typed"
    );
    let found = observe(&listing, "m");
    let forward = Place::Nftables {
        chain: FORWARD.into(),
    };
    assert_eq!(
        found.rules.values().cloned().collect::<Vec<_>>(),
        [
            FirewallRule::new(Rule::Accept(accept("obr0", "obr0")), forward.clone()),
            FirewallRule::new(Rule::Accept(egress_replies()), forward),
            FirewallRule::new(
                Rule::Masquerade(masquerade()),
                Place::Nftables {
                    chain: POSTROUTING.into()
                }
            ),
        ]
    );
    assert_eq!(
        found.handles["masquerade -s 203.0.113.128/27"],
        [("postrouting".to_string(), 6)]
    );
    assert!(observe(&listing, "other").rules.is_empty());
    assert!(parse("{\"nftables\": [{\"metainfo\": {}}]}")
        .unwrap()
        .tables
        .is_empty());
    assert!(parse("not json").is_err());
}

#[test]
fn what_ovsmesh_writes_reads_back_as_the_same_rule() {
    for rule in [
        Rule::Accept(accept("obr0", "gw-x")),
        Rule::Accept(egress_replies()),
        Rule::Accept(Accept {
            in_if: Some("obr0".into()),
            src: Some(net("203.0.113.160/27")),
            dst: Some(net("192.0.2.7/32")),
            ..Accept::default()
        }),
        Rule::Masquerade(masquerade()),
    ] {
        let written = statements(&rule).unwrap();
        // Through JSON, as nft would take it and give it back.
        let json = serde_json::to_value(&written).unwrap();
        let back: Vec<Statement<'static>> = serde_json::from_value(json).unwrap();
        assert_eq!(rule_of(&back), Some(rule.clone()), "{rule:?}");
    }
    assert_eq!(
        statements(&Rule::Jump {
            from: "a".into(),
            to: "b".into(),
            family: Family::Ipv4
        }),
        None
    );
}

#[test]
fn a_transaction_deletes_by_handle_adds_with_the_mark_and_drops_an_emptied_table() {
    let listing = parse(LISTING).unwrap();
    let found = observe(&listing, "m");
    let new = FirewallRule::new(
        Rule::Accept(accept("obr0", "gw-x")),
        Place::Nftables {
            chain: FORWARD.into(),
        },
    );
    let json = batch(&listing, &found, "m", &["accept -i obr0 -o obr0"], &[&new]).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let commands = value["nftables"].as_array().unwrap();
    assert_eq!(commands[0]["delete"]["rule"]["handle"], 3);
    assert_eq!(commands[1]["add"]["table"]["name"], "ovsmesh");
    assert_eq!(commands[2]["add"]["chain"]["hook"], "forward");
    assert_eq!(commands[2]["add"]["chain"]["policy"], "accept");
    assert_eq!(commands[3]["add"]["chain"]["type"], "nat");
    assert_eq!(commands[4]["add"]["rule"]["comment"], "ovsmesh:m");
    assert_eq!(commands.len(), 5);
    // Every rule of the table goes: the table too.
    let all: Vec<&str> = found.rules.keys().map(String::as_str).collect();
    let json = batch(&listing, &found, "m", &all, &[]).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let commands = value["nftables"].as_array().unwrap();
    assert_eq!(commands.len(), 4);
    assert_eq!(commands[3]["delete"]["table"]["name"], "ovsmesh");
    assert_eq!(batch(&listing, &found, "m", &[], &[]), None);
}

#[test]
fn another_tables_drop_is_found_where_it_is_certain() {
    let listing = parse(LISTING).unwrap();
    // obr0 → obr0, new: not established, not veth*, no address to match 10/8 → policy drop.
    let hairpin = dropped(&listing, &accept("obr0", "obr0")).unwrap();
    assert_eq!(
        (
            hairpin.family.as_str(),
            hairpin.table.as_str(),
            hairpin.chain.as_str(),
            hairpin.by.as_str()
        ),
        ("inet", "filter", "forward", "policy drop")
    );
    assert!(hairpin.explain(&accept("obr0", "obr0")).ends_with(
        "add e.g. `nft insert rule inet filter forward iifname \"obr0\" oifname \"obr0\" accept`"
    ));
    // veth* is accepted by the admin's own rule; replies by its ct state rule.
    assert_eq!(dropped(&listing, &accept("veth1", "obr0")), None);
    assert_eq!(dropped(&listing, &egress_replies()), None);
    // Traffic from 10.1.0.0/16 is dropped in the chain jumped to, by that rule.
    let from_ten = Accept {
        in_if: Some("obr0".into()),
        src: Some(net("10.1.0.0/16")),
        ..Accept::default()
    };
    let by = dropped(&listing, &from_ten).unwrap().by;
    assert!(by.starts_with("rule [{\"match\""), "{by}");
    // Only partly inside 10/8: not certain, so the chain ends at its policy.
    let partly = Accept {
        src: Some(net("8.0.0.0/5")),
        ..from_ten.clone()
    };
    assert_eq!(dropped(&listing, &partly).unwrap().by, "policy drop");
    // A policy-accept chain drops nothing; ovsmesh's own and iptables-nft's tables are not looked at.
    let accepting = LISTING.replace("\"policy\": \"drop\"", "\"policy\": \"accept\"");
    let accepting = parse(&accepting).unwrap();
    assert_eq!(dropped(&accepting, &accept("obr0", "obr0")), None);
}
