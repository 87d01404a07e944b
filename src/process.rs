//! Processes by identity, not by PID alone: a PID is reused once its process
//! has gone, so a PID read from a file (a pid file, a daemon's record) names
//! the process only while the process with that PID started when it was
//! written, and is the program it should be. Reads /proc only.

use serde::{Deserialize, Serialize};

/// When process `pid` started (clock ticks after boot), if it exists.
pub fn start_time(pid: i64) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is the first, starttime the 20th.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// A process as it was when first seen: its PID and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub started: u64,
}

impl Process {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id() as i32;
        Self {
            pid,
            started: start_time(i64::from(pid)).unwrap_or_default(),
        }
    }

    /// The process `pid` is now, if it exists. PID 0 and negative PIDs (which
    /// `kill(2)` reads as a process group, or every process) are none.
    pub fn of(pid: i32) -> Option<Self> {
        let started = start_time(i64::from(pid))?;
        Some(Self { pid, started })
    }

    /// Whether it still runs: its PID is not free, nor another process's now.
    pub fn alive(&self) -> bool {
        start_time(i64::from(self.pid)) == Some(self.started)
    }

    /// Its program's name as the kernel keeps it (`/proc/PID/comm`, at most 15 bytes).
    pub fn name(&self) -> Option<String> {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid)).ok()?;
        self.alive().then(|| comm.trim_end().to_string())
    }

    /// Send `signal` if it is still this process; whether it was sent.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) on a positive PID that was this very process just now.
        self.pid > 0 && self.alive() && unsafe { libc::kill(self.pid, signal) } == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_itself_and_alive_and_a_reused_pid_is_not() {
        let me = Process::current();
        assert_eq!(Process::of(me.pid), Some(me));
        assert!(me.alive());
        assert!(me.name().is_some_and(|n| !n.is_empty()));
        let earlier = Process {
            started: me.started.wrapping_sub(1),
            ..me
        };
        assert!(!earlier.alive(), "a PID now another process's");
        assert!(!earlier.signal(0));
        assert!(me.signal(0));
    }

    #[test]
    fn pid_zero_negative_and_free_pids_are_no_process() {
        for pid in [0, -1, i32::MIN, i32::MAX] {
            assert_eq!(Process::of(pid), None, "{pid}");
        }
        let nobody = Process {
            pid: -1,
            started: 0,
        };
        assert!(!nobody.signal(0));
    }
}
