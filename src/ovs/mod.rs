//! The OVS half of observe → plan → apply, and of `down`.
//!
//! A [`Session`] is one checked connection to a host's ovsdb-server. Changes are
//! made under an OVSDB lock named after the mesh, so a manual `apply` and the
//! daemon never interleave; every write transaction asserts that lock, so a
//! client that lost it (stolen) cannot write. Each change set is one
//! transaction; after it, ovsmesh waits (bounded) for vswitchd to catch up (`cur_cfg`) and reads back
//! `Interface.error` and `ofport` of every port it made or changed, because a
//! committed transaction can still leave a port unusable (a tunnel key clash,
//! a device vswitchd cannot open only show there). Once committed, the change
//! is made: a vswitchd that does not catch up, or a read-back that fails, is
//! reported ([`OvsReport::unconfirmed`]), never an error that would stop the
//! caller before the rest of the host is applied.

pub mod apply;
pub mod cfg;
pub mod columns;
pub mod observe;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::ovsdb::transact::{assert_lock, select};
use crate::ovsdb::{connect, Client, ConnectOptions, Notification, OvsdbError, DB};
use crate::plan::{Change, Kind, Plan};
use crate::state::Item;

pub use observe::{observe, OvsObserved, Rows};

/// One checked connection to a host's ovsdb-server.
pub struct Session {
    pub client: Client,
    notifications: mpsc::UnboundedReceiver<Notification>,
    lock_name: String,
    /// Whether the server granted us the lock. A steal shows up as a
    /// `stolen` notification (seen by the next `lock`) or, racing a write, as
    /// that write refused by its `assert`.
    locked: bool,
    /// Write transactions sent on this session.
    pub write_transactions: usize,
}

impl Session {
    /// Connect with the default deadline and check the server's schema has what ovsmesh uses.
    pub async fn open(remote: &str, mesh: &str) -> Result<Self, OvsdbError> {
        Self::open_with(remote, mesh, ConnectOptions::default()).await
    }

    /// [`Session::open`] with these connection options (deadline, inactivity probe).
    pub async fn open_with(
        remote: &str,
        mesh: &str,
        options: ConnectOptions,
    ) -> Result<Self, OvsdbError> {
        let (client, notifications) = connect(remote, options).await?;
        columns::check_schema(&client).await?;
        Ok(Self {
            client,
            notifications,
            lock_name: lock_name(mesh),
            locked: false,
            write_transactions: 0,
        })
    }

    /// The deadline of each request on this session.
    pub fn timeout(&self) -> Duration {
        self.client.timeout()
    }

    /// Take the mesh's lock, waiting at most `wait` for another holder. A lock
    /// stolen since it was granted is asked for again (and waited for).
    pub async fn lock(&mut self, wait: Duration) -> Result<(), OvsdbError> {
        // Of earlier notifications only a steal matters: a grant counts only
        // for the request below.
        let mut stolen = false;
        while let Ok(notification) = self.notifications.try_recv() {
            stolen |= matches!(notification, Notification::Stolen(name) if name == self.lock_name);
        }
        if stolen && self.locked {
            self.release().await;
        }
        if self.locked {
            return Ok(());
        }
        if self.client.lock(&self.lock_name).await? {
            self.locked = true;
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.notifications.recv()).await {
                Ok(Some(Notification::Locked(name))) if name == self.lock_name => {
                    self.locked = true;
                    return Ok(());
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(OvsdbError::Disconnected {
                        remote: self.client.remote().to_string(),
                        reason: "closed while waiting for the lock".into(),
                    })
                }
                Err(_) => {
                    let _ = self.client.unlock(&self.lock_name).await;
                    return Err(OvsdbError::LockBusy {
                        remote: self.client.remote().to_string(),
                        lock: self.lock_name.clone(),
                        waited: wait,
                    });
                }
            }
        }
    }

    pub async fn unlock(&mut self) {
        self.release().await;
    }

    /// Give the lock up, also as a waiter (after a steal the server keeps us queued).
    async fn release(&mut self) {
        self.locked = false;
        let _ = self.client.unlock(&self.lock_name).await;
    }

    /// A write transaction, counted, made under the mesh's lock (taken first
    /// if need be, within the session's deadline) and asserting it: if another
    /// client took the lock meanwhile, the server refuses the whole
    /// transaction ([`OvsdbError::LockLost`]). The replies are those of
    /// `operations`, in order.
    pub async fn write(&mut self, operations: Vec<Value>) -> Result<Vec<Value>, OvsdbError> {
        if !self.locked {
            self.lock(self.timeout()).await?;
        }
        let mut guarded = Vec::with_capacity(operations.len() + 1);
        guarded.push(assert_lock(&self.lock_name));
        guarded.extend(operations);
        self.write_transactions += 1;
        match self.client.transact(DB, guarded).await {
            Ok(mut replies) => {
                replies.remove(0);
                Ok(replies)
            }
            Err(error) => {
                if matches!(error, OvsdbError::LockLost { .. }) {
                    self.release().await;
                }
                Err(error)
            }
        }
    }
}

