//! `ovsmesh desired` and `ovsmesh plan`: what a host should have, and what must
//! change on it.

use std::io::Write as _;
use std::path::Path;

use super::load::topology_and_desired;
use super::{runtime, Format, HostArgs, EXIT_CHANGES, EXIT_FAILURE, EXIT_OK};
use crate::desired::settle;
use crate::engine;
use crate::plan::{self as diff, render_json, render_text, Plan};
use crate::state::HostState;

pub(super) fn desired(path: &Path, host: Option<String>) -> i32 {
    match topology_and_desired(path, host, Format::Text) {
        Ok((_, state)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&state).expect("state serializes")
            );
            EXIT_OK
        }
        Err(code) => code,
    }
}

pub(super) fn plan(path: &Path, target: HostArgs, offline: bool, format: Format) -> i32 {
    let HostArgs {
        host,
        ovsdb,
        docker,
        timeout,
    } = target;
    let (topology, want) = match topology_and_desired(path, host, format) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let host = want.host.clone();
    let plan = if offline {
        let observed = HostState {
            host: host.clone(),
            ..HostState::default()
        };
        diff::plan(&settle(&topology.mesh.name, &want, &observed))
    } else {
        let remote = engine::ovsdb_remote_from_env(ovsdb.as_deref(), &topology, &host);
        let result = runtime().block_on(engine::plan_remote(
            &topology,
            &want,
            &remote,
            docker.as_deref(),
            timeout,
        ));
        match result {
            Ok((plan, _)) => plan,
            Err(error) => {
                eprintln!("ovsmesh: {error}");
                return EXIT_FAILURE;
            }
        }
    };
    print_plan(&plan, format)
}

fn print_plan(plan: &Plan, format: Format) -> i32 {
    let text = match format {
        Format::Text => render_text(plan),
        Format::Json => render_json(plan),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if !plan.conflicts.is_empty() {
        EXIT_FAILURE
    } else if plan.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHANGES
    }
}
