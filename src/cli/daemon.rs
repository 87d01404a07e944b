//! `ovsmesh daemon`: logging, the lab twin and namespace for `--lab`, exit codes.

use std::sync::Arc;
use std::time::Duration;

use super::lab::on_host;
use super::load::host_name;
use super::{
    runtime, DaemonArgs, GitArgs, HostArgs, LogFormat, EXIT_FAILURE, EXIT_INVALID, EXIT_OK,
};
use crate::daemon::{self, DaemonConfig, DaemonError, Rewrite};
use crate::lab::Lab;
use crate::source::{git, Spec};

/// A duration flag: `humantime`'s syntax (`500ms`, `30s`, `5m`, `1h 30m`), or
/// plain seconds (`--wait-seconds 10` kept working when it became `--wait`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too many seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like 500ms, 60s or 5m: {error}"))
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_in_humantime_syntax_or_plain_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 60s "), Ok(Duration::from_secs(60)));
        for bad in ["", "s", "10 parsecs", "-1s", "99999999999999999999"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                error.contains(&format!("{:?}", bad.trim())),
                "{bad:?}: {error}"
            );
        }
    }
}
