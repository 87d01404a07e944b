//! The OVS transaction against a real ovsdb-server (and ovs-vswitchd where the
//! test needs it): what its guards stop and what they let pass, and what the
//! read-back after it reports.

mod common;

use std::time::Duration;

use common::*;
use ovsmesh::ovs::{self, Session};
use ovsmesh::ovsdb::{self, transact, ConnectOptions};
use serde_json::json;

/// Host A (with peer B) and `n` containers on one VLAN of A.
fn many_on_a(mesh: &str, n: usize, vlan: u16) -> String {
    let mut text = format!(
        r#"
[mesh]
name = "{mesh}"
[hosts.A]
underlay_address = "192.0.2.1/24"
[hosts.B]
underlay_address = "192.0.2.2/24"
[networks.v]
kind = "vlan"
vlan = {vlan}
subnet = "10.20.0.0/16"
[containers.b1]
host = "B"
network = "v"
address = "10.20.255.1"
"#
    );
    for i in 0..n {
        text.push_str(&format!(
            "[containers.c{i}]\nhost = \"A\"\nnetns = \"c{i}\"\nnetwork = \"v\"\naddress = \"10.20.{}.{}\"\n",
            i / 200,
            i % 200 + 1
        ));
    }
    text
}

/// The OVS part of a plan towards `text` for host A, against what the server
/// has (every container's interface taken as healthy: no re-plumb).
async fn ovs_plan(
    session: &Session,
    text: &str,
) -> (ovsmesh::plan::Plan, ovsmesh::ovs::OvsObserved) {
    let topology = topology(text);
    let want = ovsmesh::desired::desired(&topology, "A").unwrap();
    let bridges = ovsmesh::engine::managed_bridges(&topology);
    let mut observed = ovs::observe(&session.client, "A", &topology.mesh.name, &bridges)
        .await
        .unwrap();
    observed.state.containers = want.containers.clone();
    let settled = ovsmesh::desired::settle(&topology.mesh.name, &want, &observed.state);
    (ovsmesh::plan::plan(&settled), observed)
}

#[test]
#[ignore = "needs root + OVS"]
fn statistics_rewritten_between_plan_and_apply_cause_no_retry_at_scale() {
    const PORTS: usize = 400;
    let server = OvsdbServer::start(None, false);
    let mesh = unique("st");
    runtime().block_on(async {
        let mut session = Session::open(&server.remote(), &mesh).await.unwrap();
        let (plan, observed) = ovs_plan(&session, &many_on_a(&mesh, PORTS, 100)).await;
        ovs::apply(&mut session, &plan, &mesh, &observed.rows, None)
            .await
            .unwrap();

        // The VLAN moves: every access port (and the trunk of the tunnel) is updated.
        let moved = many_on_a(&mesh, PORTS, 101);
        let (plan, observed) = ovs_plan(&session, &moved).await;
        let updates = plan
            .changes
            .iter()
            .filter(|c| c.kind == ovsmesh::plan::Kind::Port && c.op == ovsmesh::plan::Op::Update)
            .count();
        assert_eq!(updates, PORTS + 1, "{:?}", plan.changes.first());

        // Meanwhile ovs-vswitchd (here: another client) rewrites every
        // interface's statistics, as it does every few seconds.
        let (client, _) = ovsdb::connect(&server.remote(), ConnectOptions::default())
            .await
            .unwrap();
        let rows = client
            .transact(
                ovsdb::DB,
                vec![transact::select("Interface", json!([]), &["_uuid"])],
            )
            .await
            .unwrap();
        let statistics: Vec<_> = rows[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let uuid = row["_uuid"][1].as_str().unwrap();
                let stats = json!(["map", [["rx_packets", 7], ["tx_packets", 9]]]);
                transact::update("Interface", uuid, json!({ "statistics": stats }))
            })
            .collect();
        assert!(statistics.len() > PORTS);
        client.transact(ovsdb::DB, statistics).await.unwrap();

        // The update goes through at once: one transaction, no guard conflict.
        let before = session.write_transactions;
        let applied = ovs::apply(&mut session, &plan, &mesh, &observed.rows, None).await;
        assert!(applied.is_ok(), "{applied:?}");
        assert_eq!(session.write_transactions - before, 1);
    });
    let want = ovsmesh::desired::desired(&topology(&many_on_a(&mesh, PORTS, 101)), "A").unwrap();
    let port = &want.ports["access/c7/eth1"].name;
    assert_eq!(server.vsctl(&["get", "Port", port, "tag"]).trim(), "101");
}

#[test]
#[ignore = "needs root + OVS"]
fn an_access_port_vswitchd_cannot_open_is_reported() {
    let server = OvsdbServer::start(None, false);
    let host = Netns::new("oal");
    host.exec(
        "ip",
        &["link", "add", "u0", "type", "veth", "peer", "name", "u0p"],
    );
    host.exec("ip", &["link", "set", "u0", "up"]);
    let _vswitchd = Vswitchd::start_in(&server, &host);
    let mesh = unique("ap");
    let text = many_on_a(&mesh, 1, 100).replace(
        "underlay_address = \"192.0.2.1/24\"\n",
        "underlay_address = \"192.0.2.1/24\"\ndatapath = \"netdev\"\nunderlay_nic = \"u0\"\n",
    );
    // Only the OVS half: the access port's veth is never made.
    let report = runtime().block_on(async {
        let mut session = Session::open(&server.remote(), &mesh).await.unwrap();
        let (plan, observed) = ovs_plan(&session, &text).await;
        let wait = Some(Duration::from_secs(20));
        ovs::apply(&mut session, &plan, &mesh, &observed.rows, wait)
            .await
            .unwrap()
    });
    assert!(report.vswitchd_confirmed, "{report:?}");
    let failure = report
        .failures
        .iter()
        .find(|f| f.id == "access/c0/eth1")
        .unwrap_or_else(|| panic!("not reported: {:?}", report.failures));
    assert!(
        failure.error.contains("No such device") || failure.error.contains("ofport -1"),
        "{failure:?}"
    );
    // The tunnel to B is fine.
    assert!(!report.failures.iter().any(|f| f.id.starts_with("tunnel/")));
}
