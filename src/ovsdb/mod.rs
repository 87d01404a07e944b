//! OVSDB (RFC 7047): framing, typed values, the JSON-RPC client and transactions.
//!
//! ovsmesh drives Open vSwitch through ovsdb-server directly, never through
//! `ovs-vsctl`: everything a host needs is committed in one transaction.

pub mod client;
pub mod codec;
pub mod transact;
pub mod value;

use std::time::Duration;

pub use client::{connect, Client, ConnectOptions, Notification, DEFAULT_TIMEOUT};

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
    /// A request (or connecting) missed its deadline; the connection is closed.
    #[error(
        "ovsdb-server at {remote} did not answer {request} within {after:?} (hung or overloaded?)"
    )]
    Deadline {
        remote: String,
        request: String,
        after: Duration,
    },
    /// Another client holds the lock we waited for.
    #[error("OVSDB lock {lock:?} on {remote} is held by another client (an ovsmesh daemon or apply?) for more than {waited:?}")]
    LockBusy {
        remote: String,
        lock: String,
        waited: Duration,
    },
    /// The transaction's `assert` of our lock failed: another client stole it.
    #[error("ovsmesh no longer holds OVSDB lock {lock:?} on {remote} (another client took it); the transaction was refused, nothing was written")]
    LockLost { remote: String, lock: String },
    /// A guard (`wait` on a row's `_version` or absence) failed: the row changed since it was read.
    #[error("the rows ovsmesh read on {remote} changed before its transaction ({operation})")]
    Guard { remote: String, operation: String },
    /// ovs-vswitchd did not catch up with a committed configuration.
    #[error("ovs-vswitchd did not apply configuration {next_cfg} from {remote} within {waited:?} (is ovs-vswitchd running?)")]
    Vswitchd {
        remote: String,
        next_cfg: i64,
        waited: Duration,
    },
}
