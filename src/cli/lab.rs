//! `ovsmesh lab up|down|status`, and entering a lab host for `status --lab`
//! and `daemon --lab`.

use super::load::load;
use super::{runtime, Format, LabAction, EXIT_FAILURE, EXIT_OK};
use crate::lab::{self, Lab};
use crate::netns;

pub(super) fn lab(action: LabAction) -> i32 {
    let (path, prefix) = match &action {
        LabAction::Up {
            topology, prefix, ..
        }
        | LabAction::Down { topology, prefix }
        | LabAction::Status { topology, prefix } => (topology.clone(), prefix.clone()),
    };
    let lab = Lab::new(&prefix);
    match action {
        LabAction::Up { docker, .. } => {
            let topology = match load(&path, Format::Text) {
                Ok(topology) => topology,
                Err(code) => return code,
            };
            match runtime().block_on(lab::up(&lab, &topology, docker)) {
                Ok(report) => {
                    print!("{}", lab::render_up(&lab, &topology, &report, docker));
                    if report.failed() {
                        EXIT_FAILURE
                    } else {
                        EXIT_OK
                    }
                }
                Err(error) => {
                    eprintln!("ovsmesh: {error}");
                    eprintln!(
                        "(clean up with: ovsmesh lab down {} --prefix {prefix})",
                        path.display()
                    );
                    EXIT_FAILURE
                }
            }
        }
        LabAction::Down { .. } => match runtime().block_on(lab::down(&lab)) {
            Ok(removed) if removed.is_empty() => {
                println!("lab {prefix}: nothing to remove");
                EXIT_OK
            }
            Ok(removed) => {
                for item in removed {
                    println!("removed {item}");
                }
                EXIT_OK
            }
            Err(error) => {
                eprintln!("ovsmesh: {error}");
                EXIT_FAILURE
            }
        },
        LabAction::Status { .. } => {
            let lines = lab::status(&lab);
            if lines.is_empty() {
                println!("lab {prefix}: nothing runs");
            }
            for line in lines {
                println!("{line}");
            }
            EXIT_OK
        }
    }
}

/// Run `work` inside lab host `host`'s namespace (on a thread of its own, see
/// [`netns::run`]) so it acts on that host as it would on a real one; without
/// a lab, right here. `Err` holds the exit code.
pub(super) fn on_host<T: Send>(
    lab: Option<&Lab>,
    host: &str,
    work: impl FnOnce() -> T + Send,
) -> Result<T, i32> {
    let Some(lab) = lab else {
        return Ok(work());
    };
    netns::open(&lab.host_ns(host))
        .and_then(|ns| netns::run(&ns, work))
        .map_err(|error| {
            eprintln!("ovsmesh: lab {} host {host}: {error}", lab.prefix);
            EXIT_FAILURE
        })
}
