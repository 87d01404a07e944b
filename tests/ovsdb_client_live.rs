//! The OVSDB client's lifecycle against a real ovsdb-server: dropping a client
//! closes its session, nothing waits forever on a hung (SIGSTOPped) server —
//! neither a request, nor an idle connection, nor `ovsmesh apply` — and the
//! mesh lock is enforced in every write transaction (contended and stolen).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ovsmesh::ovs::Session;
use ovsmesh::ovsdb::{self, connect, ConnectOptions, OvsdbError};
use serde_json::json;

/// Sessions the server holds, as `memory/show` counts them (absent when none).
fn sessions(server: &OvsdbServer) -> usize {
    let ctl = server.dir.join("ovsdb.ctl");
    let out = run("ovs-appctl", &["-t", ctl.to_str().unwrap(), "memory/show"]);
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("sessions:"))
        .map_or(0, |n| n.parse().unwrap())
}

/// Poll `sessions` from async code, letting the client's tasks run meanwhile.
async fn sessions_become(server: &OvsdbServer, wanted: usize) -> usize {
    let start = Instant::now();
    loop {
        let now = sessions(server);
        if now == wanted || start.elapsed() > Duration::from_secs(5) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server stopped with SIGSTOP; continued on drop, also when the test fails.
struct Stopped<'a>(&'a OvsdbServer);

impl<'a> Stopped<'a> {
    fn new(server: &'a OvsdbServer) -> Self {
        let pid = std::fs::read_to_string(server.dir.join("ovsdb.pid")).unwrap();
        run("kill", &["-STOP", pid.trim()]);
        Self(server)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.dir.join("ovsdb.pid")) {
            let _ = Command::new("kill").args(["-CONT", pid.trim()]).status();
        }
    }
}

fn options(timeout: Duration, probe: Option<Duration>) -> ConnectOptions {
    ConnectOptions {
        inactivity_probe: probe,
        timeout,
    }
}

#[test]
#[ignore = "needs root + OVS"]
fn dropping_a_client_closes_its_session_and_ends_its_tasks() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        // The harness's own `ovs-vsctl init` session may still be closing.
        assert_eq!(sessions_become(&server, 0).await, 0);
        let (client, mut notifications) = connect(&server.remote(), ConnectOptions::default())
            .await
            .unwrap();
        client.echo().await.unwrap();
        assert_eq!(sessions_become(&server, 1).await, 1);
        drop(client);
        // The reader task ended (its notification sender is gone) ...
        let ended = tokio::time::timeout(Duration::from_secs(2), notifications.recv()).await;
        assert!(matches!(ended, Ok(None)), "reader still running: {ended:?}");
        // ... and the server saw the socket close.
        assert_eq!(sessions_become(&server, 0).await, 0);

        // Connect and drop in a loop (also whole sessions, as the daemon does after a failure).
        for _ in 0..20 {
            let (client, _) = connect(&server.remote(), ConnectOptions::default())
                .await
                .unwrap();
            client.echo().await.unwrap();
            let session = Session::open(&server.remote(), "t1").await.unwrap();
            drop((client, session));
        }
        assert_eq!(sessions_become(&server, 0).await, 0, "sessions leaked");
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn a_hung_server_fails_a_request_at_its_deadline_and_closes_the_connection() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        let (client, _) = connect(&server.remote(), options(Duration::from_millis(500), None))
            .await
            .unwrap();
        client.echo().await.unwrap();
        let stopped = Stopped::new(&server);
        let start = Instant::now();
        let error = client.list_dbs().await.unwrap_err();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(
            matches!(&error, OvsdbError::Deadline { request, .. } if request == "list_dbs"),
            "{error:?}"
        );
        assert!(error.to_string().contains(&server.remote()), "{error}");
        // The connection is given up: the next call fails at once.
        let start = Instant::now();
        let next = client.echo().await.unwrap_err();
        assert!(matches!(next, OvsdbError::Disconnected { .. }), "{next:?}");
        assert!(start.elapsed() < Duration::from_millis(500));
        drop(client);
        drop(stopped);
        // Once the server runs again it finds the connection closed.
        assert_eq!(sessions_become(&server, 0).await, 0);

        // Opening a session on a hung server fails at the deadline too.
        let _stopped = Stopped::new(&server);
        let start = Instant::now();
        let opened = Session::open_with(
            &server.remote(),
            "t1",
            ConnectOptions::with_timeout(Duration::from_millis(300)),
        )
        .await;
        assert!(
            matches!(opened, Err(OvsdbError::Deadline { .. })),
            "{:?}",
            opened.err()
        );
        assert!(start.elapsed() < Duration::from_secs(3));
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn the_inactivity_probe_drops_a_silent_unix_connection() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        let probe = Some(Duration::from_millis(200));
        let (probing, mut probing_events) =
            connect(&server.remote(), options(Duration::from_secs(10), probe))
                .await
                .unwrap();
        let (quiet, _quiet_events) =
            connect(&server.remote(), options(Duration::from_secs(10), None))
                .await
                .unwrap();
        // A live server answers the probes: still connected after many probe periods.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(probing.closed(), None);
        probing.echo().await.unwrap();

        let _stopped = Stopped::new(&server);
        let start = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(3), probing_events.recv()).await;
        assert!(
            matches!(ended, Ok(None)),
            "the probe did not drop the hung server: {ended:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let reason = probing.closed().unwrap();
        assert!(reason.contains("inactivity probe"), "{reason}");
        // Without a probe nothing notices an idle hung server.
        assert_eq!(quiet.closed(), None);
    });
}

