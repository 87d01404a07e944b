//! `schemas/topology.schema.json` must equal the schema generated from the Rust
//! types. Set OVSMESH_BLESS=1 to rewrite it.

use std::path::Path;

#[test]
fn committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/topology.schema.json");
    let generated = ovsmesh::topology::json_schema();
    if std::env::var_os("OVSMESH_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/topology.schema.json is stale: run `cargo run -- schema > schemas/topology.schema.json`"
    );
}

#[test]
fn schema_command_prints_the_schema() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "ovsmesh topology");
    assert!(schema["properties"]["containers"].is_object());
}
