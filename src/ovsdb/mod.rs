//! OVSDB (RFC 7047): framing, typed values, the JSON-RPC client, transactions,
//! and the schema check made at connect.
//!
//! ovsmesh drives Open vSwitch through ovsdb-server directly, never through
//! `ovs-vsctl`: everything a host needs is committed in one transaction.

pub mod client;
pub mod codec;
pub mod transact;
pub mod value;

use serde_json::Value;

pub use client::{connect, Client, ConnectOptions, Notification};

/// The database ovsmesh works on.
pub const DB: &str = "Open_vSwitch";

#[derive(Debug, thiserror::Error)]
pub enum OvsdbError {
    #[error("cannot connect to ovsdb-server at {remote}: {source}")]
    Connect {
        remote: String,
        source: std::io::Error,
    },
    #[error("bad OVSDB remote {0}")]
    BadRemote(String),
    #[error("lost ovsdb-server at {remote}: {reason}")]
    Disconnected { remote: String, reason: String },
    #[error("ovsdb-server at {remote} answered with an error: {error}")]
    Rpc { remote: String, error: String },
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),
    #[error("ovsdb-server at {remote} (schema {schema_version}, Open vSwitch {ovs_version}) lacks {what}, which ovsmesh needs")]
    Schema {
        remote: String,
        what: String,
        schema_version: String,
        ovs_version: String,
    },
    #[error("transaction on {remote} failed at {operation}: {error}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Transact {
        remote: String,
        operation: String,
        error: String,
        details: String,
    },
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Tables and columns ovsmesh reads or writes.
pub const REQUIRED_COLUMNS: &[(&str, &[&str])] = &[
    (
        "Open_vSwitch",
        &["bridges", "next_cfg", "cur_cfg", "ovs_version"],
    ),
    (
        "Bridge",
        &["name", "ports", "datapath_type", "external_ids"],
    ),
    (
        "Port",
        &[
            "name",
            "interfaces",
            "tag",
            "trunks",
            "protected",
            "external_ids",
        ],
    ),
    (
        "Interface",
        &[
            "name",
            "type",
            "options",
            "bfd",
            "bfd_status",
            "external_ids",
            "error",
            "ofport",
            "mtu_request",
        ],
    ),
];

/// Check the server's schema has everything in [`REQUIRED_COLUMNS`].
pub async fn check_schema(client: &Client) -> Result<(), OvsdbError> {
    let schema = client.get_schema(DB).await?;
    let missing = missing_column(&schema);
    let Some(what) = missing else { return Ok(()) };
    let schema_version = schema
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let ovs_version = if what.starts_with("table Open_vSwitch") {
        "unknown".to_string()
    } else {
        let rows = client
            .transact(
                DB,
                vec![transact::select(
                    "Open_vSwitch",
                    serde_json::json!([]),
                    &["ovs_version"],
                )],
            )
            .await
            .ok();
        rows.and_then(|r| r[0]["rows"][0]["ovs_version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    };
    Err(OvsdbError::Schema {
        remote: client.remote().to_string(),
        what,
        schema_version,
        ovs_version,
    })
}

/// The first required table or column the schema lacks.
pub fn missing_column(schema: &Value) -> Option<String> {
    for (table, columns) in REQUIRED_COLUMNS {
        let Some(found) = schema.get("tables").and_then(|t| t.get(*table)) else {
            return Some(format!("table {table}"));
        };
        for column in *columns {
            if found.get("columns").and_then(|c| c.get(*column)).is_none() {
                return Some(format!("column {table}.{column}"));
            }
        }
    }
    None
}
