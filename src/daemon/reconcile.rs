//! One reconcile of the daemon: observe → plan → apply through the engine, with
//! every change logged with its reason and counted.

use super::metrics::{KindLabel, Metrics};
use super::DaemonConfig;
use crate::engine::{self, EngineError, HostTarget, Outcome};
use crate::marks::Role;
use crate::ovs::{self, Session};
use crate::ovsdb::{ConnectOptions, OvsdbError};
use crate::plan::{Kind, Op};
use crate::runtime::Runtimes;
use crate::topology::Topology;

/// Why a reconcile did not bring the host to its topology.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Some objects failed; the rest was applied.
    #[error("partly applied; failed: {}", .failures.join("; "))]
    Partial {
        failures: Vec<String>,
        outcome: Box<Outcome>,
    },
}

/// The daemon's connection to its ovsdb-server, kept across reconciles.
pub struct Connection {
    pub session: Session,
    /// UUID of the server's Open_vSwitch row: which switch this is.
    pub root: String,
}

impl Connection {
    pub async fn open(
        remote: &str,
        mesh: &str,
        options: ConnectOptions,
    ) -> Result<Self, OvsdbError> {
        let session = Session::open_with(remote, mesh, options).await?;
        let root = ovs::root_uuid(&session.client).await?;
        Ok(Self { session, root })
    }
}

/// Observe → plan → apply, logging every change with `why`, the triggers.
pub async fn reconcile(
    config: &DaemonConfig,
    topology: &Topology,
    runtimes: &Runtimes,
    connection: &mut Option<Connection>,
    metrics: &Metrics,
    why: &[&str],
) -> Result<Outcome, ReconcileError> {
    let connection = match connection {
        Some(connection) => connection,
        None => {
            let remote = super::remote(config, topology);
            connection.insert(
                Connection::open(&remote, &topology.mesh.name, config.connect_options()).await?,
            )
        }
    };
    let session = &mut connection.session;
    let target = HostTarget {
        topology,
        host: &config.host,
        runtimes,
        wait: Some(config.wait),
    };
    let outcome = engine::apply_host(session, &target).await?;
    let drift = !why.iter().any(|w| {
        [
            "startup",
            "topology file change",
            "SIGHUP",
            "git commit",
            "rollback",
        ]
        .contains(w)
    });
    for change in &outcome.plan.changes {
        tracing::info!(
            op = ?change.op,
            kind = change.kind.as_str(),
            id = %change.id,
            reason = %change.reason,
            trigger = %why.join(", "),
            "changed"
        );
        if drift {
            metrics
                .drift_corrections
                .get_or_create(&KindLabel {
                    kind: change.kind.as_str().to_string(),
                })
                .inc();
        }
        if change.kind == Kind::Port && change.op == Op::Replace && change.id.starts_with("access/")
        {
            metrics.replumbs.inc();
        }
    }
    for container in &outcome.plan.waiting {
        tracing::info!(container = %container, "waiting: container not running");
    }
    if !outcome.plan.is_empty() || why.contains(&"periodic resync") {
        let unhealthy = tunnel_health(session, topology, &config.host).await;
        metrics.unhealthy_tunnels.set(unhealthy as i64);
    }
    if !outcome.verified.matches() {
        // The engine logged each difference; count the reconcile.
        metrics.verify_failures.inc();
    }
    if outcome.failed() {
        let failures: Vec<String> = outcome
            .ovs
            .failures
            .iter()
            .map(|f| format!("{}: {}", f.id, f.error))
            .chain(
                outcome
                    .netlink
                    .failures
                    .iter()
                    .map(|f| format!("{}: {}", f.id, f.error)),
            )
            .chain(outcome.ovs.unconfirmed.clone())
            .chain(
                outcome
                    .verified
                    .error
                    .iter()
                    .map(|e| format!("verify: {e}")),
            )
            .chain(outcome.verified.remaining.iter().map(|c| {
                format!(
                    "verify: {} {} still differs ({})",
                    c.kind.as_str(),
                    c.id,
                    c.reason
                )
            }))
            .collect();
        return Err(ReconcileError::Partial {
            failures,
            outcome: Box::new(outcome),
        });
    }
    Ok(outcome)
}

/// Tunnel ports with an interface error or BFD down.
async fn tunnel_health(session: &Session, topology: &Topology, host: &str) -> usize {
    let bridges = engine::managed_bridges(topology);
    let Ok(observed) = ovs::observe(&session.client, host, &topology.mesh.name, &bridges).await
    else {
        return 0;
    };
    observed
        .state
        .ports
        .iter()
        .filter(|(_, p)| p.role == Role::Tunnel)
        .filter(|(key, _)| {
            observed
                .rows
                .status
                .get(*key)
                .is_some_and(|s| s.unhealthy())
        })
        .count()
}
