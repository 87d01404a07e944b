//! The daemon's metrics endpoint is bounded: a client that connects and sends
//! nothing is let go, and running out of file descriptors (EMFILE on
//! `accept`) stops the endpoint only while it lasts. Driven through the
//! `ovsmesh daemon` binary and plain TCP, so it holds whatever serves the
//! endpoint. The daemon has no server to reach (it backs off); it only serves.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const TOPOLOGY: &str = r#"
[mesh]
name = "metrics"
[hosts.A]
underlay_address = "192.0.2.1/24"
"#;

/// The daemon, with at most `files` open file descriptors; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Daemon {
    fn start(files: u64) -> Self {
        let dir = std::env::temp_dir().join(unique("ovsmesh-metrics-"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("topology.toml");
        std::fs::write(&file, TOPOLOGY).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ovsmesh"));
        command
            .args([
                "daemon",
                "--host",
                "A",
                "--ovsdb",
                "unix:/nonexistent/db.sock",
            ])
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap());
        // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: files,
                    rlim_max: files,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let daemon = Self {
            child: command.spawn().unwrap(),
            port,
            dir,
        };
        assert!(
            eventually(Duration::from_secs(10), || daemon.scrape().is_some()),
            "the endpoint never answered: {}",
            daemon.log()
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `GET /metrics`, answered within a second.
    fn scrape(&self) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.contains("ovsmesh_reconciles_total").then_some(text)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
#[ignore = "needs root"]
fn a_client_that_sends_nothing_is_let_go() {
    let daemon = Daemon::start(1024);
    let mut idle = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    // The daemon closes it (EOF) or resets it; only a timeout means it held on.
    let read = idle.read(&mut byte);
    let held = started.elapsed();
    assert!(
        !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "held for {held:?}: {read:?}"
    );
    assert!(held < Duration::from_secs(10), "held for {held:?}");
    assert!(daemon.scrape().is_some());
}

#[test]
#[ignore = "needs root"]
fn running_out_of_file_descriptors_stops_the_endpoint_only_while_it_lasts() {
    let mut daemon = Daemon::start(48);
    // Connections the daemon must accept and then wait on: more than it has
    // descriptors for.
    let clients: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", daemon.port)).ok())
        .collect();
    assert!(clients.len() > 48, "only {} connections", clients.len());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        daemon.scrape().is_none(),
        "the daemon still had descriptors to spare: the test proves nothing"
    );
    drop(clients);
    assert!(
        eventually(Duration::from_secs(15), || daemon.scrape().is_some()),
        "the endpoint did not come back: {}",
        daemon.log()
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
}
