//! The lab's daemons by their pid files (ovsdb-server, ovs-vswitchd, a
//! private dockerd): stopped only while the file still names that program.

use std::path::Path;
use std::time::Duration;

use crate::process::Process;

/// Stop the process a pid file names, if it is `program`: SIGTERM, then
/// SIGKILL after a second if it is still that same process. Its pid if it was
/// running. Nothing is signalled for a pid file that names no running process,
/// PID 0 or a negative PID (which `kill(2)` reads as a process group, or every
/// process), or a process that is some other program now (its PID reused).
pub fn kill_pidfile(path: &Path, program: &str) -> Option<String> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let process = Process::of(pid)?;
    let name = process.name()?;
    if name != program {
        tracing::warn!(pidfile = %path.display(), pid, %name, expected = program,
            "the pid file names another program (its PID was reused): not signalled");
        return None;
    }
    if !process.signal(libc::SIGTERM) {
        return None;
    }
    for _ in 0..50 {
        if !process.alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process.signal(libc::SIGKILL);
    Some(pid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pidfile(test: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "ovsmesh-unit-pidfile-{}-{test}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn pid_0_negative_pids_and_garbage_signal_nothing() {
        // kill(0, …) would hit this process's group, kill(-1, …) every process.
        for text in ["0\n", "-1\n", "-4242", "not a pid", ""] {
            let path = pidfile("garbage", text);
            assert_eq!(kill_pidfile(&path, "ovs-vswitchd"), None, "{text:?}");
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_reused_pid_of_another_program_is_not_signalled() {
        // This very process stands for a vswitchd whose PID was reused.
        let me = std::process::id().to_string();
        let path = pidfile("reused", &format!("{me}\n"));
        assert_eq!(kill_pidfile(&path, "ovs-vswitchd"), None);
        let _ = std::fs::remove_file(path);
        assert!(Process::current().alive(), "still here");
    }

    #[test]
    fn the_program_the_pid_file_names_is_stopped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let path = pidfile("program", &format!("{}\n", child.id()));
        assert_eq!(kill_pidfile(&path, "sleep"), Some(child.id().to_string()));
        let _ = std::fs::remove_file(path);
        let status = child.wait().unwrap();
        assert!(!status.success(), "ended by the signal: {status:?}");
    }
}
