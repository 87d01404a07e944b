//! What `lab up` tells its user: where each host and container of the twin is,
//! what was applied and what failed.

use std::fmt::Write as _;

use super::{Lab, UpReport};
use crate::topology::{Runtime, Topology};

/// The summary of a lab that is up (`docker`: whether its Docker containers were started).
pub fn render_up(lab: &Lab, topology: &Topology, report: &UpReport, docker: bool) -> String {
    let twin = lab.twin(topology);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} of mesh {} is up ({:.1} s)",
        lab.prefix, topology.mesh.name, report.seconds
    );
    let _ = writeln!(
        out,
        "underlay switch: namespace {} (bridge br0)",
        lab.switch_ns()
    );
    for (name, host) in &twin.hosts {
        let outcome = &report.outcomes[name];
        let _ = writeln!(
            out,
            "host {name}: namespace {}, underlay {} on {}, OVSDB {}, logs {}",
            lab.host_ns(name),
            [
                host.underlay_address.map(|a| a.to_string()),
                host.underlay_address6.map(|a| a.to_string())
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
            topology.mesh.underlay_bridge,
            lab.ovsdb_remote(name),
            lab.host_dir(name).display()
        );
        let _ = writeln!(
            out,
            "  applied {} change(s); waiting: {}",
            outcome.ovs.applied.len() + outcome.netlink.applied.len(),
            if outcome.plan.waiting.is_empty() {
                "none".to_string()
            } else {
                outcome.plan.waiting.join(", ")
            }
        );
        for failure in &outcome.ovs.failures {
            let _ = writeln!(
                out,
                "  FAILED port {} ({}): {}",
                failure.id, failure.name, failure.error
            );
        }
        for failure in &outcome.netlink.failures {
            let _ = writeln!(
                out,
                "  FAILED {} {}: {}",
                failure.kind.as_str(),
                failure.id,
                failure.error
            );
        }
    }
    for container in twin.containers.values() {
        let place = match &container.runtime {
            Runtime::Netns(ns) => format!("ip netns exec {ns} ..."),
            Runtime::Docker(name) if docker => format!("docker exec {name} ..."),
            Runtime::Docker(name) => {
                format!("docker container {name} (not started: use --docker)")
            }
        };
        let addresses: Vec<String> = container
            .interfaces
            .iter()
            .map(|i| {
                let addresses: Vec<String> = i.addresses().iter().map(|a| a.to_string()).collect();
                format!("{} {} ({})", i.ifname, addresses.join(" "), i.network)
            })
            .collect();
        let _ = writeln!(
            out,
            "container {} on {}: {}; {place}",
            container.name,
            container.host,
            addresses.join(", ")
        );
    }
    out
}
