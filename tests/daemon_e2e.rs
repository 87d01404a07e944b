//! End-to-end: `ovsmesh daemon` keeping a lab host converged — drift, restarts,
//! topology edits, server restarts and a clean SIGTERM — with no manual apply.

mod common;
mod daemon_support;

use std::time::Duration;

use common::*;
use daemon_support::*;
use ovsmesh::netns;

#[test]
#[ignore = "needs root + OVS"]
fn daemon_undoes_drift_follows_restarts_and_edits_and_exits_cleanly() {
    let mut setup = start(&seed("lab.toml"), "node1", false);
    let mac = |s: &Setup| {
        netns::output(&s.ns("blue1"), "cat", &["/sys/class/net/eth1/address"])
            .unwrap()
            .stdout
    };
    let blue1_mac = mac(&setup);

    // del-port of an owned port: restored, and traffic flows.
    let port = setup.port_of("node1", "blue1");
    setup.vsctl("node1", &["del-port", &port]);
    assert!(
        eventually(PATIENCE, || setup
            .vsctl("node1", &["list-ports", "ovs0"])
            .contains("vblue1")),
        "{}",
        setup.log()
    );
    assert!(setup.reaches("blue1", "192.168.0.2"));

    // A changed tag: restored.
    let edge = setup.edge_port();
    setup.vsctl("node1", &["set", "port", &edge, "tag=999"]);
    assert!(eventually(PATIENCE, || setup
        .vsctl("node1", &["get", "port", &edge, "tag"])
        .trim()
        == "100"));

    // An owned route deleted by hand: restored.
    let host_ns = netns::open(&setup.lab.host_ns("node1")).unwrap();
    netns::output(&host_ns, "ip", &["route", "del", "172.17.2.0/24"]).unwrap();
    let route_back = || {
        let out = netns::output(&host_ns, "ip", &["route", "show", "172.17.2.0/24"]).unwrap();
        String::from_utf8_lossy(&out.stdout).contains("proto 79")
    };
    assert!(eventually(PATIENCE, route_back), "{}", setup.log());

    // A foreign port is left alone.
    setup.vsctl(
        "node1",
        &[
            "add-port",
            "ovs0",
            "handmade",
            "--",
            "set",
            "interface",
            "handmade",
            "type=internal",
        ],
    );
    setup.vsctl("node1", &["set", "port", &edge, "tag=998"]);
    assert!(eventually(PATIENCE, || setup
        .vsctl("node1", &["get", "port", &edge, "tag"])
        .trim()
        == "100"));
    assert!(setup
        .vsctl("node1", &["list-ports", "ovs0"])
        .contains("handmade"));

    // The container's namespace deleted and recreated: re-plumbed, same MAC, traffic flows.
    let name = format!("{}-blue1", setup.lab.prefix);
    run("ip", &["netns", "del", &name]);
    std::thread::sleep(Duration::from_millis(300));
    run("ip", &["netns", "add", &name]);
    assert!(setup.reaches("blue1", "192.168.0.2"), "{}", setup.log());
    assert_eq!(mac(&setup), blue1_mac);
    // Traffic flows once the veth and port exist; the re-plumb is counted when
    // that reconcile returns (after waiting for vswitchd), so wait for it.
    assert!(eventually(PATIENCE, || setup
        .metric("ovsmesh_container_replumbs_total")
        >= 1.0));

    // A topology edit adding a container: attached without restarting the daemon.
    run(
        "ip",
        &["netns", "add", &format!("{}-extra", setup.lab.prefix)],
    );
    let edited = seed("lab.toml") + "\n[containers.extra]\nhost = \"node1\"\nnetns = \"extra\"\nnetwork = \"blue\"\naddress = \"192.168.0.50\"\n";
    let tmp = setup.lab.dir.join("topology.toml.new");
    std::fs::write(&tmp, &edited).unwrap();
    std::fs::rename(&tmp, &setup.file).unwrap();
    assert!(setup.reaches("extra", "192.168.0.2"), "{}", setup.log());
    assert!(setup.metric("ovsmesh_topology_generation") >= 2.0);

    // A broken edit: rejected with its located error, the old state kept.
    std::fs::write(&setup.file, edited.replace("vlan = 100", "vlan = 5000")).unwrap();
    assert!(eventually(PATIENCE, || setup
        .metric("ovsmesh_reload_errors_total")
        >= 1.0));
    assert!(
        setup.log().contains("VLAN tag 5000 is outside 1..4094"),
        "{}",
        setup.log()
    );
    assert!(setup.pings("extra", "192.168.0.2"));
    std::fs::write(&setup.file, &edited).unwrap();

    // ovsdb-server restarted: the daemon reconnects, and drift is fixed again.
    let dir = setup.lab.host_dir("node1");
    let path = |f: &str| dir.join(f).display().to_string();
    setup.restart_daemon_process(
        "ovsdb.pid",
        "ovsdb-server",
        vec![
            path("conf.db"),
            format!("--remote=punix:{}", path("db.sock")),
            format!("--pidfile={}", path("ovsdb.pid")),
            format!("--unixctl={}", path("ovsdb.ctl")),
            format!("--log-file={}", path("ovsdb.log")),
            "--detach".into(),
        ],
    );
    let port = setup.port_of("node1", "pod1");
    setup.vsctl("node1", &["del-port", &port]);
    assert!(
        eventually(PATIENCE, || setup
            .vsctl("node1", &["list-ports", "obr0"])
            .contains("vpod1")),
        "{}",
        setup.log()
    );

    // ovs-vswitchd restarted: internal ports come back empty; the daemon re-converges.
    setup.restart_daemon_process(
        "vswitchd.pid",
        "ovs-vswitchd",
        vec![
            setup.lab.ovsdb_remote("node1"),
            format!("--pidfile={}", path("vswitchd.pid")),
            format!("--unixctl={}", path("vswitchd.ctl")),
            format!("--log-file={}", path("vswitchd.log")),
            "--detach".into(),
        ],
    );
    // What traffic needs, awaited: vswitchd has applied the database and opened
    // every port, and the daemon has nothing left to change.
    assert!(
        eventually(PATIENCE, || setup.vswitchd_caught_up()),
        "ovs-vswitchd never caught up after its restart"
    );
    assert!(
        eventually(PATIENCE, || setup.converged()),
        "node1 not converged after the ovs-vswitchd restart: {}",
        setup.log()
    );
    assert!(
        setup.reaches("blue2", "192.168.0.254"),
        "gateway address back on node1: {}",
        setup.log()
    );
    assert!(setup.reaches("blue1", "192.168.0.2"));
    assert!(setup.reaches("pod1", "172.17.2.10"));

    // SIGTERM: exit 0, the network left intact.
    let mut daemon = setup.daemon.take().unwrap();
    run("kill", &["-TERM", &daemon.child.id().to_string()]);
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(setup.pings("blue1", "192.168.0.2"));
    assert!(setup.pings("pod1", "172.17.3.10"));
    drop(daemon);
}

