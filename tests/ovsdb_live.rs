//! The OVSDB client and the OVS half of plan / apply / down against a real
//! ovsdb-server (and ovs-vswitchd where the test needs it). Each test runs its
//! own server in its own temp dir; see `common`.

mod common;

use std::time::Duration;

use common::*;
use ovsmesh::engine;
use ovsmesh::ovs::{self, ApplyError, Session};
use ovsmesh::ovsdb::{self, connect, ConnectOptions, Notification, OvsdbError};
use serde_json::json;

const TOPOLOGY: &str = r#"
[mesh]
name = "t1"
[hosts.A]
underlay_address = "192.0.2.1/24"
[hosts.B]
underlay_address = "192.0.2.2/24"
[hosts.C]
underlay_address = "192.0.2.3/24"
[networks.v100]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[networks.v200]
kind = "vlan"
vlan = 200
subnet = "192.168.0.0/24"
[containers.test1]
host = "A"
netns = "{p}-test1"
network = "v100"
address = "192.168.0.1"
[containers.test2]
host = "A"
netns = "{p}-test2"
network = "v200"
address = "192.168.0.2"
[containers.test3]
host = "B"
network = "v100"
address = "192.168.0.3"
[containers.test4]
host = "C"
network = "v200"
address = "192.168.0.4"
"#;

/// A server, host A's namespace, and the namespaces of A's containers.
struct Setup {
    server: OvsdbServer,
    host: Netns,
    text: String,
    _containers: Vec<Netns>,
}

fn setup(tcp: bool) -> Setup {
    let server = OvsdbServer::start(None, tcp);
    let host = Netns::new("omA");
    let prefix = unique("c");
    let containers = ["test1", "test2"]
        .iter()
        .map(|c| Netns::named(&format!("{prefix}-{c}")))
        .collect();
    Setup {
        server,
        host,
        text: TOPOLOGY.replace("{p}", &prefix),
        _containers: containers,
    }
}

impl Setup {
    fn apply(&self, topology: &ovsmesh::topology::Topology) -> (engine::Outcome, usize) {
        engine_run(&self.server, &self.host, topology, "A", false, None)
    }
    fn down(&self, topology: &ovsmesh::topology::Topology) -> engine::Outcome {
        engine_run(&self.server, &self.host, topology, "A", true, None).0
    }
}

fn ports_of(server: &OvsdbServer, bridge: &str) -> Vec<String> {
    let mut ports: Vec<String> = server
        .vsctl(&["list-ports", bridge])
        .lines()
        .map(str::to_string)
        .collect();
    ports.sort();
    ports
}

