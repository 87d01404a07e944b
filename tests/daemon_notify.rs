//! The daemon under systemd's `Type=notify` protocol: READY=1 after the first
//! successful reconcile (with its STATUS=), keep-alives at half of
//! WATCHDOG_USEC from the main loop, STOPPING=1 on SIGTERM. A socket of the
//! test stands in for systemd's notify socket; real OVS in a lab host.

mod common;
mod daemon_support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::seed;
use daemon_support::*;

/// Every datagram that arrives within `within`.
fn received(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buffer) {
            Ok(n) => messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            Err(_) => break,
        }
    }
    messages
}

#[test]
#[ignore = "needs root + OVS"]
fn ready_after_the_first_reconcile_then_status_keepalives_and_stopping() {
    let setup = prepare(&seed("lab.toml"), "node1", false);
    let path = setup.lab.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let path = path.to_str().unwrap().to_string();
    // A 1 s watchdog: keep-alives every 500 ms.
    let env = [
        ("NOTIFY_SOCKET", path.as_str()),
        ("WATCHDOG_USEC", "1000000"),
    ];
    let mut setup = setup_daemon(setup, &[], &env);
    let messages = received(&socket, Duration::from_millis(2600));
    let ready: Vec<&String> = messages.iter().filter(|m| m.contains("READY=1")).collect();
    assert_eq!(ready.len(), 1, "{messages:?}");
    assert!(
        ready[0].contains("STATUS=converged: 4 container interface(s), 4 tunnel(s)"),
        "{messages:?}"
    );
    let keepalives = messages.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    assert!(
        (3..=7).contains(&keepalives),
        "{keepalives} keep-alives in 2.6 s: {messages:?}"
    );

    let pid = setup.daemon.as_ref().unwrap().child.id() as i32;
    // SAFETY: signalling the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let messages = received(&socket, Duration::from_secs(3));
    assert!(
        messages.iter().any(|m| m.contains("STOPPING=1")),
        "{messages:?}"
    );
    let status = setup.daemon.as_mut().unwrap().child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