/// The uuid of the server's Open_vSwitch row: which switch this is.
pub async fn root_uuid(client: &Client) -> Result<String, OvsdbError> {
    let replies = client
        .transact(DB, vec![select("Open_vSwitch", json!([]), &["_uuid"])])
        .await?;
    Ok(replies[0]["rows"][0]["_uuid"][1]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The OVSDB lock of a mesh: an OVSDB `<id>` (letters, digits, '_').
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
    /// Why vswitchd's side could not be confirmed although the transaction
    /// committed: it did not catch up in time, or the read-back failed.
    pub unconfirmed: Option<String>,
}

impl OvsReport {
    /// The report of a plan before anything is applied: the bridges it keeps.
    pub fn nothing_applied(plan: &Plan) -> Self {
        Self {
            kept_bridges: plan
                .kept
                .iter()
                .filter(|k| k.kind == Kind::Bridge && !k.holders.is_empty())
                .map(|k| (k.id.clone(), k.holders.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the host changed while ovsmesh was applying ({0}); re-plan")]
    Conflict(String),
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
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
    let mut report = OvsReport::nothing_applied(plan);
    if tx.operations.is_empty() {
        return Ok(report);
    }
    let started = Instant::now();
    let replies = match session.write(tx.operations).await {
        Ok(replies) => replies,
        Err(error @ OvsdbError::Guard { .. }) => {
            return Err(ApplyError::Conflict(error.to_string()))
        }
        Err(error) => return Err(error.into()),
    };
    report.applied = plan
        .changes
        .iter()
        .filter(|c| matches!(c.kind, Kind::Bridge | Kind::Port))
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
        // Committed: from here on a problem is reported, never returned.
        let waiting = Instant::now();
        match wait_for_vswitchd(&session.client, next_cfg, timeout).await {
            Ok(()) => {
                tracing::debug!(
                    ms = waiting.elapsed().as_secs_f64() * 1e3,
                    "ovs-vswitchd caught up"
                );
                report.vswitchd_confirmed = true;
                match port_failures(&session.client, plan).await {
                    Ok(failures) => report.failures = failures,
                    Err(error) => {
                        report.unconfirmed = Some(format!(
                            "the change committed, but reading Interface.error back failed: {error}"
                        ))
                    }
                }
            }
            Err(error) => {
                report.unconfirmed = Some(format!("the change committed, but {error}"));
            }
        }
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
            return Err(OvsdbError::Vswitchd {
                remote: client.remote().to_string(),
                next_cfg,
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Created or updated ports whose interface vswitchd refused, access ports
/// included (their veths are made before the transaction, so a missing device
/// is a failure).
async fn port_failures(client: &Client, plan: &Plan) -> Result<Vec<PortFailure>, OvsdbError> {
    let wanted: Vec<(&String, &crate::state::Port)> = plan
        .changes
        .iter()
        .filter(|c| c.kind == Kind::Port)
        .filter_map(|c| c.after.as_ref().and_then(Item::port).map(|p| (&c.id, p)))
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
