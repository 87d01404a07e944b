//! The lab harness of the end-to-end tests: a seed topology brought up as a
//! lab with its own prefix, proven by `check`, torn down on drop (also when the
//! test fails; `OVSMESH_KEEP_LAB=1` keeps it for a look).
#![allow(dead_code)]

use std::time::Duration;

use crate::common::*;
use ovsmesh::check::{self, Expect, Report};
use ovsmesh::lab::{self, Lab};
use ovsmesh::netns;
use ovsmesh::runtime::Runtimes;
use ovsmesh::topology::Topology;

pub struct LabGuard {
    pub lab: Lab,
    pub topology: Topology,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if std::env::var_os("OVSMESH_KEEP_LAB").is_some() {
            eprintln!("keeping lab {}", self.lab.prefix);
            return;
        }
        let _ = runtime().block_on(lab::down(&self.lab));
    }
}

/// Docker containers of a seed topology become named namespaces (no dockerd needed).
pub fn as_netns(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(name) = line
            .strip_prefix("[containers.")
            .and_then(|l| l.strip_suffix(']'))
        {
            out.push_str(&format!("netns = \"{name}\"\n"));
        }
    }
    out
}

pub fn up(text: &str, docker: bool) -> LabGuard {
    let topology = topology(text);
    let guard = LabGuard {
        lab: Lab::new(&unique("e")),
        topology,
    };
    let report = runtime()
        .block_on(lab::up(&guard.lab, &guard.topology, docker))
        .unwrap_or_else(|e| panic!("{e}"));
    for (host, outcome) in &report.outcomes {
        assert!(
            !outcome.failed(),
            "{host}: {:?} {:?}",
            outcome.ovs.failures,
            outcome.netlink.failures
        );
    }
    guard
}

impl LabGuard {
    pub fn check(&self) -> Report {
        let twin = self.lab.twin(&self.topology);
        let (endpoints, probes) = check::expectations(&twin, None);
        let runtimes = Runtimes::new(self.lab.docker_socket().as_deref());
        let netns = runtime().block_on(check::probe::locate(&endpoints, &runtimes));
        check::probe::check(&endpoints, &probes, &netns, true)
    }

    pub fn assert_converged(&self) -> Report {
        // Fresh veths may take a moment to be picked up by vswitchd.
        let mut report = self.check();
        for _ in 0..3 {
            if report.mismatches() == 0 {
                break;
            }
            eprintln!(
                "lab {}: retrying check after {} mismatches",
                self.lab.prefix,
                report.mismatches()
            );
            std::thread::sleep(Duration::from_secs(1));
            report = self.check();
        }
        assert_eq!(report.mismatches(), 0, "{}", check::render_text(&report));
        report
    }

    /// `ovs-vsctl ARGS` against lab host `host`'s OVSDB; its output.
    pub fn vsctl(&self, host: &str, args: &[&str]) -> String {
        lab_vsctl(&self.lab, host, args)
    }

    /// `docker ARGS` against the lab's dockerd (a lab brought up with Docker); its output.
    pub fn docker(&self, args: &[&str]) -> String {
        lab_docker(&self.lab, args)
    }

    pub fn ns(&self, name: &str) -> std::fs::File {
        netns::open(&format!("{}-{name}", self.lab.prefix)).unwrap()
    }

    pub fn ping(&self, from: &str, address: &str) -> bool {
        eventually(Duration::from_secs(5), || {
            netns::output(
                &self.ns(from),
                "ping",
                &["-n", "-c", "1", "-W", "1", address],
            )
            .is_ok_and(|o| o.status.success())
        })
    }

    pub fn apply(&self, host: &str, down: bool) -> ovsmesh::engine::Outcome {
        let twin = self.lab.twin(&self.topology);
        lab::apply_host(
            &self.lab,
            &twin,
            host,
            self.lab.docker_socket().as_deref(),
            down,
        )
        .unwrap()
    }
}

pub fn assert_pair(report: &Report, from: &str, to: &str, expect: Expect) {
    let probe = report
        .probes
        .iter()
        .find(|p| p.from == from && p.to == to)
        .unwrap_or_else(|| panic!("no probe {from} -> {to}"));
    assert_eq!(probe.expect, expect, "{from} -> {to}");
    assert!(probe.ok, "{from} -> {to}: {:?}", probe.problem);
}
