//! `ovsmesh check`: reachability and isolation, of a lab or of one real host.

use std::path::Path;

use super::load::{host_name, load};
use super::{runtime, Format, EXIT_FAILURE, EXIT_INVALID, EXIT_MISMATCH, EXIT_OK};
use crate::check::{self, probe};
use crate::lab::Lab;
use crate::runtime::Runtimes;

pub(super) fn check(
    path: &Path,
    lab: Option<String>,
    host: Option<String>,
    docker: Option<String>,
    format: Format,
) -> i32 {
    let topology = match load(path, format) {
        Ok(topology) => topology,
        Err(code) => return code,
    };
    let (checked, from_host, docker, tcp) = match &lab {
        Some(prefix) => {
            let lab = Lab::new(prefix);
            if !lab.dir.exists() {
                eprintln!(
                    "ovsmesh: no lab {prefix} is up (ovsmesh lab up {} --prefix {prefix})",
                    path.display()
                );
                return EXIT_FAILURE;
            }
            let socket = docker.or_else(|| lab.docker_socket());
            (lab.twin(&topology), None, socket, true)
        }
        None => {
            let Some(host) = host_name(host) else {
                eprintln!("ovsmesh: give --lab PREFIX or --host NAME");
                return EXIT_INVALID;
            };
            if !topology.hosts.contains_key(&host) {
                eprintln!("ovsmesh: host {host:?} is not in the topology");
                return EXIT_INVALID;
            }
            (topology.clone(), Some(host), docker, false)
        }
    };
    let (endpoints, probes) = check::expectations(&checked, from_host.as_deref());
    let runtimes = Runtimes::new(docker.as_deref());
    let netns = runtime().block_on(probe::locate(&endpoints, &runtimes));
    let report = probe::check(&endpoints, &probes, &netns, tcp);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Format::Text => print!("{}", check::render_text(&report)),
    }
    if report.mismatches() > 0 {
        EXIT_MISMATCH
    } else {
        EXIT_OK
    }
}
