//! One host `A` driven through the `ovsmesh` binary: its own ovsdb-server (no
//! ovs-vswitchd: what these tests check is netlink and the CLI), its network
//! namespace, one container namespace `c1`, and a topology file in which
//! `{mesh}` and `{c1}` name them. Torn down on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::*;

pub struct OneHost {
    pub server: OvsdbServer,
    pub host: Netns,
    pub c1: Netns,
    pub mesh: String,
    pub file: PathBuf,
}

impl OneHost {
    pub fn new() -> Self {
        let server = OvsdbServer::start(None, false);
        let file = server.dir.join("topology.toml");
        Self {
            host: Netns::new("o1h"),
            c1: Netns::new("o1c"),
            mesh: unique("o1"),
            server,
            file,
        }
    }

    /// Write the topology, `{mesh}` and `{c1}` replaced.
    pub fn write(&self, text: &str) {
        let text = text
            .replace("{mesh}", &self.mesh)
            .replace("{c1}", &self.c1.name);
        std::fs::write(&self.file, text).unwrap();
    }

    /// `ovsmesh ARGS --host A --ovsdb … TOPOLOGY`, inside the host's namespace
    /// (`ip netns exec` execs it: the child is ovsmesh itself).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.host.name])
            .arg(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(args)
            .args(["--host", "A", "--ovsdb", &self.server.remote()])
            .arg(&self.file);
        command
    }

    /// [`OneHost::command`] run to its end: exit code, stdout and stderr together.
    pub fn cli(&self, args: &[&str]) -> (Option<i32>, String) {
        let out: Output = self.command(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}