#[test]
#[ignore = "needs root + OVS + Docker"]
fn docker_restart_is_healed_without_a_manual_apply() {
    let setup = start(&seed("pipework-vlan.toml"), "A", true);
    let docker = |args: &[&str]| setup.docker(args);
    let test1 = format!("{}-test1", setup.lab.prefix);
    let test3 = format!("{}-test3", setup.lab.prefix);
    let ping = ["exec", &test3, "ping", "-c", "1", "-W", "1", "192.168.0.1"];
    let reaches = || eventually(PATIENCE, || setup.docker_succeeds(&ping));
    let mac = docker(&["exec", &test1, "cat", "/sys/class/net/eth1/address"]);
    assert!(reaches());
    docker(&["restart", "-t", "0", &test1]);
    assert!(reaches(), "{}", setup.log());
    assert_eq!(
        mac,
        docker(&["exec", &test1, "cat", "/sys/class/net/eth1/address"])
    );
    docker(&["stop", "-t", "0", &test1]);
    assert!(eventually(PATIENCE, || setup
        .metric("ovsmesh_containers_waiting")
        >= 1.0));
    docker(&["start", &test1]);
    assert!(reaches(), "{}", setup.log());
    // Counted when the reconcile returns, which can be after traffic flows.
    assert!(eventually(PATIENCE, || setup
        .metric("ovsmesh_container_replumbs_total")
        >= 2.0));
}

