//! One host's observe → plan → apply → verify, shared by the CLI, the lab and
//! the daemon.
//!
//! Every run starts from what the host has now: the engine never remembers
//! what it did, so a concurrent change, a restarted container or a half-applied
//! earlier run are all handled the same way. When a write fails its guards
//! (someone changed the host between plan and apply) the engine re-observes and
//! re-plans, a few times at most. Once the OVS transaction has committed, the
//! netlink and firewall steps always run; what failed is reported with the
//! rest applied. Then [`verify`] observes the host afresh: what still differs
//! is reported too. All of it, the IPv4 settings `down` restores included,
//! happens under the mesh's OVSDB lock.

pub mod render;
mod verify;

pub use verify::{verify, Verified};

use std::borrow::Cow;
use std::time::Duration;

use crate::desired::{desired, settle};
use crate::host::apply::{ALL_KINDS, CONTAINER_KINDS, HOST_KINDS};
use crate::host::facts::HostFacts;
use crate::host::{self, firewall, Devices, HostContext, NetlinkReport, NetlinkRows};
use crate::marks::{DeviceFacts, Policy, Role};
use crate::netlink::{Netlink, NetlinkError};
use crate::ovs::{self, ApplyError, OvsObserved, OvsReport, Session};
use crate::ovsdb::{ConnectOptions, OvsdbError};
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
    #[error(transparent)]
    Refused(#[from] host::warnings::UplinkRefused),
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

/// A host as observed: both halves, plus what apply needs of each, and the
/// host's own facts the topology only assumes.
pub struct Observed {
    pub state: HostState,
    pub ovs: OvsObserved,
    pub netlink: NetlinkRows,
    pub facts: HostFacts,
    /// The host firewall as read (apply writes against it; status and the INPUT check read it).
    pub firewall: firewall::Snapshot,
}

/// Observe the host for the containers and devices of `want`; `known` is the
/// topology's desired state of the host (for `down` too), by which `marks`
/// recognises the exact addresses ovsmesh put on devices it does not own.
async fn observe(
    session: &Session,
    netlink: &Netlink,
    target: &HostTarget<'_>,
    want: &HostState,
    known: &HostState,
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
    let facts = DeviceFacts {
        underlay_bridge: mesh.underlay_bridge.clone(),
        owned_bridges: ovs
            .state
            .bridges
            .iter()
            .filter(|(_, b)| b.owned)
            .map(|(name, _)| name.clone())
            .collect(),
        gateway_ports: ovs
            .state
            .ports
            .values()
            .filter(|p| p.role == Role::Gateway)
            .map(|p| p.name.clone())
            .collect(),
        topology_addresses: known
            .addresses
            .values()
            .map(|a| (a.dev.clone(), a.address))
            .collect(),
    };
    let devices = Devices {
        overlay_bridge: mesh.overlay_bridge.clone(),
        underlay_bridge: mesh.underlay_bridge.clone(),
        addresses: Policy::new(&mesh.name).address_policy(&facts),
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
    state.sysctls = links.sysctls;
    state.containers = links.containers;
    state.waiting = links.waiting;
    state.occupied = links.occupied;
    state.overridden = links.overridden;
    state.foreign_links = links.foreign_links;
    state.endpoints = links.endpoints;
    state.ra_routes = links.ra_routes;
    let facts = host::facts::read(netlink, &rows.links, topology, target.host).await?;
    // One read of the firewall per reconcile (bounded; never fails the observe:
    // an unreadable firewall is a fact the plan reports).
    let firewall = firewall::read().await;
    let (rules, occupied) = firewall.observe(&mesh.name, want);
    state.firewall = rules;
    state.firewall_host = Some(firewall.host.clone());
    state.occupied.extend(occupied);
    Ok(Observed {
        state,
        ovs,
        netlink: rows,
        facts,
        firewall,
    })
}

/// Observe the host and plan it towards `want` (its desired state).
pub async fn plan_host(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
) -> Result<(Plan, Observed), EngineError> {
    let netlink = Netlink::open()?;
    let observed = observe(session, &netlink, target, want, want).await?;
    let (want, seen) = with_endpoints(target, want, &observed.state);
    let plan = plan(&settle(
        &target.topology.mesh.name,
        want.as_ref(),
        seen.as_ref(),
    ));
    Ok((plan, observed))
}

/// The host's live Docker endpoints taken in (see `desired::endpoint::serve`).
fn with_endpoints<'a>(
    target: &HostTarget<'_>,
    want: &'a HostState,
    observed: &'a HostState,
) -> (Cow<'a, HostState>, Cow<'a, HostState>) {
    if observed.endpoints.is_empty() {
        return (Cow::Borrowed(want), Cow::Borrowed(observed));
    }
    let (mut want, mut seen) = (want.clone(), observed.clone());
    crate::desired::endpoint::serve(target.topology, target.host, &mut want, &mut seen);
    (Cow::Owned(want), Cow::Owned(seen))
}

/// Connect to a host's OVSDB and plan it (the `plan` and `status` commands).
pub async fn plan_remote(
    topology: &Topology,
    want: &HostState,
    remote: &str,
    docker: Option<&str>,
    timeout: Duration,
) -> Result<(Plan, Observed), EngineError> {
    let runtimes = Runtimes::new(docker);
    let target = HostTarget {
        topology,
        host: &want.host,
        runtimes: &runtimes,
        wait: None,
    };
    let options = ConnectOptions::with_timeout(timeout);
    let session = Session::open_with(remote, &topology.mesh.name, options).await?;
    plan_host(&session, &target, want).await
}

/// Outcome of an apply or down.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub ovs: OvsReport,
    pub netlink: NetlinkReport,
    /// What the host's own settings do to the mesh (`host::warnings`).
    pub warnings: Vec<String>,
    /// What the verify step found after the changes (nothing: it matches).
    pub verified: Verified,
}

