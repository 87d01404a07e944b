//! The plugin's socket: handed over by systemd (socket activation) or bound by
//! the daemon; answered with Docker's protocol, bounded, and refusing what is
//! not a plugin call.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOPOLOGY: &str = "[mesh]\nname = \"ps\"\n[hosts.a]\nunderlay_address = \"192.0.2.1/24\"\n";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on the socket; the status line and the body.
fn call(socket: &Path, method: &str, path: &str, body: &str) -> (String, String) {
    let start = Instant::now();
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(error) => panic!("{}: {error}", socket.display()),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A server that refuses a body too large answers and closes before it is all written.
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let reply = String::from_utf8_lossy(&bytes).into_owned();
    let status = reply.lines().next().unwrap_or_default().to_string();
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn daemon(dir: &Path, activate: bool) -> Killed {
    let file = dir.join("t.toml");
    std::fs::write(&file, TOPOLOGY).unwrap();
    let bin = env!("CARGO_BIN_EXE_ovsmesh");
    let ovsdb = format!("unix:{}", dir.join("no-ovsdb.sock").display());
    let daemon_args = [
        "daemon",
        file.to_str().unwrap(),
        "--host",
        "a",
        "--ovsdb",
        &ovsdb,
    ];
    let mut command = if activate {
        // As systemd does: the socket is bound first and handed over (LISTEN_FDS).
        let mut c = Command::new("systemd-socket-activate");
        c.arg("-l").arg(dir.join("ovsmesh.sock")).arg(bin);
        c
    } else {
        let mut c = Command::new(bin);
        c.env("OVSMESH_DOCKER_PLUGIN", "ovsmesh-test");
        c
    };
    command
        .args(daemon_args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Killed(
        command
            .spawn()
            .expect("systemd-socket-activate (package systemd)"),
    )
}

#[test]
#[ignore = "needs root (the daemon watches /run/netns)"]
fn a_socket_handed_over_by_systemd_is_served_without_a_flag() {
    let dir = std::env::temp_dir().join(common::unique("ovsmesh-plugin-"));
    std::fs::create_dir_all(&dir).unwrap();
    let _daemon = daemon(&dir, true);
    let (status, body) = call(&dir.join("ovsmesh.sock"), "POST", "/Plugin.Activate", "");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, r#"{"Implements":["NetworkDriver","IpamDriver"]}"#);
    let (_, body) = call(
        &dir.join("ovsmesh.sock"),
        "POST",
        "/NetworkDriver.GetCapabilities",
        "null",
    );
    assert!(body.contains(r#""Scope":"local""#), "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root (the daemon watches /run/netns, binds /run/docker/plugins)"]
fn the_daemon_binds_the_socket_itself_and_refuses_what_is_not_a_call() {
    let dir = std::env::temp_dir().join(common::unique("ovsmesh-plugin-"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = Path::new("/run/docker/plugins/ovsmesh-test.sock");
    let _daemon = daemon(&dir, false);
    let (status, body) = call(socket, "POST", "/VolumeDriver.Mount", "{}");
    assert!(status.contains("404"), "{status}");
    assert!(
        body.contains(r#""Err":"unknown call /VolumeDriver.Mount""#),
        "{body}"
    );
    let (status, _) = call(socket, "GET", "/Plugin.Activate", "");
    assert!(status.contains("405"), "{status}");
    let (status, body) = call(socket, "POST", "/NetworkDriver.Join", "{\"NetworkID\": 5}");
    assert!(
        status.contains("400") && body.contains("NetworkDriver.Join"),
        "{status} {body}"
    );
    let huge = format!("{{\"NetworkID\": \"{}\"}}", "x".repeat(2 << 20));
    let (status, _) = call(socket, "POST", "/NetworkDriver.CreateNetwork", &huge);
    assert!(status.contains("413"), "{status}");
    // An IPAM call the topology cannot answer: the reason, in both error fields.
    let (_, body) = call(
        socket,
        "POST",
        "/IpamDriver.RequestPool",
        r#"{"AddressSpace":"local","Pool":"","Options":{},"V6":false}"#,
    );
    assert!(body.contains("takes part in no network"), "{body}");
    drop(_daemon);
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_dir_all(&dir);
}
