//! Building transaction operations and checking their replies.
//!
//! RFC 7047 §5.2: a `transact` reply has one element per operation, each either
//! a result or `{"error": …}`; one extra trailing element reports a failed
//! commit (e.g. a constraint violation). A transaction can "succeed" as an RPC
//! and still have failed, so every element is checked and the error names the
//! operation (its index, kind and table). Two failures are expected in normal
//! operation and get their own error variants, told apart by the failing
//! operation's kind and the RFC's error tag: a guard (`wait`) that "timed
//! out" — the rows changed since they were read — and an `assert` of our lock
//! answered "not owner" — another client took the lock.

use serde_json::{json, Value};

use super::OvsdbError;

/// `insert` with a named uuid other operations can refer to.
pub fn insert(table: &str, row: Value, uuid_name: &str) -> Value {
    json!({"op": "insert", "table": table, "row": row, "uuid-name": uuid_name})
}

/// `update` of the row with this uuid.
pub fn update(table: &str, uuid: &str, row: Value) -> Value {
    json!({"op": "update", "table": table, "where": [["_uuid", "==", ["uuid", uuid]]], "row": row})
}

/// `mutate` of the row with this uuid.
pub fn mutate(table: &str, where_: Value, mutations: Value) -> Value {
    json!({"op": "mutate", "table": table, "where": where_, "mutations": mutations})
}

/// `select` of the given columns.
pub fn select(table: &str, where_: Value, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": where_, "columns": columns})
}

/// Fail the transaction unless the row with this uuid still has this `_version`.
pub fn wait_version(table: &str, uuid: &str, version: &str) -> Value {
    json!({
        "op": "wait", "timeout": 0, "table": table,
        "where": [["_uuid", "==", ["uuid", uuid]]],
        "columns": ["_version"], "until": "==",
        "rows": [{"_version": ["uuid", version]}]
    })
}

/// Fail the transaction unless the row with this uuid still has these column
/// values (`columns`: column → value, as a `select` returned them). Unlike a
/// `_version` guard, a column it does not name (statistics, status, anything
/// ovs-vswitchd rewrites on its own) may change meanwhile.
pub fn wait_unchanged(table: &str, uuid: &str, columns: &serde_json::Map<String, Value>) -> Value {
    let names: Vec<&String> = columns.keys().collect();
    json!({
        "op": "wait", "timeout": 0, "table": table,
        "where": [["_uuid", "==", ["uuid", uuid]]],
        "columns": names, "until": "==",
        "rows": [columns]
    })
}

/// Fail the transaction if a row with this `name` exists.
pub fn wait_absent(table: &str, name: &str) -> Value {
    json!({
        "op": "wait", "timeout": 0, "table": table,
        "where": [["name", "==", name]],
        "columns": ["name"], "until": "==", "rows": []
    })
}

/// Fail the transaction unless this session owns the lock (RFC 7047 §5.2.10).
pub fn assert_lock(lock: &str) -> Value {
    json!({"op": "assert", "lock": lock})
}

pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

fn describe(operation: &Value) -> String {
    let op = operation.get("op").and_then(Value::as_str).unwrap_or("?");
    match operation.get("table").and_then(Value::as_str) {
        Some(table) => {
            let name = operation
                .get("row")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            format!("{op} on {table}{name}")
        }
        None => op.to_string(),
    }
}

/// Check every element of a transact reply.
pub fn check_reply(
    remote: &str,
    operations: &[Value],
    replies: &[Value],
) -> Result<(), OvsdbError> {
    for (index, reply) in replies.iter().enumerate() {
        let Some(error) = reply.get("error").filter(|e| !e.is_null()) else {
            continue;
        };
        let details = reply
            .get("details")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let failed = operations.get(index);
        let operation = match failed {
            Some(op) => format!("operation {index} ({})", describe(op)),
            None => "the commit".to_string(),
        };
        let error = error
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        let kind = failed.and_then(|op| op.get("op")).and_then(Value::as_str);
        match (kind, error.as_str()) {
            (Some("wait"), "timed out") => {
                return Err(OvsdbError::Guard {
                    remote: remote.to_string(),
                    operation,
                })
            }
            (Some("assert"), "not owner") => {
                let lock = failed
                    .and_then(|op| op.get("lock"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(OvsdbError::LockLost {
                    remote: remote.to_string(),
                    lock: lock.to_string(),
                });
            }
            _ => {}
        }
        return Err(OvsdbError::Transact {
            remote: remote.to_string(),
            operation,
            error,
            details: details.to_string(),
        });
    }
    if replies.len() < operations.len() {
        return Err(OvsdbError::Protocol(format!(
            "transact reply has {} elements for {} operations",
            replies.len(),
            operations.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_operation_or_the_commit() {
        let ops = vec![comment("x"), insert("Port", json!({"name": "p1"}), "p")];
        let err = check_reply(
            "unix:x",
            &ops,
            &[
                json!({}),
                json!({"error": "constraint violation", "details": "dup"}),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("operation 1 (insert on Port \"p1\")")
                && text.contains("constraint violation")
                && text.contains("dup"),
            "{text}"
        );
        let err = check_reply(
            "unix:x",
            &ops,
            &[
                json!({}),
                json!({"uuid": ["uuid", "u"]}),
                json!({"error": "referential integrity violation"}),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("the commit"), "{err}");
        assert!(check_reply("unix:x", &ops, &[json!({}), json!({"uuid": ["uuid", "u"]})]).is_ok());
        assert!(check_reply("unix:x", &ops, &[json!({})]).is_err());
    }

    #[test]
    fn a_failed_guard_and_a_lost_lock_have_their_own_variants() {
        let ops = vec![assert_lock("ovsmesh_t1"), wait_version("Port", "u1", "v1")];
        let guard = check_reply(
            "unix:x",
            &ops,
            &[
                json!({}),
                json!({"error": "timed out", "details": "\"wait\" timed out"}),
            ],
        );
        assert!(
            matches!(&guard, Err(OvsdbError::Guard { operation, .. }) if operation.contains("operation 1 (wait on Port)")),
            "{guard:?}"
        );
        let lost = check_reply("unix:x", &ops, &[json!({"error": "not owner"})]);
        assert!(
            matches!(&lost, Err(OvsdbError::LockLost { lock, .. }) if lock == "ovsmesh_t1"),
            "{lost:?}"
        );
        // The same words from another operation are not a guard or the lock.
        let other = check_reply(
            "unix:x",
            &[insert("Port", json!({}), "p")],
            &[json!({"error": "timed out"})],
        );
        assert!(
            matches!(other, Err(OvsdbError::Transact { .. })),
            "{other:?}"
        );
    }
}
