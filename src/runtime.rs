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
use std::pin::Pin;
use std::sync::Mutex;

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
///
/// A running container's init process is remembered (PID, start time), so a
/// later reconcile of a long-lived caller (the daemon) finds the namespace of a
/// container that is still that same process without asking Docker again: at a
/// thousand containers the inspections were most of a no-op reconcile. The
/// process identifies the container only while it lives (a restart, stop or
/// removal ends it, and the next locate asks Docker); it is remembered only if
/// its cgroup names the inspected container's id (so a PID reused between the
/// inspection and the look in /proc is never remembered), and a rename, which
/// keeps the process, has to be told with [`DockerRuntime::forget`].
pub struct DockerRuntime {
    socket: String,
    client: Result<bollard::Docker, String>,
    seen: Mutex<HashMap<String, Seen>>,
}

/// The init process of a running container, as last inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    pid: i64,
    started: u64,
}

/// When process `pid` started (clock ticks after boot), if it exists.
fn start_time(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is the first, starttime the 20th.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether process `pid` runs in the cgroup of container `id`.
fn in_container(pid: i64, id: &str) -> bool {
    !id.is_empty()
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(id))
}

impl Seen {
    /// The namespace, if the process is still the one remembered.
    fn reopen(self) -> Option<File> {
        let file = File::open(format!("/proc/{}/ns/net", self.pid)).ok()?;
        // The same process after the open: the file is its namespace (a PID
        // reused before the open would show another start time).
        (start_time(self.pid) == Some(self.started)).then_some(file)
    }
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
        Self {
            socket,
            client,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Forget every remembered container process (after a rename, or when
    /// Docker's events may have been missed); the next locates ask Docker.
    pub fn forget(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.clear();
        }
    }

    fn remembered(&self, name: &str) -> Option<Seen> {
        self.seen.lock().ok()?.get(name).copied()
    }

    fn remember(&self, name: &str, seen: Option<Seen>) {
        if let Ok(mut map) = self.seen.lock() {
            match seen {
                Some(seen) => map.insert(name.to_string(), seen),
                None => map.remove(name),
            };
        }
    }
}

impl ContainerRuntime for DockerRuntime {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a> {
        Box::pin(async move {
            if let Some(file) = self.remembered(name).and_then(Seen::reopen) {
                return Ok(Located::Running(file));
            }
            self.remember(name, None);
            let docker = self.client.as_ref().map_err(|error| RuntimeError::Docker {
                socket: self.socket.clone(),
                error: error.clone(),
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
            let started = start_time(pid);
            match File::open(format!("/proc/{pid}/ns/net")) {
                Ok(file) => {
                    let id = inspected.id.unwrap_or_default();
                    let same = started.is_some() && start_time(pid) == started;
                    if same && in_container(pid, &id) {
                        let started = started.unwrap_or_default();
                        self.remember(name, Some(Seen { pid, started }));
                    }
                    Ok(Located::Running(file))
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> i64 {
        i64::from(std::process::id())
    }

    #[test]
    fn a_live_process_is_reopened_only_while_it_is_the_same_one() {
        let started = start_time(me()).expect("our own start time");
        let file = Seen { pid: me(), started }.reopen().expect("our namespace");
        assert!(crate::netns::is_netns(&file));
        // Another start time means another process under a reused PID.
        assert!(Seen {
            pid: me(),
            started: started + 1
        }
        .reopen()
        .is_none());
        assert!(start_time(i64::from(i32::MAX)).is_none());
    }

    #[test]
    fn a_process_belongs_to_a_container_only_if_its_cgroup_names_it() {
        assert!(!in_container(me(), ""));
        assert!(!in_container(me(), "0123456789abcdef-no-such-container"));
    }

    #[test]
    fn forget_drops_what_was_remembered() {
        let docker = DockerRuntime::new(Some("unix:///nonexistent/docker.sock"));
        let started = start_time(me()).unwrap();
        docker.remember("c1", Some(Seen { pid: me(), started }));
        assert!(docker.remembered("c1").is_some());
        docker.forget();
        assert!(docker.remembered("c1").is_none());
    }
}
