//! `ovsmesh status`: how far a host (or a lab host) is from its topology, and
//! what the host's own settings (facts, firewall) do to it.

use std::path::PathBuf;

use super::lab::on_host;
use super::load::{host_name, topology_and_desired_of};
use super::{runtime, Format, HostArgs, EXIT_CHANGES, EXIT_FAILURE, EXIT_OK};
use crate::daemon::report;
use crate::engine;
use crate::host::warnings;
use crate::lab::Lab;
use crate::source::DEFAULT_TOPOLOGY;

pub(super) fn status(
    path: &Option<PathBuf>,
    target: HostArgs,
    lab: Option<String>,
    format: Format,
) -> i32 {
    let HostArgs {
        host,
        ovsdb,
        docker,
        timeout,
    } = target;
    // A running daemon of this host reports where its topology comes from; one
    // that follows git left the commit it applied beside its report.
    let host = host_name(host);
    let lab_prefix = lab.clone().unwrap_or_default();
    let daemon = host.as_deref().and_then(|h| report::read(&lab_prefix, h));
    let path = match (path, &daemon, host.as_deref()) {
        (Some(path), _, _) => path.clone(),
        (None, Some(daemon), Some(host)) if daemon.applied.is_some() => {
            report::topology_path(&lab_prefix, host)
        }
        _ => PathBuf::from(DEFAULT_TOPOLOGY),
    };
    let lab = lab.map(|prefix| Lab::new(&prefix));
    let (topology, want) = match topology_and_desired_of(&path, host, format, lab.as_ref()) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let docker = docker.or_else(|| lab.as_ref().and_then(Lab::docker_socket));
    let remote = engine::ovsdb_remote_from_env(ovsdb.as_deref(), &topology, &want.host);
    // The firewall is read where the host's network is (inside a lab host's namespace).
    let planned = on_host(lab.as_ref(), &want.host, || {
        runtime().block_on(engine::plan_remote(
            &topology,
            &want,
            &remote,
            docker.as_deref(),
            timeout,
        ))
    });
    let (plan, observed) = match planned {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
        Err(code) => return code,
    };
    let mut status = crate::status::report(&want, &plan, &observed, &topology.mesh);
    status.daemon = daemon;
    status
        .warnings
        .extend(warnings::warnings(&topology, &want, &observed.facts));
    // The INPUT check reads the same listing the plan was made from.
    if let Some(filter) = observed.firewall.filter_of(topology.mesh.underlay) {
        status.warnings.extend(warnings::tunnel_input(
            &topology,
            &want,
            &observed.facts,
            filter,
        ));
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status serializes")
        ),
        Format::Text => print!("{}", crate::status::render_text(&status)),
    }
    if status.converged {
        EXIT_OK
    } else {
        EXIT_CHANGES
    }
}
