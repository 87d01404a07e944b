//! `ovsmesh apply` and `ovsmesh down`: change a live host, print the outcome.

use std::path::Path;
use std::time::Duration;

use super::load::topology_and_desired;
use super::{runtime, Format, LiveArgs, EXIT_FAILURE, EXIT_OK};
use crate::engine::render::{render_json, render_text, Action};
use crate::engine::{self, HostTarget};
use crate::ovs::Session;
use crate::ovsdb::ConnectOptions;
use crate::runtime::Runtimes;

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
        wait: (!live.no_wait).then(|| Duration::from_secs(live.wait_seconds)),
    };
    let result = runtime().block_on(async {
        let options = ConnectOptions::with_timeout(live.target.timeout);
        let mut session = Session::open_with(&remote, &topology.mesh.name, options).await?;
        match action {
            Action::Apply => engine::apply_host(&mut session, &target).await.map(Some),
            Action::Down => {
                let endpoints = engine::docker_endpoints(&session, &topology, &host).await?;
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
    });
    let outcome = match result {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return EXIT_FAILURE,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
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
