//! Golden plans: `tests/fixtures/<case>/{topology.toml, observed.json, plan.txt}`.
//! The host is the one named in observed.json. Set OVSMESH_BLESS=1 to rewrite plan.txt.

use std::path::Path;

use ovsmesh::state::HostState;

#[test]
fn plans_match_their_golden_text() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5);
    let bless = std::env::var_os("OVSMESH_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let topology = ovsmesh::topology::load(&case.join("topology.toml"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let observed: HostState =
            serde_json::from_str(&std::fs::read_to_string(case.join("observed.json")).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let desired = ovsmesh::desired::desired(&topology, &observed.host).unwrap();
        let settled = ovsmesh::desired::settle(&topology.mesh.name, &desired, &observed);
        let plan = ovsmesh::plan::plan(&settled);
        let text = ovsmesh::plan::render_text(&plan);
        let golden = case.join("plan.txt");
        if bless {
            std::fs::write(&golden, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if expected != text {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{text}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn applying_the_target_converges() {
    // What apply makes real (the settled target) must plan to nothing afterwards.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for case in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
        let topology = ovsmesh::topology::load(&case.join("topology.toml")).unwrap();
        let observed: HostState =
            serde_json::from_str(&std::fs::read_to_string(case.join("observed.json")).unwrap())
                .unwrap();
        let desired = ovsmesh::desired::desired(&topology, &observed.host).unwrap();
        let first = ovsmesh::desired::settle(&topology.mesh.name, &desired, &observed);
        let mut after = first.target.clone();
        // Waiting containers stay as they were observed; so does the host's firewall.
        after.waiting = observed.waiting.clone();
        after.firewall_host = observed.firewall_host.clone();
        for container in &observed.waiting {
            for (key, value) in &observed.ports {
                if key.starts_with(&format!("access/{container}/")) {
                    after.ports.insert(key.clone(), value.clone());
                }
            }
        }
        for (name, bridge) in &observed.bridges {
            if !bridge.owned {
                after
                    .bridges
                    .entry(name.clone())
                    .or_insert_with(|| bridge.clone());
            }
        }
        let second = ovsmesh::plan::plan(&ovsmesh::desired::settle(
            &topology.mesh.name,
            &desired,
            &after,
        ));
        assert!(
            second.is_empty(),
            "{}: {:?}",
            case.display(),
            second.changes
        );
    }
}
