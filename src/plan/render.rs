//! A plan as people and programs read it.
//!
//! Text is one line per change (`+` create, `~` update, `±` replace, `-` delete)
//! with the reason below it, grouped in apply order; then what is kept (`=`) and
//! what conflicts (`!`); JSON carries the same data.

use std::fmt::Write as _;

use super::{Op, Plan};

fn symbol(op: Op) -> &'static str {
    match op {
        Op::Create => "+",
        Op::Update => "~",
        Op::Replace => "±",
        Op::Delete => "-",
    }
}

/// The plan as text.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {}: {} to create, {} to update, {} to replace, {} to delete",
        plan.host,
        plan.count(Op::Create),
        plan.count(Op::Update),
        plan.count(Op::Replace),
        plan.count(Op::Delete)
    );
    for change in &plan.changes {
        let _ = write!(
            out,
            "{} {} {}",
            symbol(change.op),
            change.kind.as_str(),
            change.id
        );
        if change.op == Op::Update {
            for c in &change.changed {
                let _ = write!(out, "  {}: {} -> {}", c.field, show(&c.from), show(&c.to));
            }
        } else {
            for (name, value) in &change.fields {
                let _ = write!(out, "  {name}={value}");
            }
            if change.op == Op::Replace {
                let changed: Vec<String> = change
                    .changed
                    .iter()
                    .map(|c| format!("{}: {} -> {}", c.field, show(&c.from), show(&c.to)))
                    .collect();
                if !changed.is_empty() {
                    let _ = write!(out, "  ({})", changed.join("; "));
                }
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "    because: {}", change.reason);
    }
    for kept in &plan.kept {
        let _ = write!(
            out,
            "= {} {} kept: {}",
            kept.kind.as_str(),
            kept.id,
            kept.reason
        );
        if !kept.holders.is_empty() {
            let _ = write!(out, " ({})", kept.holders.join(", "));
        }
        let _ = writeln!(out);
    }
    for conflict in &plan.conflicts {
        let _ = writeln!(out, "! conflict: {conflict}");
    }
    for container in &plan.waiting {
        let _ = writeln!(
            out,
            "waiting: container {container} is not running; nothing is made for it until it is"
        );
    }
    if plan.is_empty() {
        let _ = writeln!(out, "no changes: host {} matches the topology", plan.host);
    }
    out
}

fn show(value: &str) -> &str {
    if value.is_empty() {
        "(none)"
    } else {
        value
    }
}

/// The plan as JSON.
pub fn render_json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("a plan serializes");
    text.push('\n');
    text
}
