//! `ovsmesh status`: what a host looks like against its topology, and the host
//! settings users otherwise debug for hours.
//!
//! Per container interface: attached, waiting (not running) or drifted (the
//! plan would change it). Per tunnel: up, or OVS's error, and the BFD state.
//! The number of pending changes, and warnings: forwarding disabled where the
//! topology routes, a firewall FORWARD policy that drops, a tunnel whose BFD
//! is down (the tunnel protocol is likely blocked between the hosts).
//! Exit 0 when converged, 2 when not.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::engine;
use crate::marks::Role;
use crate::netlink::sysctl;
use crate::plan::Kind;

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

pub fn command(
    path: &Path,
    host: Option<String>,
    lab: Option<&crate::lab::Lab>,
    ovsdb: Option<String>,
    docker: Option<String>,
    json_output: bool,
) -> i32 {
    let topology = match crate::topology::load(path) {
        Ok(topology) => match lab {
            Some(lab) => lab.twin(&topology),
            None => topology,
        },
        Err(error) => {
            eprintln!("{error}");
            return crate::cli::EXIT_INVALID;
        }
    };
    let Some(host) = host else {
        eprintln!("ovsmesh: no --host given, OVSMESH_HOST unset and no hostname");
        return crate::cli::EXIT_INVALID;
    };
    if !topology.hosts.contains_key(&host) {
        eprintln!("ovsmesh: host {host:?} is not in the topology");
        return crate::cli::EXIT_INVALID;
    }
    let env = std::env::var("OVSMESH_OVSDB").ok();
    let remote = engine::ovsdb_remote(ovsdb.as_deref(), env.as_deref(), &topology, &host);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(engine::plan_remote(
        &topology,
        &host,
        &remote,
        docker.as_deref(),
    ));
    let (plan, observed) = match result {
        Ok(found) => found,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            return crate::cli::EXIT_FAILURE;
        }
    };
    // The full desired state: the plan's target leaves waiting containers out.
    let desired = match crate::desired::desired(&topology, &host) {
        Ok(desired) => desired,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            return crate::cli::EXIT_INVALID;
        }
    };

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
        let state = if plan.waiting.contains(&iface.container) {
            "waiting"
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
                match topology.mesh.encap {
                    crate::topology::Encap::Gre => "GRE (IP protocol 47)",
                    crate::topology::Encap::Vxlan => "VXLAN (UDP 4789)",
                    crate::topology::Encap::Geneve => "Geneve (UDP 6081)",
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
    for dev in desired.forwarding.keys() {
        if sysctl::forwarding(dev) == Some(false) {
            warnings.push(format!(
                "IPv4 forwarding is disabled on {dev}: routed container traffic will not pass"
            ));
        }
    }
    if !desired.forwarding.is_empty() {
        if let Some(policy) = forward_policy() {
            if policy == "DROP" {
                warnings.push("the firewall's FORWARD policy is DROP: routed container traffic is dropped unless a rule accepts it".into());
            }
        }
    }
    let converged = plan.is_empty();
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "host": host,
                "converged": converged,
                "pending_changes": plan.changes.len(),
                "interfaces": interfaces,
                "tunnels": tunnels,
                "warnings": warnings,
            }))
            .expect("status serializes")
        );
    } else {
        println!(
            "host {host}: {}",
            if converged {
                "converged".to_string()
            } else {
                format!("{} change(s) pending", plan.changes.len())
            }
        );
        for iface in &interfaces {
            println!("  interface {:<24} {}", iface.interface, iface.state);
            for drift in &iface.drift {
                println!("      {drift}");
            }
        }
        for tunnel in &tunnels {
            let bfd = tunnel
                .bfd
                .as_deref()
                .map(|b| format!(", BFD {b}"))
                .unwrap_or_default();
            println!(
                "  tunnel    {:<24} {} ({}){bfd}",
                tunnel.tunnel, tunnel.state, tunnel.port
            );
        }
        for warning in &warnings {
            println!("  warning: {warning}");
        }
    }
    if converged {
        crate::cli::EXIT_OK
    } else {
        crate::cli::EXIT_CHANGES
    }
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
