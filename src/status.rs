//! `ovsmesh status`: what a host looks like against its topology, and the host
//! settings users otherwise debug for hours.
//!
//! Per container interface: attached, waiting (not running), drifted (the
//! plan would change it) or conflict (something not ovsmesh's holds its
//! place). Per tunnel: up, or OVS's error, and the BFD state. The number of
//! pending changes, the changes a running daemon reports stuck (applied, and
//! undone again each time), and warnings: conflicts, a container whose default
//! route from ovsmesh loses to another one, forwarding disabled where
//! the topology routes, a firewall FORWARD policy that drops, a tunnel whose
//! BFD is down (the tunnel protocol is likely blocked between the hosts). The
//! firewall line says what `host::firewall` read: the backend, the FORWARD
//! policy and how many of the mesh's rules are in place (a missing or moved
//! rule is a plan change, so not converged; another nftables table dropping the
//! mesh's traffic is a conflict).
//! The command exits 0 when converged, 2 when not.

use std::fmt::Write as _;

use serde::Serialize;

use crate::daemon::follow::Verdict;
use crate::daemon::report::Report;
use crate::daemon::stuck::{self, StuckChange};
use crate::engine::Observed;
use crate::host::firewall;
use crate::marks::{self, Role};
use crate::netlink::sysctl;
use crate::plan::{Kind, Plan};
use crate::state::{FirewallRule, HostState};
use crate::topology::{Encap, Mesh};

#[derive(Debug, Serialize)]
struct InterfaceStatus {
    interface: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drift: Vec<String>,
}

/// A Docker container attached through the network plugin.
#[derive(Debug, Serialize)]
struct EndpointStatus {
    endpoint: String,
    network: String,
    address: String,
    port: String,
    state: &'static str,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    endpoints: Vec<EndpointStatus>,
    tunnels: Vec<TunnelStatus>,
    /// Changes the daemon of this host keeps re-applying (see `daemon::stuck`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<StuckChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    firewall: Option<firewall::Check>,
    pub warnings: Vec<String>,
    /// What this host's running daemon reports: its topology source, the commit
    /// applied, commits refused or rolled back (see `daemon::report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Report>,
}

