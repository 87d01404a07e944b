//! The systemd unit in contrib/ starts the daemon the way docs/packaging.md says:
//! `Type=notify` with a watchdog, hardened to what the daemon needs, and the
//! paths it names are the ones the Debian package installs.

fn unit() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/ovsmesh.service"
    ))
    .unwrap()
}

fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn unit_orders_after_ovs_and_docker_and_restarts_on_failure() {
    let unit = unit();
    // Not after docker: dockerd, starting, waits for the plugin this unit serves.
    for line in [
        "After=network-online.target openvswitch-switch.service",
        "Wants=network-online.target openvswitch-switch.service docker.service",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ConditionPathExists=|/etc/ovsmesh/topology.toml",
        "ConditionPathExists=|/etc/default/ovsmesh",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    // The same arguments parse as a daemon command line.
    let command = ovsmesh::cli::command();
    let mut argv = vec!["ovsmesh"];
    argv.extend(&args);
    assert!(
        command.try_get_matches_from(&argv).is_ok(),
        "ExecStart does not parse: {exec}"
    );
}

#[test]
fn unit_is_type_notify_with_a_watchdog_and_a_start_timeout() {
    let unit = unit();
    assert_eq!(values(&unit, "Type"), ["notify"]);
    let watchdog = humantime::parse_duration(&values(&unit, "WatchdogSec")[0]).unwrap();
    let start = humantime::parse_duration(&values(&unit, "TimeoutStartSec")[0]).unwrap();
    // Keep-alives come every half watchdog period; a reconcile's steps are bounded by
    // --timeout (10 s) several times over, which must fit in the other half.
    assert!(
        watchdog >= std::time::Duration::from_secs(60),
        "{watchdog:?}"
    );
    assert!(start >= watchdog, "{start:?}");
}

#[test]
fn unit_is_hardened_to_the_capabilities_the_daemon_needs() {
    let unit = unit();
    let caps: Vec<String> = values(&unit, "CapabilityBoundingSet")
        .join(" ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        caps,
        [
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE"
        ]
    );
    for line in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "RuntimeDirectory=ovsmesh",
        "RuntimeDirectoryPreserve=yes",
        "StateDirectory=ovsmesh",
        "RestrictNamespaces=net",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    // The daemon writes its memories of replaced settings under /run/ovsmesh; sysctls
    // under /proc/sys/net must stay writable (no ProtectKernelTunables).
    assert!(values(&unit, "ReadWritePaths")[0]
        .split_whitespace()
        .any(|p| p == "/run/ovsmesh"));
    assert!(values(&unit, "ProtectKernelTunables").is_empty());
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