/// `ovsmesh apply` against a hung server: one line naming the remote, exit 1, within the deadline.
#[test]
#[ignore = "needs root + OVS"]
fn apply_against_a_hung_server_fails_within_the_timeout() {
    let server = OvsdbServer::start(None, false);
    let host = Netns::new("omT");
    let file = server.dir.join("topology.toml");
    std::fs::write(
        &file,
        "[mesh]\nname = \"t1\"\n[hosts.A]\nunderlay_address = \"192.0.2.1/24\"\n\
         [hosts.B]\nunderlay_address = \"192.0.2.2/24\"\n",
    )
    .unwrap();
    let _stopped = Stopped::new(&server);
    for command in ["apply", "plan"] {
        let start = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", &host.name, env!("CARGO_BIN_EXE_ovsmesh")])
            .args([command, "--host", "A", "--timeout", "1s", "--ovsdb"])
            .arg(server.remote())
            .arg(&file)
            .env_remove("OVSMESH_HOST")
            .env_remove("OVSMESH_OVSDB")
            .output()
            .unwrap();
        let took = start.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(took < Duration::from_secs(4), "{command} took {took:?}");
        assert_eq!(err.lines().count(), 1, "{command}: {err}");
        assert!(
            err.contains(&server.remote()) && err.contains("did not answer"),
            "{command}: {err}"
        );
    }
}

/// A write that changes `Open_vSwitch.external_ids:KEY`.
fn mark(key: &str) -> serde_json::Value {
    ovsdb::transact::mutate(
        "Open_vSwitch",
        json!([]),
        json!([["external_ids", "insert", ["map", [[key, "x"]]]]]),
    )
}

fn marked(server: &OvsdbServer, key: &str) -> bool {
    server
        .vsctl(&["get", "Open_vSwitch", ".", "external_ids"])
        .contains(key)
}

#[test]
#[ignore = "needs root + OVS"]
fn the_mesh_lock_is_waited_for_and_a_busy_lock_fails_typed_after_the_wait() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        let remote = server.remote();
        let mut holder = Session::open(&remote, "t1").await.unwrap();
        holder.lock(Duration::from_secs(1)).await.unwrap();
        let short = ConnectOptions::with_timeout(Duration::from_millis(400));
        let mut other = Session::open_with(&remote, "t1", short).await.unwrap();

        // Held throughout: the wait ends at its bound with a typed error.
        let start = Instant::now();
        let busy = other.lock(Duration::from_millis(300)).await;
        assert!(
            matches!(&busy, Err(OvsdbError::LockBusy { lock, .. }) if lock == "ovsmesh_t1"),
            "{busy:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
        // A write takes the lock first: refused the same way, and nothing is written.
        let refused = other.write(vec![mark("by-other")]).await;
        assert!(
            matches!(refused, Err(OvsdbError::LockBusy { .. })),
            "{refused:?}"
        );
        assert!(!marked(&server, "by-other"));

        // Released while waiting: the waiter gets it and writes.
        let (waited, ()) = tokio::join!(other.lock(Duration::from_secs(5)), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            holder.unlock().await;
        });
        waited.unwrap();
        other.write(vec![mark("by-other")]).await.unwrap();
        assert!(marked(&server, "by-other"));
    });
}

#[test]
#[ignore = "needs root + OVS"]
fn a_stolen_lock_makes_the_next_write_fail_typed_and_write_nothing() {
    let server = OvsdbServer::start(None, false);
    runtime().block_on(async {
        let remote = server.remote();
        let mut session = Session::open(&remote, "t1").await.unwrap();
        session.lock(Duration::from_secs(1)).await.unwrap();
        session.write(vec![mark("before")]).await.unwrap();
        assert!(marked(&server, "before"));

        let (thief, _) = connect(&remote, ConnectOptions::default()).await.unwrap();
        thief.steal("ovsmesh_t1").await.unwrap();
        // The session still believes it holds the lock; the server refuses its write.
        let lost = session.write(vec![mark("after-steal")]).await;
        assert!(
            matches!(&lost, Err(OvsdbError::LockLost { lock, remote: r }) if lock == "ovsmesh_t1" && *r == remote),
            "{lost:?}"
        );
        assert!(!marked(&server, "after-steal"), "written without the lock");
        // While the thief holds it, asking again waits and fails typed.
        let busy = session.lock(Duration::from_millis(300)).await;
        assert!(matches!(busy, Err(OvsdbError::LockBusy { .. })), "{busy:?}");
        // Given back: the session takes it again and writes.
        thief.unlock("ovsmesh_t1").await.unwrap();
        session.write(vec![mark("after-return")]).await.unwrap();
        assert!(marked(&server, "after-return"));

        // A steal noticed before the next write: `lock` asks again instead of trusting a stale grant.
        thief.steal("ovsmesh_t1").await.unwrap();
        // One request answered: the notification sent before its reply has arrived.
        session.client.echo().await.unwrap();
        let again = session.lock(Duration::from_millis(300)).await;
        assert!(
            matches!(again, Err(OvsdbError::LockBusy { .. })),
            "{again:?}"
        );
    });
}
