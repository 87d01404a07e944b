//! `plan --offline` for each lab host lists bridges, tunnels (protected, keys,
//! trunks), ports, routes, addresses and effective MTUs; exit codes hold.

use std::path::Path;
use std::process::Command;

fn ovsmesh(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("OVSMESH_HOST")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_plan_of_every_lab_host_shows_the_whole_host() {
    for (host, peers, subnet_gw, peer_routes) in [
        (
            "node1",
            ["node2", "node3"],
            "172.17.1.1/24",
            ["172.17.2.0/24", "172.17.3.0/24"],
        ),
        (
            "node2",
            ["node1", "node3"],
            "172.17.2.1/24",
            ["172.17.1.0/24", "172.17.3.0/24"],
        ),
        (
            "node3",
            ["node1", "node2"],
            "172.17.3.1/24",
            ["172.17.1.0/24", "172.17.2.0/24"],
        ),
    ] {
        let (code, out, err) = ovsmesh(&["plan", "--host", host, "topology/lab.toml", "--offline"]);
        assert_eq!(code, Some(2), "changes pending on an empty host: {err}");
        for bridge in ["+ bridge ovs0", "+ bridge obr0", "+ bridge br-phy"] {
            assert!(out.contains(bridge), "{host}: {bridge}\n{out}");
        }
        for peer in peers {
            let overlay = out
                .lines()
                .find(|l| l.starts_with(&format!("+ port tunnel/obr0/{peer} ")))
                .unwrap_or_else(|| panic!("{host}: overlay tunnel to {peer}\n{out}"));
            assert!(
                overlay.contains("options:key=1002")
                    && overlay.contains("protected=true")
                    && overlay.contains("type=gre"),
                "{overlay}"
            );
        }
        assert!(
            out.contains(&format!("+ address obr0 {subnet_gw}")),
            "{out}"
        );
        for route in peer_routes {
            assert!(
                out.contains(&format!("+ route {route}")),
                "{host}: {route}\n{out}"
            );
        }
        assert!(
            out.lines()
                .any(|l| l.starts_with("+ container-interface") && l.contains("mtu=1454")),
            "VLAN MTU budget\n{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("+ container-interface") && l.contains("mtu=1458")),
            "routed MTU budget\n{out}"
        );
        assert!(out.contains("+ port underlay/br-phy  name=eth1"), "{out}");
    }
    // node2 and node3 share VLANs 100 and 200; node1 only 100 with each.
    let (_, out, _) = ovsmesh(&["plan", "--host", "node2", "topology/lab.toml", "--offline"]);
    let vlan_tunnel = out
        .lines()
        .find(|l| l.starts_with("+ port tunnel/ovs0/node3 "))
        .unwrap();
    assert!(
        vlan_tunnel.contains("trunks=100,200") && vlan_tunnel.contains("options:key=1001"),
        "{vlan_tunnel}"
    );
    let vlan_tunnel = out
        .lines()
        .find(|l| l.starts_with("+ port tunnel/ovs0/node1 "))
        .unwrap();
    assert!(vlan_tunnel.contains("trunks=100 "), "{vlan_tunnel}");
}

#[test]
fn offline_plan_as_json_and_host_from_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OVSMESH_HOST", "host2")
        .args([
            "plan",
            "topology/routed-direct.toml",
            "--offline",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["host"], "host2");
    let changes = plan["changes"].as_array().unwrap();
    let route = changes.iter().find(|c| c["kind"] == "route").unwrap();
    assert_eq!(route["id"], "172.17.1.0/24");
    assert!(
        route["fields"].to_string().contains("192.0.2.1"),
        "direct mode routes via the peer's underlay address"
    );
    assert!(
        !changes
            .iter()
            .any(|c| c["id"].as_str().unwrap().starts_with("tunnel/")),
        "direct mode has no tunnels"
    );
}

#[test]
fn bad_arguments_and_unknown_hosts_exit_3() {
    assert_eq!(ovsmesh(&["plan", "--offline"]).0, Some(3));
    assert_eq!(ovsmesh(&["frobnicate"]).0, Some(3));
    let (code, _, err) = ovsmesh(&["plan", "--host", "nope", "topology/lab.toml", "--offline"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("host \"nope\" is not in the topology"),
        "{err}"
    );
    let (code, _, err) = ovsmesh(&["validate", "does-not-exist.toml"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("does-not-exist.toml"), "{err}");
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topology/lab.toml")
        .exists());
}

/// [`ovsmesh`], killed after five seconds (a daemon that should have been refused runs).
fn ovsmesh_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "still running after 5 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn durations_that_spin_fail_at_once_or_overflow_are_refused_as_invalid_arguments() {
    let lab = "topology/lab.toml";
    for (args, says) in [
        (
            vec!["daemon", lab, "--host", "node1", "--resync", "0s"],
            "a period under 1s would run back to back",
        ),
        (
            vec!["daemon", lab, "--host", "node1", "--resync", "999ms"],
            "a period under 1s",
        ),
        (
            vec!["plan", lab, "--host", "node1", "--timeout", "0"],
            "a timeout of 0 fails every request at once",
        ),
        (
            vec!["status", lab, "--host", "node1", "--timeout", "0ms"],
            "a timeout of 0",
        ),
        // 9999999999999999 h overflows u64 seconds; 169 h is just over a week.
        (
            vec![
                "plan",
                lab,
                "--host",
                "node1",
                "--timeout",
                "9999999999999999h",
            ],
            "is longer than a week",
        ),
        (
            vec![
                "daemon",
                lab,
                "--host",
                "node1",
                "--resync",
                "307445734561825861m",
            ],
            "is longer than a week",
        ),
        (
            vec!["apply", lab, "--host", "node1", "--timeout", "169h"],
            "is longer than a week",
        ),
    ] {
        let (code, stderr) = ovsmesh_bounded(&args);
        assert_eq!(code, Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A week is fine: refused later, for the host that is not in the topology.
    let (code, stderr) = ovsmesh_bounded(&["plan", lab, "--host", "nohost", "--timeout", "168h"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("nohost"), "{stderr}");
}
