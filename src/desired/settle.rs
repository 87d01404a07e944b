//! Fit a host's desired state to what the host has, before the plan diffs them.
//!
//! Desired state comes from the topology alone; a few of its answers depend on
//! the host as well, and they are settled here, once, so the plan stays a plain
//! diff of two states. What is ours, and what becomes of what is not, is asked
//! of `marks`:
//! - containers that are not running are *waiting*: whatever exists for them is
//!   left as it is and nothing new is made;
//! - an access port keeps its current incarnation while its container interface
//!   is healthy; a container whose interface vanished (restarted: new netns) gets
//!   a fresh host-side name, because on the userspace datapath a veth recreated
//!   under its old name passes no traffic;
//! - a bridge that exists without this mesh's mark is adopted as it is (its
//!   settings and ports stay; a bridge of another mesh gets this mesh's claim);
//!   a NIC port the admin already put on it is adopted too;
//! - a bridge this mesh made but no longer wants, that another mesh claims, is
//!   handed over with its underlay port and address instead of being removed;
//! - where something not ours holds the place an object needs (a port name, a
//!   route's destination and metric, a container interface's name), the object
//!   is a *conflict*: not made, and reported; so is a container interface
//!   holding, inside, an address or route not ours that clashes with what the
//!   topology gives it (the same address with another prefix, a route to the
//!   same destination): the interface is left as it is;
//! - an `Interface.mtu_request` is this mesh's only where the desired state
//!   sets one (the internal ports it puts addresses on); elsewhere (a NIC, a
//!   tunnel, `ovs0`'s own interface) the owner's value is left alone, so it
//!   is not diffed. An adopted bridge keeps its own, like its other settings;
//! - an IPv4 setting that already has the value this mesh needs, but that this
//!   mesh has not claimed (remembered), is claimed: `marks` restores a shared
//!   setting only when the last mesh that claims it goes `down`;
//! - where the target turns IPv6 forwarding on, every interface with a default
//!   route learned from router advertisements gets `accept_ra = 2` (and keeps
//!   it while this mesh remembers it): with forwarding on, Linux drops such a
//!   route unless `accept_ra` is 2 (docker/for-linux#844), and the host would
//!   lose its IPv6 default route;
//! - the firewall rules go where the host's firewall needs them (`firewall::place`),
//!   and a rule another table's base chain would drop anyway is a conflict.
//!
//! Pure: no I/O, unit-tested on plain states.

use std::collections::BTreeMap;

use crate::marks::{self, Policy, Role};
use crate::state::{Conflict, Family, HostState, Kept, Kind, Note, Settled, Sysctl};
use crate::topology::names;

const CLAIM: &str = "already as this mesh needs it (the host's or another mesh's doing): claimed, so that it is put back only when no mesh needs it any more";
const REPLUMB: &str =
    "container interface is gone (container restarted?): re-plumb under a fresh host-side name";

