//! What the plugin keeps between calls, kept where it outlives the plugin:
//! OVSDB (the endpoint ports with their marks; which topology network a Docker
//! network id and a pool id stand for, in `Open_vSwitch:external_ids`) and the
//! kernel (the endpoints' veths, see `host::endpoint`). The plugin has no state
//! file: after a restart it reads these again.
//!
//! Endpoint ports are written with the same transaction builder `apply` uses,
//! but without the mesh's lock: a reconcile holds that lock while it looks at
//! the host (Docker included), and dockerd, starting, waits for the plugin
//! before it answers anyone — a handler that waited for the lock could wait for
//! dockerd. The writes are safe without it: a new port and a `ports` insert on
//! the bridge (a concurrent reconcile's guarded write fails and re-plans), or
//! a guarded delete.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::daemon::echoes::Echoes;
use crate::engine;
use crate::ovs::cfg::CfgWatch;
use crate::ovs::{self, columns, OvsObserved, Session};
use crate::ovsdb::transact::{mutate, select};
use crate::ovsdb::value::{Atom, Datum};
use crate::ovsdb::{ConnectOptions, OvsdbError, DB};
use crate::plan::{Change, Kind, Op, Plan};
use crate::state::{Item, Port};
use crate::topology::Topology;

/// `Open_vSwitch:external_ids` key of a Docker network id's topology network.
fn network_key(mesh: &str, network_id: &str) -> String {
    format!("ovsmesh-docker-network:{mesh}:{network_id}")
}

/// `Open_vSwitch:external_ids` key of a pool id's topology network.
fn pool_key(mesh: &str, pool_id: &str) -> String {
    format!("ovsmesh-docker-pool:{mesh}:{pool_id}")
}

/// The plugin's OVSDB connections (requests, and `cur_cfg` followed), opened
/// when first needed and again after one fails.
pub struct Store {
    remote: String,
    mesh: String,
    host: String,
    timeout: Duration,
    session: tokio::sync::Mutex<Option<Connection>>,
    /// Told of each port write before it is made (see `daemon::echoes`).
    echoes: Echoes,
}

struct Connection {
    session: Session,
    cfg: CfgWatch,
}

/// What one read shows: the host's OVS side (this mesh's ports with their
/// marks) and the plugin's records in `Open_vSwitch:external_ids`.
pub struct Seen {
    pub ovs: OvsObserved,
    records: BTreeMap<String, String>,
    mesh: String,
}

impl Seen {
    /// The topology network recorded for a Docker network id or pool id.
    pub fn recorded(&self, network_id: Option<&str>, pool_id: Option<&str>) -> Option<String> {
        network_id
            .map(|id| network_key(&self.mesh, id))
            .into_iter()
            .chain(pool_id.map(|id| pool_key(&self.mesh, id)))
            .find_map(|k| self.records.get(&k).cloned())
    }
}

impl Store {
    pub fn new(remote: String, mesh: &str, host: &str, timeout: Duration, echoes: Echoes) -> Self {
        Self {
            remote,
            mesh: mesh.to_string(),
            host: host.to_string(),
            timeout,
            session: tokio::sync::Mutex::new(None),
            echoes,
        }
    }

