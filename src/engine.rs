//! One host's observe → plan → apply, shared by the CLI (and later the daemon).
//!
//! Every run starts from what the host has now: the engine never remembers
//! what it did, so a concurrent change, a restarted container or a half-applied
//! earlier run are all handled the same way. When a write fails its guards
//! (someone changed the host between plan and apply) the engine re-observes and
//! re-plans, a few times at most.

use std::time::Duration;

use crate::desired::desired;
use crate::ovs::{self, ApplyError, OvsObserved, OvsReport, Session};
use crate::ovsdb::OvsdbError;
use crate::plan::{plan, Plan};
use crate::state::HostState;
use crate::topology::Topology;

/// Default OVSDB socket of a Debian/Ubuntu Open vSwitch.
pub const DEFAULT_OVSDB: &str = "unix:/var/run/openvswitch/db.sock";

/// Attempts when the host changes under an apply.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Desired(#[from] crate::desired::DesiredError),
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
    #[error("the host kept changing under ovsmesh: gave up after {ATTEMPTS} attempts ({0})")]
    Conflict(String),
}

/// The OVSDB remote for a host: `--ovsdb` > `$OVSMESH_OVSDB` > topology > default.
pub fn ovsdb_remote(
    flag: Option<&str>,
    env: Option<&str>,
    topology: &Topology,
    host: &str,
) -> String {
    flag.or(env)
        .map(str::to_string)
        .or_else(|| topology.hosts.get(host).and_then(|h| h.ovsdb.clone()))
        .unwrap_or_else(|| DEFAULT_OVSDB.to_string())
}

fn managed_bridges(topology: &Topology) -> [&str; 3] {
    let mesh = &topology.mesh;
    [
        &mesh.vlan_bridge,
        &mesh.overlay_bridge,
        &mesh.underlay_bridge,
    ]
}

/// What this build manages of a host's desired state (the OVS side).
pub fn managed_desired(topology: &Topology, host: &str) -> Result<HostState, EngineError> {
    Ok(desired(topology, host)?.ovs_part())
}

/// Observe the host and plan.
pub async fn plan_host(
    session: &Session,
    topology: &Topology,
    host: &str,
) -> Result<(Plan, OvsObserved), EngineError> {
    let want = managed_desired(topology, host)?;
    let observed = ovs::observe(
        &session.client,
        host,
        &topology.mesh.name,
        &managed_bridges(topology),
    )
    .await?;
    let plan = plan(&topology.mesh.name, &want, &observed.state);
    Ok((plan, observed))
}

/// Outcome of an apply or down.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub ovs: OvsReport,
}

/// Bring the host to the topology, under the mesh lock.
pub async fn apply_host(
    session: &mut Session,
    topology: &Topology,
    host: &str,
    wait: Option<Duration>,
) -> Result<Outcome, EngineError> {
    let want = managed_desired(topology, host)?;
    converge(session, topology, host, &want, wait).await
}

/// Remove this mesh's objects from the host (adopted bridges and foreign rows stay).
pub async fn down_host(
    session: &mut Session,
    topology: &Topology,
    host: &str,
    wait: Option<Duration>,
) -> Result<Outcome, EngineError> {
    let nothing = HostState {
        host: host.to_string(),
        ..HostState::default()
    };
    converge(session, topology, host, &nothing, wait).await
}

async fn converge(
    session: &mut Session,
    topology: &Topology,
    host: &str,
    want: &HostState,
    wait: Option<Duration>,
) -> Result<Outcome, EngineError> {
    session.lock(Duration::from_secs(30)).await?;
    let result = converge_locked(session, topology, host, want, wait).await;
    session.unlock().await;
    result
}

async fn converge_locked(
    session: &mut Session,
    topology: &Topology,
    host: &str,
    want: &HostState,
    wait: Option<Duration>,
) -> Result<Outcome, EngineError> {
    let mesh = &topology.mesh.name;
    let mut last_conflict = String::new();
    for attempt in 1..=ATTEMPTS {
        let observed =
            ovs::observe(&session.client, host, mesh, &managed_bridges(topology)).await?;
        let plan = plan(mesh, want, &observed.state);
        if plan.is_empty() {
            return Ok(Outcome {
                plan,
                ovs: OvsReport::default(),
            });
        }
        match ovs::apply(session, &plan, mesh, &observed.rows, wait).await {
            Ok(report) => return Ok(Outcome { plan, ovs: report }),
            Err(ApplyError::Conflict(reason)) => {
                tracing::info!(attempt, %reason, "host changed during apply; re-planning");
                last_conflict = reason;
            }
            Err(ApplyError::Ovsdb(error)) => return Err(error.into()),
        }
    }
    Err(EngineError::Conflict(last_conflict))
}
