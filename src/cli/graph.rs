//! `ovsmesh graph`: the topology as a Mermaid or DOT picture on stdout.

use std::path::Path;

use super::load::load;
use super::{Format, GraphFormat, EXIT_INVALID, EXIT_OK};
use crate::graph;

pub(super) fn graph(path: &Path, format: GraphFormat, host: Option<&str>) -> i32 {
    let topology = match load(path, Format::Text) {
        Ok(topology) => topology,
        Err(code) => return code,
    };
    match graph::build(&topology, host) {
        Ok(picture) => {
            match format {
                GraphFormat::Mermaid => print!("{}", graph::render_mermaid(&picture)),
                GraphFormat::Dot => print!("{}", graph::render_dot(&picture)),
            }
            EXIT_OK
        }
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            EXIT_INVALID
        }
    }
}
