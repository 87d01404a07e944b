//! Fit a host's desired state to what the host has, before the plan diffs them.
//!
//! Desired state comes from the topology alone; a few of its answers depend on
//! the host as well, and they are settled here, once, so the plan stays a plain
//! diff of two states:
//! - containers that are not running are *waiting*: whatever exists for them is
//!   left as it is and nothing new is made;
//! - an access port keeps its current incarnation while its container interface
//!   is healthy; a container whose interface vanished (restarted: new netns) gets
//!   a fresh host-side name, because on the userspace datapath a veth recreated
//!   under its old name passes no traffic.
//!
//! Pure: no I/O, unit-tested on plain states.

use std::collections::BTreeMap;

use crate::marks::Role;
use crate::state::{HostState, Kind, Note, Settled};
use crate::topology::names;

const REPLUMB: &str =
    "container interface is gone (container restarted?): re-plumb under a fresh host-side name";

/// Settle `desired` against `observed` for `mesh`.
pub fn settle(mesh: &str, desired: &HostState, observed: &HostState) -> Settled {
    let mut target = desired.clone();
    let mut seen = observed.clone();
    let waiting: Vec<String> = seen.waiting.iter().cloned().collect();
    for container in &waiting {
        // Waiting containers: leave whatever exists, make nothing new.
        let prefix = format!("{container}/");
        let access = format!("access/{container}/");
        target.containers.retain(|k, _| !k.starts_with(&prefix));
        seen.containers.retain(|k, _| !k.starts_with(&prefix));
        target.ports.retain(|k, _| !k.starts_with(&access));
        seen.ports.retain(|k, _| !k.starts_with(&access));
    }
    let mut notes = BTreeMap::new();
    for port in settle_access_names(mesh, &mut target, &seen) {
        let note = Note {
            reason: REPLUMB.to_string(),
            replace: true,
        };
        if let Some(iface) = port.strip_prefix("access/") {
            notes.insert((Kind::ContainerInterface, iface.to_string()), note.clone());
        }
        notes.insert((Kind::Port, port), note);
    }
    Settled {
        target,
        observed: seen,
        waiting,
        notes,
    }
}

/// Keep a healthy access port's current incarnation; give a container whose
/// interface vanished a fresh one. Returns the keys of re-plumbed ports.
fn settle_access_names(mesh: &str, target: &mut HostState, observed: &HostState) -> Vec<String> {
    let mut replumbs = Vec::new();
    for (key, port) in target.ports.iter_mut() {
        if port.role != Role::Access {
            continue;
        }
        let Some(current) = observed.ports.get(key) else {
            continue;
        };
        let Some(iface_key) = key.strip_prefix("access/") else {
            continue;
        };
        let Some(wanted) = target.containers.get_mut(iface_key) else {
            continue;
        };
        let (container, ifname) = (wanted.container.clone(), wanted.ifname.clone());
        let healthy = observed
            .containers
            .get(iface_key)
            .is_some_and(|seen| seen.host_end == current.name);
        let name = if healthy {
            current.name.clone()
        } else if !names::is_access_incarnation(mesh, &container, &ifname, &current.name) {
            port.name.clone()
        } else {
            replumbs.push(key.clone());
            names::next_access_incarnation(mesh, &container, &ifname, &current.name)
        };
        port.name = name.clone();
        wanted.host_end = name;
    }
    replumbs
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::desired::desired;
    use crate::topology::parse;

    const HOST: &str = r#"
[mesh]
name = "t"
[hosts.a]
underlay_address = "192.0.2.1/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.c1]
host = "a"
network = "blue"
address = "192.168.0.1"
"#;

    fn desired_a() -> HostState {
        desired(&parse(Path::new("t.toml"), HOST).unwrap(), "a").unwrap()
    }

    #[test]
    fn a_vanished_interface_gets_the_next_incarnation_and_a_reason() {
        let want = desired_a();
        let mut seen = want.clone();
        seen.containers.remove("c1/eth1");
        let settled = settle("t", &want, &seen);
        let old = &want.ports["access/c1/eth1"].name;
        let new = &settled.target.ports["access/c1/eth1"].name;
        assert_eq!(new, &names::next_access_incarnation("t", "c1", "eth1", old));
        assert_eq!(&settled.target.containers["c1/eth1"].host_end, new);
        assert_eq!(
            settled.notes[&(Kind::Port, "access/c1/eth1".to_string())].reason,
            REPLUMB
        );
        assert!(settled
            .notes
            .contains_key(&(Kind::ContainerInterface, "c1/eth1".to_string())));
    }

    #[test]
    fn a_waiting_container_is_left_out_of_both_states() {
        let want = desired_a();
        let mut seen = want.clone();
        seen.waiting.insert("c1".into());
        let settled = settle("t", &want, &seen);
        assert!(settled.target.containers.is_empty());
        assert!(!settled.observed.ports.contains_key("access/c1/eth1"));
        assert_eq!(settled.waiting, vec!["c1".to_string()]);
    }
}
