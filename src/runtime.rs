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

use crate::process::start_time;
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
    socket: DockerSocket,
    client: Result<bollard::Docker, RuntimeError>,
    /// Container name → its last running incarnation seen by `locate`: its
    /// namespace can be looked at again without asking dockerd (the daemon's
    /// container watch, [`Runtimes::netns_path`]), and, while the process is
    /// provably the same one, `locate` does not ask dockerd either.
    seen: Mutex<HashMap<String, Seen>>,
}

/// The init process of a running container, as last inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    pid: i64,
    /// Its start time, when it was proved to be the inspected container's
    /// process (its cgroup names the container's id): only then may `locate`
    /// reuse it without asking Docker.
    started: Option<u64>,
}

/// Whether process `pid` runs in the cgroup of container `id`.
fn in_container(pid: i64, id: &str) -> bool {
    !id.is_empty()
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(id))
}

impl Seen {
    /// The namespace, if the process is still the one proved to be the container's.
    fn reopen(self) -> Option<File> {
        let started = self.started?;
        if start_time(self.pid) != Some(started) {
            return None;
        }
        let file = File::open(format!("/proc/{}/ns/net", self.pid)).ok()?;
        // Still the same process after the open: the file is its namespace.
        (start_time(self.pid) == Some(started)).then_some(file)
    }
}

impl DockerRuntime {
    /// Socket from `--docker`, else `DOCKER_HOST`, else the default.
    pub fn new(socket: Option<&str>) -> Self {
        let socket = DockerSocket::resolve(socket);
        let client = socket.client(30);
        Self {
            socket,
            client,
            seen: Mutex::default(),
        }
    }

    /// Forget every remembered container process (after a rename, or when
    /// Docker's events may have been missed); the next locates ask Docker.
    pub fn forget(&self) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn remembered(&self, name: &str) -> Option<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(name).copied()
    }

    fn remember(&self, name: &str, seen: Option<Seen>) {
        let mut map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen {
            Some(seen) => map.insert(name.to_string(), seen),
            None => map.remove(name),
        };
    }

    fn last_pid(&self, name: &str) -> Option<i64> {
        self.remembered(name).map(|s| s.pid)
    }
}

impl ContainerRuntime for DockerRuntime {
    fn locate<'a>(&'a self, name: &'a str) -> LocateFuture<'a> {
        Box::pin(async move {
            if let Some(file) = self.remembered(name).and_then(Seen::reopen) {
                return Ok(Located::Running(file));
            }
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
            let started = start_time(pid);
            match File::open(format!("/proc/{pid}/ns/net")) {
                Ok(file) => {
                    let id = inspected.id.unwrap_or_default();
                    let same = started.is_some() && start_time(pid) == started;
                    let started = started.filter(|_| same && in_container(pid, &id));
                    self.remember(name, Some(Seen { pid, started }));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> i64 {
        i64::from(std::process::id())
    }

    #[test]
    fn a_live_process_is_reopened_only_while_it_is_the_same_one() {
        let started = start_time(me()).expect("our own start time");
        let file = Seen {
            pid: me(),
            started: Some(started),
        }
        .reopen()
        .expect("our namespace");
        assert!(crate::netns::is_netns(&file));
        // Another start time means another process under a reused PID.
        assert!(Seen {
            pid: me(),
            started: Some(started + 1)
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
    fn an_unproven_process_is_watched_but_never_reused_without_docker() {
        let runtimes = Runtimes::new(Some("unix:///nonexistent/docker.sock"));
        let unproven = Seen {
            pid: me(),
            started: None,
        };
        runtimes.docker.remember("c2", Some(unproven));
        assert!(unproven.reopen().is_none());
        assert_eq!(
            runtimes.netns_path(&Runtime::Docker("c2".into())),
            Some(PathBuf::from(format!("/proc/{}/ns/net", me())))
        );
    }

    #[test]
    fn forget_drops_what_was_remembered() {
        let docker = DockerRuntime::new(Some("unix:///nonexistent/docker.sock"));
        let started = start_time(me()).unwrap();
        docker.remember(
            "c1",
            Some(Seen {
                pid: me(),
                started: Some(started),
            }),
        );
        assert!(docker.remembered("c1").is_some());
        docker.forget();
        assert!(docker.remembered("c1").is_none());
    }
}
