//! The systemd unit in contrib/ starts the daemon the way the README says.

#[test]
fn unit_orders_after_ovs_and_docker_and_restarts_on_failure() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/ovsmesh.service"
    ))
    .unwrap();
    for line in [
        "After=network-online.target openvswitch-switch.service docker.service",
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
