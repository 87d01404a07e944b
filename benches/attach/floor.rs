//! The floor on this machine: what any tool has to do at least, done with the
//! fastest means there are — one `ip -batch` making every veth (the peer born
//! in the container as `eth1`, the host end up) and one `ovs-vsctl` transaction
//! adding every port with its tag, waiting for ovs-vswitchd. Inside the
//! containers nothing is configured (a few messages per container more), so
//! the real floor is a little higher than this.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::common::run;
use crate::fleet::{Fleet, Host, Spec};

pub struct Floor {
    pub veths: Duration,
    pub transaction: Duration,
}

impl Floor {
    pub fn total(&self) -> Duration {
        self.veths + self.transaction
    }
}

pub fn measure(host: &Host, fleet: &Fleet, spec: &Spec) -> Floor {
    host.add_netdev_bridge("ovs0");
    let mut batch = String::new();
    for member in &spec.members {
        let i = member.index;
        let _ = writeln!(
            batch,
            "link add f{i} type veth peer name eth1 netns {}\nlink set f{i} up",
            fleet.pid(i)
        );
    }
    let file = host.server.dir.join("floor.batch");
    std::fs::write(&file, batch).unwrap();
    let start = Instant::now();
    run(
        "ip",
        &["-n", &host.netns.name, "-batch", file.to_str().unwrap()],
    );
    let veths = start.elapsed();
    let db = format!("--db={}", host.server.remote());
    let mut args: Vec<String> = vec![db, "--timeout=600".into()];
    for member in &spec.members {
        args.extend([
            "--".into(),
            "add-port".into(),
            "ovs0".into(),
            format!("f{}", member.index),
            format!("tag={}", member.vlan),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    run("ovs-vsctl", &args);
    Floor {
        veths,
        transaction: start.elapsed(),
    }
}
