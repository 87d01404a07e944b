//! The Docker network and IPAM plugin: a front door to the one pipeline.
//!
//! `ovsmesh daemon --docker-plugin [NAME]` serves Docker's legacy remote
//! `NetworkDriver` and `IpamDriver` protocols (`protocol`) on
//! `/run/docker/plugins/NAME.sock` (`server`; handed over by a systemd socket
//! unit, or bound by the daemon itself), so that `docker run --network red
//! [--ip A]` gets its OVS port before the container's process starts.
//!
//! - Addresses are decided by `desired::endpoint` (pure): a declared entry of
//!   this host, this host's pool, or a refusal that names why (`ipam`).
//! - An endpoint's interface is a veth made in the host's namespace
//!   (`host::endpoint`) whose container end Docker moves in at `Join`; its OVS
//!   port is written and seen by ovs-vswitchd before `CreateEndpoint` returns
//!   (`endpoints`, `store`). The daemon's reconcile keeps the port while the
//!   veth lives and removes it when it is gone (`desired::endpoint::serve`).
//! - No handler calls the Docker API (dockerd waits for its plugins while it
//!   starts: a handler waiting for dockerd deadlocks it), and none takes the
//!   mesh's OVSDB lock (a reconcile holds it while it asks Docker). Every
//!   request is bounded in size and time (`server`).
//! - No state of its own: what must outlive the process is in OVSDB and the
//!   kernel (`store`); addresses handed out by `RequestAddress` and not yet
//!   made into an endpoint are held in memory for a while (`ipam`): a restart
//!   in that window forgets them, and a second container could be offered the
//!   same address — its `CreateEndpoint` then finds it in use and fails, and
//!   `docker run` says so.
//! - The Docker networks themselves are made by the daemon outside any
//!   handler (`networks`).

mod endpoints;
mod ipam;
pub mod networks;
pub mod protocol;
pub mod server;
mod store;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::daemon::echoes::Echoes;
use crate::daemon::metrics::{CallLabel, PluginCalls};
use crate::topology::Topology;
use protocol::Call;
pub use store::{Seen, Store};

/// Default plugin name (`--docker-plugin` without a value).
pub const DEFAULT_NAME: &str = "ovsmesh";
/// Label on the Docker networks the daemon makes: the mesh they belong to.
pub const MESH_LABEL: &str = "ovsmesh.mesh";

/// What the plugin tells the daemon it runs in.
pub struct ToDaemon {
    /// The time each call took to answer (metrics).
    pub calls: PluginCalls,
    /// The endpoint ports it is about to write, whose OVSDB echoes must not wake the daemon.
    pub echoes: Echoes,
}

/// The plugin of one host.
pub struct Plugin {
    pub name: String,
    pub host: String,
    topology: watch::Receiver<Arc<Topology>>,
    pub store: Store,
    memory: Mutex<ipam::Memory>,
    /// Time to answer, by call.
    calls: PluginCalls,
    /// The endpoints `CreateEndpoint` calls are making right now.
    making: Arc<Mutex<BTreeSet<String>>>,
}

/// An endpoint being made, until dropped (also when its call is abandoned).
struct Making(Arc<Mutex<BTreeSet<String>>>, String);

impl Drop for Making {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Plugin {
    pub fn new(
        name: &str,
        host: &str,
        topology: watch::Receiver<Arc<Topology>>,
        ovsdb: String,
        timeout: Duration,
        to_daemon: ToDaemon,
    ) -> Self {
        let mesh = topology.borrow().mesh.name.clone();
        Self {
            name: name.to_string(),
            host: host.to_string(),
            store: Store::new(ovsdb, &mesh, host, timeout, to_daemon.echoes),
            topology,
            memory: Mutex::new(ipam::Memory::default()),
            calls: to_daemon.calls,
            making: Arc::default(),
        }
    }

    /// The endpoints `CreateEndpoint` calls are making right now (see `daemon::leftovers`).
    pub fn making(&self) -> BTreeSet<String> {
        self.making
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The topology in force (the daemon's last good one).
    fn topology(&self) -> Arc<Topology> {
        self.topology.borrow().clone()
    }

    /// Answer one call; an error goes back as `{"Err": ...}`.
    pub async fn handle(&self, call: Call) -> Value {
        let name = call.name();
        let started = Instant::now();
        let result = match call {
            Call::Activate => Ok(protocol::activated()),
            Call::NetworkCapabilities => Ok(protocol::network_capabilities()),
            Call::IpamCapabilities => Ok(protocol::ipam_capabilities()),
            Call::DefaultAddressSpaces => Ok(protocol::default_address_spaces()),
            Call::Nothing(_) | Call::Leave(_) => Ok(protocol::empty()),
            Call::EndpointOperInfo(_) => Ok(json!({"Value": {}})),
            Call::CreateNetwork(create) => self.create_network(&create).await,
            Call::DeleteNetwork(network) => self.delete_network(&network.network_id).await,
            Call::RequestPool(request) => self.request_pool(&request),
            Call::ReleasePool(pool) => self.release_pool(&pool.pool_id).await,
            Call::RequestAddress(request) => self.request_address(&request).await,
            Call::ReleaseAddress(release) => Ok(self.release_address(&release)),
            Call::CreateEndpoint(create) => {
                let id = create.endpoint_id.clone();
                self.making
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone());
                let _making = Making(self.making.clone(), id);
                self.create_endpoint(&create).await
            }
            Call::Join(join) => self.join(&join).await,
            Call::DeleteEndpoint(endpoint) => self.delete_endpoint(&endpoint.endpoint_id).await,
        };
        let took = started.elapsed();
        self.calls
            .get_or_create(&CallLabel { call: name.into() })
            .observe(took.as_secs_f64());
        let ms = took.as_secs_f64() * 1000.0;
        match result {
            Ok(reply) => {
                tracing::debug!(call = name, ms, %reply, "plugin call");
                reply
            }
            Err(error) => {
                tracing::warn!(call = name, ms, %error, "plugin call refused");
                protocol::error(&error)
            }
        }
    }
}
