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

use crate::engine;
use crate::ovs::{self, OvsObserved, Session};
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

/// The plugin's OVSDB connection, opened when first needed and again after it fails.
pub struct Store {
    remote: String,
    mesh: String,
    host: String,
    timeout: Duration,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl Store {
    pub fn new(remote: String, mesh: &str, host: &str, timeout: Duration) -> Self {
        Self {
            remote,
            mesh: mesh.to_string(),
            host: host.to_string(),
            timeout,
            session: tokio::sync::Mutex::new(None),
        }
    }

    /// Run `work` on the session; a failed request drops it (the next call reconnects).
    async fn with<T>(
        &self,
        work: impl AsyncFnOnce(&Session) -> Result<T, OvsdbError>,
    ) -> Result<T, OvsdbError> {
        let mut slot = self.session.lock().await;
        if slot.is_none() {
            let options = ConnectOptions::with_timeout(self.timeout);
            *slot = Some(Session::open_with(&self.remote, &self.mesh, options).await?);
        }
        let result = work(slot.as_ref().expect("opened above")).await;
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// This mesh's OVS side of the host (its ports with their marks).
    pub async fn observe(&self, topology: &Topology) -> Result<OvsObserved, OvsdbError> {
        let (host, mesh) = (&self.host, &self.mesh);
        self.with(async |session| {
            ovs::observe(
                &session.client,
                host,
                mesh,
                &engine::managed_bridges(topology),
            )
            .await
        })
        .await
    }

    /// The topology network recorded for a Docker network id or pool id.
    pub async fn recorded(
        &self,
        network_id: Option<&str>,
        pool_id: Option<&str>,
    ) -> Result<Option<String>, OvsdbError> {
        let keys: Vec<String> = network_id
            .map(|id| network_key(&self.mesh, id))
            .into_iter()
            .chain(pool_id.map(|id| pool_key(&self.mesh, id)))
            .collect();
        let ids = self.root_ids().await?;
        Ok(keys.iter().find_map(|k| ids.get(k).cloned()))
    }

    async fn root_ids(&self) -> Result<BTreeMap<String, String>, OvsdbError> {
        self.with(async |session| {
            let replies = session
                .client
                .transact(
                    DB,
                    vec![select("Open_vSwitch", json!([]), &["external_ids"])],
                )
                .await?;
            Ok(Datum::from_json(&replies[0]["rows"][0]["external_ids"])
                .map(|d| d.string_map())
                .unwrap_or_default())
        })
        .await
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
        self.with(async |session| {
            session
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

    /// Create (`port` given) or delete the endpoint port `key`, then wait
    /// (bounded) until ovs-vswitchd has it, so the container's first packet
    /// passes. `observed` is the host's OVS side read just before.
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
        let timeout = self.timeout;
        let name = plan.changes[0]
            .after
            .as_ref()
            .and_then(Item::port)
            .map(|p| p.name.clone());
        let written = self
            .with(async |session| {
                let replies = session.client.transact(DB, tx.operations).await?;
                let next_cfg = tx
                    .next_cfg_select
                    .and_then(|i| replies.get(i))
                    .and_then(|r| r["rows"][0]["next_cfg"].as_i64());
                if let Some(next_cfg) = next_cfg {
                    ovs::wait_for_vswitchd(&session.client, next_cfg, timeout).await?;
                }
                Ok(())
            })
            .await;
        match written {
            // Someone else (the daemon, re-making a lost port) wrote the same port first.
            Err(error) if op == Op::Create => {
                let topology_bridges: Vec<&str> =
                    observed.rows.bridges.keys().map(String::as_str).collect();
                let again = self
                    .with(async |session| {
                        ovs::observe(&session.client, &self.host, &self.mesh, &topology_bridges)
                            .await
                    })
                    .await?;
                match again.state.ports.get(key) {
                    Some(port) if Some(&port.name) == name.as_ref() => Ok(()),
                    _ => Err(error.into()),
                }
            }
            other => Ok(other?),
        }
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
