//! Command-line interface and exit codes.
//!
//! Exit codes, for every command: 0 success / nothing to change; 1 runtime
//! failure; 2 changes pending (`plan`) or not converged (`status`); 3 invalid
//! topology or arguments; 4 `check` found mismatches.
//!
//! This file holds the arguments and the dispatch; each command lives in its
//! own file, and prints what the library renders.

mod check;
mod daemon;
mod docs;
mod fleet;
mod graph;
mod lab;
mod live;
mod load;
mod plan;
mod status;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::render::Action;
pub use docs::command;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_CHANGES: i32 = 2;
pub const EXIT_INVALID: i32 = 3;
pub const EXIT_MISMATCH: i32 = 4;

/// The version `--version` prints: the crate's and the git revision it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("OVSMESH_GIT_REVISION"),
    ")"
);

/// What `--help` and the man page say after the commands.
const AFTER_HELP: &str = "\
Environment:
  OVSMESH_HOST   this host's name in the topology (--host), else the machine's hostname
  OVSMESH_OVSDB  the OVSDB remote (--ovsdb), else the host's `ovsdb` key, else the system socket
  DOCKER_HOST    the Docker API socket (--docker), else /var/run/docker.sock
  OVSMESH_LOG    log filter on stderr (daemon, apply, down), e.g. debug or ovsmesh=debug

Exit status:
  0  success / nothing to change
  1  runtime failure, or a conflict (something not ovsmesh's holds an object's place)
  2  changes pending (plan) or not converged (status)
  3  invalid topology or arguments
  4  check found mismatches";

