//! One host's observe → plan → apply, shared by the CLI, the lab and the daemon.
//!
//! Every run starts from what the host has now: the engine never remembers
//! what it did, so a concurrent change, a restarted container or a half-applied
//! earlier run are all handled the same way. When a write fails its guards
//! (someone changed the host between plan and apply) the engine re-observes and
//! re-plans, a few times at most.

pub mod render;

use std::time::Duration;

use crate::desired::desired;
use crate::host::apply::{ALL_KINDS, CONTAINER_KINDS, HOST_KINDS};
use crate::host::{self, Devices, HostContext, NetlinkReport, NetlinkRows};
use crate::marks::Role;
use crate::netlink::{Netlink, NetlinkError};
use crate::ovs::{self, ApplyError, OvsObserved, OvsReport, Session};
use crate::ovsdb::OvsdbError;
use crate::plan::{plan, Kind, Plan};
use crate::runtime::Runtimes;
use crate::state::HostState;
use crate::topology::Topology;

/// [`ovsdb_remote`] with `$OVSMESH_OVSDB` read from the environment.
pub fn ovsdb_remote_from_env(flag: Option<&str>, topology: &Topology, host: &str) -> String {
    let env = std::env::var("OVSMESH_OVSDB").ok();
    ovsdb_remote(flag, env.as_deref(), topology, host)
}

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
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Observe(#[from] host::ObserveError),
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

/// The bridges ovsmesh manages on a host (observed by name even when adopted).
pub fn managed_bridges(topology: &Topology) -> [&str; 3] {
    let mesh = &topology.mesh;
    [
        &mesh.vlan_bridge,
        &mesh.overlay_bridge,
        &mesh.underlay_bridge,
    ]
}

/// Everything one reconcile of a host needs besides the OVSDB session.
pub struct HostTarget<'a> {
    pub topology: &'a Topology,
    pub host: &'a str,
    pub runtimes: &'a Runtimes,
    /// Bound on waiting for ovs-vswitchd; `None` skips the wait.
    pub wait: Option<Duration>,
}

/// A host as observed: both halves, plus what apply needs of each.
pub struct Observed {
    pub state: HostState,
    pub ovs: OvsObserved,
    pub netlink: NetlinkRows,
}

async fn observe(
    session: &Session,
    netlink: &Netlink,
    target: &HostTarget<'_>,
    want: &HostState,
) -> Result<Observed, EngineError> {
    let topology = target.topology;
    let mesh = &topology.mesh;
    let started = std::time::Instant::now();
    let ovs = ovs::observe(
        &session.client,
        target.host,
        &mesh.name,
        &managed_bridges(topology),
    )
    .await?;
    let gateway_ports = ovs
        .state
        .ports
        .values()
        .chain(want.ports.values())
        .filter(|p| p.role == Role::Gateway)
        .map(|p| p.name.clone())
        .collect();
    let devices = Devices {
        overlay_bridge: &mesh.overlay_bridge,
        underlay_bridge: &mesh.underlay_bridge,
        gateway_ports,
    };
    let read_ovs = started.elapsed();
    let (links, rows) = host::observe(netlink, &mesh.name, want, &devices, target.runtimes).await?;
    tracing::debug!(
        ovs_ms = read_ovs.as_secs_f64() * 1e3,
        netlink_ms = (started.elapsed() - read_ovs).as_secs_f64() * 1e3,
        "observed"
    );
    let mut ovs = ovs;
    let mut state = std::mem::take(&mut ovs.state);
    state.addresses = links.addresses;
    state.routes = links.routes;
    state.forwarding = links.forwarding;
    state.containers = links.containers;
    state.waiting = links.waiting;
    Ok(Observed {
        state,
        ovs,
        netlink: rows,
    })
}

/// Observe the host and plan it towards `want` (its desired state).
pub async fn plan_host(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
) -> Result<(Plan, Observed), EngineError> {
    let netlink = Netlink::open()?;
    let observed = observe(session, &netlink, target, want).await?;
    let plan = plan(&target.topology.mesh.name, want, &observed.state);
    Ok((plan, observed))
}

/// Connect to a host's OVSDB and plan it (the `plan` and `status` commands).
pub async fn plan_remote(
    topology: &Topology,
    want: &HostState,
    remote: &str,
    docker: Option<&str>,
) -> Result<(Plan, Observed), EngineError> {
    let runtimes = Runtimes::new(docker);
    let target = HostTarget {
        topology,
        host: &want.host,
        runtimes: &runtimes,
        wait: None,
    };
    let session = Session::open(remote, &topology.mesh.name).await?;
    plan_host(&session, &target, want).await
}

