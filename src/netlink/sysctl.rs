//! Per-interface settings (`net.ipv4.conf.DEV.KEY`, `net.ipv6.conf.DEV.KEY`),
//! through /proc/sys (no `sysctl` binary), and the memory of what they were
//! before ovsmesh.
//!
//! For IPv4 the kernel checks forwarding on the interface a packet arrives on,
//! so ovsmesh enables it only where routed container traffic enters
//! (`net.ipv4.conf.DEV.forwarding`); `all` is the global switch. IPv6 forwards
//! by `net.ipv6.conf.all.forwarding` alone (Linux 6.1), and turning it on makes
//! the kernel drop default routes learned from router advertisements on every
//! interface whose `accept_ra` is not 2 — so `accept_ra` is set (to 2) first
//! where such a route exists. Other settings (`send_redirects`, the underlay
//! NIC's `arp_ignore`) are set the same way. Every value ovsmesh replaces is
//! remembered the first time, under `/run/ovsmesh/KEY/MESH/NETNS/DEV`
//! (`ipv6-KEY` for IPv6's; volatile like the setting itself, and per network
//! namespace), so `down` puts it back; meshes that share a setting share its
//! memory (`marks` says how).
//!
//! /proc/sys/net is the calling thread's network namespace's: inside a
//! container (a thread that entered it) the same functions set the container's.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::marks::{Policy, Removal, SWITCH_PORT_ARP_IGNORE};
use crate::topology::ident::under;
use crate::topology::Family;

/// The settings ovsmesh may change and remember: (family, key), each
/// remembered in a directory of its own ([`KEYS`]).
pub const SETTINGS: &[(Family, &str)] = &[
    (Family::Ipv4, "forwarding"),
    (Family::Ipv4, "send_redirects"),
    (Family::Ipv6, "forwarding"),
    (Family::Ipv6, "accept_ra"),
    (Family::Ipv4, "arp_ignore"),
];

/// The directories under /run/ovsmesh of [`SETTINGS`], in order.
pub const KEYS: &[&str] = &[
    "forwarding",
    "send_redirects",
    "ipv6-forwarding",
    "ipv6-accept_ra",
    "arp_ignore",
];

fn path(family: Family, dev: &str, key: &str) -> io::Result<PathBuf> {
    let conf = format!("/proc/sys/net/{}/conf", family.as_str());
    Ok(under(Path::new(&conf), dev)?.join(key))
}

/// `net.ipv4.conf.DEV.KEY`, or `None` if the device (or setting) does not exist.
pub fn read(dev: &str, key: &str) -> Option<u32> {
    read_of(Family::Ipv4, dev, key)
}

/// `net.FAMILY.conf.DEV.KEY`, or `None` if the device (or setting) does not exist.
pub fn read_of(family: Family, dev: &str, key: &str) -> Option<u32> {
    let text = std::fs::read_to_string(path(family, dev, key).ok()?).ok()?;
    text.trim().parse().ok()
}

pub fn write(dev: &str, key: &str, value: u32) -> io::Result<()> {
    write_of(Family::Ipv4, dev, key, value)
}

pub fn write_of(family: Family, dev: &str, key: &str, value: u32) -> io::Result<()> {
    super::wrote();
    std::fs::write(path(family, dev, key)?, format!("{value}\n"))
}

