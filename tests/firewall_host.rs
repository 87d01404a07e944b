//! The firewall through the CLI on a host (ovsdb-server and ovs-vswitchd in
//! the host's namespace, userspace datapath; see `ownership`): `plan` shows a
//! rule deleted by hand (exit 2) and `apply` puts it back; a native nftables
//! forward chain that drops is a `status` warning naming table, chain and rule.

mod common;
mod ownership;

use ownership::*;

fn ovsmesh(host: &Host, mesh: &Mesh, args: &[&str]) -> (Option<i32>, String) {
    host.cli_with(args, mesh)
}

/// This mesh's lines of an iptables chain, as `-S` lists them.
fn marked(host: &Host, mesh: &Mesh, chain: &str) -> Vec<String> {
    host.netns
        .exec("iptables", &["-S", chain])
        .lines()
        .filter(|l| l.contains(&format!("ovsmesh:{}", mesh.name)))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root + OVS"]
fn plan_exits_2_after_a_rule_was_deleted_by_hand_and_apply_puts_it_back() {
    let host = host();
    let mesh = Mesh::new(&host, 1);
    host.apply(&mesh);
    host.assert_converged(&mesh, "apply");
    let hairpin = format!(
        "-A OVSMESH-FORWARD -i obr1 -o obr1 -m comment --comment \"ovsmesh:{}\" -j ACCEPT",
        mesh.name
    );
    assert_eq!(
        marked(&host, &mesh, "OVSMESH-FORWARD"),
        std::slice::from_ref(&hairpin)
    );

    // Deleted by hand.
    let delete = hairpin.replacen("-A", "iptables -D", 1);
    host.netns.exec("sh", &["-c", &delete]);
    let (code, text) = ovsmesh(&host, &mesh, &["plan"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("+ firewall accept -i obr1 -o obr1  place=OVSMESH-FORWARD"),
        "{text}"
    );
    let (code, json) = ovsmesh(&host, &mesh, &["plan", "--format", "json"]);
    assert_eq!(code, Some(2), "{json}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let change = &plan["changes"][0];
    assert_eq!(
        (
            change["op"].as_str(),
            change["kind"].as_str(),
            change["id"].as_str()
        ),
        (
            Some("create"),
            Some("firewall"),
            Some("accept -i obr1 -o obr1")
        )
    );
    let (code, status) = ovsmesh(&host, &mesh, &["status"]);
    assert_eq!(code, Some(2), "{status}");
    assert!(
        status.contains("1 of 2 rule(s) of this mesh in OVSMESH-FORWARD (iptables-nft)"),
        "{status}"
    );

    let (code, applied) = ovsmesh(&host, &mesh, &["apply"]);
    assert_eq!(code, Some(0), "{applied}");
    assert!(
        applied.contains("+ firewall accept -i obr1 -o obr1"),
        "{applied}"
    );
    assert_eq!(marked(&host, &mesh, "OVSMESH-FORWARD"), [hairpin]);
    host.assert_converged(&mesh, "apply after the deletion");
    host.down(&mesh);
    assert!(!host.netns.exec("iptables-save", &[]).contains("ovsmesh"));
}

#[test]
#[ignore = "needs root + OVS + nftables"]
fn a_native_nftables_drop_policy_is_a_status_warning_naming_table_chain_and_rule() {
    let host = host();
    for args in [
        &["add", "table", "inet", "filter"][..],
        &[
            "add",
            "chain",
            "inet",
            "filter",
            "forward",
            "{ type filter hook forward priority 0; policy drop; }",
        ],
    ] {
        host.netns.exec("nft", args);
    }
    let mesh = Mesh::new(&host, 2);
    // Everything is made, and apply fails for the conflict it cannot resolve.
    let outcome = host.run(&mesh, false);
    assert_eq!(
        outcome.plan.conflicts.len(),
        1,
        "{:?}",
        outcome.plan.conflicts
    );
    let (code, status) = ovsmesh(&host, &mesh, &["status"]);
    assert_eq!(code, Some(2), "not converged: {status}");
    let expected = "warning: conflict: firewall accept -i obr2 -o obr2: nftables table inet filter, chain forward drops this traffic (policy drop), whatever ovsmesh accepts in its own rules; add e.g. `nft insert rule inet filter forward iifname \"obr2\" oifname \"obr2\" accept`";
    assert!(status.contains(expected), "{status}");
    assert!(
        status.contains("in nft inet ovsmesh forward (nftables)"),
        "{status}"
    );
    let (code, plan) = ovsmesh(&host, &mesh, &["plan"]);
    assert_eq!(code, Some(1), "a conflict: {plan}");
    assert!(plan.contains("! conflict: firewall accept -i obr2 -o obr2: nftables table inet filter, chain forward"), "{plan}");
    // With the rule status asks for, converged.
    host.netns.exec(
        "nft",
        &[
            "insert", "rule", "inet", "filter", "forward", "iifname", "obr2", "oifname", "obr2",
            "accept",
        ],
    );
    let (code, status) = ovsmesh(&host, &mesh, &["status"]);
    assert_eq!(code, Some(0), "{status}");
    host.down(&mesh);
}
