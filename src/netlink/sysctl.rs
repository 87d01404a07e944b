//! IPv4 forwarding per interface, through /proc/sys (no `sysctl` binary).
//!
//! For IPv4 the kernel checks forwarding on the interface a packet arrives on,
//! so ovsmesh enables it only where routed container traffic enters
//! (`net.ipv4.conf.DEV.forwarding`); `all` is the global switch.

use std::io;

fn path(dev: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{dev}/forwarding")
}

/// Forwarding on `dev`, or `None` if the device does not exist.
pub fn forwarding(dev: &str) -> Option<bool> {
    std::fs::read_to_string(path(dev))
        .ok()
        .map(|v| v.trim() == "1")
}

pub fn set_forwarding(dev: &str, on: bool) -> io::Result<()> {
    std::fs::write(path(dev), if on { "1\n" } else { "0\n" })
}
