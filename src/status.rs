//! `ovsmesh status`: what a host looks like against its topology, and the host
//! settings users otherwise debug for hours.
//!
//! Per container interface: attached, waiting (not running), drifted (the
//! plan would change it) or conflict (something not ovsmesh's holds its
//! place). Per tunnel: up, or OVS's error, and the BFD state. The number of
//! pending changes, the changes a running daemon reports stuck (applied, and
//! undone again each time), and warnings: conflicts, forwarding disabled where
//! the topology routes, a firewall FORWARD policy that drops, a tunnel whose
//! BFD is down (the tunnel protocol is likely blocked between the hosts). The
//! firewall line says what `host::firewall` found: the FORWARD policy and the
//! mesh's accept rules; a missing or stale rule counts as not converged.
//! The command exits 0 when converged, 2 when not.

use std::fmt::Write as _;

use serde::Serialize;

use crate::daemon::stuck::{self, StuckChange};
use crate::engine::Observed;
use crate::host::firewall;
use crate::marks::{self, Role};
use crate::netlink::sysctl;
use crate::plan::{Kind, Plan};
use crate::state::HostState;
use crate::topology::Encap;

#[derive(Debug, Serialize)]
struct InterfaceStatus {
    interface: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drift: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TunnelStatus {
    tunnel: String,
    port: String,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bfd: Option<String>,
}

/// A host's status against its topology.
#[derive(Debug, Serialize)]
pub struct Status {
    pub host: String,
    pub converged: bool,
    pub pending_changes: usize,
    interfaces: Vec<InterfaceStatus>,
    tunnels: Vec<TunnelStatus>,
    /// Changes the daemon of this host keeps re-applying (see `daemon::stuck`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<StuckChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    firewall: Option<firewall::Check>,
    pub warnings: Vec<String>,
}

/// The status of a host from its full desired state (the plan's target leaves
/// waiting containers out), the plan, and what was observed; reads the host's
/// forwarding and firewall settings for the warnings.
pub fn report(desired: &HostState, plan: &Plan, observed: &Observed, encap: Encap) -> Status {
    let mut interfaces = Vec::new();
    for (key, iface) in &desired.containers {
        let drift: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| {
                (c.kind == Kind::ContainerInterface && &c.id == key)
                    || (c.kind == Kind::Port && c.id == format!("access/{key}"))
            })
            .map(|c| format!("{} {}: {}", c.kind.as_str(), c.id, c.reason))
            .collect();
        let conflicted = plan.conflicts.iter().any(|c| {
            (c.kind == Kind::ContainerInterface && &c.id == key)
                || (c.kind == Kind::Port && c.id == format!("access/{key}"))
        });
        let state = if plan.waiting.contains(&iface.container) {
            "waiting"
        } else if conflicted {
            "conflict"
        } else if drift.is_empty() {
            "attached"
        } else {
            "drifted"
        };
        interfaces.push(InterfaceStatus {
            interface: key.clone(),
            state,
            drift,
        });
    }
    let mut tunnels = Vec::new();
    let mut warnings = Vec::new();
    for (key, port) in desired.ports.iter().filter(|(_, p)| p.role == Role::Tunnel) {
        let status = observed.ovs.rows.status.get(key);
        let state = match status {
            None => "missing".to_string(),
            Some(s) => match (&s.error, s.ofport) {
                (Some(error), _) => format!("error: {error}"),
                (None, Some(ofport)) if ofport > 0 => "up".to_string(),
                _ => "pending".to_string(),
            },
        };
        let bfd = status.and_then(|s| s.bfd_state.clone());
        if bfd.as_deref() == Some("down") {
            warnings.push(format!(
                "tunnel {key}: BFD is down — {} between the hosts is likely blocked by a firewall",
                match encap {
                    Encap::Gre => "GRE (IP protocol 47)",
                    Encap::Vxlan => "VXLAN (UDP 4789)",
                    Encap::Geneve => "Geneve (UDP 6081)",
                }
            ));
        }
        tunnels.push(TunnelStatus {
            tunnel: key.clone(),
            port: port.name.clone(),
            state,
            bfd,
        });
    }
    // Something not ovsmesh's holds the place of these: a person must decide.
    warnings.extend(plan.conflicts.iter().map(|c| format!("conflict: {c}")));
    for dev in desired.forwarding.keys() {
        if sysctl::forwarding(dev) == Some(false) {
            warnings.push(format!(
                "IPv4 forwarding is disabled on {dev}: routed container traffic will not pass"
            ));
        }
    }
    let routes = !desired.forwarding.is_empty();
    if let Some(check) = &observed.firewall {
        warnings.extend(check.warnings(routes));
    } else if routes {
        if let Some(policy) = forward_policy() {
            if policy == "DROP" {
                warnings.push("the firewall's FORWARD policy is DROP: routed container traffic is dropped unless a rule accepts it".into());
            }
        }
    }
    // The mesh is the one the desired rows are marked with.
    let mesh = desired
        .ports
        .values()
        .find_map(|p| p.external_ids.get(marks::MESH));
    let stuck = mesh.map_or_else(Vec::new, |mesh| {
        stuck::read(&observed.ovs.rows.root, mesh, &desired.host)
    });
    let firewall = observed.firewall.clone();
    let firewall_converged = firewall.as_ref().is_none_or(firewall::Check::converged);
    Status {
        host: desired.host.clone(),
        converged: plan.is_empty() && firewall_converged,
        pending_changes: plan.changes.len(),
        interfaces,
        tunnels,
        stuck,
        firewall,
        warnings,
    }
}

/// The status as text.
pub fn render_text(status: &Status) -> String {
    let mut out = String::new();
    let summary = if status.converged {
        "converged".to_string()
    } else if status.pending_changes == 0 {
        "firewall changes pending".to_string()
    } else {
        format!("{} change(s) pending", status.pending_changes)
    };
    let _ = writeln!(out, "host {}: {summary}", status.host);
    for iface in &status.interfaces {
        let _ = writeln!(out, "  interface {:<24} {}", iface.interface, iface.state);
        for drift in &iface.drift {
            let _ = writeln!(out, "      {drift}");
        }
    }
    for tunnel in &status.tunnels {
        let bfd = tunnel
            .bfd
            .as_deref()
            .map(|b| format!(", BFD {b}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  tunnel    {:<24} {} ({}){bfd}",
            tunnel.tunnel, tunnel.state, tunnel.port
        );
    }
    for change in &status.stuck {
        let _ = writeln!(
            out,
            "  stuck     {} {} ({}): applied {} times in a row, undone each time; the daemon backs off",
            change.kind, change.id, change.op, change.applied
        );
    }
    if let Some(check) = &status.firewall {
        let _ = writeln!(out, "  firewall  {}", check.summary());
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    out
}

/// The iptables FORWARD chain policy, if iptables is there to ask.
fn forward_policy() -> Option<String> {
    let out = std::process::Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("-P FORWARD "))
        .map(|p| p.trim().to_string())
}