/// The status of a host from its full desired state (the plan's target leaves
/// waiting containers out), the plan, and what was observed; reads the host's
/// forwarding and firewall settings for the warnings.
pub fn report(desired: &HostState, plan: &Plan, observed: &Observed, mesh: &Mesh) -> Status {
    let encap = mesh.encap;
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
        let state = if served_by_docker(desired, observed, key) {
            "docker endpoint"
        } else if plan.waiting.contains(&iface.container) {
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
    let endpoints = observed
        .state
        .endpoints
        .values()
        .map(|link| {
            let key = format!("endpoint/{}", link.mark.endpoint);
            let pending = plan.changes.iter().any(|c| c.id == key);
            EndpointStatus {
                endpoint: link.mark.endpoint.chars().take(12).collect(),
                network: link.mark.network.clone(),
                address: link.mark.address.to_string(),
                port: link.host_end.clone(),
                state: if pending { "drifted" } else { "attached" },
            }
        })
        .collect();
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
                tunnel_protocol(encap, mesh.udp_port())
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
    // Inside containers: another default route wins over the mesh's.
    warnings.extend(observed.state.overridden.iter().cloned());
    for dev in desired.forwarding.keys() {
        if sysctl::forwarding(dev) == Some(false) {
            warnings.push(format!(
                "IPv4 forwarding is disabled on {dev}: routed container traffic will not pass"
            ));
        }
    }
    let routes = !desired.forwarding.is_empty();
    // Where the rules go on this host: the settle step's answer for the full desired state.
    let mut placed = desired.clone();
    crate::desired::firewall::place(&mut placed, &observed.state, &mut Vec::new());
    let rules: Vec<&FirewallRule> = placed.firewall.values().collect();
    let check = firewall::check(&observed.firewall, plan, &rules, mesh.manage_firewall);
    warnings.extend(check.warnings(routes));
    // The mesh is the one the desired rows are marked with.
    let mesh = desired
        .ports
        .values()
        .find_map(|p| p.external_ids.get(marks::MESH));
    let stuck = mesh.map_or_else(Vec::new, |mesh| {
        stuck::read(&observed.ovs.rows.root, mesh, &desired.host)
    });
    Status {
        host: desired.host.clone(),
        converged: plan.is_empty(),
        pending_changes: plan.changes.len(),
        interfaces,
        endpoints,
        tunnels,
        stuck,
        firewall: Some(check),
        warnings,
        daemon: None,
    }
}

/// Whether a Docker endpoint has this declared interface's address on its
/// network (same bridge and tag): Docker plugged it in, the `--net=none` path
/// leaves it alone (see `desired::endpoint::serve`).
fn served_by_docker(desired: &HostState, observed: &Observed, key: &str) -> bool {
    let (Some(iface), Some(access)) = (
        desired.containers.get(key),
        desired.ports.get(&format!("access/{key}")),
    ) else {
        return false;
    };
    observed.state.endpoints.values().any(|link| {
        let port = observed
            .state
            .ports
            .get(&format!("endpoint/{}", link.mark.endpoint));
        Some(link.mark.address) == iface.address
            && port.is_some_and(|p| p.bridge == access.bridge && p.tag == access.tag)
    })
}

/// The status as text.
pub fn render_text(status: &Status) -> String {
    let mut out = String::new();
    let summary = if status.converged {
        "converged".to_string()
    } else if status.pending_changes == 0 {
        "conflicts (see the warnings)".to_string()
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
    for endpoint in &status.endpoints {
        let _ = writeln!(
            out,
            "  endpoint  {:<24} {} (Docker endpoint {}, port {})",
            format!("{} {}", endpoint.network, endpoint.address),
            endpoint.state,
            endpoint.endpoint,
            endpoint.port
        );
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
    if let Some(daemon) = &status.daemon {
        render_daemon(&mut out, daemon);
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    out
}

/// The daemon's source lines: where the topology comes from, the commit in force,
/// what was refused or rolled back.
fn render_daemon(out: &mut String, daemon: &Report) {
    let _ = writeln!(out, "  source    {}", daemon.source);
    if let Some(applied) = &daemon.applied {
        let trust = match (&applied.signer, daemon.unsigned_trusted) {
            (Some(signer), _) => format!("signed by {signer}"),
            (None, true) => "unsigned: the remote is trusted".to_string(),
            (None, false) => "signature not checked".to_string(),
        };
        let probation = if daemon.probation {
            ", on probation"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  commit    {} applied {} ({trust}){probation}",
            applied.commit,
            utc(applied.at)
        );
    }
    for bad in &daemon.bad {
        let verdict = match bad.verdict {
            Verdict::Refused => "refused  ",
            Verdict::RolledBack => "rolled back",
        };
        let _ = writeln!(
            out,
            "  {verdict} {} at {}: {}",
            crate::source::short(&bad.commit),
            utc(bad.at),
            bad.reason
        );
    }
    if let Some(error) = &daemon.fetch_error {
        let _ = writeln!(out, "  fetch     failing: {error}");
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (Howard Hinnant's civil_from_days).
fn utc(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// What a firewall between the hosts must let through for the mesh's tunnels
/// (the UDP port is the mesh's `dst_port` when it has one).
fn tunnel_protocol(encap: Encap, udp_port: Option<u16>) -> String {
    match (encap, udp_port) {
        (Encap::Vxlan, Some(port)) => format!("VXLAN (UDP {port})"),
        (Encap::Geneve, Some(port)) => format!("Geneve (UDP {port})"),
        (Encap::Ip6gre, _) => "ip6gre (IPv6 next header 47)".to_string(),
        _ => "GRE (IP protocol 47)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_tunnel_names_the_meshs_own_udp_port() {
        assert_eq!(
            tunnel_protocol(Encap::Vxlan, Some(8472)),
            "VXLAN (UDP 8472)"
        );
        assert_eq!(
            tunnel_protocol(Encap::Geneve, Some(6081)),
            "Geneve (UDP 6081)"
        );
        assert_eq!(tunnel_protocol(Encap::Gre, None), "GRE (IP protocol 47)");
    }

    #[test]
    fn times_are_printed_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(utc(1_796_289_932), "2026-12-03 09:25:32 UTC");
    }
}
