//! The Docker network plugin, served from the daemon (`--docker-plugin`, or a
//! socket systemd hands over): its server and the Docker networks' upkeep run
//! as tasks of their own beside the reconcile loop, and see every topology the
//! daemon loads. See `crate::plugin`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::DaemonConfig;
use crate::plugin::{networks, server, Plugin, ToDaemon, DEFAULT_NAME};
use crate::runtime::DockerSocket;
use crate::topology::Topology;

/// `--docker-plugin NAME`: serve it, on `DIR/NAME.sock` unless systemd hands a socket over.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    /// Where Docker looks for plugins (`/run/docker/plugins`; a lab host's own).
    pub dir: PathBuf,
}

/// The running plugin, as the daemon's loop talks to it.
pub struct Running {
    plugin: Arc<Plugin>,
    topology: watch::Sender<Arc<Topology>>,
    nudge: mpsc::UnboundedSender<()>,
}

impl Running {
    /// Serve the plugin if it is asked for or systemd handed a socket over.
    pub fn start(
        config: &DaemonConfig,
        topology: &Topology,
        remote: String,
        to_daemon: ToDaemon,
    ) -> Result<Option<Self>, server::ServeError> {
        let inherited = server::inherited();
        let wanted = config.docker_plugin.clone().or_else(|| {
            inherited.as_ref().map(|_| PluginConfig {
                name: DEFAULT_NAME.to_string(),
                dir: PathBuf::from("/run/docker/plugins"),
            })
        });
        let Some(wanted) = wanted else {
            return Ok(None);
        };
        let path = server::socket_path(&wanted.dir, &wanted.name);
        let listener = match inherited {
            Some(listener) => listener,
            None => server::bind(&path)?,
        };
        let (topology_tx, topology_rx) = watch::channel(Arc::new(topology.clone()));
        let plugin = Arc::new(Plugin::new(
            &wanted.name,
            &config.host,
            topology_rx.clone(),
            remote,
            config.timeout,
            to_daemon,
        ));
        tracing::info!(plugin = %wanted.name, socket = %path.display(), "Docker network plugin served");
        tokio::spawn(server::serve(listener, plugin.clone()));
        let (nudge, nudged) = mpsc::unbounded_channel();
        let socket = DockerSocket::resolve(config.docker.as_deref());
        tokio::spawn(networks::keep(plugin.clone(), socket, topology_rx, nudged));
        Ok(Some(Self {
            plugin,
            topology: topology_tx,
            nudge,
        }))
    }

    /// A topology is in force.
    pub fn loaded(&self, topology: &Topology) {
        let _ = self.topology.send(Arc::new(topology.clone()));
    }

    /// The endpoints being made right now.
    pub fn making(&self) -> std::collections::BTreeSet<String> {
        self.plugin.making()
    }

    /// Look at the Docker networks again (dockerd came back).
    pub fn nudge(&self) {
        let _ = self.nudge.send(());
    }
}
