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

/// The longest duration an option takes: a week. Longer is a mistake, and
/// deadlines that far off would overflow the clocks they are added to.
const LONGEST: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest period of a loop (`--resync`, `--poll`): shorter would run it
/// back to back.
const SHORTEST_PERIOD: Duration = Duration::from_secs(1);

/// A duration flag: `humantime`'s syntax (`500ms`, `30s`, `5m`, `1h 30m`), or
/// plain seconds (`--wait-seconds 10` kept working when it became `--wait`);
/// at most a week.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let too_long = || format!("{text:?} is longer than a week");
    let duration = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Only an overflow fails here: the text is all digits.
        Duration::from_secs(text.parse().map_err(|_| too_long())?)
    } else {
        humantime::parse_duration(text).map_err(|error| match error {
            humantime::DurationError::NumberOverflow => too_long(),
            error => format!("{text:?} is not a duration like 500ms, 60s or 5m: {error}"),
        })?
    };
    if duration > LONGEST {
        return Err(too_long());
    }
    Ok(duration)
}

/// `--timeout`: a deadline above zero (a zero deadline fails every request at once).
pub(super) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.is_zero() {
        return Err(format!(
            "{:?}: a timeout of 0 fails every request at once; give one above 0, e.g. 10s",
            text.trim()
        ));
    }
    Ok(timeout)
}

/// `--resync`, `--poll`: at least [`SHORTEST_PERIOD`].
pub(super) fn parse_period(text: &str) -> Result<Duration, String> {
    let period = parse_duration(text)?;
    if period < SHORTEST_PERIOD {
        return Err(format!(
            "{:?}: a period under 1s would run back to back; give at least 1s",
            text.trim()
        ));
    }
    Ok(period)
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

#[cfg(test)]
mod tests {
    use super::{parse_duration, parse_period, parse_timeout};
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

    #[test]
    fn durations_over_a_week_zero_timeouts_and_sub_second_periods_are_refused() {
        assert_eq!(
            parse_duration("168h"),
            Ok(Duration::from_secs(7 * 24 * 3600))
        );
        for overflowing in [
            "169h",
            "604801",
            "99999999999999999999",
            "9999999999999999h",
        ] {
            let error = parse_duration(overflowing).unwrap_err();
            assert!(
                error.contains("longer than a week"),
                "{overflowing}: {error}"
            );
        }
        for zero in ["0", "0s", "0ms"] {
            let error = parse_timeout(zero).unwrap_err();
            assert!(error.contains("a timeout of 0"), "{zero}: {error}");
        }
        assert_eq!(parse_timeout("1ms"), Ok(Duration::from_millis(1)));
        for short in ["0s", "999ms"] {
            let error = parse_period(short).unwrap_err();
            assert!(error.contains("under 1s"), "{short}: {error}");
        }
        assert_eq!(parse_period("1s"), Ok(Duration::from_secs(1)));
    }
}
