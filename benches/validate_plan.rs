//! Benchmark: validate + offline plan of a generated 1000 hosts × 50 containers.
//! Target: ≤ 1 s. Prints its figures; run with `cargo bench --bench validate_plan`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const HOSTS: usize = 1000;
const CONTAINERS_PER_HOST: usize = 50;
const VLANS: usize = 20;

fn generate() -> String {
    let mut text = String::from("[mesh]\nname = \"bench\"\n\n");
    for h in 0..HOSTS {
        // 198.18.0.0/15, the benchmarking range; nothing is sent anywhere.
        let _ = writeln!(
            text,
            "[hosts.h{h}]\nunderlay_address = \"198.{}.{}.{}/15\"\ndatapath = \"netdev\"\nunderlay_nic = \"eth1\"\n",
            18,
            (h + 1) / 256,
            (h + 1) % 256
        );
    }
    for v in 0..VLANS {
        let _ = writeln!(
            text,
            "[networks.v{v}]\nkind = \"vlan\"\nvlan = {}\nsubnet = \"100.{v}.0.0/16\"\n",
            v + 100
        );
    }
    text.push_str("[networks.pods]\nkind = \"routed\"\n[networks.pods.subnets]\n");
    for h in 0..HOSTS {
        let _ = writeln!(text, "h{h} = \"172.{}.{}.0/24\"", 16 + h / 256, h % 256);
    }
    text.push('\n');
    for h in 0..HOSTS {
        for c in 0..CONTAINERS_PER_HOST {
            let index = h * CONTAINERS_PER_HOST + c;
            if c % 2 == 0 {
                let v = index % VLANS;
                let slot = index / VLANS + 1;
                let _ = writeln!(
                    text,
                    "[containers.c{index}]\nhost = \"h{h}\"\nnetns = \"c{index}\"\nnetwork = \"v{v}\"\naddress = \"100.{v}.{}.{}\"\n",
                    slot / 250,
                    slot % 250 + 1
                );
            } else {
                let _ = writeln!(
                    text,
                    "[containers.c{index}]\nhost = \"h{h}\"\nnetns = \"c{index}\"\nnetwork = \"pods\"\naddress = \"172.{}.{}.{}\"\n",
                    16 + h / 256,
                    h % 256,
                    c + 10
                );
            }
        }
    }
    text
}

fn main() {
    let text = generate();
    let mut best = f64::MAX;
    let mut summary = String::new();
    for _ in 0..3 {
        let start = Instant::now();
        let topology = match ovsmesh::topology::parse(Path::new("bench.toml"), &text) {
            Ok(topology) => topology,
            Err(invalid) => panic!(
                "generated topology is invalid:\n{}",
                invalid.messages()[..3.min(invalid.problems.len())].join("\n")
            ),
        };
        let validated = start.elapsed();
        let desired = ovsmesh::desired::desired(&topology, "h500").unwrap();
        let empty = ovsmesh::state::HostState {
            host: "h500".into(),
            ..Default::default()
        };
        let plan = ovsmesh::plan::plan(&ovsmesh::desired::settle(
            &topology.mesh.name,
            &desired,
            &empty,
        ));
        let rendered = ovsmesh::plan::render_text(&plan);
        let total = start.elapsed();
        best = best.min(total.as_secs_f64());
        summary = format!(
            "validate {:.0} ms, desired+plan+render {:.0} ms, total {:.0} ms; {} changes, {} bytes of plan",
            validated.as_secs_f64() * 1e3,
            (total - validated).as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3,
            plan.changes.len(),
            rendered.len()
        );
    }
    println!(
        "validate_plan: {HOSTS} hosts x {CONTAINERS_PER_HOST} containers ({} KiB of TOML): {summary}",
        text.len() / 1024
    );
    println!(
        "validate_plan: best total {:.0} ms (target <= 1000 ms)",
        best * 1e3
    );
}
