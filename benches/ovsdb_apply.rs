//! Benchmark: one host, 3 peers, 1000 access ports against a real ovsdb-server.
//! Prints cold apply time and write-transaction count (target: exactly 1),
//! no-op plan time (target <= 50 ms) and the client's memory.
//! Run with `cargo bench --bench ovsdb_apply` (needs ovsdb-server, as root).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::Instant;

use ovsmesh::ovs::{self, Session};

const PORTS: usize = 1000;

fn topology_text() -> String {
    let mut text = String::from("[mesh]\nname = \"bench\"\n");
    for (i, host) in ["A", "B", "C", "D"].iter().enumerate() {
        let _ = write!(
            text,
            "[hosts.{host}]\nunderlay_address = \"192.0.2.{}/24\"\n",
            i + 1
        );
    }
    text.push_str("[networks.v100]\nkind = \"vlan\"\nvlan = 100\nsubnet = \"100.64.0.0/16\"\n");
    for c in 0..PORTS {
        let _ = write!(
            text,
            "[containers.c{c}]\nhost = \"A\"\nnetns = \"c{c}\"\nnetwork = \"v100\"\naddress = \"100.64.{}.{}\"\n",
            (c + 1) / 250,
            (c + 1) % 250 + 1
        );
    }
    for (i, host) in ["B", "C", "D"].iter().enumerate() {
        let _ = write!(
            text,
            "[containers.peer{host}]\nhost = \"{host}\"\nnetns = \"p{host}\"\nnetwork = \"v100\"\naddress = \"100.64.200.{}\"\n",
            i + 1
        );
    }
    text
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let server = common::OvsdbServer::start(None, false);
    let topology = common::topology(&topology_text());
    let runtime = common::runtime();
    runtime.block_on(async {
        let mut session = Session::open(&server.remote(), "bench").await.unwrap();
        // The OVS half only: 1000 containers need no namespaces to measure OVSDB.
        let want = ovsmesh::desired::desired(&topology, "A").unwrap().ovs_part();
        let bridges = ovsmesh::engine::managed_bridges(&topology);
        let plan_ovs = |observed: &ovs::OvsObserved| {
            ovsmesh::plan::plan(&ovsmesh::desired::settle("bench", &want, &observed.state))
        };
        let start = Instant::now();
        let observed = ovs::observe(&session.client, "A", "bench", &bridges).await.unwrap();
        let plan = plan_ovs(&observed);
        let report = ovs::apply(&mut session, &plan, "bench", &observed.rows, None).await.unwrap();
        let cold = start.elapsed();
        let writes = session.write_transactions;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            let observed = ovs::observe(&session.client, "A", "bench", &bridges).await.unwrap();
            assert!(plan_ovs(&observed).is_empty());
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "ovsdb_apply: cold apply of {} changes ({PORTS} access ports, 3 tunnels) {:.0} ms in {writes} write transaction(s) (target: exactly 1)",
            report.applied.len(),
            cold.as_secs_f64() * 1e3
        );
        println!("ovsdb_apply: no-op plan (observe + diff) best of 5: {:.1} ms (target <= 50 ms)", best * 1e3);
        println!(
            "ovsdb_apply: client memory: RSS {} KiB, peak {} KiB",
            rss_kib("VmRSS:"),
            rss_kib("VmHWM:")
        );
    });
}
