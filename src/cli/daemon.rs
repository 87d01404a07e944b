//! `ovsmesh daemon`: logging, the lab twin and namespace for `--lab`, exit codes.

use std::sync::Arc;
use std::time::Duration;

use super::lab::on_host;
use super::load::host_name;
use super::{
    runtime, DaemonArgs, GitArgs, HostArgs, LogFormat, EXIT_FAILURE, EXIT_INVALID, EXIT_OK,
};
use crate::daemon::plugin::PluginConfig;
use crate::daemon::{self, DaemonConfig, DaemonError, Rewrite};
use crate::lab::Lab;
use crate::source::{git, Spec};

/// `30s`, `5m`, `1h` or plain seconds.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
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

pub(super) fn daemon(args: DaemonArgs) -> i32 {
    let DaemonArgs {
        topology,
        target:
            HostArgs {
                host,
                ovsdb,
                docker,
                timeout,
            },
        git:
            GitArgs {
                git,
                reference,
                path,
                poll,
                allowed_signers,
                rollback_window,
                state_dir,
            },
        metrics,
        resync,
        log_format,
        lab,
        docker_plugin,
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
    let lab = lab.map(|prefix| Lab::new(&prefix));
    let docker = docker.or_else(|| lab.as_ref().and_then(Lab::docker_socket));
    // The lab's twin of every (re)loaded topology, enforced from inside the lab host.
    let rewrite = lab.clone().map(|lab| {
        let twin = move |topology: &_| lab.twin(topology);
        Rewrite(Arc::new(twin))
    });
    // --git wins over a topology file (which may come from $OVSMESH_TOPOLOGY or the default).
    let source = match git {
        Some(url) => Spec::Git(git::Remote {
            url,
            reference,
            path,
            state_dir,
        }),
        None => Spec::File(topology),
    };
    // A lab host's dockerd looks for plugins in the lab host's own directory.
    let plugin_dir = match &lab {
        Some(lab) => lab.host_dir(&host).join("plugins"),
        None => std::path::PathBuf::from("/run/docker/plugins"),
    };
    let docker_plugin = docker_plugin.map(|name| PluginConfig {
        name,
        dir: plugin_dir,
    });
    let config = DaemonConfig {
        source,
        poll,
        allowed_signers,
        window: rollback_window,
        lab: lab.as_ref().map(|l| l.prefix.clone()).unwrap_or_default(),
        host: host.clone(),
        ovsdb,
        docker,
        metrics,
        resync,
        wait: Duration::from_secs(10),
        rewrite,
        timeout,
        docker_plugin,
    };
    let result = match on_host(lab.as_ref(), &host, || {
        runtime().block_on(daemon::run(config))
    }) {
        Ok(result) => result,
        Err(code) => return code,
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(DaemonError::Topology(error)) => {
            eprintln!("{error}");
            EXIT_INVALID
        }
        Err(error @ (DaemonError::UnknownHost(_) | DaemonError::Signers(_))) => {
            eprintln!("ovsmesh: {error}");
            EXIT_INVALID
        }
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            EXIT_FAILURE
        }
    }
}
