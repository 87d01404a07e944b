//! The OVSDB echoes of the Docker plugin's own writes, told apart from every
//! other change.
//!
//! Each `docker run --network` makes the plugin insert an endpoint port, and
//! its end delete it. The daemon's OVSDB monitor sees those writes as it sees
//! any change, and the reconcile each one woke found nothing to do — but ran
//! while Docker started or removed the container, on the same CPUs (a VM with
//! one CPU paid for it in start latency). So the plugin says which port it is
//! about to insert or delete ([`Echoes::expect`]), and the monitor's watcher
//! drops an update made only of those ports' and interfaces' rows (and the
//! bridges' `ports` that list them). Anything else wakes the daemon as before:
//! a port deleted by hand, a plugin write that ovsdb-server merged with
//! someone else's, a changed row; an expectation never met lapses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long an expected echo is waited for (a plugin call's answer time is bounded below that).
const LAPSE: Duration = Duration::from_secs(30);

/// A port row the plugin is about to insert (`true`) or delete (`false`).
type Row = (String, bool);

/// The plugin's writes whose echoes the watcher drops; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Echoes(Arc<Mutex<Vec<(Row, Instant)>>>);

impl Echoes {
    /// The plugin is about to insert (or delete) port `name` (and its interface of the same name).
    pub fn expect(&self, name: &str, insert: bool) {
        let mut expected = self.0.lock().unwrap_or_else(|e| e.into_inner());
        expected.retain(|(_, at)| at.elapsed() < LAPSE);
        expected.push(((name.to_string(), insert), Instant::now()));
    }

    /// Whether every row of an update was expected; if so, those expectations are met.
    fn met(&self, rows: &[Row]) -> bool {
        let mut expected = self.0.lock().unwrap_or_else(|e| e.into_inner());
        expected.retain(|(_, at)| at.elapsed() < LAPSE);
        let all = !rows.is_empty() && rows.iter().all(|r| expected.iter().any(|(e, _)| e == r));
        if all {
            expected.retain(|(e, _)| !rows.contains(e));
        }
        all
    }
}

/// Port and interface names by row uuid, as the monitor showed them (a
/// deleted row's update names only its uuid).
#[derive(Debug, Default)]
pub struct Mirror {
    names: HashMap<String, String>,
}

impl Mirror {
    /// Take in the monitor's initial rows.
    pub fn initial(&mut self, updates: &Value) {
        self.rows(updates);
    }

    /// Take in an update: whether it is only an echo of the plugin's expected writes.
    pub fn echo(&mut self, updates: &Value, echoes: &Echoes) -> bool {
        match self.rows(updates) {
            Some(rows) => echoes.met(&rows),
            None => false,
        }
    }

    /// The port and interface rows an update inserted or deleted, or `None`
    /// when it changed anything else (a modified row, another table's row, a
    /// bridge's column other than `ports`).
    fn rows(&mut self, updates: &Value) -> Option<Vec<Row>> {
        let mut rows = Vec::new();
        let mut other = false;
        for (table, changes) in updates.as_object()? {
            for (uuid, change) in changes.as_object()? {
                let new = change.get("initial").or_else(|| change.get("insert"));
                match table.as_str() {
                    "Port" | "Interface" => {
                        if let Some(name) = new.and_then(|n| n.get("name")?.as_str()) {
                            self.names.insert(uuid.clone(), name.to_string());
                            rows.push((name.to_string(), true));
                        } else if change.get("delete").is_some() {
                            match self.names.remove(uuid) {
                                Some(name) => rows.push((name, false)),
                                None => other = true,
                            }
                        } else {
                            if let Some(name) =
                                change.pointer("/modify/name").and_then(Value::as_str)
                            {
                                self.names.insert(uuid.clone(), name.to_string());
                            }
                            other = true;
                        }
                    }
                    "Bridge" => {
                        let ports_only = change
                            .get("modify")
                            .and_then(Value::as_object)
                            .is_some_and(|m| m.keys().all(|k| k == "ports"));
                        other |= !ports_only;
                    }
                    _ => other = true,
                }
            }
        }
        (!other).then_some(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inserted(port: &str) -> Value {
        json!({
            "Port": {"p1": {"insert": {"name": port, "interfaces": ["uuid", "i1"]}}},
            "Interface": {"i1": {"insert": {"name": port, "type": ""}}},
            "Bridge": {"b1": {"modify": {"ports": ["uuid", "p1"]}}}
        })
    }

    fn deleted() -> Value {
        json!({
            "Port": {"p1": {"delete": null}},
            "Interface": {"i1": {"delete": null}},
            "Bridge": {"b1": {"modify": {"ports": ["uuid", "p1"]}}}
        })
    }

    #[test]
    fn the_plugins_own_insert_and_delete_are_echoes_once() {
        let (mut mirror, echoes) = (Mirror::default(), Echoes::default());
        mirror.initial(&json!({"Port": {"p0": {"initial": {"name": "red1"}}}}));
        echoes.expect("ve1", true);
        assert!(mirror.echo(&inserted("ve1"), &echoes));
        // Met once: the same update again is a change.
        assert!(!mirror.echo(&deleted(), &echoes));
        mirror.initial(&inserted("ve1"));
        echoes.expect("ve1", false);
        assert!(mirror.echo(&deleted(), &echoes));
    }

    #[test]
    fn anything_unexpected_wakes_the_daemon() {
        let (mut mirror, echoes) = (Mirror::default(), Echoes::default());
        // Not announced by the plugin.
        assert!(!mirror.echo(&inserted("ve1"), &echoes));
        // A port deleted by hand while the plugin expects its insert.
        echoes.expect("ve1", true);
        assert!(!mirror.echo(&deleted(), &echoes));
        // Another port in the same update.
        let mut both = inserted("ve1");
        both["Port"]["p2"] = json!({"insert": {"name": "red1"}});
        assert!(!mirror.echo(&both, &echoes));
        // A modified port, a bridge column other than ports, another table.
        echoes.expect("ve1", true);
        let modified = json!({"Port": {"p1": {"modify": {"tag": 5}}}});
        assert!(!mirror.echo(&modified, &echoes));
        let bridge = json!({"Bridge": {"b1": {"modify": {"external_ids": ["map", []]}}}});
        assert!(!mirror.echo(&bridge, &echoes));
        let root = json!({"Open_vSwitch": {"o": {"modify": {"bridges": ["set", []]}}}});
        assert!(!mirror.echo(&root, &echoes));
        // A delete of a row never seen.
        assert!(!Mirror::default().echo(&deleted(), &echoes));
    }
}
