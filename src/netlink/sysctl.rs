//! Per-interface IPv4 settings (`net.ipv4.conf.DEV.KEY`), through /proc/sys
//! (no `sysctl` binary), and the memory of what they were before ovsmesh.
//!
//! For IPv4 the kernel checks forwarding on the interface a packet arrives on,
//! so ovsmesh enables it only where routed container traffic enters
//! (`net.ipv4.conf.DEV.forwarding`); `all` is the global switch. Other settings
//! (`send_redirects`) are set the same way. Every value ovsmesh replaces is
//! remembered the first time, under `/run/ovsmesh/KEY/MESH/DEV` (volatile like
//! the setting itself), so `down` puts it back.

use std::io;
use std::path::{Path, PathBuf};

use crate::topology::ident::under;

/// The settings ovsmesh may change, each remembered in a directory of its own.
pub const KEYS: &[&str] = &["forwarding", "send_redirects"];

fn path(dev: &str, key: &str) -> io::Result<PathBuf> {
    Ok(under(Path::new("/proc/sys/net/ipv4/conf"), dev)?.join(key))
}

/// `net.ipv4.conf.DEV.KEY`, or `None` if the device (or setting) does not exist.
pub fn read(dev: &str, key: &str) -> Option<u32> {
    std::fs::read_to_string(path(dev, key).ok()?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn write(dev: &str, key: &str, value: u32) -> io::Result<()> {
    std::fs::write(path(dev, key)?, format!("{value}\n"))
}

/// Forwarding on `dev`, or `None` if the device does not exist.
pub fn forwarding(dev: &str) -> Option<bool> {
    read(dev, "forwarding").map(|v| v == 1)
}

pub fn set_forwarding(dev: &str, on: bool) -> io::Result<()> {
    write(dev, "forwarding", u32::from(on))
}

/// Where ovsmesh remembers a device's setting from before it changed it.
fn memory(key: &str, mesh: &str, dev: &str) -> io::Result<PathBuf> {
    Ok(under(&memory_dir(key, mesh)?, dev)?)
}

fn memory_dir(key: &str, mesh: &str) -> io::Result<PathBuf> {
    if !KEYS.contains(&key) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("net.ipv4.conf setting {key:?} is not one ovsmesh manages"),
        ));
    }
    Ok(under(&Path::new("/run/ovsmesh").join(key), mesh)?)
}

/// Set `net.ipv4.conf.DEV.KEY`, remembering the previous value the first time.
pub fn set_remembering(mesh: &str, dev: &str, key: &str, value: u32) -> io::Result<()> {
    let memory = memory(key, mesh, dev)?;
    if !memory.exists() {
        if let Some(before) = read(dev, key) {
            std::fs::create_dir_all(memory.parent().expect("a parent"))?;
            std::fs::write(&memory, format!("{before}\n"))?;
        }
    }
    write(dev, key, value)
}

/// Enable forwarding on `dev`, remembering the previous setting the first time.
pub fn enable_remembering(mesh: &str, dev: &str) -> io::Result<()> {
    set_remembering(mesh, dev, "forwarding", 1)
}

/// Put back every value of `key` this mesh changed; returns the devices restored.
pub fn restore(mesh: &str, key: &str) -> io::Result<Vec<String>> {
    let dir = memory_dir(key, mesh)?;
    let mut restored = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(restored);
    };
    for entry in entries.flatten() {
        let dev = entry.file_name().to_string_lossy().to_string();
        let before = std::fs::read_to_string(entry.path())?.trim().parse::<u32>();
        // A device that is gone (ovsmesh deleted it) has nothing to restore.
        if let (Ok(before), Some(_)) = (before, read(&dev, key)) {
            write(&dev, key, before)?;
            restored.push(dev);
        }
        std::fs::remove_file(entry.path())?;
    }
    Ok(restored)
}

/// Put back every forwarding setting this mesh changed; returns the devices restored.
pub fn restore_all(mesh: &str) -> io::Result<Vec<String>> {
    restore(mesh, "forwarding")
}

/// Put back every setting of [`KEYS`] this mesh changed; returns
/// `net.ipv4.conf.DEV.KEY` of each.
pub fn restore_every_key(mesh: &str) -> io::Result<Vec<String>> {
    let mut restored = Vec::new();
    for key in KEYS {
        for dev in restore(mesh, key)? {
            restored.push(format!("net.ipv4.conf.{dev}.{key}"));
        }
    }
    Ok(restored)
}
