//! `ovsmesh validate` and `ovsmesh schema`: the topology file on its own.

use std::path::Path;

use serde_json::json;

use super::load::load;
use super::{Format, EXIT_OK};
use crate::topology;

pub(super) fn validate(path: &Path, format: Format) -> i32 {
    let topology = match load(path, format) {
        Ok(topology) => topology,
        Err(code) => return code,
    };
    let summary = format!(
        "mesh {}: {} hosts, {} networks, {} containers",
        topology.mesh.name,
        topology.hosts.len(),
        topology.networks.len(),
        topology.containers.len()
    );
    if format == Format::Json {
        println!(
            "{}",
            json!({ "valid": true, "file": path.display().to_string(), "summary": summary })
        );
    } else {
        println!("{}: valid ({summary})", path.display());
    }
    EXIT_OK
}

pub(super) fn schema() -> i32 {
    print!("{}", topology::json_schema());
    EXIT_OK
}