/// The daemon remembers which process each running Docker container is, so it
/// need not ask Docker every reconcile; a rename keeps the process, so the
/// daemon must forget it then. Otherwise a new container under the old name
/// would be taken for the renamed one and never plumbed.
#[test]
#[ignore = "needs root + OVS + Docker"]
fn a_new_container_under_a_renamed_ones_name_is_plumbed() {
    let setup = start(&seed("pipework-vlan.toml"), "A", true);
    let socket = setup.lab.docker_socket().unwrap();
    let docker = |args: &[&str]| setup.docker(args);
    let test1 = format!("{}-test1", setup.lab.prefix);
    let renamed = format!("{}-old1", setup.lab.prefix);
    let has_eth1 =
        |name: &str| setup.docker_succeeds(&["exec", name, "cat", "/sys/class/net/eth1/address"]);
    // `start` waited for the start-up reconcile: the daemon has seen test1 running.
    assert!(eventually(Duration::from_secs(10), || has_eth1(&test1)));
    docker(&["rename", &test1, &renamed]);
    assert!(
        eventually(Duration::from_secs(10), || setup
            .metric("ovsmesh_containers_waiting")
            >= 1.0),
        "the renamed container still counted as {test1}: {}",
        setup.log()
    );
    ovsmesh::lab::docker::run_container(&setup.lab, &socket, &test1).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || has_eth1(&test1)),
        "the new {test1} was not plumbed: {}",
        setup.log()
    );
    assert!(eventually(Duration::from_secs(5), || setup
        .metric("ovsmesh_containers_waiting")
        == 0.0));
}

/// Issue 17 item 6: the Docker event watcher also starts when a topology edit
/// adds the first Docker container, and events match a container the topology
/// names by id prefix. The daemon starts with netns containers only; an edit
/// adds a stopped container by the first 12 digits of its id (it waits); once
/// the retries for waiting containers are over, only its `start` event (matched
/// by id) can wake the daemon before the next resync (in 600 s).
#[test]
#[ignore = "needs root + OVS + Docker"]
fn a_container_named_by_id_and_added_by_an_edit_is_plumbed_on_its_start_event() {
    let text = seed("lab.toml");
    let setup = prepare(&text, "node1", false);
    let socket = ovsmesh::lab::docker::ensure_engine(&setup.lab).unwrap();
    let name = format!("{}-byid", setup.lab.prefix);
    ovsmesh::lab::docker::run_container(&setup.lab, &socket, &name).unwrap();
    setup.docker(&["stop", "-t", "0", &name]);
    let id = setup.docker(&["inspect", "-f", "{{.Id}}", &name]);
    let setup = setup_daemon(setup, &["--resync", "600s"], &[]);

    let edited = format!(
        "{text}\n[containers.byid]\nhost = \"node1\"\nnetwork = \"blue\"\naddress = \"192.168.0.11\"\ndocker = \"{}\"\n",
        &id.trim()[..12]
    );
    std::fs::write(&setup.file, edited).unwrap();
    assert!(
        eventually(PATIENCE, || setup.metric("ovsmesh_containers_waiting")
            >= 1.0),
        "the edit was not taken: {}",
        setup.log()
    );
    // The retries for waiting containers end (about 15 s); then nothing wakes the daemon.
    setup.settle(Duration::from_secs(3));

    setup.docker(&["start", &name]);
    let plumbed = || {
        setup.docker_succeeds(&["exec", &name, "ip", "-4", "-o", "addr", "show", "eth1"])
            && setup
                .docker(&["exec", &name, "ip", "-4", "-o", "addr", "show", "eth1"])
                .contains("192.168.0.11/24")
    };
    assert!(
        eventually(Duration::from_secs(20), plumbed),
        "not plumbed on its start event: {}",
        setup.log()
    );
    // Across the tunnel to blue3 on node3.
    assert!(eventually(Duration::from_secs(10), || setup
        .docker_succeeds(&[
            "exec",
            &name,
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "192.168.0.3"
        ])));
}
