//! Building transaction operations and checking their replies.
//!
//! RFC 7047 §5.2: a `transact` reply has one element per operation, each either
//! a result or `{"error": …}`; one extra trailing element reports a failed
//! commit (e.g. a constraint violation). A transaction can "succeed" as an RPC
//! and still have failed, so every element is checked and the error names the
//! operation (its index, kind and table).

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

/// Fail the transaction if a row with this `name` exists.
pub fn wait_absent(table: &str, name: &str) -> Value {
    json!({
        "op": "wait", "timeout": 0, "table": table,
        "where": [["name", "==", name]],
        "columns": ["name"], "until": "==", "rows": []
    })
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
        let operation = match operations.get(index) {
            Some(op) => format!("operation {index} ({})", describe(op)),
            None => "the commit".to_string(),
        };
        let error = error
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
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
}
