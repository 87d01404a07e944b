//! The Docker networks of a host, made by the daemon outside any handler: one
//! per topology network this host takes part in (with a subnet here), named
//! after it, with driver and IPAM driver the plugin, `--subnet`/`--gateway`
//! from the topology (on the routed network, this host's), the option
//! `ovsmesh.network=NET` for both drivers, and a label naming the mesh. A Docker
//! network of that name that is not this mesh's is a conflict: reported, never
//! changed. One of ours that no longer matches the topology is reported too
//! (Docker networks cannot be changed; removing one in use fails).
//!
//! It also records each of the plugin's Docker networks' topology network in
//! OVSDB, from Docker's own record of it, so a network created while OVSDB was
//! replaced is known again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};

use super::ipam::{candidates, Candidate};
use super::protocol::NETWORK_OPTION;
use super::{Plugin, MESH_LABEL};
use crate::runtime::DockerSocket;
use crate::topology::Topology;

/// How often the networks are checked without a nudge.
const EVERY: Duration = Duration::from_secs(60);

/// The Docker network a topology network gets on this host.
pub fn create_request(plugin: &str, mesh: &str, candidate: &Candidate) -> NetworkCreateRequest {
    let option = HashMap::from([(NETWORK_OPTION.to_string(), candidate.network.clone())]);
    NetworkCreateRequest {
        name: candidate.network.clone(),
        driver: Some(plugin.to_string()),
        ipam: Some(Ipam {
            driver: Some(plugin.to_string()),
            config: Some(vec![IpamConfig {
                subnet: Some(candidate.subnet.to_string()),
                gateway: candidate.gateway.map(|g| g.to_string()),
                ..IpamConfig::default()
            }]),
            options: Some(option.clone()),
        }),
        options: Some(option),
        labels: Some(HashMap::from([(MESH_LABEL.to_string(), mesh.to_string())])),
        ..NetworkCreateRequest::default()
    }
}

/// What a Docker network of the wanted name is to this mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Ours and as the topology says.
    Ours,
    /// Ours, but made from another topology (why).
    Stale(String),
    /// Not this mesh's (whose, for the report).
    Conflict(String),
}

/// Judge an existing Docker network against the one `candidate` wants. Pure.
pub fn judge(
    network: &bollard::models::Network,
    plugin: &str,
    mesh: &str,
    candidate: &Candidate,
) -> Existing {
    let label = network
        .labels
        .as_ref()
        .and_then(|l| l.get(MESH_LABEL))
        .cloned();
    if label.as_deref() != Some(mesh) {
        let driver = network.driver.clone().unwrap_or_default();
        return Existing::Conflict(match label {
            Some(other) => format!("it belongs to mesh {other}"),
            None => format!("it is not ovsmesh's (driver {driver}, no {MESH_LABEL} label)"),
        });
    }
    let config = network
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first());
    let subnet = config.and_then(|c| c.subnet.clone()).unwrap_or_default();
    let driver = network.driver.clone().unwrap_or_default();
    if driver != plugin || subnet != candidate.subnet.to_string() {
        return Existing::Stale(format!(
            "it has driver {driver} and subnet {subnet}, the topology wants {plugin} and {}",
            candidate.subnet
        ));
    }
    Existing::Ours
}

/// Keep the host's Docker networks as the topology says, on every nudge and
/// every `EVERY`. Runs as its own task: dockerd may not answer for a while
/// (starting, it waits for its plugins), and nothing waits for this.
pub async fn keep(
    plugin: Arc<Plugin>,
    socket: DockerSocket,
    mut topology: tokio::sync::watch::Receiver<Arc<Topology>>,
    mut nudge: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    let mut reported = BTreeSet::new();
    loop {
        let current = topology.borrow_and_update().clone();
        if let Err(error) = once(&plugin, &socket, &current, &mut reported).await {
            tracing::debug!(%error, "Docker networks not checked (dockerd not answering?)");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            changed = topology.changed() => if changed.is_err() { return },
            got = nudge.recv() => if got.is_none() { return },
        }
    }
}