/// Settle `desired` against `observed` for `mesh`.
pub fn settle(mesh: &str, desired: &HostState, observed: &HostState) -> Settled {
    let policy = Policy::new(mesh);
    let mut target = desired.clone();
    let mut seen = observed.clone();
    // Facts about what is not ours are not state to diff.
    let foreign_ports = std::mem::take(&mut seen.foreign_ports);
    let foreign_links = std::mem::take(&mut seen.foreign_links);
    let occupied = std::mem::take(&mut seen.occupied);
    let ra_routes = std::mem::take(&mut seen.ra_routes);
    let kept_ra = keep_router_advertised_routes(&mut target, &seen, &ra_routes);
    forget_unmanaged_mtu_requests(&mut seen, desired);
    let waiting: Vec<String> = seen.waiting.iter().cloned().collect();
    for container in &waiting {
        // Waiting containers: leave whatever exists, make nothing new.
        leave_container(&mut target, &mut seen, container, None);
    }
    let mut out = Settled {
        waiting,
        ..Settled::default()
    };
    for (id, dev) in kept_ra {
        let reason = format!("IPv6 forwarding would make the kernel drop {dev}'s default route from router advertisements unless accept_ra is 2 (docker/for-linux#844)");
        out.notes.insert(
            (Kind::Sysctl, id),
            Note {
                reason,
                replace: false,
            },
        );
    }
    for place in &occupied {
        let conflict = match place.kind {
            Kind::ContainerInterface if place.inside => {
                // Reported even if an earlier clash already left it alone.
                let (container, ifname) = place.id.split_once('/').unwrap_or((&place.id, ""));
                leave_container(&mut target, &mut seen, container, Some(ifname));
                format!(
                    "inside container {container}, on its interface {ifname}: {}; ovsmesh neither removes it nor changes the interface",
                    place.by
                )
            }
            Kind::ContainerInterface if target.containers.contains_key(&place.id) => {
                let (container, ifname) = place.id.split_once('/').unwrap_or((&place.id, ""));
                leave_container(&mut target, &mut seen, container, Some(ifname));
                format!(
                    "container {container} already has an interface {ifname} that ovsmesh did not make ({}); it is left alone",
                    place.by
                )
            }
            Kind::Route if target.routes.remove(&place.id).is_some() => format!(
                "a route that is not this mesh's holds its destination and metric ({}); ovsmesh does not overwrite it",
                place.by
            ),
            // Made all the same (it is needed where the other table accepts later).
            Kind::Firewall if target.firewall.contains_key(&place.id) => place.by.clone(),
            _ => continue,
        };
        out.conflicts.push(Conflict {
            kind: place.kind,
            id: place.id.clone(),
            reason: conflict,
        });
    }
    settle_port_names(&policy, &mut target, &mut seen, &foreign_ports, &mut out);
    for port in settle_access_names(mesh, &mut target, &seen) {
        let note = Note {
            reason: REPLUMB.to_string(),
            replace: true,
        };
        if let Some(iface) = port.strip_prefix("access/") {
            out.notes
                .insert((Kind::ContainerInterface, iface.to_string()), note.clone());
        }
        out.notes.insert((Kind::Port, port), note);
    }
    // A veth host end is made under the access port's name: a device by that
    // name that is not ours is in the way (and OVS would take it into the bridge).
    let taken: Vec<(String, String)> = target
        .ports
        .iter()
        .filter(|(_, p)| p.role == Role::Access && foreign_links.contains(&p.name))
        .map(|(key, p)| (key.clone(), p.name.clone()))
        .collect();
    for (key, name) in taken {
        let iface = key.strip_prefix("access/").unwrap_or(&key);
        let (container, ifname) = iface.split_once('/').unwrap_or((iface, ""));
        leave_container(&mut target, &mut seen, container, Some(ifname));
        out.notes.remove(&(Kind::Port, key.clone()));
        out.conflicts.push(Conflict {
            kind: Kind::Port,
            id: key,
            reason: format!(
                "a device named {name} that is not ovsmesh's exists; ovsmesh neither deletes it nor puts it in a bridge"
            ),
        });
    }
    settle_bridges(&policy, &mut target, &seen, &mut out);
    for (id, want) in &target.sysctls {
        if seen
            .sysctls
            .get(id)
            .is_some_and(|have| have.value == want.value && !have.claimed)
        {
            out.notes.insert(
                (Kind::Sysctl, id.clone()),
                Note {
                    reason: CLAIM.to_string(),
                    replace: false,
                },
            );
        }
    }
    super::firewall::place(&mut target, &seen, &mut out.conflicts);
    out.target = target;
    out.observed = seen;
    out
}

/// `accept_ra = 2` on the interfaces with an RA-learned default route (and on
/// those this mesh set it on before), where the target forwards IPv6; the
/// settings' ids and devices.
fn keep_router_advertised_routes(
    target: &mut HostState,
    seen: &HostState,
    ra_routes: &std::collections::BTreeSet<String>,
) -> Vec<(String, String)> {
    let forwards = target
        .sysctls
        .values()
        .any(|s| s.family == Family::Ipv6 && s.key == "forwarding" && s.value == 1);
    if !forwards {
        return Vec::new();
    }
    let claimed = seen
        .sysctls
        .values()
        .filter(|s| s.family == Family::Ipv6 && s.key == "accept_ra" && s.claimed)
        .map(|s| &s.dev);
    let mut kept = Vec::new();
    for dev in ra_routes.iter().chain(claimed) {
        let setting = Sysctl {
            family: Family::Ipv6,
            dev: dev.clone(),
            key: "accept_ra".to_string(),
            value: 2,
            claimed: true,
        };
        kept.push((setting.name(), dev.clone()));
        target.sysctls.insert(setting.name(), setting);
    }
    kept
}

/// `mtu_request` where the desired state sets none is not this mesh's: observed
/// as unset, so the plan never changes it.
fn forget_unmanaged_mtu_requests(seen: &mut HostState, desired: &HostState) {
    for (name, bridge) in &mut seen.bridges {
        if desired
            .bridges
            .get(name)
            .and_then(|b| b.mtu_request)
            .is_none()
        {
            bridge.mtu_request = None;
        }
    }
    for (key, port) in &mut seen.ports {
        if desired.ports.get(key).and_then(|p| p.mtu_request).is_none() {
            port.mtu_request = None;
        }
    }
}

/// Leave a container's interfaces (or one of them) as they are: out of both states.
pub(crate) fn leave_container(
    target: &mut HostState,
    seen: &mut HostState,
    container: &str,
    ifname: Option<&str>,
) {
    let prefix = match ifname {
        Some(ifname) => format!("{container}/{ifname}"),
        None => format!("{container}/"),
    };
    let matches = |key: &str| match ifname {
        Some(_) => key == prefix,
        None => key.starts_with(&prefix),
    };
    let access = |key: &str| key.strip_prefix("access/").is_some_and(matches);
    target.containers.retain(|k, _| !matches(k));
    seen.containers.retain(|k, _| !matches(k));
    target.ports.retain(|k, _| !access(k));
    seen.ports.retain(|k, _| !access(k));
}

