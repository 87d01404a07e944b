//! Where a container's network namespace is: Docker or a named netns.
//!
//! Both runtimes answer one question through [`ContainerRuntime`]: is the
//! container running, and if so, an open handle on its network namespace. A
//! container that is not running is *waiting* — reported, nothing half-made,
//! not an error. The handle is opened at once (a Docker PID can be reused) and
//! is meant to be held for one reconcile only: holding it longer pins a dead
//! namespace and its old veth.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::topology::ident::{self, Kind};
use crate::topology::Runtime;

/// A container's namespace, or why there is none yet.
#[derive(Debug)]
pub enum Located {
    Running(File),
    Waiting(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("docker at {socket}: {source}")]
    Docker {
        socket: String,
        #[source]
        source: Arc<bollard::errors::Error>,
    },
    /// Refused before any request: bollard would put the name into the URL path.
    #[error("docker at {socket}: {source}")]
    NotADockerName {
        socket: String,
        #[source]
        source: ident::BadName,
    },
}

/// Where the Docker API is: `--docker`, else `$DOCKER_HOST`, else the default socket.
/// The one place this is decided (the runtime and the daemon's event watcher use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSocket {
    /// As given (`unix:///run/docker.sock`), for messages.
    pub uri: String,
    /// The socket's path.
    pub path: String,
}

impl DockerSocket {
    pub fn resolve(flag: Option<&str>) -> Self {
        let uri = flag
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let path = uri.strip_prefix("unix://").unwrap_or(&uri).to_string();
        Self { uri, path }
    }

    /// An API client on this socket (connects lazily); `timeout` bounds each request, in seconds.
    pub fn client(&self, timeout: u64) -> Result<bollard::Docker, RuntimeError> {
        bollard::Docker::connect_with_unix(&self.path, timeout, bollard::API_DEFAULT_VERSION)
            .map_err(|error| self.error(error))
    }

    fn error(&self, error: bollard::errors::Error) -> RuntimeError {
        RuntimeError::Docker {
            socket: self.uri.clone(),
            source: Arc::new(error),
        }
    }
}

type LocateFuture<'a> = Pin<Box<dyn Future<Output = Result<Located, RuntimeError>> + Send + 'a>>;

/// A container runtime.
pub trait ContainerRuntime: Send + Sync {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a>;
}

/// Named network namespaces under /run/netns.
pub struct NetnsRuntime;

impl ContainerRuntime for NetnsRuntime {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a> {
        Box::pin(async move {
            // Not there, or not mounted yet: waiting, with the reason.
            match crate::netns::open(name) {
                Ok(file) => Ok(Located::Running(file)),
                Err(error) => Ok(Located::Waiting(error.to_string())),
            }
        })
    }
}

/// Docker, through its API socket.
pub struct DockerRuntime {
    socket: DockerSocket,
    client: Result<bollard::Docker, RuntimeError>,
    /// Container name → PID of its last running incarnation seen by `locate`, so its
    /// namespace can be looked at again without asking dockerd (see [`Runtimes::netns_path`]).
    pids: Mutex<HashMap<String, i64>>,
}

impl DockerRuntime {
    /// Socket from `--docker`, else `DOCKER_HOST`, else the default.
    pub fn new(socket: Option<&str>) -> Self {
        let socket = DockerSocket::resolve(socket);
        let client = socket.client(30);
        Self {
            socket,
            client,
            pids: Mutex::default(),
        }
    }

    fn remember(&self, name: &str, pid: Option<i64>) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        match pid {
            Some(pid) => pids.insert(name.to_string(), pid),
            None => pids.remove(name),
        };
    }

    fn last_pid(&self, name: &str) -> Option<i64> {
        let pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        pids.get(name).copied()
    }
}

impl ContainerRuntime for DockerRuntime {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a> {
        Box::pin(async move {
            let docker = self.client.as_ref().map_err(RuntimeError::clone)?;
            // bollard puts the name into the URL path as it is: only a Docker name may go there.
            ident::check(Kind::Docker, name).map_err(|source| RuntimeError::NotADockerName {
                socket: self.socket.uri.clone(),
                source,
            })?;
            let inspected = match docker.inspect_container(name, None).await {
                Ok(inspected) => inspected,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    self.remember(name, None);
                    return Ok(Located::Waiting(format!(
                        "docker container {name} does not exist"
                    )));
                }
                Err(error) => return Err(self.socket.error(error)),
            };
            let state = inspected.state.unwrap_or_default();
            let pid = state.pid.unwrap_or(0);
            if state.running != Some(true) || pid <= 0 {
                self.remember(name, None);
                return Ok(Located::Waiting(format!(
                    "docker container {name} is not running"
                )));
            }
            match File::open(format!("/proc/{pid}/ns/net")) {
                Ok(file) => {
                    self.remember(name, Some(pid));
                    Ok(Located::Running(file))
                }
                Err(error) => {
                    self.remember(name, None);
                    Ok(Located::Waiting(format!(
                        "docker container {name} (pid {pid}) went away: {error}"
                    )))
                }
            }
        })
    }
}

/// Both runtimes, picked per container.
pub struct Runtimes {
    pub netns: NetnsRuntime,
    pub docker: DockerRuntime,
}

impl Runtimes {
    pub fn new(docker_socket: Option<&str>) -> Self {
        Self {
            netns: NetnsRuntime,
            docker: DockerRuntime::new(docker_socket),
        }
    }

    pub async fn locate(&self, runtime: &Runtime) -> Result<Located, RuntimeError> {
        match runtime {
            Runtime::Netns(name) => self.netns.locate(name).await,
            Runtime::Docker(name) => self.docker.locate(name).await,
        }
    }

    /// Where the namespace of a container found running by the last `locate` can be
    /// opened again, without asking its runtime: `/run/netns/NAME`, or the Docker
    /// container's `/proc/PID/ns/net` (the PID may be gone or reused since: callers
    /// compare the namespace's identity before trusting it).
    pub fn netns_path(&self, runtime: &Runtime) -> Option<PathBuf> {
        match runtime {
            Runtime::Netns(name) => Some(Path::new("/run/netns").join(name)),
            Runtime::Docker(name) => self
                .docker
                .last_pid(name)
                .map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net"))),
        }
    }
}
