//! Two meshes on one host (own bridges and tunnel keys, the underlay bridge
//! shared): apply, plan and down of either leave the other converged, and the
//! shared bridge goes with the last mesh out. Real ovsdb-server / ovs-vswitchd
//! in a namespace, userspace datapath.

mod common;
mod ownership;

use ownership::*;

#[test]
#[ignore = "needs root + OVS"]
fn two_meshes_on_one_host_leave_each_other_converged_through_apply_and_down() {
    let host = host();
    let (a, b) = (Mesh::new(&host, 1), Mesh::new(&host, 2));
    host.apply(&a);
    host.assert_converged(&a, "apply of a");
    // The second mesh finds br-phy (a's) holding the NIC: adopted, not re-created.
    host.apply(&b);
    host.assert_converged(&a, "apply of b");
    host.assert_converged(&b, "apply of b");
    assert!(host.reaches(&a) && host.reaches(&b));
    // Each mesh's routes are its own: both are there, each with its metric.
    let routes = host.ip(&["route", "show", "proto", "79"]);
    for mesh in [&a, &b] {
        let line = format!("{} via", mesh.peer_subnet());
        assert!(
            routes
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(&format!("metric {}", mesh.metric()))),
            "{routes}"
        );
    }

    host.down(&a);
    host.assert_converged(&b, "down of a");
    assert!(host.reaches(&b), "b still passes traffic after a went down");
    host.apply(&a);
    host.assert_converged(&a, "re-apply of a");
    host.assert_converged(&b, "re-apply of a");
    host.down(&b);
    host.assert_converged(&a, "down of b");
    assert!(host.reaches(&a));
    host.down(&a);

    // The last mesh out leaves the host as it found it.
    assert!(host.bridges().trim().is_empty(), "{}", host.bridges());
    assert!(host.addresses_of("u0").contains("192.0.2.1/24"));
    let routes = host.ip(&["route", "show", "proto", "79"]);
    assert!(routes.trim().is_empty(), "{routes}");
    assert!(!host.ip(&["-o", "link"]).contains("ovsmesh:"));
}

#[test]
#[ignore = "needs root + OVS"]
fn down_keeps_the_underlay_bridge_another_mesh_uses_and_hands_it_over() {
    let host = host();
    let (a, b) = (Mesh::new(&host, 1), Mesh::new(&host, 2));
    host.apply(&a);
    host.apply(&b);
    let claim = format!("ovsmesh-user:{}", b.name);
    assert_eq!(host.mark("Bridge", "br-phy", &claim), "yes");
    assert_eq!(host.mark("Bridge", "br-phy", "ovsmesh-mesh"), a.name);

    // a made br-phy, b uses it: a's down hands it (and the NIC's port) to b.
    let outcome = host.down(&a);
    assert!(
        outcome
            .plan
            .changes
            .iter()
            .any(|c| c.id == "br-phy" && c.reason.contains("handed over")),
        "{:?}",
        outcome.plan.changes
    );
    let bridges = host.bridges();
    assert!(
        bridges.contains("br-phy") && !bridges.contains("ovs1") && !bridges.contains("obr1"),
        "{bridges}"
    );
    assert_eq!(host.mark("Bridge", "br-phy", "ovsmesh-mesh"), b.name);
    assert_eq!(
        host.mark("Bridge", "br-phy", &claim),
        "",
        "the heir's claim is gone"
    );
    assert_eq!(host.mark("Port", "u0", "ovsmesh-mesh"), b.name);
    assert_eq!(host.mark("Interface", "u0", "ovsmesh-mesh"), b.name);
    assert!(host.addresses_of("br-phy").contains("192.0.2.1/24"));
    assert!(!host.addresses_of("u0").contains("192.0.2.1"));

    // b's own down removes it now: nobody else uses it.
    host.down(&b);
    assert!(!host.bridges().contains("br-phy"));
    assert!(host.addresses_of("u0").contains("192.0.2.1/24"));

    // The other way round: the user's down only takes its claim back.
    host.apply(&a);
    host.apply(&b);
    host.down(&b);
    assert_eq!(host.mark("Bridge", "br-phy", "ovsmesh-mesh"), a.name);
    assert_eq!(host.mark("Bridge", "br-phy", &claim), "");
    host.assert_converged(&a, "down of b");
}

#[test]
#[ignore = "needs root + OVS"]
fn a_setting_both_meshes_need_stays_until_the_last_mesh_goes_down() {
    let host = host();
    let redirects = || {
        host.netns
            .exec("cat", &["/proc/sys/net/ipv4/conf/all/send_redirects"])
            .trim()
            .to_string()
    };
    host.netns.exec(
        "sh",
        &["-c", "echo 1 > /proc/sys/net/ipv4/conf/all/send_redirects"],
    );
    let (a, b) = (Mesh::new(&host, 1), Mesh::new(&host, 2));
    host.apply(&a);
    assert_eq!(redirects(), "0");
    // b finds it as it needs it, set by a: it claims it all the same.
    let outcome = host.apply(&b);
    assert!(
        outcome
            .plan
            .changes
            .iter()
            .any(|c| c.id == "net.ipv4.conf.all.send_redirects" && c.reason.contains("claimed")),
        "{:?}",
        outcome.plan.changes
    );
    host.assert_converged(&b, "apply of b");

    host.down(&a);
    assert_eq!(redirects(), "0", "b still needs it");
    host.assert_converged(&b, "down of a");
    host.down(&b);
    assert_eq!(
        redirects(),
        "1",
        "the last mesh out puts the host's value back"
    );
}