/// Make the host's IP stack silent on a device ovsmesh just created as a
/// switch port (a veth host end, still down): no ARP answers
/// ([`SWITCH_PORT_ARP_IGNORE`], why there) and no IPv6 (no link-local address, no
/// neighbour discovery). Nothing to restore: the settings go with the device.
/// A host without IPv6 has no IPv6 setting to turn off.
pub fn quiet_switch_port(dev: &str) -> io::Result<()> {
    write(dev, "arp_ignore", SWITCH_PORT_ARP_IGNORE)?;
    super::wrote();
    let ipv6 = under(Path::new("/proc/sys/net/ipv6/conf"), dev)?.join("disable_ipv6");
    match std::fs::write(ipv6, "1\n") {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Forwarding on `dev`, or `None` if the device does not exist.
pub fn forwarding(dev: &str) -> Option<bool> {
    read(dev, "forwarding").map(|v| v == 1)
}

pub fn set_forwarding(dev: &str, on: bool) -> io::Result<()> {
    write(dev, "forwarding", u32::from(on))
}

/// Where every mesh's memories of `key` are: `/run/ovsmesh/KEY` (IPv4's),
/// `/run/ovsmesh/ipv6-KEY` (IPv6's).
fn key_dir(family: Family, key: &str) -> io::Result<PathBuf> {
    let at = SETTINGS
        .iter()
        .position(|s| *s == (family, key))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "net.{}.conf setting {key:?} is not one ovsmesh manages",
                    family.as_str()
                ),
            )
        })?;
    Ok(Path::new("/run/ovsmesh").join(KEYS[at]))
}

/// A mesh's memories of `key` in this network namespace:
/// `/run/ovsmesh/KEY/MESH/NETNS`.
fn memory_dir(family: Family, key: &str, mesh: &str) -> io::Result<PathBuf> {
    Ok(under(&under(&key_dir(family, key)?, mesh)?, &namespace()?)?)
}

/// Where ovsmesh remembers a device's setting from before it changed it.
fn memory(family: Family, key: &str, mesh: &str, dev: &str) -> io::Result<PathBuf> {
    Ok(under(&memory_dir(family, key, mesh)?, dev)?)
}

/// The network namespace this thread is in, as a directory name: its cookie
/// (never reused while the host runs; Linux 5.14 and later), else the inode of
/// its nsfs file. Settings are per namespace, and so are their memories: the
/// hosts of a lab, and meshes in other namespaces, never see each other's.
fn namespace() -> io::Result<String> {
    /// `SO_NETNS_COOKIE` (asm-generic; every architecture ovsmesh builds for).
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: a plain socket whose descriptor is owned (closed on drop) at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: `cookie` and `len` are valid for the kernel to write.
        let got = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&mut cookie as *mut u64).cast(),
                &mut len,
            )
        };
        if got == 0 && len as usize == std::mem::size_of::<u64>() {
            return Ok(format!("netns-{cookie}"));
        }
    }
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    Ok(format!("netns-inode-{inode}"))
}

/// Whether `mesh` remembers the value `net.FAMILY.conf.DEV.KEY` had before it
/// (in this namespace).
pub fn remembers(mesh: &str, family: Family, key: &str, dev: &str) -> bool {
    memory(family, key, mesh, dev).is_ok_and(|path| path.exists())
}

/// The devices whose `net.FAMILY.conf.DEV.KEY` `mesh` remembers (in this namespace).
pub fn remembered_devices(mesh: &str, family: Family, key: &str) -> Vec<String> {
    let Ok(dir) = memory_dir(family, key, mesh) else {
        return Vec::new();
    };
    let mut devices: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    devices.sort();
    devices
}

/// Mesh → the value it remembers for `net.FAMILY.conf.DEV.KEY` in this namespace.
pub fn remembered(family: Family, key: &str, dev: &str) -> io::Result<BTreeMap<String, u32>> {
    let namespace = namespace()?;
    let mut out = BTreeMap::new();
    let Ok(meshes) = std::fs::read_dir(key_dir(family, key)?) else {
        return Ok(out);
    };
    for mesh in meshes.flatten() {
        let path = under(&mesh.path().join(&namespace), dev)?;
        if let Some(value) = std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            out.insert(mesh.file_name().to_string_lossy().into_owned(), value);
        }
    }
    Ok(out)
}

