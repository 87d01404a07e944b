//! Names from a topology or the command line never leave their directory.
//!
//! Mesh `".."`, host key `"../../tmp/x"` and `docker = "x/../../images/json"` once
//! passed `validate` and became paths under /run/ovsmesh and a Docker API URL.
//! Here: every command rejects them (exit 3) before it touches anything, a bad
//! `--prefix`/`--lab` is rejected the same way, and the places that build paths
//! and URLs from names refuse a name that is not one plain component even when
//! handed one directly.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::unique;
use ovsmesh::runtime::{ContainerRuntime, DockerRuntime, Located, NetnsRuntime};

const BAD_FILES: [(&str, &str); 3] = [
    (
        "tests/invalid/mesh-name-path.toml",
        r#":2:8: mesh.name: ".." cannot be a mesh name"#,
    ),
    (
        "tests/invalid/host-key-path.toml",
        r#":4:8: hosts."../../tmp/x": "../../tmp/x" cannot be a host name"#,
    ),
    (
        "tests/invalid/docker-path.toml",
        r#":14:10: containers.c1.docker: "x/../../images/json" cannot be a Docker container name or id"#,
    ),
];

fn ovsmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("OVSMESH_HOST")
        .env_remove("OVSMESH_OVSDB")
        .output()
        .unwrap()
}

/// Every entry of `dir` whose name starts with `prefix`.
fn entries_starting(dir: &str, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// What a lab with `prefix` would leave behind, plus where "../../tmp/x" would land.
fn traces(prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = entries_starting("/run/netns", &format!("{prefix}-"));
    for path in [
        format!("/run/ovsmesh/lab/{prefix}"),
        "/run/ovsmesh/lab/tmp".to_string(),
    ] {
        if Path::new(&path).exists() {
            found.push(path);
        }
    }
    found
}

#[test]
fn validate_rejects_path_names_with_located_errors() {
    for (file, located) in BAD_FILES {
        let out = ovsmesh(&["validate", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{file}: {stderr}");
        assert!(stderr.contains(&format!("{file}{located}")), "{stderr}");
        assert!(
            stderr.contains("1 problem(s); nothing was changed"),
            "{stderr}"
        );
    }
}

#[test]
fn no_command_acts_on_a_topology_with_path_names() {
    for (file, _) in BAD_FILES {
        let prefix = unique("n");
        for args in [
            vec!["lab", "up", file, "--prefix", &prefix],
            vec![
                "apply",
                file,
                "--host",
                "a",
                "--ovsdb",
                "unix:/nonexistent.sock",
            ],
            vec![
                "down",
                file,
                "--host",
                "a",
                "--ovsdb",
                "unix:/nonexistent.sock",
            ],
            vec!["plan", file, "--host", "a", "--offline"],
            vec!["check", file, "--lab", &prefix],
        ] {
            let out = ovsmesh(&args);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(traces(&prefix), Vec::<String>::new(), "{file}");
    }
}

#[test]
fn bad_lab_prefixes_are_rejected_before_anything_happens() {
    let file = "topology/lab.toml";
    let marker = unique("n");
    for bad in [
        "..".to_string(),
        format!("../{marker}"),
        format!("{marker}/x"),
        format!("-{marker}"),
        format!("{marker}-x"),
        String::new(),
        "abcdefghijklm".to_string(),
    ] {
        let prefix = format!("--prefix={bad}");
        let lab = format!("--lab={bad}");
        for args in [
            vec!["lab", "up", file, &prefix],
            vec!["lab", "down", file, &prefix],
            vec!["lab", "status", file, &prefix],
            vec!["check", file, &lab],
            vec!["status", file, "--host", "node1", &lab],
            vec!["daemon", file, "--host", "node1", &lab],
        ] {
            let out = ovsmesh(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
            assert!(
                stderr.contains("cannot be a lab prefix"),
                "{args:?}: {stderr}"
            );
        }
    }
    assert_eq!(traces(&marker), Vec::<String>::new());
    assert!(!Path::new(&format!("/run/ovsmesh/{marker}")).exists());
}

#[test]
fn namespace_paths_stay_under_run_netns() {
    // "/run/netns/../../proc/self/ns/net" is this process's own namespace.
    let escape = "../../proc/self/ns/net";
    assert!(!ovsmesh::lab::namespaces::exists(escape));
    let error = ovsmesh::netns::open(escape).unwrap_err();
    assert!(
        error.to_string().contains("not a plain file name"),
        "{error}"
    );
    let located = common::runtime()
        .block_on(NetnsRuntime.locate(escape))
        .unwrap();
    match located {
        Located::Waiting(why) => assert!(why.contains("not a plain file name"), "{why}"),
        Located::Running(_) => panic!("{escape} was opened as a namespace"),
    }
}

#[test]
fn forwarding_memory_stays_under_its_directory() {
    use ovsmesh::netlink::sysctl;
    // Read-only probes: /proc/sys/net/ipv4/conf/../conf/all is `all`.
    assert_eq!(sysctl::forwarding("../conf/all"), None);
    assert!(sysctl::forwarding("all").is_some());
    let error = sysctl::restore_all("../nonexistent").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
    let error = sysctl::enable_remembering("..", "nonexistent0").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}");
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn only_docker_names_reach_the_docker_api_url() {
    let dir = TempDir(std::env::temp_dir().join(unique("ovsmesh-names-")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let socket = dir.0.join("docker.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // A fake engine: answers one request with 404 and reports its request line.
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let body = r#"{"message":"No such container"}"#;
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let head = String::from_utf8_lossy(&head).to_string();
        head.lines().next().unwrap_or_default().to_string()
    });
    let docker = DockerRuntime::new(Some(&format!("unix://{}", socket.display())));
    let runtime = common::runtime();

    let error = runtime
        .block_on(docker.locate("x/../../images/json"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot be a Docker container name or id"),
        "{error}"
    );

    // The fake engine's first (and only) request is the valid name's.
    match runtime.block_on(docker.locate("web")).unwrap() {
        Located::Waiting(why) => assert!(why.contains("does not exist"), "{why}"),
        Located::Running(_) => panic!("the fake engine has no containers"),
    }
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /") && request.contains("/containers/web/json"),
        "{request}"
    );
}
