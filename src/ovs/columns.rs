//! The Open vSwitch tables and columns ovsmesh uses, listed once.
//!
//! Three readers must agree on them: the schema check at connect (a server
//! that lacks one is refused, naming it), the observer's selects, and the
//! daemon's monitor. Each table splits its columns in two: `config` — what
//! ovsmesh writes or manages by, which the observer reads and the monitor
//! watches — and `status` — what ovs-vswitchd (or a counter) rewrites on its
//! own, which the observer reads but the monitor must not watch, or the daemon
//! would wake every few seconds for nothing.

use serde_json::{json, Map, Value};

use crate::ovsdb::transact::select;
use crate::ovsdb::{Client, OvsdbError, DB};

/// One table and the columns ovsmesh uses in it.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    /// Written or managed by ovsmesh: observed and monitored.
    pub config: &'static [&'static str],
    /// Changed by ovs-vswitchd or counters: observed, never monitored.
    pub status: &'static [&'static str],
}

pub const OPEN_VSWITCH: Table = Table {
    name: "Open_vSwitch",
    config: &["bridges"],
    status: &["next_cfg", "cur_cfg", "ovs_version"],
};

pub const BRIDGE: Table = Table {
    name: "Bridge",
    config: &["name", "ports", "datapath_type", "external_ids"],
    status: &[],
};

pub const PORT: Table = Table {
    name: "Port",
    config: &[
        "name",
        "interfaces",
        "tag",
        "trunks",
        "protected",
        "external_ids",
    ],
    status: &[],
};

pub const INTERFACE: Table = Table {
    name: "Interface",
    config: &[
        "name",
        "type",
        "options",
        "bfd",
        "external_ids",
        "mtu_request",
    ],
    status: &["bfd_status", "error", "ofport"],
};

/// Every table ovsmesh uses, in the order the observer selects them.
pub const TABLES: [Table; 4] = [OPEN_VSWITCH, BRIDGE, PORT, INTERFACE];

impl Table {
    /// Every column of the table ovsmesh uses.
    pub fn columns(&self) -> impl Iterator<Item = &'static str> {
        self.config.iter().chain(self.status).copied()
    }

    /// What the observer selects: the row's identity (for guards) and every column.
    pub fn selected(&self) -> Vec<&'static str> {
        ["_uuid", "_version"]
            .into_iter()
            .chain(self.columns())
            .collect()
    }

    /// A `select` of every row with [`Table::selected`].
    pub fn select_all(&self) -> Value {
        select(self.name, json!([]), &self.selected())
    }
}

/// The daemon's `monitor_cond` request: the config columns of every table.
pub fn monitor_requests() -> Value {
    let tables: Map<String, Value> = TABLES
        .iter()
        .map(|t| (t.name.to_string(), json!([{ "columns": t.config }])))
        .collect();
    Value::Object(tables)
}

/// The first table or column of [`TABLES`] the schema lacks.
pub fn missing_column(schema: &Value) -> Option<String> {
    for table in &TABLES {
        let Some(found) = schema.get("tables").and_then(|t| t.get(table.name)) else {
            return Some(format!("table {}", table.name));
        };
        for column in table.columns() {
            if found.get("columns").and_then(|c| c.get(column)).is_none() {
                return Some(format!("column {}.{column}", table.name));
            }
        }
    }
    None
}

/// Check the server's schema has every column of [`TABLES`].
pub async fn check_schema(client: &Client) -> Result<(), OvsdbError> {
    let schema = client.get_schema(DB).await?;
    let Some(what) = missing_column(&schema) else {
        return Ok(());
    };
    let schema_version = schema
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let ovs_version = if what.starts_with("table Open_vSwitch") || what.contains("ovs_version") {
        None
    } else {
        let query = select(OPEN_VSWITCH.name, json!([]), &["ovs_version"]);
        client.transact(DB, vec![query]).await.ok().and_then(|r| {
            r.first()
                .and_then(|r| r["rows"][0]["ovs_version"].as_str())
                .map(str::to_string)
        })
    };
    Err(OvsdbError::Schema {
        remote: client.remote().to_string(),
        what,
        schema_version,
        ovs_version: ovs_version.unwrap_or_else(|| "unknown".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        let text = std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema")
            .expect("the Open vSwitch schema is installed");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_installed_schema_has_every_column_and_a_missing_one_is_named() {
        let mut schema = schema();
        assert_eq!(missing_column(&schema), None);
        for table in &TABLES {
            for column in table.columns() {
                let mut without = schema.clone();
                without["tables"][table.name]["columns"]
                    .as_object_mut()
                    .unwrap()
                    .remove(column);
                assert_eq!(
                    missing_column(&without),
                    Some(format!("column {}.{column}", table.name))
                );
            }
        }
        schema["tables"].as_object_mut().unwrap().remove("Port");
        assert_eq!(missing_column(&schema), Some("table Port".into()));
    }

    #[test]
    fn the_monitor_watches_config_columns_only() {
        let requests = monitor_requests();
        for table in &TABLES {
            let watched: Vec<&str> = requests[table.name][0]["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            assert_eq!(watched, table.config);
            assert!(table.status.iter().all(|s| !watched.contains(s)));
            let selected = table.selected();
            assert!(table.columns().all(|c| selected.contains(&c)));
        }
    }
}