async fn once(
    plugin: &Plugin,
    socket: &DockerSocket,
    topology: &Topology,
    reported: &mut BTreeSet<String>,
) -> Result<(), bollard::errors::Error> {
    let docker = socket
        .client(30)
        .map_err(|e| bollard::errors::Error::IOError {
            err: std::io::Error::other(e.to_string()),
        })?
        .negotiate_version()
        .await?;
    let mesh = &topology.mesh.name;
    let existing = docker.list_networks(None).await?;
    for network in &existing {
        let recorded_network = network.options.as_ref().and_then(|o| o.get(NETWORK_OPTION));
        if let (Some(id), Some(name), Some(true)) = (
            &network.id,
            recorded_network,
            network.driver.as_ref().map(|d| *d == plugin.name),
        ) {
            if plugin
                .store
                .recorded(Some(id), None)
                .await
                .ok()
                .flatten()
                .as_ref()
                != Some(name)
            {
                let _ = plugin.store.record(Some(id), None, Some(name)).await;
            }
        }
    }
    for candidate in candidates(topology, &plugin.host) {
        let name = &candidate.network;
        let found = existing.iter().find(|n| n.name.as_deref() == Some(name));
        let problem = match found.map(|n| judge(n, &plugin.name, mesh, &candidate)) {
            Some(Existing::Ours) => None,
            Some(Existing::Stale(why)) => Some(format!("Docker network {name} differs from the topology: {why}; remove it (docker network rm {name}) once no container uses it, and it is made again")),
            Some(Existing::Conflict(why)) => Some(format!("Docker network {name} is in the way: {why}; ovsmesh leaves it alone (rename or remove it to have ovsmesh's)")),
            None => {
                match docker.create_network(create_request(&plugin.name, mesh, &candidate)).await {
                    Ok(made) => {
                        tracing::info!(network = %name, id = %made.id, subnet = %candidate.subnet, "Docker network made");
                        None
                    }
                    Err(error) => Some(format!("Docker network {name} could not be made: {error}")),
                }
            }
        };
        match problem {
            Some(problem) if reported.insert(problem.clone()) => tracing::warn!("{problem}"),
            Some(_) => {}
            None => reported.retain(|p| !p.starts_with(&format!("Docker network {name} "))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red() -> Candidate {
        Candidate {
            network: "red".into(),
            subnet: "10.31.0.0/24".parse().unwrap(),
            gateway: Some("10.31.0.254".parse().unwrap()),
        }
    }

    #[test]
    fn the_request_names_drivers_options_subnet_gateway_and_mesh() {
        let request = create_request("ovsmesh", "lab", &red());
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["Name"], "red");
        assert_eq!(json["Driver"], "ovsmesh");
        assert_eq!(json["IPAM"]["Driver"], "ovsmesh");
        assert_eq!(json["IPAM"]["Config"][0]["Subnet"], "10.31.0.0/24");
        assert_eq!(json["IPAM"]["Config"][0]["Gateway"], "10.31.0.254");
        assert_eq!(json["IPAM"]["Options"]["ovsmesh.network"], "red");
        assert_eq!(json["Options"]["ovsmesh.network"], "red");
        assert_eq!(json["Labels"]["ovsmesh.mesh"], "lab");
        let none = Candidate {
            gateway: None,
            ..red()
        };
        let json = serde_json::to_value(create_request("ovsmesh", "lab", &none)).unwrap();
        assert!(json["IPAM"]["Config"][0]
            .get("Gateway")
            .is_none_or(|g| g.is_null()));
    }

    #[test]
    fn an_existing_network_is_ours_stale_or_in_the_way() {
        let made: bollard::models::Network = serde_json::from_value(serde_json::json!({
            "Name": "red", "Driver": "ovsmesh",
            "IPAM": {"Driver": "ovsmesh", "Config": [{"Subnet": "10.31.0.0/24"}]},
            "Labels": {"ovsmesh.mesh": "lab"}
        }))
        .unwrap();
        assert_eq!(judge(&made, "ovsmesh", "lab", &red()), Existing::Ours);
        let moved = Candidate {
            subnet: "10.32.0.0/24".parse().unwrap(),
            ..red()
        };
        assert!(matches!(
            judge(&made, "ovsmesh", "lab", &moved),
            Existing::Stale(_)
        ));
        assert_eq!(
            judge(&made, "ovsmesh", "other", &red()),
            Existing::Conflict("it belongs to mesh lab".into())
        );
        let foreign: bollard::models::Network =
            serde_json::from_value(serde_json::json!({"Name": "red", "Driver": "bridge"})).unwrap();
        assert!(
            matches!(judge(&foreign, "ovsmesh", "lab", &red()), Existing::Conflict(why) if why.contains("driver bridge"))
        );
    }
}
