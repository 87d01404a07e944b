//! `ovsmesh apply` and `ovsmesh down`: change a live host, print the outcome.
//! `down` refuses to run under a daemon of the same mesh keeping that host
//! (see `daemon::running`), unless forced: the daemon would undo it.

use std::path::Path;

use super::load::topology_and_desired;
use super::{runtime, Format, LiveArgs, EXIT_FAILURE, EXIT_OK};
use crate::engine::render::{render_json, render_text, Action};
use crate::engine::{self, HostTarget};
use crate::ovs::Session;
use crate::ovsdb::ConnectOptions;
use crate::runtime::Runtimes;

/// What stopped a command before it changed anything.
enum Refused {
    /// A daemon of this mesh keeps the host (its record).
    Daemon(crate::daemon::running::Record),
    Failed(engine::EngineError),
}

impl From<crate::ovsdb::OvsdbError> for Refused {
    fn from(error: crate::ovsdb::OvsdbError) -> Self {
        Refused::Failed(error.into())
    }
}

/// `force`: take the host down although a daemon of its mesh runs (`down` only).
pub(super) fn live(path: &Path, live: LiveArgs, action: Action, force: bool) -> i32 {
    // `OVSMESH_LOG=debug` shows each step and how long it took, on stderr.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("OVSMESH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let (topology, want) = match topology_and_desired(path, live.target.host, live.format) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let host = want.host.clone();
    let remote = engine::ovsdb_remote_from_env(live.target.ovsdb.as_deref(), &topology, &host);
    let runtimes = Runtimes::new(live.target.docker.as_deref());
    let target = HostTarget {
        topology: &topology,
        host: &host,
        runtimes: &runtimes,
        wait: (!live.no_wait).then_some(live.wait),
    };
    let mesh = &topology.mesh.name;
    let result = runtime().block_on(async {
        let options = ConnectOptions::with_timeout(live.target.timeout);
        let mut session = Session::open_with(&remote, mesh, options).await?;
        if action == Action::Down && !force {
            let root = crate::ovs::root_uuid(&session.client).await?;
            let records = std::path::Path::new(crate::daemon::running::DIR);
            if let Some(daemon) = crate::daemon::running::find(records, mesh, &host, &root) {
                return Err(Refused::Daemon(daemon));
            }
        }
        match action {
            Action::Apply => engine::apply_host(&mut session, &target).await.map(Some),
            Action::Down => {
                let endpoints = engine::docker_endpoints(&session, &topology, &host)
                    .await
                    .map_err(Refused::Failed)?;
                if !endpoints.is_empty() && !force {
                    eprintln!(
                        "ovsmesh: refusing to go down: {} Docker endpoint(s) of mesh {} are attached on this host ({}); stop those containers first, or use --force (they lose the network)",
                        endpoints.len(),
                        topology.mesh.name,
                        endpoints.join(", ")
                    );
                    return Ok(None);
                }
                engine::down_host(&mut session, &target).await.map(Some)
            }
        }
        .map_err(Refused::Failed)
    });
    let outcome = match result {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return EXIT_FAILURE,
        Err(Refused::Failed(error)) => {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
        Err(Refused::Daemon(daemon)) => {
            let pid = daemon.process.pid;
            eprintln!(
                "ovsmesh: refusing to take host {host} down: the daemon of mesh {mesh} keeps it (pid {pid}) and would put everything back at its next reconcile. \
                 Stop the daemon first (`systemctl stop ovsmesh`, or `kill -TERM {pid}`: it exits within 2 s and leaves the network as it is), then run `ovsmesh down` again; \
                 `--force` takes the host down anyway. Nothing was changed."
            );
            return EXIT_FAILURE;
        }
    };
    match live.format {
        Format::Json => print!("{}", render_json(&outcome)),
        Format::Text => {
            let text = render_text(&outcome, action);
            print!("{}", text.stdout);
            eprint!("{}", text.stderr);
        }
    }
    if outcome.failed() {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}