    /// Run `work` on the connection; a failed request drops it (the next call reconnects).
    async fn with<T>(
        &self,
        work: impl AsyncFnOnce(&Connection) -> Result<T, OvsdbError>,
    ) -> Result<T, OvsdbError> {
        let mut slot = self.session.lock().await;
        if slot.is_none() {
            let options = ConnectOptions::with_timeout(self.timeout);
            let session = Session::open_with(&self.remote, &self.mesh, options.clone()).await?;
            let cfg = CfgWatch::open(&self.remote, options).await?;
            *slot = Some(Connection { session, cfg });
        }
        let result = work(slot.as_ref().expect("opened above")).await;
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Read the host's OVS side and the plugin's records, in one transaction.
    pub async fn observe(&self, topology: &Topology) -> Result<Seen, OvsdbError> {
        let (host, mesh) = (&self.host, &self.mesh);
        let mut reads: Vec<Value> = columns::TABLES.iter().map(|t| t.select_all()).collect();
        reads.push(select("Open_vSwitch", json!([]), &["external_ids"]));
        let replies = self
            .with(async |c| c.session.client.transact(DB, reads).await)
            .await?;
        let rows = |i: usize| replies[i]["rows"].as_array().map_or(&[][..], Vec::as_slice);
        let ovs = ovs::observe::interpret(
            host,
            mesh,
            &engine::managed_bridges(topology),
            rows(0),
            rows(1),
            rows(2),
            rows(3),
        );
        let records = Datum::from_json(&replies[4]["rows"][0]["external_ids"])
            .map(|d| d.string_map())
            .unwrap_or_default();
        Ok(Seen {
            ovs,
            records,
            mesh: mesh.clone(),
        })
    }

    /// Record (`Some`) or forget (`None`) the topology network of a Docker
    /// network id or a pool id.
    pub async fn record(
        &self,
        network_id: Option<&str>,
        pool_id: Option<&str>,
        network: Option<&str>,
    ) -> Result<(), OvsdbError> {
        let keys: Vec<String> = network_id
            .map(|id| network_key(&self.mesh, id))
            .into_iter()
            .chain(pool_id.map(|id| pool_key(&self.mesh, id)))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut mutations = vec![json!([
            "external_ids",
            "delete",
            Datum::set(keys.iter().cloned().map(Atom::String).collect()).to_json()
        ])];
        if let Some(network) = network {
            let pairs: BTreeMap<String, String> = keys
                .iter()
                .map(|k| (k.clone(), network.to_string()))
                .collect();
            mutations.push(json!([
                "external_ids",
                "insert",
                Datum::map(&pairs).to_json()
            ]));
        }
        self.with(async |c| {
            c.session
                .client
                .transact(
                    DB,
                    vec![mutate("Open_vSwitch", json!([]), Value::Array(mutations))],
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// The topology network recorded for a Docker network id or pool id.
    pub async fn recorded(
        &self,
        network_id: Option<&str>,
        pool_id: Option<&str>,
    ) -> Result<Option<String>, OvsdbError> {
        let read = vec![select("Open_vSwitch", json!([]), &["external_ids"])];
        let replies = self
            .with(async |c| c.session.client.transact(DB, read).await)
            .await?;
        let seen = Seen {
            ovs: OvsObserved::default(),
            records: Datum::from_json(&replies[0]["rows"][0]["external_ids"])
                .map(|d| d.string_map())
                .unwrap_or_default(),
            mesh: self.mesh.clone(),
        };
        Ok(seen.recorded(network_id, pool_id))
    }

    /// Create (`port` given) or delete the endpoint port `key`; a new port is
    /// waited for (bounded) until ovs-vswitchd has it, so the container's first
    /// packet passes (a deleted one is not: its veth is gone already).
    /// `observed` is the host's OVS side read just before.
    pub async fn write_port(
        &self,
        key: &str,
        port: Option<Port>,
        observed: &OvsObserved,
    ) -> Result<(), StoreError> {
        let before = observed.state.ports.get(key).cloned();
        let op = match (&before, &port) {
            (None, Some(_)) => Op::Create,
            (Some(_), Some(_)) => Op::Replace,
            (Some(_), None) => Op::Delete,
            (None, None) => return Ok(()),
        };
        if let Some(port) = &port {
            if !observed.rows.bridges.contains_key(&port.bridge) {
                return Err(StoreError::NoBridge(port.bridge.clone()));
            }
        }
        let plan = Plan {
            host: self.host.clone(),
            changes: vec![Change {
                op,
                kind: Kind::Port,
                id: key.to_string(),
                fields: Vec::new(),
                changed: Vec::new(),
                reason: "Docker endpoint".into(),
                before: before.map(Item::Port),
                after: port.map(Item::Port),
            }],
            waiting: Vec::new(),
            kept: Vec::new(),
            conflicts: Vec::new(),
        };
        let tx = ovs::apply::build(&plan, &self.mesh, &observed.rows);
        let name = plan.changes[0]
            .after
            .as_ref()
            .and_then(Item::port)
            .map(|p| p.name.clone());
        let written_name = plan.changes[0]
            .before
            .as_ref()
            .and_then(Item::port)
            .map(|p| &p.name);
        match (op, written_name.or(name.as_ref())) {
            (Op::Create, Some(name)) => self.echoes.expect(name, true),
            (Op::Delete, Some(name)) => self.echoes.expect(name, false),
            _ => {}
        }
        let written = self
            .with(async |c| c.session.client.transact(DB, tx.operations).await)
            .await;
        let replies = match written {
            Ok(replies) => replies,
            // Someone else (the daemon, re-making a lost port) wrote the same port first.
            Err(error) if op == Op::Create => {
                let bridges: Vec<&str> = observed.rows.bridges.keys().map(String::as_str).collect();
                let again = self
                    .with(async |c| {
                        ovs::observe(&c.session.client, &self.host, &self.mesh, &bridges).await
                    })
                    .await?;
                return match again.state.ports.get(key) {
                    Some(port) if Some(&port.name) == name.as_ref() => {
                        self.wait_for_vswitchd(again.rows.next_cfg).await
                    }
                    _ => Err(error.into()),
                };
            }
            Err(error) => return Err(error.into()),
        };
        let next_cfg = tx
            .next_cfg_select
            .and_then(|i| replies.get(i))
            .and_then(|r| r["rows"][0]["next_cfg"].as_i64());
        match next_cfg {
            Some(next_cfg) if op != Op::Delete => self.wait_for_vswitchd(next_cfg).await,
            _ => Ok(()),
        }
    }

    /// Wait (bounded) until ovs-vswitchd has applied `next_cfg`.
    async fn wait_for_vswitchd(&self, next_cfg: i64) -> Result<(), StoreError> {
        let timeout = self.timeout;
        Ok(self
            .with(async |c| c.cfg.wait(next_cfg, timeout).await)
            .await?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Ovsdb(#[from] OvsdbError),
    #[error(
        "bridge {0} does not exist yet on this host: is the ovsmesh daemon running and converged?"
    )]
    NoBridge(String),
}
