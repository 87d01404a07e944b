//! Every seed topology validates; every invalid fixture fails with exactly the
//! located diagnostics written at its end (`# expect: LINE:COL: key.path: message`).

use std::path::{Path, PathBuf};

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_topology_is_valid() {
    let files = toml_files("topology");
    assert!(files.len() >= 4, "expected the seed scenarios in topology/");
    for file in files {
        if let Err(error) = ovsmesh::topology::load(&file) {
            panic!("{} should be valid:\n{error}", file.display());
        }
    }
}

#[test]
fn every_invalid_fixture_reports_exactly_its_located_problems() {
    let files = toml_files("tests/invalid");
    assert!(files.len() >= 30, "expected one invalid fixture per rule");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| format!("{}:{l}", file.display()))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` lines",
            file.display()
        );
        let invalid = match ovsmesh::topology::parse(&file, &text) {
            Ok(_) => panic!("{} should be rejected", file.display()),
            Err(invalid) => invalid,
        };
        let mut got = invalid.messages();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "diagnostics of {}", file.display());
    }
}

#[test]
fn validate_command_exits_3_with_located_messages_and_0_when_valid() {
    let bin = env!("CARGO_BIN_EXE_ovsmesh");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = root.join("tests/invalid/many-problems.toml");
    let out = std::process::Command::new(bin)
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:12:8: networks.blue.vlan: VLAN tag 5000 is outside 1..4094",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("4 problem(s)"), "{stderr}");

    let good = root.join("topology/lab.toml");
    let out = std::process::Command::new(bin)
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = std::process::Command::new(bin)
        .args(["validate", "--format", "json"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["problems"].as_array().unwrap().len(), 4);
}

#[test]
fn documented_examples_are_valid() {
    // README's first topology and the reference of every key in docs/topology.md.
    for page in ["README.md", "docs/topology.md"] {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(page)).unwrap();
        let example = text
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_else(|| panic!("{page} has no toml example"));
        if let Err(invalid) = ovsmesh::topology::parse(Path::new(page), example) {
            panic!(
                "the example in {page} is invalid:\n{}",
                invalid.messages().join("\n")
            );
        }
    }
}
