//! Command-line interface and exit codes.
//!
//! Exit codes, for every command: 0 success / nothing to change; 1 runtime
//! failure; 2 changes pending (`plan`) or not converged (`status`); 3 invalid
//! topology or arguments; 4 `check` found mismatches.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::desired::desired;
use crate::plan::{plan, render_json, render_text};
use crate::state::HostState;
use crate::topology::{self, LoadError, Topology};

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_CHANGES: i32 = 2;
pub const EXIT_INVALID: i32 = 3;
pub const EXIT_MISMATCH: i32 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "ovsmesh",
    version,
    about = "Declarative multi-host Open vSwitch networking for containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a topology file; report every problem as FILE:LINE:COL: key.path: message.
    Validate {
        topology: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print the JSON schema of the topology format.
    Schema,
    /// Print the state a host must have according to the topology, as JSON.
    Desired {
        topology: PathBuf,
        /// Host [default: $OVSMESH_HOST, else this machine's hostname].
        #[arg(long, env = "OVSMESH_HOST")]
        host: Option<String>,
    },
    /// Show what must change on a host to match the topology (exit 2 when something must).
    Plan {
        topology: PathBuf,
        /// Host to plan for [default: $OVSMESH_HOST, else this machine's hostname].
        #[arg(long, env = "OVSMESH_HOST")]
        host: Option<String>,
        /// Plan against an empty host instead of reading the live one.
        #[arg(long)]
        offline: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Run the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_INVALID,
            };
        }
    };
    match cli.command {
        Command::Validate { topology, format } => validate(&topology, format),
        Command::Schema => {
            print!("{}", topology::json_schema());
            EXIT_OK
        }
        Command::Desired { topology, host } => desired_command(&topology, host),
        Command::Plan {
            topology,
            host,
            offline,
            format,
        } => plan_command(&topology, host, offline, format),
    }
}

/// Load a topology or print why not; `Err` holds the exit code.
fn load(path: &Path, format: Format) -> Result<Topology, i32> {
    match topology::load(path) {
        Ok(topology) => Ok(topology),
        Err(LoadError::Read { path, error }) => {
            eprintln!("ovsmesh: cannot read topology {path}: {error}");
            Err(EXIT_INVALID)
        }
        Err(LoadError::Invalid(invalid)) => {
            let messages = invalid.messages();
            if format == Format::Json {
                println!(
                    "{}",
                    json!({ "valid": false, "file": path.display().to_string(), "problems": messages })
                );
            } else {
                for message in &messages {
                    eprintln!("{message}");
                }
                eprintln!(
                    "{}: {} problem(s); nothing was changed",
                    path.display(),
                    messages.len()
                );
            }
            Err(EXIT_INVALID)
        }
    }
}

fn validate(path: &Path, format: Format) -> i32 {
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

/// `--host`, else `$OVSMESH_HOST` (via clap), else the machine's hostname.
fn host_name(host: Option<String>) -> Option<String> {
    host.or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    })
}

/// The topology and one host's desired state, or the exit code explaining why not.
fn topology_and_desired(
    path: &Path,
    host: Option<String>,
    format: Format,
) -> Result<(Topology, HostState), i32> {
    let topology = load(path, format)?;
    let Some(host) = host_name(host) else {
        eprintln!("ovsmesh: no --host given, OVSMESH_HOST unset and no hostname");
        return Err(EXIT_INVALID);
    };
    match desired(&topology, &host) {
        Ok(state) => Ok((topology, state)),
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            Err(EXIT_INVALID)
        }
    }
}

fn desired_command(path: &Path, host: Option<String>) -> i32 {
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

fn plan_command(path: &Path, host: Option<String>, offline: bool, format: Format) -> i32 {
    let (topology, want) = match topology_and_desired(path, host, format) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let host = want.host.clone();
    if !offline {
        eprintln!("ovsmesh: planning against a live host needs its OVSDB and netlink observers, which this build does not have yet; use --offline");
        return EXIT_FAILURE;
    }
    let observed = HostState {
        host: host.clone(),
        ..HostState::default()
    };
    let plan = plan(&topology.mesh.name, &want, &observed);
    let text = match format {
        Format::Text => render_text(&plan),
        Format::Json => render_json(&plan),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    if plan.is_empty() {
        EXIT_OK
    } else {
        EXIT_CHANGES
    }
}