impl Outcome {
    /// Whether any object failed, could not be made for a conflict, was not
    /// confirmed by ovs-vswitchd, or still differs after the apply.
    pub fn failed(&self) -> bool {
        !self.ovs.failures.is_empty()
            || self.ovs.unconfirmed.is_some()
            || !self.netlink.failures.is_empty()
            || !self.plan.conflicts.is_empty()
            || !self.verified.matches()
    }

    /// Whether everything was applied without a failure (the verify step aside).
    pub fn applied_cleanly(&self) -> bool {
        self.ovs.failures.is_empty()
            && self.ovs.unconfirmed.is_none()
            && self.netlink.failures.is_empty()
    }
}

/// Run `work` under the mesh's OVSDB lock: the lock is taken first (waiting at
/// most the session's deadline) and given back whatever `work` returns.
macro_rules! locked {
    ($session:expr, $work:expr) => {{
        let timeout = $session.timeout();
        $session.lock(timeout).await?;
        let result = $work.await;
        $session.unlock().await;
        result
    }};
}

/// Bring the host to the topology, under the mesh lock, and verify it.
pub async fn apply_host(
    session: &mut Session,
    target: &HostTarget<'_>,
) -> Result<Outcome, EngineError> {
    let want = desired(target.topology, target.host)?;
    locked!(session, async {
        let mut outcome = converge_locked(session, target, &want, &want, Direction::Up).await?;
        verify_outcome(session, target, &want, &want, &mut outcome).await;
        Ok(outcome)
    })
}

/// The verify step of an apply or down that changed something and reported
/// no failure (a failure already says the host does not match).
async fn verify_outcome(
    session: &Session,
    target: &HostTarget<'_>,
    want: &HostState,
    known: &HostState,
    outcome: &mut Outcome,
) {
    if outcome.plan.changes.is_empty() || !outcome.applied_cleanly() {
        return;
    }
    outcome.verified = verify::verify_against(session, target, want, known).await;
}

