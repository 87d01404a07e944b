//! Where a container's network namespace is: Docker or a named netns.
//!
//! Both runtimes answer one question through [`ContainerRuntime`]: is the
//! container running, and if so, an open handle on its network namespace. A
//! container that is not running is *waiting* — reported, nothing half-made,
//! not an error. The handle is opened at once (a Docker PID can be reused) and
//! is meant to be held for one reconcile only: holding it longer pins a dead
//! namespace and its old veth.

use std::fs::File;
use std::future::Future;
use std::pin::Pin;

use crate::topology::ident::{self, Kind};
use crate::topology::Runtime;

/// A container's namespace, or why there is none yet.
#[derive(Debug)]
pub enum Located {
    Running(File),
    Waiting(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("docker at {socket}: {error}")]
    Docker { socket: String, error: String },
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
    socket: String,
    client: Result<bollard::Docker, String>,
}

impl DockerRuntime {
    /// Socket from `--docker`, else `DOCKER_HOST`, else the default.
    pub fn new(socket: Option<&str>) -> Self {
        let socket = socket
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let path = socket
            .strip_prefix("unix://")
            .unwrap_or(&socket)
            .to_string();
        let client = bollard::Docker::connect_with_unix(&path, 30, bollard::API_DEFAULT_VERSION)
            .map_err(|e| e.to_string());
        Self { socket, client }
    }
}

impl ContainerRuntime for DockerRuntime {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a> {
        Box::pin(async move {
            let docker = self.client.as_ref().map_err(|error| RuntimeError::Docker {
                socket: self.socket.clone(),
                error: error.clone(),
            })?;
            // bollard puts the name into the URL path as it is: only a Docker name may go there.
            ident::check(Kind::Docker, name).map_err(|e| RuntimeError::Docker {
                socket: self.socket.clone(),
                error: e.to_string(),
            })?;
            let inspected = match docker.inspect_container(name, None).await {
                Ok(inspected) => inspected,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Ok(Located::Waiting(format!(
                        "docker container {name} does not exist"
                    )));
                }
                Err(error) => {
                    return Err(RuntimeError::Docker {
                        socket: self.socket.clone(),
                        error: error.to_string(),
                    })
                }
            };
            let state = inspected.state.unwrap_or_default();
            let pid = state.pid.unwrap_or(0);
            if state.running != Some(true) || pid <= 0 {
                return Ok(Located::Waiting(format!(
                    "docker container {name} is not running"
                )));
            }
            match File::open(format!("/proc/{pid}/ns/net")) {
                Ok(file) => Ok(Located::Running(file)),
                Err(error) => Ok(Located::Waiting(format!(
                    "docker container {name} (pid {pid}) went away: {error}"
                ))),
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
}
