//! What `apply` and `down` tell their user about an [`Outcome`].
//!
//! Text: what changed (the plan's lines, under "applied"/"removed"), bridges
//! kept because they hold foreign ports; on stderr what failed (ports, host
//! objects — the firewall's batch among them —, an ovs-vswitchd that did not
//! confirm the change), what the verify step found still different, and
//! warnings about the host's own settings; JSON: the same as one object. Rendering
//! only; the CLI prints and picks the exit code.

use serde_json::json;

use super::Outcome;
use crate::plan::render_text as plan_text;

/// Which command produced the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Apply,
    Down,
}

/// An outcome as text: the report for stdout, the failures for stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
}

/// The outcome as one JSON object on one line.
pub fn render_json(outcome: &Outcome) -> String {
    let failures: Vec<_> = outcome
        .ovs
        .failures
        .iter()
        .map(|f| (format!("port {} ({})", f.id, f.name), f.error.clone()))
        .chain(
            outcome
                .netlink
                .failures
                .iter()
                .map(|f| (format!("{} {}", f.kind.as_str(), f.id), f.error.clone())),
        )
        .chain(outcome.plan.conflicts.iter().map(|c| {
            (
                format!("{} {}", c.kind.as_str(), c.id),
                format!("conflict: {}", c.reason),
            )
        }))
        .chain(
            outcome
                .ovs
                .unconfirmed
                .iter()
                .map(|why| ("ovs-vswitchd".to_string(), why.clone())),
        )
        .map(|(what, error)| json!({"object": what, "error": error}))
        .collect();
    let verify = json!({
        "matches": outcome.verified.matches(),
        "remaining": outcome.verified.remaining,
        "error": outcome.verified.error,
    });
    let kept: Vec<_> = outcome
        .ovs
        .kept_bridges
        .iter()
        .map(|(b, ports)| json!({"bridge": b, "foreign_ports": ports}))
        .collect();
    let changed: Vec<_> = outcome
        .ovs
        .applied
        .iter()
        .chain(&outcome.netlink.applied)
        .collect();
    format!(
        "{}\n",
        json!({"host": outcome.plan.host, "changed": changed,
               "waiting": outcome.plan.waiting, "kept_bridges": kept, "failures": failures,
               "warnings": outcome.warnings, "verify": verify})
    )
}