/// A port the topology needs whose name a port not ours already has: a NIC the
/// admin put on the right bridge is adopted as it is; anything else is a conflict.
fn settle_port_names(
    policy: &Policy,
    target: &mut HostState,
    seen: &mut HostState,
    foreign_ports: &BTreeMap<String, String>,
    out: &mut Settled,
) {
    let taken: Vec<(String, String)> = target
        .ports
        .iter()
        .filter(|(key, _)| !seen.ports.contains_key(*key))
        .filter_map(|(key, port)| Some((key.clone(), foreign_ports.get(&port.name)?.clone())))
        .collect();
    for (key, holder) in taken {
        let Some(port) = target.ports.remove(&key) else {
            continue;
        };
        if holder == port.bridge && policy.adopts_port(port.role) {
            continue;
        }
        let name = port.name;
        if let Some(iface) = key.strip_prefix("access/") {
            let (container, ifname) = iface.split_once('/').unwrap_or((iface, ""));
            leave_container(target, seen, container, Some(ifname));
        }
        out.conflicts.push(Conflict {
            kind: Kind::Port,
            id: key,
            reason: format!(
                "a port named {name} that is not this mesh's is already on bridge {holder}; ovsmesh does not take it over"
            ),
        });
    }
}

/// Adopted bridges keep their settings (and get this mesh's claim if another
/// mesh made them); a bridge no longer wanted is handed over or released.
fn settle_bridges(policy: &Policy, target: &mut HostState, seen: &HostState, out: &mut Settled) {
    let mesh = policy.mesh();
    for (name, want) in target.bridges.iter_mut() {
        let Some(have) = seen.bridges.get(name) else {
            continue;
        };
        let mut users = have.users.clone();
        if have.owned {
            users.remove(mesh);
            want.users = users;
            continue;
        }
        if have.datapath_type != want.datapath_type {
            out.kept.push(Kept {
                kind: Kind::Bridge,
                id: name.clone(),
                reason: format!(
                    "adopted: its datapath_type {} stays as it is (the topology says {})",
                    have.datapath_type, want.datapath_type
                ),
                holders: Vec::new(),
            });
        }
        if let Some(mtu) = want.mtu_request.filter(|m| have.mtu_request != Some(*m)) {
            let theirs = have
                .mtu_request
                .map_or("unset".to_string(), |m| m.to_string());
            out.kept.push(Kept {
                kind: Kind::Bridge,
                id: name.clone(),
                reason: format!(
                    "adopted: the mtu_request of its own interface ({theirs}) stays as it is (the topology's path needs {mtu})"
                ),
                holders: Vec::new(),
            });
        }
        *want = crate::state::Bridge {
            users: policy.adopted_users(have.owned_by.as_deref(), &have.users),
            ..have.clone()
        };
    }
    for (name, have) in &seen.bridges {
        if target.bridges.contains_key(name) {
            continue;
        }
        if let Some(heir) = policy.heir(have.owned, &have.users) {
            let mut users = have.users.clone();
            users.remove(&heir);
            users.remove(mesh);
            target.bridges.insert(
                name.clone(),
                crate::state::Bridge {
                    users,
                    hand_to: Some(heir.clone()),
                    ..have.clone()
                },
            );
            let note = |reason: String| Note {
                reason,
                replace: false,
            };
            out.notes.insert(
                (Kind::Bridge, name.clone()),
                note(format!(
                    "mesh {heir} uses this bridge too: handed over to it, not removed"
                )),
            );
            // Its underlay port goes with it.
            for (key, port) in &seen.ports {
                if port.bridge == *name && port.role == Role::Underlay {
                    let mut port = port.clone();
                    port.external_ids
                        .insert(marks::MESH.to_string(), heir.clone());
                    target.ports.insert(key.clone(), port);
                    out.notes.insert(
                        (Kind::Port, key.clone()),
                        note(format!("goes with bridge {name} to mesh {heir}")),
                    );
                }
            }
        } else if !have.owned && have.users.contains(mesh) {
            let mut users = have.users.clone();
            users.remove(mesh);
            target.bridges.insert(
                name.clone(),
                crate::state::Bridge {
                    users,
                    ..have.clone()
                },
            );
            out.notes.insert(
                (Kind::Bridge, name.clone()),
                Note {
                    reason: "this mesh no longer uses it: its claim is removed".into(),
                    replace: false,
                },
            );
        }
    }
    // The underlay address stays on a bridge that outlives this mesh.
    for (key, address) in &seen.addresses {
        if address.role != crate::state::AddressRole::Underlay || target.addresses.contains_key(key)
        {
            continue;
        }
        let owned = seen.bridges.get(&address.dev).is_some_and(|b| b.owned);
        let handed_over = target
            .bridges
            .get(&address.dev)
            .is_some_and(|b| b.hand_to.is_some());
        if policy.underlay_address_stays(owned, handed_over) {
            target.addresses.insert(key.clone(), address.clone());
        }
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
#[path = "settle_tests.rs"]
mod tests;
