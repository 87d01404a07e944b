//! Whether systemd-networkd may remove ovsmesh's routes.
//!
//! networkd's `ManageForeignRoutes=` (in `networkd.conf`, default yes) makes it
//! remove routes it did not configure when it (re)configures links, and
//! ovsmesh's routes (protocol 79) are foreign to it. The fix is a drop-in,
//! `/etc/systemd/networkd.conf.d/ovsmesh.conf` with `[Network]
//! ManageForeignRoutes=no`. This module answers the question cheaply for
//! `status`: is networkd running (a process named `systemd-network`), and what
//! does its configuration say (the main file, then drop-ins in file-name order,
//! the last assignment winning, as systemd reads them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where systemd looks, in precedence order (a file in an earlier directory
/// hides a same-named one in a later directory).
const DIRS: &[&str] = &["etc", "run", "usr/local/lib", "usr/lib"];

/// Whether networkd runs and keeps its default of removing foreign routes.
/// `root` is `/` on a host (another root in tests); `proc` is `/proc`.
pub fn removes_foreign_routes(root: &Path, proc: &Path) -> bool {
    running(proc) && manage_foreign_routes(root)
}

/// A process named `systemd-network` (the kernel's 15-byte comm of
/// systemd-networkd) is running.
pub fn running(proc: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry.file_name().to_string_lossy().parse::<u32>().is_ok()
            && std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "systemd-network")
    })
}

/// The effective `[Network] ManageForeignRoutes=` under `root` (default yes).
pub fn manage_foreign_routes(root: &Path) -> bool {
    let mut value = true;
    let main = DIRS
        .iter()
        .map(|dir| root.join(dir).join("systemd/networkd.conf"))
        .find(|path| path.is_file());
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("systemd/networkd.conf.d")) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".conf") {
                dropins.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    for file in main.into_iter().chain(dropins.into_values()) {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(setting) = setting_in(&text) {
                value = setting;
            }
        }
    }
    value
}

/// The last `ManageForeignRoutes=` of the `[Network]` section in one file.
fn setting_in(text: &str) -> Option<bool> {
    let mut section = String::new();
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if section == "Network" && key.trim() == "ManageForeignRoutes" {
            found = boolean(value.trim()).or(found);
        }
    }
    found
}

/// systemd's booleans.
fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Root(PathBuf);

    impl Root {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("ovsmesh-networkd-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn default_is_yes_and_the_main_file_can_say_no() {
        let root = Root::new("main");
        assert!(manage_foreign_routes(&root.0));
        root.file(
            "etc/systemd/networkd.conf",
            "[Network]\n#ManageForeignRoutes=yes\nManageForeignRoutes = no\n",
        );
        assert!(!manage_foreign_routes(&root.0));
    }

    #[test]
    fn dropins_override_the_main_file_in_name_order_and_etc_hides_usr() {
        let root = Root::new("dropins");
        root.file(
            "etc/systemd/networkd.conf",
            "[Network]\nManageForeignRoutes=yes\n",
        );
        root.file(
            "usr/lib/systemd/networkd.conf.d/50-vendor.conf",
            "[Network]\nManageForeignRoutes=yes\n",
        );
        root.file(
            "etc/systemd/networkd.conf.d/ovsmesh.conf",
            "[Network]\nManageForeignRoutes=no\n",
        );
        assert!(!manage_foreign_routes(&root.0));
        // A same-named file in /etc hides the vendor's.
        root.file(
            "etc/systemd/networkd.conf.d/50-vendor.conf",
            "[DHCPv4]\nManageForeignRoutes=yes\n",
        );
        assert!(!manage_foreign_routes(&root.0));
        root.file(
            "run/systemd/networkd.conf.d/zz-late.conf",
            "[Network]\nManageForeignRoutes=on\n",
        );
        assert!(manage_foreign_routes(&root.0));
    }

    #[test]
    fn running_means_a_systemd_network_process() {
        let root = Root::new("proc");
        root.file("1/comm", "systemd\n");
        root.file("self/comm", "systemd-network\n");
        assert!(!running(&root.0), "only numeric entries are processes");
        assert!(!removes_foreign_routes(Path::new("/nonexistent"), &root.0));
        root.file("812/comm", "systemd-network\n");
        assert!(running(&root.0));
        assert!(removes_foreign_routes(Path::new("/nonexistent"), &root.0));
    }
}