/// The outcome as text.
pub fn render_text(outcome: &Outcome, action: Action) -> Rendered {
    let mut out = Rendered::default();
    let host = &outcome.plan.host;
    if outcome.plan.is_empty() && action == Action::Down {
        out.stdout += &format!("nothing to remove: host {host} has no objects of this mesh\n");
    } else if outcome.plan.is_empty() {
        out.stdout += &format!("no changes: host {host} already matches the topology\n");
    } else {
        let verb = match action {
            Action::Apply => "applied",
            Action::Down => "removed",
        };
        out.stdout += &format!("{verb} on host {host}:\n");
        // The plan's lines without its summary line.
        for line in plan_text(&outcome.plan).lines().skip(1) {
            out.stdout += &format!("{line}\n");
        }
    }
    for (bridge, ports) in &outcome.ovs.kept_bridges {
        out.stdout += &format!(
            "kept bridge {bridge}: it still holds ports ovsmesh does not own ({})\n",
            ports.join(", ")
        );
    }
    for failure in &outcome.ovs.failures {
        out.stderr += &format!(
            "failed: port {} ({}): {}\n",
            failure.id, failure.name, failure.error
        );
    }
    if let Some(why) = &outcome.ovs.unconfirmed {
        out.stderr += &format!("failed: ovs-vswitchd: {why}\n");
    }
    for failure in &outcome.netlink.failures {
        out.stderr += &format!(
            "failed: {} {}: {}\n",
            failure.kind.as_str(),
            failure.id,
            failure.error
        );
    }
    if let Some(error) = &outcome.verified.error {
        out.stderr += &format!("failed: verify: could not observe the host again: {error}\n");
    }
    if !outcome.verified.remaining.is_empty() {
        let remaining = crate::plan::Plan {
            host: host.clone(),
            changes: outcome.verified.remaining.clone(),
            waiting: Vec::new(),
            kept: Vec::new(),
            conflicts: Vec::new(),
        };
        out.stderr += &format!(
            "failed: verify: host {host} does not match after applying; still different:\n"
        );
        for line in plan_text(&remaining).lines().skip(1) {
            out.stderr += &format!("  {line}\n");
        }
    }
    for warning in &outcome.warnings {
        out.stderr += &format!("warning: {warning}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::Verified;
    use crate::host::NetlinkReport;
    use crate::ovs::{OvsReport, PortFailure};
    use crate::state::HostState;

    const ONE_HOST: &str = r#"
[mesh]
name = "t"
[hosts.a]
underlay_address = "192.0.2.1/24"
[networks.blue]
kind = "vlan"
vlan = 100
subnet = "192.168.0.0/24"
[containers.c1]
host = "a"
network = "blue"
address = "192.168.0.1"
"#;

    /// The outcome of applying everything to an empty host `a`, or of nothing to do.
    fn outcome(changes: bool) -> Outcome {
        let topology = crate::topology::parse(Path::new("t.toml"), ONE_HOST).unwrap();
        let want = crate::desired::desired(&topology, "a").unwrap();
        let empty = HostState {
            host: "a".into(),
            ..HostState::default()
        };
        let plan = if changes {
            crate::plan::plan(&crate::desired::settle("t", &want, &empty))
        } else {
            crate::plan::plan(&crate::desired::settle("t", &empty, &empty))
        };
        Outcome {
            plan,
            ovs: OvsReport {
                kept_bridges: vec![("br-x".into(), vec!["eth9".into()])],
                failures: vec![PortFailure {
                    id: "c1/eth0".into(),
                    name: "vp1".into(),
                    error: "could not open".into(),
                }],
                ..OvsReport::default()
            },
            netlink: NetlinkReport::default(),
            warnings: Vec::new(),
            verified: Verified::default(),
        }
    }

    #[test]
    fn text_lists_the_plan_lines_under_the_verb_and_failures_on_stderr() {
        let outcome = outcome(true);
        let text = render_text(&outcome, Action::Apply);
        let plan = plan_text(&outcome.plan);
        let plan_lines: Vec<&str> = plan.lines().skip(1).collect();
        assert!(!plan_lines.is_empty());
        let mut lines = text.stdout.lines();
        assert_eq!(lines.next(), Some("applied on host a:"));
        let body: Vec<&str> = lines.collect();
        assert_eq!(&body[..plan_lines.len()], &plan_lines[..]);
        assert_eq!(
            body[plan_lines.len()..],
            ["kept bridge br-x: it still holds ports ovsmesh does not own (eth9)"]
        );
        assert_eq!(text.stderr, "failed: port c1/eth0 (vp1): could not open\n");
    }

    #[test]
    fn warnings_go_to_stderr_and_into_the_json() {
        let mut outcome = outcome(false);
        outcome.ovs.failures.clear();
        outcome.warnings = vec!["underlay device eth0 has MTU 1450".into()];
        let text = render_text(&outcome, Action::Apply);
        assert_eq!(text.stderr, "warning: underlay device eth0 has MTU 1450\n");
        assert!(!text.stdout.contains("MTU 1450"));
        let value: serde_json::Value = serde_json::from_str(&render_json(&outcome)).unwrap();
        assert_eq!(value["warnings"][0], "underlay device eth0 has MTU 1450");
    }

    #[test]
    fn nothing_to_do_says_so_per_action() {
        let outcome = outcome(false);
        let apply = render_text(&outcome, Action::Apply).stdout;
        let down = render_text(&outcome, Action::Down).stdout;
        assert!(apply.starts_with("no changes: host a already matches the topology\n"));
        assert!(down.starts_with("nothing to remove: host a has no objects of this mesh\n"));
    }

    #[test]
    fn json_is_one_line_with_failures_and_kept_bridges() {
        let json = render_json(&outcome(false));
        assert!(json.ends_with('\n') && json.lines().count() == 1);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["host"], "a");
        assert_eq!(value["failures"][0]["object"], "port c1/eth0 (vp1)");
        assert_eq!(value["kept_bridges"][0]["foreign_ports"][0], "eth9");
    }
    #[test]
    fn what_vswitchd_did_not_confirm_and_what_verify_found_go_to_stderr_and_json() {
        let mut outcome = outcome(true);
        outcome.ovs.failures.clear();
        outcome.ovs.unconfirmed =
            Some("the change committed, but ovs-vswitchd did not apply configuration 2".into());
        outcome.netlink.failures.push(crate::host::Failure {
            kind: crate::plan::Kind::Address,
            id: "obr0 172.17.1.1/24".into(),
            error: "device obr0: does not exist".into(),
        });
        outcome.verified.remaining = outcome.plan.changes[..1].to_vec();
        let text = render_text(&outcome, Action::Apply);
        let first = &outcome.plan.changes[0];
        assert!(text.stderr.starts_with(
            "failed: ovs-vswitchd: the change committed, but ovs-vswitchd did not apply configuration 2\n\
             failed: address obr0 172.17.1.1/24: device obr0: does not exist\n\
             failed: verify: host a does not match after applying; still different:\n"
        ), "{}", text.stderr);
        assert!(
            text.stderr
                .contains(&format!("  + {} {}", first.kind.as_str(), first.id)),
            "{}",
            text.stderr
        );
        let value: serde_json::Value = serde_json::from_str(&render_json(&outcome)).unwrap();
        assert_eq!(value["verify"]["matches"], false);
        assert_eq!(value["verify"]["remaining"][0]["id"], first.id.as_str());
        assert_eq!(value["failures"][0]["object"], "address obr0 172.17.1.1/24");
        assert_eq!(value["failures"][1]["object"], "ovs-vswitchd");
    }
}
