//! The OVS half of observe → plan → apply, and of `down`.
//!
//! A [`Session`] is one checked connection to a host's ovsdb-server. Changes are
//! made under an OVSDB lock named after the mesh, so a manual `apply` and the
//! daemon never interleave; each change set is one transaction; after it,
//! ovsmesh waits (bounded) for vswitchd to catch up (`cur_cfg`) and reads back
//! `Interface.error` and `ofport`, because a committed transaction can still
//! leave a port unusable (a tunnel key clash only shows there).

pub mod apply;
pub mod observe;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::marks::Role;
use crate::ovsdb::transact::select;
use crate::ovsdb::{check_schema, connect, Client, ConnectOptions, Notification, OvsdbError, DB};
use crate::plan::{Change, Kind, Plan};

pub use observe::{observe, OvsObserved, Rows};

/// One checked connection to a host's ovsdb-server.
pub struct Session {
    pub client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
    lock_name: String,
    /// Write transactions sent on this session.
    pub write_transactions: usize,
}

impl Session {
    /// Connect and check the server's schema has what ovsmesh uses.
    pub async fn open(remote: &str, mesh: &str) -> Result<Self, OvsdbError> {
        let (client, notifications) = connect(remote, ConnectOptions::default()).await?;
        check_schema(&client).await?;
        Ok(Self {
            client,
            notifications,
            lock_name: lock_name(mesh),
            write_transactions: 0,
        })
    }

    /// Take the mesh's lock, waiting at most `timeout` for another holder.
    pub async fn lock(&mut self, timeout: Duration) -> Result<(), OvsdbError> {
        if self.client.lock(&self.lock_name).await? {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.notifications.recv()).await {
                Ok(Some(Notification::Locked(name))) if name == self.lock_name => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(OvsdbError::Disconnected {
                        remote: self.client.remote().to_string(),
                        reason: "closed while waiting for the lock".into(),
                    })
                }
                Err(_) => {
                    let _ = self.client.unlock(&self.lock_name).await;
                    return Err(OvsdbError::Timeout(format!(
                        "OVSDB lock {:?} is held by another client (an ovsmesh daemon or apply?) for more than {timeout:?}",
                        self.lock_name
                    )));
                }
            }
        }
    }

    pub async fn unlock(&mut self) {
        let _ = self.client.unlock(&self.lock_name).await;
    }

    /// A write transaction, counted.
    pub async fn write(&mut self, operations: Vec<Value>) -> Result<Vec<Value>, OvsdbError> {
        self.write_transactions += 1;
        self.client.transact(DB, operations).await
    }
}

/// The OVSDB lock of a mesh: an OVSDB <id> (letters, digits, '_').
pub fn lock_name(mesh: &str) -> String {
    let safe: String = mesh
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("ovsmesh_{safe}")
}

/// A port vswitchd could not set up although the transaction committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFailure {
    pub id: String,
    pub name: String,
    pub error: String,
}

/// What applying the OVS part of a plan did.
#[derive(Debug, Default)]
pub struct OvsReport {
    pub applied: Vec<Change>,
    pub kept_bridges: Vec<(String, Vec<String>)>,
    pub failures: Vec<PortFailure>,
    /// Whether vswitchd confirmed the change (false with `--no-wait`).
    pub vswitchd_confirmed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the host changed while ovsmesh was applying ({0}); re-plan")]
    Conflict(String),
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
}

fn is_guard_failure(error: &OvsdbError) -> bool {
    matches!(error, OvsdbError::Transact { operation, .. } if operation.contains("(wait on"))
}

/// Apply the bridge and port changes of `plan` in one transaction.
/// `wait` bounds the wait for vswitchd; `None` skips it (like `ovs-vsctl --no-wait`).
pub async fn apply(
    session: &mut Session,
    plan: &Plan,
    mesh: &str,
    rows: &Rows,
    wait: Option<Duration>,
) -> Result<OvsReport, ApplyError> {
    let tx = apply::build(plan, mesh, rows);
    let mut report = OvsReport {
        kept_bridges: tx.kept_bridges.clone(),
        ..OvsReport::default()
    };
    if tx.operations.is_empty() {
        return Ok(report);
    }
    let started = Instant::now();
    let replies = match session.write(tx.operations).await {
        Ok(replies) => replies,
        Err(error) if is_guard_failure(&error) => {
            return Err(ApplyError::Conflict(error.to_string()))
        }
        Err(error) => return Err(error.into()),
    };
    report.applied = plan
        .changes
        .iter()
        .filter(|c| matches!(c.kind, Kind::Bridge | Kind::Port))
        .filter(|c| {
            !report
                .kept_bridges
                .iter()
                .any(|(b, _)| c.kind == Kind::Bridge && &c.id == b)
        })
        .cloned()
        .collect();
    let next_cfg = tx
        .next_cfg_select
        .and_then(|i| replies.get(i))
        .and_then(|r| r["rows"][0]["next_cfg"].as_i64());
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "OVSDB transaction committed"
    );
    if let (Some(timeout), Some(next_cfg)) = (wait, next_cfg) {
        let waiting = Instant::now();
        wait_for_vswitchd(&session.client, next_cfg, timeout).await?;
        tracing::debug!(
            ms = waiting.elapsed().as_secs_f64() * 1e3,
            "ovs-vswitchd caught up"
        );
        report.vswitchd_confirmed = true;
        report.failures = port_failures(&session.client, plan).await?;
    }
    Ok(report)
}

/// Wait until vswitchd's `cur_cfg` reaches `next_cfg`.
pub async fn wait_for_vswitchd(
    client: &Client,
    next_cfg: i64,
    timeout: Duration,
) -> Result<(), OvsdbError> {
    let start = Instant::now();
    loop {
        let replies = client
            .transact(DB, vec![select("Open_vSwitch", json!([]), &["cur_cfg"])])
            .await?;
        if replies[0]["rows"][0]["cur_cfg"].as_i64().unwrap_or(0) >= next_cfg {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(OvsdbError::Timeout(format!(
                "ovs-vswitchd did not apply configuration {next_cfg} within {timeout:?} (is ovs-vswitchd running?)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Created or updated ports whose interface vswitchd refused. Access ports are
/// left to the netlink step: their veth may not exist yet.
async fn port_failures(client: &Client, plan: &Plan) -> Result<Vec<PortFailure>, OvsdbError> {
    let wanted: Vec<(&String, &crate::state::Port)> = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Port && c.op != crate::plan::Op::Delete)
        .filter_map(|c| plan.target.ports.get(&c.id).map(|p| (&c.id, p)))
        .filter(|(_, p)| p.role != Role::Access)
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let replies = client
        .transact(
            DB,
            vec![select("Interface", json!([]), &["name", "error", "ofport"])],
        )
        .await?;
    let rows = replies[0]["rows"].as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for (id, port) in wanted {
        let Some(row) = rows.iter().find(|r| r["name"] == port.name) else {
            continue;
        };
        let error = row["error"].as_str().map(str::to_string);
        let ofport = row["ofport"].as_i64();
        if error.is_some() || ofport == Some(-1) {
            failures.push(PortFailure {
                id: id.clone(),
                name: port.name.clone(),
                error: error
                    .unwrap_or_else(|| "ofport -1: vswitchd could not add the interface".into()),
            });
        }
    }
    Ok(failures)
}
