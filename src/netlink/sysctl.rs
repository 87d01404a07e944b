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
    super::wrote();
    std::fs::write(path(dev), if on { "1\n" } else { "0\n" })
}

/// Where ovsmesh remembers a device's forwarding setting from before it
/// enabled it, so `down` can put it back. Under /run: forwarding settings do
/// not survive a reboot either.
fn memory(mesh: &str, dev: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/ovsmesh/forwarding")
        .join(mesh)
        .join(dev)
}

/// Enable forwarding on `dev`, remembering the previous setting the first time.
pub fn enable_remembering(mesh: &str, dev: &str) -> io::Result<()> {
    let memory = memory(mesh, dev);
    if !memory.exists() {
        if let Some(before) = forwarding(dev) {
            std::fs::create_dir_all(memory.parent().expect("a parent"))?;
            std::fs::write(&memory, if before { "1\n" } else { "0\n" })?;
        }
    }
    set_forwarding(dev, true)
}

/// Put back every forwarding setting this mesh changed; returns the devices restored.
pub fn restore_all(mesh: &str) -> io::Result<Vec<String>> {
    let dir = std::path::Path::new("/run/ovsmesh/forwarding").join(mesh);
    let mut restored = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(restored);
    };
    for entry in entries.flatten() {
        let dev = entry.file_name().to_string_lossy().to_string();
        let before = std::fs::read_to_string(entry.path())?.trim() == "1";
        // A device that is gone (ovsmesh deleted it) has nothing to restore.
        if forwarding(&dev).is_some() {
            set_forwarding(&dev, before)?;
            restored.push(dev);
        }
        std::fs::remove_file(entry.path())?;
    }
    Ok(restored)
}