/// Outcome of an apply or down.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub ovs: OvsReport,
    pub netlink: NetlinkReport,
}

impl Outcome {
    /// Whether any object failed.
    pub fn failed(&self) -> bool {
        !self.ovs.failures.is_empty() || !self.netlink.failures.is_empty()
    }
}

/// Bring the host to the topology, under the mesh lock.
pub async fn apply_host(
    session: &mut Session,
    target: &HostTarget<'_>,
) -> Result<Outcome, EngineError> {
    let want = desired(target.topology, target.host)?;
    converge(session, target, &want, Direction::Up).await
}

/// Remove this mesh's objects from the host (adopted bridges and foreign objects stay).
pub async fn down_host(
    session: &mut Session,
    target: &HostTarget<'_>,
) -> Result<Outcome, EngineError> {
    let nothing = HostState {
        host: target.host.to_string(),
        ..HostState::default()
    };
    let mut outcome = converge(session, target, &nothing, Direction::Down).await?;
    // Forwarding back to what it was before ovsmesh enabled it.
    match host::apply::restore_forwarding(&target.topology.mesh.name) {
        Ok(devices) if !devices.is_empty() => tracing::info!(?devices, "forwarding restored"),
        Ok(_) => {}
        Err(error) => outcome.netlink.failures.push(host::Failure {
            kind: Kind::Forwarding,
            id: "restore".into(),
            error: error.to_string(),
        }),
    }
    Ok(outcome)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Container veths, then OVS, then host addresses, routes and forwarding.
    Up,
    /// Netlink first: the underlay address goes back to the NIC before the bridge goes.
    Down,
}

async fn converge(
    session: &mut Session,
    target: &HostTarget<'_>,
    want: &HostState,
    direction: Direction,
) -> Result<Outcome, EngineError> {
    session.lock(Duration::from_secs(30)).await?;
    let result = converge_locked(session, target, want, direction).await;
    session.unlock().await;
    result
}

async fn converge_locked(
    session: &mut Session,
    target: &HostTarget<'_>,
    want: &HostState,
    direction: Direction,
) -> Result<Outcome, EngineError> {
    let mesh = &target.topology.mesh.name;
    let netlink = Netlink::open()?;
    let context = HostContext {
        mesh,
        underlay_nic: target
            .topology
            .hosts
            .get(target.host)
            .and_then(|h| h.underlay_nic.as_deref()),
    };
    let mut last_conflict = String::new();
    for attempt in 1..=ATTEMPTS {
        let started = std::time::Instant::now();
        let ms = || started.elapsed().as_secs_f64() * 1e3;
        let observed = observe(session, &netlink, target, want).await?;
        let plan = plan(mesh, want, &observed.state);
        tracing::debug!(
            ms = ms(),
            changes = plan.changes.len(),
            "phase: observed and planned"
        );
        if plan.is_empty() {
            return Ok(Outcome {
                plan,
                ovs: OvsReport::default(),
                netlink: NetlinkReport::default(),
            });
        }
        let (before, after): (&[Kind], &[Kind]) = match direction {
            Direction::Up => (CONTAINER_KINDS, HOST_KINDS),
            Direction::Down => (ALL_KINDS, &[]),
        };
        let mut links = host::apply(
            &netlink,
            &context,
            &plan,
            &observed.state,
            &observed.netlink,
            before,
        )
        .await;
        tracing::debug!(ms = ms(), "phase: netlink before OVS");
        match ovs::apply(session, &plan, mesh, &observed.ovs.rows, target.wait).await {
            Ok(report) => {
                tracing::debug!(ms = ms(), "phase: OVS applied");
                let later = host::apply(
                    &netlink,
                    &context,
                    &plan,
                    &observed.state,
                    &observed.netlink,
                    after,
                )
                .await;
                tracing::debug!(ms = ms(), "phase: netlink after OVS");
                links.applied.extend(later.applied);
                links.failures.extend(later.failures);
                return Ok(Outcome {
                    plan,
                    ovs: report,
                    netlink: links,
                });
            }
            Err(ApplyError::Conflict(reason)) => {
                tracing::info!(attempt, %reason, "host changed during apply; re-planning");
                last_conflict = reason;
            }
            Err(ApplyError::Ovsdb(error)) => return Err(error.into()),
        }
    }
    Err(EngineError::Conflict(last_conflict))
}
