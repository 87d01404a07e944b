//! OVSDB (RFC 7047): framing, typed values, the JSON-RPC client and transactions.
//!
//! ovsmesh drives Open vSwitch through ovsdb-server directly, never through
//! `ovs-vsctl`: everything a host needs is committed in one transaction.

pub mod client;
pub mod codec;
pub mod transact;
pub mod value;

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