#[derive(Debug, Parser)]
#[command(
    name = "ovsmesh",
    version = VERSION,
    about = "Declarative multi-host Open vSwitch networking for containers",
    long_about = "Declarative multi-host Open vSwitch networking for containers.\n\n\
        ovsmesh turns one TOML topology, kept in git, into VLAN segments stretched across hosts \
        over tunnels, a routed overlay with a subnet per host, and fixed container addresses: \
        validate it, plan and apply it per host, keep it applied with the daemon, check it with packets.",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum Format {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a topology file; report every problem as FILE:LINE:COL: key.path: message.
    Validate {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Output format of the verdict and the problems.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print the JSON schema of the topology format.
    Schema,
    /// Print the state a host must have according to the topology, as JSON.
    Desired {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Host [default: $OVSMESH_HOST, else this machine's hostname].
        #[arg(long, env = "OVSMESH_HOST")]
        host: Option<String>,
    },
    /// Show what must change on a host to match the topology (exit 2 when something must).
    Plan {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[command(flatten)]
        target: HostArgs,
        /// Plan against an empty host instead of reading the live one.
        #[arg(long)]
        offline: bool,
        /// Output format of the plan.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Make a host match the topology (one OVSDB transaction); prints what changed.
    Apply {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Remove this mesh's objects from a host; foreign ports and adopted bridges stay.
    Down {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        #[command(flatten)]
        live: LiveArgs,
        /// Take the host down although a daemon of this mesh runs for it (it
        /// puts everything back at its next reconcile; stop it first instead),
        /// or Docker containers are attached through the plugin (their
        /// endpoints' ports go too; the containers lose the network).
        #[arg(long)]
        force: bool,
    },
    /// Keep a host equal to the topology: re-plumb restarted containers, undo drift, follow edits.
    Daemon(Box<DaemonArgs>),
    /// Per container interface and tunnel: attached, waiting, drifted, errors; host warnings.
    Status {
        /// Topology file [default: $OVSMESH_TOPOLOGY; else, when this host's daemon
        /// follows git, the commit it applied; else /etc/ovsmesh/topology.toml].
        #[arg(env = "OVSMESH_TOPOLOGY")]
        topology: Option<PathBuf>,
        #[command(flatten)]
        target: HostArgs,
        /// The status of a lab host (the lab twin of the topology, inside its namespace).
        #[arg(long, value_parser = crate::topology::ident::lab_prefix)]
        lab: Option<String>,
        /// Output format of the report.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A local twin of a topology: one namespace per host with its own Open vSwitch.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Every host's daemon, one line each: commit, converged, tunnels up, warnings (exit 2 when split).
    Fleet {
        #[command(subcommand)]
        action: FleetAction,
    },
    /// Prove reachability and isolation with packets (exit 4 on any mismatch).
    Check {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Check the lab with this prefix.
        #[arg(long, conflicts_with = "host", value_parser = crate::topology::ident::lab_prefix)]
        lab: Option<String>,
        /// Check this real host's containers against everyone else (ping and MTU only).
        #[arg(long)]
        host: Option<String>,
        /// Docker API socket [default: the lab's, else $DOCKER_HOST].
        #[arg(long)]
        docker: Option<String>,
        /// Output format of the matrix and the mismatches.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Draw the mesh: hosts, bridges, VLANs, tunnels, the routed overlay, containers.
    Graph {
        #[arg(help = TOPOLOGY)]
        topology: PathBuf,
        /// Mermaid (renders in Markdown on code-hosting sites) or Graphviz DOT (`dot -Tsvg`).
        #[arg(long, value_enum, default_value_t)]
        format: GraphFormat,
        /// Only this host, with its links to its peers (the whole mesh by default).
        #[arg(long)]
        host: Option<String>,
    },
    /// Print a shell completion script (e.g. `ovsmesh completions bash > /etc/bash_completion.d/ovsmesh`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    Man {
        /// Write ovsmesh.1 and one ovsmesh-COMMAND.1 per command here instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

const TOPOLOGY: &str = "The topology file (TOML)";

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum GraphFormat {
    /// A Mermaid flowchart.
    #[default]
    Mermaid,
    /// A Graphviz graph.
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (journald, log shippers).
    Json,
}

#[derive(Debug, Subcommand)]
enum LabAction {
    /// Build the twin and apply the topology on every lab host.
    Up {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Lab prefix: names its namespaces PREFIX-HOST (1 to 12 letters or digits).
        #[arg(long, default_value = "om", value_parser = crate::topology::ident::lab_prefix)]
        prefix: String,
        /// Also run the topology's Docker containers (private dockerd unless $DOCKER_HOST).
        #[arg(long)]
        docker: bool,
    },
    /// Remove everything of the lab (idempotent; also after a crash or a half `up`).
    Down {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Lab prefix given to `lab up`.
        #[arg(long, default_value = "om", value_parser = crate::topology::ident::lab_prefix)]
        prefix: String,
    },
    /// List what runs in the lab.
    Status {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// Lab prefix given to `lab up`.
        #[arg(long, default_value = "om", value_parser = crate::topology::ident::lab_prefix)]
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
enum FleetAction {
    /// Ask each host's daemon (GET /status on its metrics listener at the host's
    /// underlay address and --port), all at once, each bounded by --timeout.
    Status {
        /// Topology file.
        #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
        topology: PathBuf,
        /// The port of the daemons' metrics listeners (`--metrics`).
        #[arg(long, default_value_t = 9475)]
        port: u16,
        /// Bound on each host's answer, e.g. 3s.
        #[arg(long, default_value = "3s", value_parser = daemon::parse_timeout)]
        timeout: Duration,
        /// Ask the daemons of this lab's hosts (inside each host's namespace, on 127.0.0.1).
        #[arg(long, value_parser = crate::topology::ident::lab_prefix)]
        lab: Option<String>,
        /// Output format of the per-host lines.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Which host, and how to reach its OVSDB and Docker.
#[derive(Debug, clap::Args)]
struct HostArgs {
    /// Host [default: $OVSMESH_HOST, else this machine's hostname].
    #[arg(long, env = "OVSMESH_HOST")]
    host: Option<String>,
    /// OVSDB remote, e.g. unix:/var/run/openvswitch/db.sock or tcp:IP:PORT [default: the host's `ovsdb`, else the system socket].
    #[arg(long, env = "OVSMESH_OVSDB")]
    ovsdb: Option<String>,
    /// Docker API socket [default: $DOCKER_HOST, else /var/run/docker.sock].
    #[arg(long)]
    docker: Option<String>,
    /// Deadline of each OVSDB request and of waiting for the mesh lock, e.g. 10s, 500ms.
    #[arg(long, default_value = "10s", value_parser = daemon::parse_timeout)]
    timeout: Duration,
}

/// Options of the daemon.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    /// Topology file (not with --git).
    #[arg(env = "OVSMESH_TOPOLOGY", default_value = crate::source::DEFAULT_TOPOLOGY)]
    topology: PathBuf,
    #[command(flatten)]
    target: HostArgs,
    #[command(flatten)]
    git: GitArgs,
    /// Serve Prometheus metrics (GET /metrics) and the daemon's report (GET /status,
    /// for `fleet status`) here, e.g. 127.0.0.1:9475.
    #[arg(long, env = "OVSMESH_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Full resync period, e.g. 60s, 5m (at least 1s).
    #[arg(long, default_value = "60s", value_parser = daemon::parse_period)]
    resync: Duration,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t)]
    log_format: LogFormat,
    /// Keep the lab twin with this prefix converged (runs inside the lab host's namespace).
    #[arg(long, value_parser = crate::topology::ident::lab_prefix)]
    lab: Option<String>,
    /// Serve Docker's network and IPAM plugin NAME on /run/docker/plugins/NAME.sock
    /// (`docker network create -d NAME --ipam-driver NAME`) and make a Docker network per
    /// topology network of this host; also served when systemd hands a socket over.
    #[arg(long, env = "OVSMESH_DOCKER_PLUGIN", num_args = 0..=1,
          default_missing_value = crate::plugin::DEFAULT_NAME, value_parser = plugin_name)]
    docker_plugin: Option<String>,
}

/// A plugin name is a file name under /run/docker/plugins.
fn plugin_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !text.starts_with('.');
    ok.then(|| text.to_string())
        .ok_or_else(|| format!("{text:?} is not a plugin name (letters, digits, '-', '_', '.')"))
}

/// Following a git remote instead of a file.
#[derive(Debug, clap::Args)]
struct GitArgs {
    /// Follow the topology in this git remote: git://, ssh:// (through `ssh`),
    /// file:// or a path (http(s) is not built in).
    #[arg(long, env = "OVSMESH_GIT")]
    git: Option<String>,
    /// Branch (or full ref, e.g. refs/tags/prod) to follow.
    #[arg(long = "ref", default_value = "main", env = "OVSMESH_GIT_REF")]
    reference: String,
    /// Path of the topology file in the repository.
    #[arg(long, default_value = "topology.toml", env = "OVSMESH_GIT_PATH")]
    path: String,
    /// Poll period of the remote (± 20 % jitter, at least 1s); SIGHUP fetches at once.
    #[arg(long, default_value = "30s", value_parser = daemon::parse_period, env = "OVSMESH_GIT_POLL")]
    poll: Duration,
    /// Apply only commits signed by a key in this file (git's
    /// gpg.ssh.allowedSignersFile format); without it, the remote is trusted unsigned.
    #[arg(long, env = "OVSMESH_ALLOWED_SIGNERS")]
    allowed_signers: Option<PathBuf>,
    /// How long a new commit has to prove that the host still reaches the peers it
    /// reached and verifies, before it is rolled back.
    #[arg(long, default_value = "30s", value_parser = daemon::parse_duration, env = "OVSMESH_ROLLBACK_WINDOW")]
    rollback_window: Duration,
    /// Where fetched remotes are cached, and what the daemon keeps about their commits.
    #[arg(long, default_value = "/var/lib/ovsmesh", env = "OVSMESH_STATE_DIR")]
    state_dir: PathBuf,
}

/// Options of commands that change a live host.
#[derive(Debug, clap::Args)]
struct LiveArgs {
    #[command(flatten)]
    target: HostArgs,
    /// Do not wait for ovs-vswitchd to apply the change (like `ovs-vsctl --no-wait`).
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for ovs-vswitchd to apply the change, e.g. 10s, 1m (plain numbers are seconds).
    #[arg(long, default_value = "10s", value_parser = daemon::parse_duration, alias = "wait-seconds")]
    wait: Duration,
    /// Output format of what changed.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
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
        Command::Validate { topology, format } => validate::validate(&topology, format),
        Command::Schema => validate::schema(),
        Command::Desired { topology, host } => plan::desired(&topology, host),
        Command::Plan {
            topology,
            target,
            offline,
            format,
        } => plan::plan(&topology, target, offline, format),
        Command::Apply { topology, live } => live::live(&topology, live, Action::Apply, false),
        Command::Down {
            topology,
            live,
            force,
        } => live::live(&topology, live, Action::Down, force),
        Command::Lab { action } => lab::lab(action),
        Command::Daemon(args) => daemon::daemon(*args),
        Command::Status {
            topology,
            target,
            lab,
            format,
        } => status::status(&topology, target, lab, format),
        Command::Fleet {
            action:
                FleetAction::Status {
                    topology,
                    port,
                    timeout,
                    lab,
                    format,
                },
        } => fleet::status(&topology, port, timeout, lab, format),
        Command::Check {
            topology,
            lab,
            host,
            docker,
            format,
        } => check::check(&topology, lab, host, docker, format),
        Command::Graph {
            topology,
            format,
            host,
        } => graph::graph(&topology, format, host.as_deref()),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
    }
}

/// The runtime every command's I/O runs on: one thread, the caller's.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
