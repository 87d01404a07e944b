//! The systemd unit in contrib/ starts the daemon the way the README says.

#[test]
fn unit_orders_after_ovs_and_docker_and_restarts_on_failure() {
    // Not after docker: dockerd, starting, waits for the plugin this unit serves.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/ovsmesh.service"
    ))
    .unwrap();
    for line in [
        "After=network-online.target openvswitch-switch.service",
        "Wants=network-online.target openvswitch-switch.service docker.service",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    // The same arguments parse as a daemon command line (checked via --help of the subcommand).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(["daemon", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "daemon has no {flag}");
    }
}

#[test]
fn the_plugin_socket_is_there_before_dockerd_and_handed_to_the_service() {
    let socket = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/ovsmesh.socket"
    ))
    .unwrap();
    for line in [
        "Before=docker.service",
        "ListenStream=/run/docker/plugins/ovsmesh.sock",
        "WantedBy=sockets.target",
    ] {
        assert!(socket.lines().any(|l| l == line), "missing {line:?}");
    }
    // Same name as the service: systemd hands it the socket without a Sockets= line.
    assert!(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/ovsmesh.service"
    ))
    .exists());
    assert!(socket.contains(&format!("/{}.sock", ovsmesh::plugin::DEFAULT_NAME)));
}