fn column(server: &OvsdbServer, table: &str, record: &str, col: &str) -> String {
    server
        .vsctl(&["get", table, record, col])
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs root + OVS"]
fn fresh_apply_creates_exactly_the_desired_rows_and_second_apply_writes_nothing() {
    let setup = setup(false);
    let server = &setup.server;
    let topology = topology(&setup.text);
    let want = ovsmesh::desired::desired(&topology, "A").unwrap();
    let (outcome, writes) = setup.apply(&topology);
    assert_eq!(writes, 1, "a whole host in one transaction");
    assert_eq!(outcome.ovs.applied.len(), 5, "{:?}", outcome.ovs.applied);
    assert!(
        !outcome.failed(),
        "{:?} {:?}",
        outcome.ovs.failures,
        outcome.netlink.failures
    );

    // Exactly the desired rows, as ovs-vsctl sees them.
    let mut expected: Vec<String> = want.ports.values().map(|p| p.name.clone()).collect();
    expected.sort();
    assert_eq!(ports_of(server, "ovs0"), expected);
    let to_b = &want.ports["tunnel/ovs0/B"].name;
    let to_c = &want.ports["tunnel/ovs0/C"].name;
    assert_eq!(column(server, "Port", to_b, "protected"), "true");
    assert_eq!(column(server, "Port", to_b, "trunks"), "[100]");
    assert_eq!(column(server, "Port", to_c, "trunks"), "[200]");
    assert_eq!(column(server, "Interface", to_b, "type"), "gre");
    assert_eq!(column(server, "Interface", to_b, "options:key"), "\"1001\"");
    assert_eq!(
        column(server, "Interface", to_b, "options:remote_ip"),
        "\"192.0.2.2\""
    );
    assert_eq!(
        column(server, "Port", &want.ports["access/test1/eth1"].name, "tag"),
        "100"
    );
    assert_eq!(
        column(server, "Bridge", "ovs0", "external_ids:ovsmesh-mesh"),
        "t1"
    );
    assert_eq!(
        column(server, "Port", to_b, "external_ids:ovsmesh-peer"),
        "B"
    );

    // A monitor on another connection proves the second apply writes nothing.
    let runtime = runtime();
    let (watcher, mut updates) = runtime
        .block_on(connect(&server.remote(), ConnectOptions::default()))
        .unwrap();
    let tables = json!({"Bridge": {"columns": ["name", "ports"]}, "Port": {"columns": ["name", "tag"]}, "Interface": {"columns": ["name"]}, "Open_vSwitch": {"columns": ["bridges", "next_cfg"]}});
    runtime
        .block_on(watcher.monitor_cond(ovsdb::DB, json!("watch"), tables))
        .unwrap();
    let (outcome, writes) = setup.apply(&topology);
    assert!(outcome.plan.is_empty(), "{:?}", outcome.plan.changes);
    assert_eq!(writes, 0);
    let quiet = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(500), updates.recv()).await });
    assert!(
        quiet.is_err(),
        "the second apply changed the database: {quiet:?}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn removing_a_peer_or_container_removes_its_rows() {
    let setup = setup(false);
    let server = &setup.server;
    let before = topology(&setup.text);
    // C and test4 leave the topology; test2 too.
    let text = setup
        .text
        .replace("[hosts.C]\nunderlay_address = \"192.0.2.3/24\"\n", "")
        .replace(
            "[containers.test4]\nhost = \"C\"\nnetwork = \"v200\"\naddress = \"192.168.0.4\"\n",
            "",
        );
    let text = text.split("[containers.test2]").next().unwrap().to_string()
        + "[containers.test3]"
        + text.split("[containers.test3]").nth(1).unwrap();
    let after = topology(&text);
    let old = ovsmesh::desired::desired(&before, "A").unwrap();
    let new = ovsmesh::desired::desired(&after, "A").unwrap();
    setup.apply(&before);
    let (outcome, _) = setup.apply(&after);
    let deleted: Vec<&str> = outcome.ovs.applied.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(deleted, vec!["access/test2/eth1", "tunnel/ovs0/C"]);
    let unplumbed: Vec<&str> = outcome
        .netlink
        .applied
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        unplumbed,
        vec!["test2/eth1"],
        "test2's veth is found by its alias and removed"
    );
    let ports = ports_of(server, "ovs0");
    assert!(!ports.contains(&old.ports["tunnel/ovs0/C"].name));
    assert!(!ports.contains(&old.ports["access/test2/eth1"].name));
    let mut expected: Vec<String> = new.ports.values().map(|p| p.name.clone()).collect();
    expected.sort();
    assert_eq!(ports, expected);
    // The remaining tunnel now trunks only the VLAN still shared.
    assert_eq!(
        column(server, "Port", &new.ports["tunnel/ovs0/B"].name, "trunks"),
        "[100]"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn foreign_port_and_bridge_survive_apply_and_down() {
    let setup = setup(false);
    let server = &setup.server;
    server.vsctl(&["add-br", "br-foreign"]);
    server.vsctl(&["add-br", "obr0"]); // an existing bridge ovsmesh would adopt
    let topology = topology(&setup.text);
    setup.apply(&topology);
    server.vsctl(&[
        "add-port",
        "ovs0",
        "handmade",
        "--",
        "set",
        "interface",
        "handmade",
        "type=internal",
    ]);
    let (outcome, _) = setup.apply(&topology);
    assert!(
        outcome.plan.is_empty(),
        "a foreign port is not a change: {:?}",
        outcome.plan.changes
    );
    let outcome = setup.down(&topology);
    assert_eq!(
        outcome.ovs.kept_bridges,
        vec![("ovs0".to_string(), vec!["handmade".to_string()])]
    );
    assert_eq!(ports_of(server, "ovs0"), vec!["handmade".to_string()]);
    let bridges = server.vsctl(&["list-br"]);
    assert!(
        bridges.contains("br-foreign") && bridges.contains("obr0") && bridges.contains("ovs0"),
        "{bridges}"
    );

    // Once the foreign port is gone, down removes the bridge ovsmesh created.
    server.vsctl(&["del-port", "ovs0", "handmade"]);
    setup.down(&topology);
    let bridges = server.vsctl(&["list-br"]);
    assert!(
        !bridges.contains("ovs0") && bridges.contains("br-foreign"),
        "{bridges}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn another_mesh_on_the_same_host_is_never_touched() {
    let setup = setup(false);
    let first = topology(&setup.text);
    // Mesh t2 puts its own interface (eth9) into the same containers, on its own bridge.
    let second = topology(
        &setup
            .text
            .replace("name = \"t1\"", "name = \"t2\"\nvlan_bridge = \"ovs9\"")
            .replace("netns = \"", "ifname = \"eth9\"\nnetns = \""),
    );
    setup.apply(&first);
    let (outcome, _) = setup.apply(&second);
    assert!(
        outcome
            .ovs
            .applied
            .iter()
            .all(|c| c.op == ovsmesh::plan::Op::Create),
        "{:?}",
        outcome.ovs.applied
    );
    setup.down(&second);
    let (outcome, writes) = setup.apply(&first);
    assert!(
        outcome.plan.is_empty() && writes == 0,
        "mesh t2 disturbed t1: {:?}",
        outcome.plan.changes
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn a_concurrent_change_between_plan_and_apply_is_detected_and_retried() {
    let setup = setup(false);
    let server = &setup.server;
    let topology = topology(&setup.text);
    setup.apply(&topology);
    let access = ovsmesh::desired::desired(&topology, "A").unwrap().ports["access/test1/eth1"]
        .name
        .clone();
    server.vsctl(&["set", "port", &access, "tag=300"]);
    in_netns(&setup.host, || {
        runtime().block_on(async {
            let runtimes = ovsmesh::runtime::Runtimes::new(None);
            let target = engine::HostTarget {
                topology: &topology,
                host: "A",
                runtimes: &runtimes,
                wait: None,
            };
            let mut session = Session::open(&server.remote(), "t1").await.unwrap();
            let want = ovsmesh::desired::desired(&topology, "A").unwrap();
            let (plan, observed) = engine::plan_host(&session, &target, &want).await.unwrap();
            assert_eq!(plan.changes.len(), 1);
            // Someone changes the same row after the plan was made.
            server.vsctl(&["set", "port", &access, "tag=400"]);
            let stale = ovs::apply(&mut session, &plan, "t1", &observed.ovs.rows, None).await;
            assert!(matches!(stale, Err(ApplyError::Conflict(_))), "{stale:?}");
            assert_eq!(
                column(server, "Port", &access, "tag"),
                "400",
                "nothing half-applied"
            );
            // The engine re-observes and converges.
            let outcome = engine::apply_host(&mut session, &target).await.unwrap();
            assert_eq!(outcome.ovs.applied.len(), 1);
        })
    });
    assert_eq!(column(server, "Port", &access, "tag"), "100");
}

#[test]
#[ignore = "needs root + OVS"]
fn a_tunnel_key_clash_with_a_foreign_tunnel_is_reported() {
    let setup = setup(false);
    let server = &setup.server;
    let vswitchd = Vswitchd::start_in(server, &setup.host);
    let text = setup.text.replace(
        "underlay_address = \"192.0.2.1/24\"\n",
        "underlay_address = \"192.0.2.1/24\"\ndatapath = \"netdev\"\nunderlay_nic = \"u0\"\n",
    );
    let topology = topology(&text);
    vswitchd.netns.exec(
        "ip",
        &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
    );
    vswitchd.netns.exec("ip", &["link", "set", "u0", "up"]);
    // A hand-made tunnel to B with the same key on another bridge.
    server.vsctl(&[
        "add-br",
        "brx",
        "--",
        "set",
        "bridge",
        "brx",
        "datapath_type=netdev",
    ]);
    server.vsctl(&[
        "add-port",
        "brx",
        "greforeign",
        "--",
        "set",
        "interface",
        "greforeign",
        "type=gre",
        "options:remote_ip=192.0.2.2",
        "options:local_ip=192.0.2.1",
        "options:key=1001",
    ]);
    // vswitchd must have set up the foreign tunnel first (it then keeps it).
    let ready = eventually(Duration::from_secs(20), || {
        column(server, "Interface", "greforeign", "ofport") != "[]"
            && column(server, "Interface", "greforeign", "ofport") != "-1"
    });
    assert!(ready, "vswitchd did not set up the foreign tunnel");
    let (outcome, _) = engine_run(
        server,
        &setup.host,
        &topology,
        "A",
        false,
        Some(Duration::from_secs(20)),
    );
    assert!(outcome.ovs.vswitchd_confirmed);
    let clash = outcome
        .ovs
        .failures
        .iter()
        .find(|f| f.id == "tunnel/ovs0/B");
    let clash = clash.unwrap_or_else(|| panic!("no clash reported: {:?}", outcome.ovs.failures));
    assert!(
        clash.error.contains("exists") || clash.error.contains("ofport -1"),
        "{clash:?}"
    );
    // The tunnel to C has no clash.
    assert!(
        !outcome.ovs.failures.iter().any(|f| f.id == "tunnel/ovs0/C"),
        "{:?}",
        outcome.ovs.failures
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn server_killed_mid_session_gives_a_clean_error() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        let (client, _updates) = connect(&server.remote(), ConnectOptions::default())
            .await
            .unwrap();
        assert!(client
            .list_dbs()
            .await
            .unwrap()
            .contains(&"Open_vSwitch".to_string()));
        server.kill();
        let error = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match client.echo().await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Err(error) => break error,
                }
            }
        })
        .await
        .expect("the dead server is noticed");
        assert!(
            matches!(error, OvsdbError::Disconnected { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&server.remote()), "{error}");
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn a_monitor_sees_a_row_deleted_by_ovs_vsctl() {
    let server = OvsdbServer::start(None, false);
    server.vsctl(&["add-br", "brm"]);
    server.vsctl(&[
        "add-port",
        "brm",
        "pm",
        "--",
        "set",
        "interface",
        "pm",
        "type=internal",
    ]);
    runtime().block_on(async {
        let (client, mut updates) = connect(&server.remote(), ConnectOptions::default())
            .await
            .unwrap();
        let initial = client
            .monitor_cond(
                ovsdb::DB,
                json!("ports"),
                json!({"Port": [{"columns": ["name"]}]}),
            )
            .await
            .unwrap();
        assert!(initial.to_string().contains("\"pm\""), "{initial}");
        server.vsctl(&["del-port", "brm", "pm"]);
        let update = tokio::time::timeout(Duration::from_secs(5), updates.recv())
            .await
            .unwrap()
            .unwrap();
        match update {
            Notification::Update {
                method,
                monitor,
                updates,
            } => {
                assert_eq!(method, "update2");
                assert_eq!(monitor, json!("ports"));
                let rows = updates["Port"].as_object().unwrap();
                assert!(
                    rows.values().any(|r| r.get("delete").is_some()),
                    "{updates}"
                );
            }
            other => panic!("{other:?}"),
        }
        client.monitor_cancel(json!("ports")).await.unwrap();
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn tcp_connection_answers_server_echo_and_probes_the_server() {
    let server = OvsdbServer::start(None, true);
    let remote = format!("tcp:127.0.0.1:{}", server.tcp_port.unwrap());
    runtime().block_on(async {
        // No probe of ours: only answering the server's echo (sent after 5 s idle) keeps us connected.
        let (quiet, _u1) = connect(
            &remote,
            ConnectOptions {
                inactivity_probe: None,
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        // Our own probe every 200 ms.
        let (probing, _u2) = connect(
            &remote,
            ConnectOptions {
                inactivity_probe: Some(Duration::from_millis(200)),
                ..ConnectOptions::default()
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(
            quiet.echo().await.is_ok(),
            "the server dropped us: its echo went unanswered"
        );
        assert!(probing.echo().await.is_ok());
        assert!(probing.lock("ovsmesh_probe").await.unwrap());
        assert!(
            !quiet.lock("ovsmesh_probe").await.unwrap(),
            "the lock is held by the other client"
        );
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn a_schema_without_a_needed_column_is_refused_with_its_name() {
    let mut schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema").unwrap(),
    )
    .unwrap();
    schema["tables"]["Port"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("protected");
    let path = std::env::temp_dir().join(unique("ovsmesh-schema-"));
    std::fs::write(&path, schema.to_string()).unwrap();
    let server = OvsdbServer::start(Some(&path), false);
    let _ = std::fs::remove_file(&path);
    let error = runtime()
        .block_on(Session::open(&server.remote(), "t1"))
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("column Port.protected") && text.contains("schema"),
        "{text}"
    );
}

#[test]
#[ignore = "needs root + OVS"]
fn cli_plan_apply_down_against_a_live_server() {
    let setup = setup(false);
    let server = &setup.server;
    let file = server.dir.join("topology.toml");
    std::fs::write(&file, &setup.text).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &setup.host.name,
                env!("CARGO_BIN_EXE_ovsmesh"),
            ])
            .args(args)
            .arg(&file)
            .env("OVSMESH_OVSDB", server.remote())
            .env_remove("OVSMESH_HOST")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = cli(&["plan", "--host", "A"]);
    assert_eq!(code, Some(2), "{out}");
    let (code, out, err) = cli(&["apply", "--host", "A", "--no-wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("+ port tunnel/ovs0/B"), "{out}");
    let (code, out, _) = cli(&["apply", "--host", "A", "--no-wait"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no changes"), "{out}");
    let (code, _, _) = cli(&["plan", "--host", "A"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = cli(&["down", "--host", "A", "--no-wait"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("- bridge ovs0"), "{out}");
    assert!(!server.vsctl(&["list-br"]).contains("ovs0"));

    // An unreachable server: one line naming the remote, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args([
            "apply",
            "--host",
            "A",
            "--ovsdb",
            "unix:/nonexistent/ovsmesh.sock",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unix:/nonexistent/ovsmesh.sock"), "{err}");
}
