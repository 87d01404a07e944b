//! A topology file, possibly behind symlinks.
//!
//! Watching the file's directory is not enough when the file is a symlink: the
//! target changes where the link points (git-sync publishes a checkout with an
//! atomic symlink flip; Kubernetes swaps a `..data` link in the directory). So
//! the watch covers every *hop* of the resolution — each symlink on the way,
//! named by its directory and entry — and the final target, and is recomputed
//! after every event (a flip moves the target into a new directory).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before giving up (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// One directory entry the resolution of a path goes through: a symlink on the
/// way, or the final file. A change of any of them may change the text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hop {
    pub dir: PathBuf,
    pub name: OsString,
}

/// The entries to watch for `path`: each symlink met while resolving it, and the
/// file it ends at (which need not exist yet). Relative paths start at the
/// current directory.
pub fn hops(path: &Path) -> Vec<Hop> {
    let mut hops = Vec::new();
    let start = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // Components still to walk, in reverse (so a link's target is pushed in front).
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&start, &mut pending);
    let mut here = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            here.pop();
            continue;
        }
        let next = here.join(&part);
        match std::fs::read_link(&next) {
            Ok(target) if links < MAX_LINKS => {
                links += 1;
                hops.push(Hop {
                    dir: here.clone(),
                    name: part,
                });
                if target.is_absolute() {
                    here = PathBuf::from("/");
                }
                push_components(&target, &mut pending);
            }
            _ => {
                if pending.is_empty() {
                    hops.push(Hop {
                        dir: here.clone(),
                        name: part,
                    });
                }
                here = next;
            }
        }
    }
    hops.sort();
    hops.dedup();
    hops
}

fn push_components(path: &Path, pending: &mut Vec<OsString>) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn hop(dir: &Path, name: &str) -> Hop {
        Hop {
            dir: dir.to_path_buf(),
            name: name.into(),
        }
    }

    #[test]
    fn a_plain_file_is_one_hop_and_a_data_swap_layout_is_every_link_and_the_target() {
        let base = std::env::temp_dir().join(format!("ovsmesh-hops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let version = base.join("..2026_01_01");
        std::fs::create_dir_all(&version).unwrap();
        std::fs::write(version.join("topology.toml"), "x").unwrap();
        assert_eq!(
            hops(&version.join("topology.toml")),
            vec![hop(&version, "topology.toml")]
        );
        // The Kubernetes layout: topology.toml -> ..data/topology.toml, ..data -> ..2026_01_01.
        symlink("..2026_01_01", base.join("..data")).unwrap();
        symlink("..data/topology.toml", base.join("topology.toml")).unwrap();
        let found = hops(&base.join("topology.toml"));
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(
            found,
            vec![
                hop(&base, "..data"),
                hop(&base, "topology.toml"),
                hop(&version, "topology.toml"),
            ]
        );
    }

    #[test]
    fn an_absolute_link_and_a_missing_file_resolve_too() {
        let base = std::env::temp_dir().join(format!("ovsmesh-hops-abs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("a")).unwrap();
        symlink(base.join("a"), base.join("current")).unwrap();
        let found = hops(&base.join("current/../current/missing.toml"));
        let _ = std::fs::remove_dir_all(&base);
        assert!(found.contains(&hop(&base, "current")));
        assert!(found.contains(&hop(&base.join("a"), "missing.toml")));
    }
}
