//! Running `iptables-save`, `iptables-restore` and `nft`: every call bounded.
//!
//! A call runs as a child process awaited by tokio (the runtime thread is never
//! blocked: the daemon keeps answering signals and probes while it waits), in
//! the network namespace of the thread that starts it (a lab host's, a test's),
//! with a deadline: past [`DEADLINE`] the child is killed and the call fails.
//! iptables-restore also gets `-w` [`LOCK_WAIT`] seconds, shorter than the
//! deadline, so that a held xtables lock (iptables-legacy takes
//! `/run/xtables.lock` for every change; iptables-nft takes none) is reported
//! as what it is: the lock, and the process holding it as `/proc/locks` names it.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Seconds iptables-restore waits for the xtables lock (`-w`).
pub const LOCK_WAIT: u64 = 5;
/// How long any one firewall command may take before it is killed.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Why a firewall command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("{program}: {message}")]
    Failed { program: String, message: String },
    #[error("{program}: the xtables lock {lock} is held{holder} and was not released within {seconds} s; nothing was changed (try again when it is free)", holder = holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    Locked {
        program: String,
        lock: String,
        holder: Option<String>,
        seconds: u64,
    },
    #[error("{program}: no answer within {} s, stopped{}", DEADLINE.as_secs(), lock.as_ref().map(|l| format!(" (the xtables lock {l})")).unwrap_or_default())]
    Deadline {
        program: String,
        /// The xtables lock and its holder, when it is held.
        lock: Option<String>,
    },
}

/// What ran: `Ok(None)` when the program is not installed.
pub async fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Option<String>, RunError> {
    run_within(DEADLINE, program, args, stdin).await
}

async fn run_within(
    deadline: Duration,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<Option<String>, RunError> {
    let failed = |message: String| RunError::Failed {
        program: program.to_string(),
        message,
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(failed(error.to_string())),
    };
    let input = stdin.map(str::to_string);
    let mut pipe = child.stdin.take();
    let work = async move {
        if let (Some(pipe), Some(input)) = (pipe.as_mut(), input) {
            pipe.write_all(input.as_bytes()).await?;
        }
        drop(pipe);
        child.wait_with_output().await
    };
    // On the deadline the future (and with it the child) is dropped: killed.
    let output = match tokio::time::timeout(deadline, work).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(failed(error.to_string())),
        Err(_) => {
            return Err(RunError::Deadline {
                program: program.to_string(),
                lock: xtables_holder().map(|(lock, holder)| match holder {
                    Some(holder) => format!("{lock}, held by {holder}"),
                    None => lock,
                }),
            })
        }
    };
    if output.status.success() {
        return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
    // iptables exits 4 (RESOURCE_PROBLEM) when it gave up waiting for the lock.
    if message.contains("holding the xtables lock") {
        let (lock, holder) = xtables_holder().unwrap_or_else(|| (lock_path(), None));
        return Err(RunError::Locked {
            program: program.to_string(),
            lock,
            holder,
            seconds: LOCK_WAIT,
        });
    }
    Err(failed(if message.is_empty() {
        format!("exited with {}", output.status)
    } else {
        message
    }))
}

/// The xtables lock file: `$XTABLES_LOCKFILE` (iptables ≥ 1.8.5) or `/run/xtables.lock`.
pub fn lock_path() -> String {
    std::env::var("XTABLES_LOCKFILE").unwrap_or_else(|_| "/run/xtables.lock".to_string())
}

/// The lock, and who holds it (`pid N (command line)`), when someone does.
pub fn xtables_holder() -> Option<(String, Option<String>)> {
    let lock = lock_path();
    let meta = std::fs::metadata(&lock).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_pid(&locks, meta.dev(), meta.ino())?;
    Some((lock, Some(describe(pid))))
}

/// The pid `/proc/locks` names for a lock on the file (device, inode), if any.
/// A line: `1: FLOCK  ADVISORY  WRITE 17035 fe:00:9805825 0 EOF` (device as
/// hex major:minor, inode in decimal); a waiter's line has `->` after the number.
pub fn holder_pid(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) == Some(&"->") {
            return None;
        }
        let file = words.get(5)?;
        let mut parts = file.split(':');
        let found_major = u32::from_str_radix(parts.next()?, 16).ok()?;
        let found_minor = u32::from_str_radix(parts.next()?, 16).ok()?;
        let found_ino: u64 = parts.next()?.parse().ok()?;
        (found_major == major && found_minor == minor && found_ino == ino)
            .then(|| words.get(4)?.parse().ok())
            .flatten()
    })
}

fn describe(pid: u32) -> String {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let command = std::fs::read(proc.join("cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    match command {
        Some(command) => format!("pid {pid} ({command})"),
        None => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_found_by_device_and_inode() {
        let locks = "1: FLOCK  ADVISORY  WRITE 17035 fe:00:9805825 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 17099 fe:00:9805825 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 11501 fe:01:5332996 0 EOF\n";
        let dev = libc::makedev(0xfe, 0);
        assert_eq!(holder_pid(locks, dev, 9_805_825), Some(17035));
        assert_eq!(holder_pid(locks, dev, 5_332_996), None, "other device");
        assert_eq!(
            holder_pid(locks, libc::makedev(0xfe, 1), 5_332_996),
            Some(11501)
        );
        assert_eq!(holder_pid("", dev, 1), None);
    }

    #[test]
    fn a_missing_program_is_none_and_a_failure_carries_its_stderr() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(run("ovsmesh-no-such-program", &[], None).await, Ok(None));
            assert_eq!(
                run("cat", &[], Some("fed in")).await,
                Ok(Some("fed in".to_string()))
            );
            let error = run("sh", &["-c", "echo nope >&2; exit 3"], None)
                .await
                .unwrap_err();
            assert_eq!(error.to_string(), "sh: nope");
            let error = run("sh", &["-c", "echo 'Another app is currently holding the xtables lock. Stopped waiting after 5s.' >&2; exit 4"], None)
                .await
                .unwrap_err();
            assert!(matches!(error, RunError::Locked { .. }), "{error}");
            assert!(error.to_string().contains("the xtables lock"), "{error}");
            let started = std::time::Instant::now();
            let error = run_within(Duration::from_millis(200), "sleep", &["5"], None)
                .await
                .unwrap_err();
            assert!(matches!(error, RunError::Deadline { .. }), "{error}");
            assert!(started.elapsed() < Duration::from_secs(2), "killed at the deadline");
        });
    }
}