/// The Docker endpoints of this mesh attached on the host (their OVS ports),
/// each as `NETWORK ADDRESS (endpoint ID12)`.
pub async fn docker_endpoints(
    session: &Session,
    topology: &Topology,
    host: &str,
) -> Result<Vec<String>, EngineError> {
    let observed = ovs::observe(
        &session.client,
        host,
        &topology.mesh.name,
        &managed_bridges(topology),
    )
    .await?;
    Ok(observed
        .state
        .ports
        .values()
        .filter(|p| p.role == Role::Endpoint)
        .map(|p| {
            let id = |k: &str| p.external_ids.get(k).cloned().unwrap_or_default();
            let endpoint = id(crate::marks::ENDPOINT);
            format!(
                "{} {} (endpoint {})",
                id(crate::marks::NETWORK),
                id(crate::marks::ADDRESS),
                &endpoint[..endpoint.len().min(12)]
            )
        })
        .collect())
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
    let known = desired(target.topology, target.host).unwrap_or_else(|_| nothing.clone());
    locked!(session, async {
        let mut outcome =
            converge_locked(session, target, &nothing, &known, Direction::Down).await?;
        // Forwarding, send_redirects and the NIC's arp_ignore back to what they
        // were before ovsmesh changed them (unless another mesh still claims
        // them, see `marks`) — under the lock, so a daemon of this mesh that
        // takes it next finds them restored, not half done.
        match host::apply::restore_forwarding(&target.topology.mesh.name) {
            Ok(settings) if !settings.is_empty() => {
                tracing::info!(?settings, "IPv4 settings restored")
            }
            Ok(_) => {}
            Err(error) => outcome.netlink.failures.push(host::Failure {
                kind: Kind::Forwarding,
                id: "restore".into(),
                error: error.to_string(),
            }),
        }
        verify_outcome(session, target, &nothing, &known, &mut outcome).await;
        Ok(outcome)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Container veths, then OVS, then host addresses, routes and forwarding.
    Up,
    /// Netlink first: the underlay address goes back to the NIC before the bridge goes.
    Down,
}

async fn converge_locked(
    session: &mut Session,
    target: &HostTarget<'_>,
    want: &HostState,
    known: &HostState,
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
        let observed = observe(session, &netlink, target, want, known).await?;
        let plan = match direction {
            Direction::Up => {
                let (want, seen) = with_endpoints(target, want, &observed.state);
                plan(&settle(mesh, want.as_ref(), seen.as_ref()))
            }
            // `down` (refused while endpoints live, unless forced) removes their ports too.
            Direction::Down => plan(&settle(mesh, want, &observed.state)),
        };
        tracing::debug!(
            ms = ms(),
            changes = plan.changes.len(),
            "phase: observed and planned"
        );
        let warnings = match direction {
            Direction::Up => {
                let mut warnings = host::warnings::warnings(target.topology, want, &observed.facts);
                warnings.extend(observed.state.overridden.iter().cloned());
                warnings
            }
            Direction::Down => Vec::new(),
        };
        if plan.changes.is_empty() {
            return Ok(Outcome {
                ovs: OvsReport::nothing_applied(&plan),
                plan,
                netlink: NetlinkReport::default(),
                warnings,
                verified: Verified::default(),
            });
        }
        if direction == Direction::Up {
            if let Some(refused) = host::warnings::refuse_uplink(&plan, &observed.facts) {
                return Err(refused.into());
            }
        }
        let (before, after): (&[Kind], &[Kind]) = match direction {
            Direction::Up => (CONTAINER_KINDS, HOST_KINDS),
            Direction::Down => (ALL_KINDS, &[]),
        };
        let mut links = host::apply(&netlink, &context, &plan, &observed.netlink, before).await;
        tracing::debug!(ms = ms(), "phase: netlink before OVS");
        match ovs::apply(session, &plan, mesh, &observed.ovs.rows, target.wait).await {
            Ok(report) => {
                tracing::debug!(ms = ms(), "phase: OVS applied");
                let later = host::apply(&netlink, &context, &plan, &observed.netlink, after).await;
                tracing::debug!(ms = ms(), "phase: netlink after OVS");
                links.applied.extend(later.applied);
                links.failures.extend(later.failures);
                // The firewall last: one batch per backend, against what observe read.
                let (written, failed) = firewall::apply(&observed.firewall, mesh, &plan).await;
                links.applied.extend(written);
                if let Some((error, count)) = failed {
                    links.failures.push(host::Failure {
                        kind: Kind::Firewall,
                        id: "ruleset".into(),
                        error: format!("{error} ({count} change(s) not made)"),
                    });
                }
                tracing::debug!(ms = ms(), "phase: firewall");
                return Ok(Outcome {
                    plan,
                    ovs: report,
                    netlink: links,
                    warnings,
                    verified: Verified::default(),
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