/// Set `net.FAMILY.conf.DEV.KEY`, remembering the value it replaces the first
/// time (the host's own value: another mesh that changed it first knows it,
/// see [`Policy::setting_original`]).
pub fn set_remembering(
    mesh: &str,
    family: Family,
    dev: &str,
    key: &str,
    value: u32,
) -> io::Result<()> {
    let memory = memory(family, key, mesh, dev)?;
    if !memory.exists() {
        let original = Policy::new(mesh)
            .setting_original(read_of(family, dev, key), &remembered(family, key, dev)?);
        if let Some(before) = original {
            std::fs::create_dir_all(memory.parent().expect("a parent"))?;
            std::fs::write(&memory, format!("{before}\n"))?;
        }
    }
    write_of(family, dev, key, value)
}

/// Enable IPv4 forwarding on `dev`, remembering the previous setting the first time.
pub fn enable_remembering(mesh: &str, dev: &str) -> io::Result<()> {
    set_remembering(mesh, Family::Ipv4, dev, "forwarding", 1)
}

/// Put back every value of `key` this mesh changed in this namespace, unless
/// another mesh still has it changed ([`Policy::setting_release`]); returns the
/// devices restored. The memories go either way.
pub fn restore(mesh: &str, family: Family, key: &str) -> io::Result<Vec<String>> {
    let dir = memory_dir(family, key, mesh)?;
    let policy = Policy::new(mesh);
    let mut restored = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(restored);
    };
    for entry in entries.flatten() {
        let dev = entry.file_name().to_string_lossy().to_string();
        let before = std::fs::read_to_string(entry.path())?.trim().parse::<u32>();
        let release = policy.setting_release(&remembered(family, key, &dev)?);
        // A device that is gone (ovsmesh deleted it) has nothing to restore.
        match (before, read_of(family, &dev, key), release) {
            (Ok(before), Some(_), Removal::Remove) => {
                write_of(family, &dev, key, before)?;
                restored.push(dev);
            }
            (_, _, Removal::Keep { holders, .. }) => {
                tracing::info!(setting = %format!("net.{}.conf.{dev}.{key}", family.as_str()), ?holders,
                    "left as it is: other meshes on this host still need it");
            }
            _ => {}
        }
        std::fs::remove_file(entry.path())?;
    }
    // Empty now: the namespace's directory, then the mesh's if nothing else is in it.
    let _ = std::fs::remove_dir(&dir);
    if let Some(mesh_dir) = dir.parent() {
        let _ = std::fs::remove_dir(mesh_dir);
    }
    Ok(restored)
}

/// Forget what every mesh remembers about this network namespace, which is about
/// to be deleted: its settings go with it, and its cookie never comes back, so
/// the memories would only pile up under /run/ovsmesh.
pub fn forget_namespace() -> io::Result<()> {
    let namespace = namespace()?;
    for (family, key) in SETTINGS {
        let Ok(meshes) = std::fs::read_dir(key_dir(*family, key)?) else {
            continue;
        };
        for mesh in meshes.flatten() {
            let dir = under(&mesh.path(), &namespace)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            // The mesh's directory too once no namespace is left in it.
            let _ = std::fs::remove_dir(mesh.path());
        }
    }
    Ok(())
}

/// Put back every IPv4 forwarding setting this mesh changed; returns the devices restored.
pub fn restore_all(mesh: &str) -> io::Result<Vec<String>> {
    restore(mesh, Family::Ipv4, "forwarding")
}

/// Put back every setting of [`SETTINGS`] this mesh changed; returns
/// `net.FAMILY.conf.DEV.KEY` of each. IPv6 forwarding goes back before the
/// `accept_ra` values it needed (the reverse of apply's order), so no moment
/// has forwarding on with an RA route's `accept_ra` back at 1.
pub fn restore_every_key(mesh: &str) -> io::Result<Vec<String>> {
    let mut restored = Vec::new();
    for (family, key) in SETTINGS {
        for dev in restore(mesh, *family, key)? {
            restored.push(format!("net.{}.conf.{dev}.{key}", family.as_str()));
        }
    }
    Ok(restored)
}
