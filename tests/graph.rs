//! `ovsmesh graph`: golden outputs for topology/lab.toml, Graphviz accepts the
//! DOT, and docs/lab-topology.svg is the picture of the current lab topology.
//! Set OVSMESH_BLESS=1 to rewrite the golden files and the SVG.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ovsmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn graph(args: &[&str]) -> String {
    let mut all = vec!["graph", "topology/lab.toml"];
    all.extend_from_slice(args);
    let out = ovsmesh(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `generated` must equal the committed file (rewritten under OVSMESH_BLESS).
fn golden(path: &Path, generated: &str) {
    if std::env::var_os("OVSMESH_BLESS").is_some() {
        std::fs::write(path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale (OVSMESH_BLESS=1 cargo test --test graph rewrites it); generated:\n{generated}",
        path.display()
    );
}

#[test]
fn lab_topology_as_dot_and_mermaid_matches_the_golden_files() {
    let fixtures = root().join("tests/graph_golden");
    golden(&fixtures.join("lab.dot"), &graph(&["--format", "dot"]));
    golden(&fixtures.join("lab.mmd"), &graph(&[]));
    golden(
        &fixtures.join("lab-node2.mmd"),
        &graph(&["--format", "mermaid", "--host", "node2"]),
    );
}

#[test]
fn the_lab_picture_shows_every_host_container_and_tunnel() {
    let dot = graph(&["--format", "dot"]);
    for host in ["node1", "node2", "node3"] {
        assert!(dot.contains(&format!("subgraph \"cluster_host/{host}\"")));
    }
    for container in [
        "blue1", "blue2", "blue3", "red2", "red3", "pod1", "pod2", "pod3", "edge",
    ] {
        assert!(
            dot.contains(&format!("/container/{container}\"")),
            "{container}"
        );
    }
    // 3 hosts in a full mesh on each bridge: 3 VLAN tunnels and 3 routed ones.
    assert_eq!(dot.matches("label=\"gre key 1001").count(), 3);
    assert_eq!(dot.matches("label=\"gre key 1002\"").count(), 3);
    assert!(
        dot.contains("\"node2/ovs0\" -- \"node3/ovs0\" [label=\"gre key 1001\\nVLANs 100, 200\"")
    );
    assert!(
        dot.contains("eth2 172.17.1.20/24"),
        "edge's second interface"
    );
}

#[test]
fn an_unknown_host_or_a_bad_file_exits_3() {
    let out = ovsmesh(&["graph", "topology/lab.toml", "--host", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" is not in the topology"));
    let out = ovsmesh(&["graph", "tests/no-such-topology.toml"]);
    assert_eq!(out.status.code(), Some(3));
}

fn dot_svg(dot: &str) -> Output {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz's dot (apt-get install graphviz; scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "needs Graphviz (dot)"]
fn graphviz_renders_the_dot_without_a_warning() {
    for args in [
        &["--format", "dot"][..],
        &["--format", "dot", "--host", "node1"],
    ] {
        let out = dot_svg(&graph(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        let svg = String::from_utf8(out.stdout).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<title>cluster_host/node1</title>"));
    }
}

#[test]
#[ignore = "needs Graphviz (dot)"]
fn docs_svg_is_the_current_lab_picture() {
    let out = dot_svg(&graph(&["--format", "dot"]));
    assert!(out.status.success());
    golden(
        &root().join("docs/lab-topology.svg"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}
