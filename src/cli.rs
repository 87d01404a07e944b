//! Command-line interface and exit codes.
//!
//! Exit codes, for every command: 0 success / nothing to change; 1 runtime
//! failure; 2 changes pending (`plan`) or not converged (`status`); 3 invalid
//! topology or arguments; 4 `check` found mismatches.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use std::time::Duration;

use crate::desired::{desired, settle};
use crate::engine::{self, HostTarget};
use crate::lab::Lab;
use crate::ovs::Session;
use crate::plan::{plan, render_json, render_text};
use crate::runtime::Runtimes;
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
        #[command(flatten)]
        target: HostArgs,
        /// Plan against an empty host instead of reading the live one.
        #[arg(long)]
        offline: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Make a host match the topology (one OVSDB transaction); prints what changed.
    Apply {
        topology: PathBuf,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Remove this mesh's objects from a host; foreign ports and adopted bridges stay.
    Down {
        topology: PathBuf,
        #[command(flatten)]
        live: LiveArgs,
    },
    /// Keep a host equal to the topology: re-plumb restarted containers, undo drift, follow edits.
    Daemon(DaemonArgs),
    /// Per container interface and tunnel: attached, waiting, drifted, errors; host warnings.
    Status {
        topology: PathBuf,
        #[command(flatten)]
        target: HostArgs,
        /// The status of a lab host (the lab twin of the topology, inside its namespace).
        #[arg(long)]
        lab: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// A local twin of a topology: one namespace per host with its own Open vSwitch.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Prove reachability and isolation with packets (exit 4 on any mismatch).
    Check {
        topology: PathBuf,
        /// Check the lab with this prefix.
        #[arg(long, conflicts_with = "host")]
        lab: Option<String>,
        /// Check this real host's containers against everyone else (ping and MTU only).
        #[arg(long)]
        host: Option<String>,
        /// Docker API socket [default: the lab's, else $DOCKER_HOST].
        #[arg(long)]
        docker: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum LabAction {
    /// Build the twin and apply the topology on every lab host.
    Up {
        topology: PathBuf,
        #[arg(long, default_value = "om")]
        prefix: String,
        /// Also run the topology's Docker containers (private dockerd unless $DOCKER_HOST).
        #[arg(long)]
        docker: bool,
    },
    /// Remove everything of the lab (idempotent; also after a crash or a half `up`).
    Down {
        topology: PathBuf,
        #[arg(long, default_value = "om")]
        prefix: String,
    },
    /// List what runs in the lab.
    Status {
        topology: PathBuf,
        #[arg(long, default_value = "om")]
        prefix: String,
    },
}

/// Which host, and how to reach its OVSDB and Docker.
#[derive(Debug, clap::Args)]
struct HostArgs {
    /// Host [default: $OVSMESH_HOST, else this machine's hostname].
    #[arg(long, env = "OVSMESH_HOST")]
    host: Option<String>,
    /// OVSDB remote [default: $OVSMESH_OVSDB, else the host's `ovsdb`, else the system socket].
    #[arg(long)]
    ovsdb: Option<String>,
    /// Docker API socket [default: $DOCKER_HOST, else /var/run/docker.sock].
    #[arg(long)]
    docker: Option<String>,
}

/// Options of the daemon.
#[derive(Debug, clap::Args)]
struct DaemonArgs {
    topology: PathBuf,
    #[command(flatten)]
    target: HostArgs,
    /// Serve Prometheus metrics here (e.g. 127.0.0.1:9475).
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Full resync period, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    resync: Duration,
    #[arg(long, value_enum, default_value_t)]
    log_format: LogFormat,
    /// Keep the lab twin with this prefix converged (runs inside the lab host's namespace).
    #[arg(long)]
    lab: Option<String>,
}

/// Options of commands that change a live host.
#[derive(Debug, clap::Args)]
struct LiveArgs {
    #[command(flatten)]
    target: HostArgs,
    /// Do not wait for ovs-vswitchd to apply the change (like `ovs-vsctl --no-wait`).
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for ovs-vswitchd, in seconds.
    #[arg(long, default_value_t = 10)]
    wait_seconds: u64,
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
        Command::Validate { topology, format } => validate(&topology, format),
        Command::Schema => {
            print!("{}", topology::json_schema());
            EXIT_OK
        }
        Command::Desired { topology, host } => desired_command(&topology, host),
        Command::Plan {
            topology,
            target,
            offline,
            format,
        } => plan_command(&topology, target, offline, format),
        Command::Apply { topology, live } => live_command(&topology, live, LiveAction::Apply),
        Command::Down { topology, live } => live_command(&topology, live, LiveAction::Down),
        Command::Lab { action } => lab_command(action),
        Command::Daemon(args) => daemon_command(args),
        Command::Status {
            topology,
            target,
            lab,
            format,
        } => status_command(&topology, target, lab, format),
        Command::Check {
            topology,
            lab,
            host,
            docker,
            format,
        } => check_command(&topology, lab, host, docker, format),
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
pub(crate) fn host_name(host: Option<String>) -> Option<String> {
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
    topology_and_desired_of(path, host, format, None)
}

/// [`topology_and_desired`], for a lab host's twin when `lab` is given.
fn topology_and_desired_of(
    path: &Path,
    host: Option<String>,
    format: Format,
    lab: Option<&Lab>,
) -> Result<(Topology, HostState), i32> {
    let topology = load(path, format)?;
    let topology = match lab {
        Some(lab) => lab.twin(&topology),
        None => topology,
    };
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

fn plan_command(path: &Path, target: HostArgs, offline: bool, format: Format) -> i32 {
    let HostArgs {
        host,
        ovsdb,
        docker,
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
        plan(&settle(&topology.mesh.name, &want, &observed))
    } else {
        let remote = engine::ovsdb_remote_from_env(ovsdb.as_deref(), &topology, &host);
        let result = runtime().block_on(engine::plan_remote(
            &topology,
            &want,
            &remote,
            docker.as_deref(),
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

fn print_plan(plan: &crate::plan::Plan, format: Format) -> i32 {
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveAction {
    Apply,
    Down,
}

fn live_command(path: &Path, live: LiveArgs, action: LiveAction) -> i32 {
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
        let mut session = Session::open(&remote, &topology.mesh.name).await?;
        match action {
            LiveAction::Apply => engine::apply_host(&mut session, &target).await,
            LiveAction::Down => engine::down_host(&mut session, &target).await,
        }
    });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
    };
    report_outcome(&outcome, action, live.format)
}

fn report_outcome(outcome: &engine::Outcome, action: LiveAction, format: Format) -> i32 {
    let failed = outcome.failed();
    let failures: Vec<(String, String)> = outcome
        .ovs
        .failures
        .iter()
        .map(|f| (format!("port {} ({})", f.id, f.name), f.error.clone()))
        .chain(
            outcome
                .netlink
                .failures
                .iter()
                .map(|f| (format!("{} {}", f.kind.as_str(), f.id), f.error.clone())),
        )
        .collect();
    if format == Format::Json {
        let failures: Vec<_> = failures
            .iter()
            .map(|(what, error)| json!({"object": what, "error": error}))
            .collect();
        let kept: Vec<_> = outcome
            .ovs
            .kept_bridges
            .iter()
            .map(|(b, ports)| json!({"bridge": b, "foreign_ports": ports}))
            .collect();
        println!(
            "{}",
            json!({"host": outcome.plan.host, "changed": outcome.ovs.applied.iter().chain(&outcome.netlink.applied).collect::<Vec<_>>(),
                   "waiting": outcome.plan.waiting, "kept_bridges": kept, "failures": failures})
        );
    } else {
        let verb = if action == LiveAction::Apply {
            "applied"
        } else {
            "removed"
        };
        if outcome.plan.is_empty() && action == LiveAction::Down {
            println!(
                "nothing to remove: host {} has no objects of this mesh",
                outcome.plan.host
            );
        } else if outcome.plan.is_empty() {
            println!(
                "no changes: host {} already matches the topology",
                outcome.plan.host
            );
        } else {
            println!("{verb} on host {}:", outcome.plan.host);
            print!(
                "{}",
                render_text(&outcome.plan)
                    .lines()
                    .skip(1)
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            );
        }
        for (bridge, ports) in &outcome.ovs.kept_bridges {
            println!(
                "kept bridge {bridge}: it still holds ports ovsmesh does not own ({})",
                ports.join(", ")
            );
        }
        for failure in &outcome.ovs.failures {
            eprintln!(
                "failed: port {} ({}): {}",
                failure.id, failure.name, failure.error
            );
        }
    }
    if failed {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

fn lab_command(action: LabAction) -> i32 {
    let (path, prefix) = match &action {
        LabAction::Up {
            topology, prefix, ..
        }
        | LabAction::Down { topology, prefix }
        | LabAction::Status { topology, prefix } => (topology.clone(), prefix.clone()),
    };
    if prefix.is_empty()
        || prefix.len() > 12
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        eprintln!("ovsmesh: --prefix must be 1 to 12 letters, digits or '-'");
        return EXIT_INVALID;
    }
    let lab = Lab::new(&prefix);
    match action {
        LabAction::Up { docker, .. } => {
            let topology = match load(&path, Format::Text) {
                Ok(topology) => topology,
                Err(code) => return code,
            };
            match runtime().block_on(crate::lab::up(&lab, &topology, docker)) {
                Ok(report) => print_lab(&lab, &topology, &report, docker),
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
        LabAction::Down { .. } => match runtime().block_on(crate::lab::down(&lab)) {
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
            let lines = crate::lab::status(&lab);
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

fn print_lab(lab: &Lab, topology: &Topology, report: &crate::lab::UpReport, docker: bool) -> i32 {
    let twin = lab.twin(topology);
    println!(
        "lab {} of mesh {} is up ({:.1} s)",
        lab.prefix, topology.mesh.name, report.seconds
    );
    println!(
        "underlay switch: namespace {} (bridge br0)",
        lab.switch_ns()
    );
    let mut failed = false;
    for (name, host) in &twin.hosts {
        let outcome = &report.outcomes[name];
        println!(
            "host {name}: namespace {}, underlay {} on {}, OVSDB {}, logs {}",
            lab.host_ns(name),
            host.underlay_address,
            topology.mesh.underlay_bridge,
            lab.ovsdb_remote(name),
            lab.host_dir(name).display()
        );
        println!(
            "  applied {} change(s); waiting: {}",
            outcome.ovs.applied.len() + outcome.netlink.applied.len(),
            if outcome.plan.waiting.is_empty() {
                "none".to_string()
            } else {
                outcome.plan.waiting.join(", ")
            }
        );
        for failure in &outcome.ovs.failures {
            failed = true;
            println!(
                "  FAILED port {} ({}): {}",
                failure.id, failure.name, failure.error
            );
        }
        for failure in &outcome.netlink.failures {
            failed = true;
            println!(
                "  FAILED {} {}: {}",
                failure.kind.as_str(),
                failure.id,
                failure.error
            );
        }
    }
    for container in twin.containers.values() {
        let place = match &container.runtime {
            crate::topology::Runtime::Netns(ns) => format!("ip netns exec {ns} ..."),
            crate::topology::Runtime::Docker(name) if docker => format!("docker exec {name} ..."),
            crate::topology::Runtime::Docker(name) => {
                format!("docker container {name} (not started: use --docker)")
            }
        };
        let addresses: Vec<String> = container
            .interfaces
            .iter()
            .map(|i| format!("{} {} ({})", i.ifname, i.address, i.network))
            .collect();
        println!(
            "container {} on {}: {}; {place}",
            container.name,
            container.host,
            addresses.join(", ")
        );
    }
    if failed {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }
}

fn check_command(
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
    let (endpoints, probes) = crate::check::expectations(&checked, from_host.as_deref());
    let runtimes = Runtimes::new(docker.as_deref());
    let netns = runtime().block_on(crate::check::probe::locate(&endpoints, &runtimes));
    let report = crate::check::probe::check(&endpoints, &probes, &netns, tcp);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        Format::Text => print!("{}", crate::check::render_text(&report)),
    }
    if report.mismatches() > 0 {
        EXIT_MISMATCH
    } else {
        EXIT_OK
    }
}

/// `30s`, `5m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s"))?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60,
        "h" => value * 3600,
        "ms" => return Ok(Duration::from_millis(value)),
        _ => return Err(format!("{text:?}: use s, m, h or ms")),
    };
    Ok(Duration::from_secs(seconds))
}

fn daemon_command(args: DaemonArgs) -> i32 {
    let DaemonArgs {
        topology,
        target: HostArgs {
            host,
            ovsdb,
            docker,
        },
        metrics,
        resync,
        log_format,
        lab,
    } = args;
    let filter = tracing_subscriber::EnvFilter::try_from_env("OVSMESH_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let Some(host) = host_name(host) else {
        eprintln!("ovsmesh: no --host given, OVSMESH_HOST unset and no hostname");
        return EXIT_INVALID;
    };
    let mut docker = docker;
    if let Some(prefix) = &lab {
        let lab = Lab::new(prefix);
        if let Err(error) = enter_lab_host(&lab, &host) {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
        docker = docker.or_else(|| lab.docker_socket());
    }
    let config = crate::daemon::DaemonConfig {
        topology,
        host,
        ovsdb,
        docker,
        metrics,
        resync,
        wait: Duration::from_secs(10),
        lab,
    };
    match runtime().block_on(crate::daemon::run(config)) {
        Ok(()) => EXIT_OK,
        Err(crate::daemon::DaemonError::Topology(error)) => {
            eprintln!("{error}");
            EXIT_INVALID
        }
        Err(error @ crate::daemon::DaemonError::UnknownHost(_)) => {
            eprintln!("ovsmesh: {error}");
            EXIT_INVALID
        }
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            EXIT_FAILURE
        }
    }
}

/// Move this (still single-threaded) process into a lab host's namespace, so
/// daemon and status act on that host as they would on a real one.
fn enter_lab_host(lab: &Lab, host: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let file = crate::lab::namespaces::open(&lab.host_ns(host))
        .map_err(|e| format!("lab {} host {host}: {e}", lab.prefix))?;
    // SAFETY: called before any other thread or runtime exists.
    match unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(format!(
            "lab {} host {host}: {}",
            lab.prefix,
            std::io::Error::last_os_error()
        )),
    }
}

fn status_command(path: &Path, target: HostArgs, lab: Option<String>, format: Format) -> i32 {
    let HostArgs {
        host,
        ovsdb,
        docker,
    } = target;
    let lab = lab.map(|prefix| Lab::new(&prefix));
    let (topology, want) = match topology_and_desired_of(path, host, format, lab.as_ref()) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if let Some(lab) = &lab {
        if let Err(error) = enter_lab_host(lab, &want.host) {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
    }
    let docker = docker.or_else(|| lab.as_ref().and_then(Lab::docker_socket));
    let remote = engine::ovsdb_remote_from_env(ovsdb.as_deref(), &topology, &want.host);
    let planned = runtime().block_on(engine::plan_remote(
        &topology,
        &want,
        &remote,
        docker.as_deref(),
    ));
    let (plan, observed) = match planned {
        Ok(found) => found,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            return EXIT_FAILURE;
        }
    };
    let status = crate::status::report(&want, &plan, &observed, topology.mesh.encap);
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
