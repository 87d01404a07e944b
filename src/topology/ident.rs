//! The names users choose, and the one way such a name becomes a path.
//!
//! Mesh, host, network and container keys, `netns` and `docker` values and the
//! lab's `--prefix` end up where other rules apply: as path components
//! (`/run/ovsmesh/forwarding/MESH`, `/run/ovsmesh/lab/PREFIX/hosts/HOST`,
//! `/run/netns/NAME`), in the Docker API URL (`/containers/NAME/json`), in the
//! OVSDB lock id `ovsmesh_MESH` and in namespace and container names
//! `PREFIX-NAME`. A name that contains `/` or is `..` would leave its directory
//! or call another Docker endpoint; one with a leading `-` reads as an option to
//! the tools an operator uses next (`ip netns exec -x`, `docker exec -x`).
//!
//! So every such name follows one rule (ASCII letters, digits, `_`, `.`, `-`,
//! starting with a letter or digit, at most 64 bytes; Docker's own rule for
//! container names, which also admits hex ids), with two narrower ones: a mesh
//! name (letters, digits and `-`, at most 32) and a lab prefix (letters and
//! digits, at most 12), for the reasons given at [`Kind`]. Validation reports
//! a broken rule with its location; [`under`] is how every name is then put
//! under a directory, refusing anything that is not one plain component, so
//! even a name that bypassed validation cannot leave its directory.

use std::path::{Path, PathBuf};

/// What a name names; each kind has its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The OVSDB lock id is `ovsmesh_` + the name with `-` mapped to `_` (lock ids
    /// are letters, digits and `_`). With only `-` as punctuation that mapping is
    /// one-to-one, so two meshes never share a lock.
    Mesh,
    /// A host key; by default a machine's hostname, hence 64 bytes.
    Host,
    Network,
    /// A container key; also its default Docker name.
    Container,
    /// A `netns` value: `/run/netns/NAME`.
    Netns,
    /// A `docker` value: a Docker container name or (hex) id.
    Docker,
    /// The lab's `--prefix`, followed by `-` in every namespace and container name
    /// of the lab: without `-` in prefixes, lab `a` never claims lab `a-b`'s names.
    LabPrefix,
}

impl Kind {
    /// What to call it in a message, its longest length, the punctuation it allows.
    fn rule(self) -> (&'static str, usize, &'static str) {
        match self {
            Kind::Mesh => ("mesh name", 32, "-"),
            Kind::Host => ("host name", 64, "_.-"),
            Kind::Network => ("network name", 64, "_.-"),
            Kind::Container => ("container name", 64, "_.-"),
            Kind::Netns => ("network namespace name", 64, "_.-"),
            Kind::Docker => ("Docker container name or id", 64, "_.-"),
            Kind::LabPrefix => ("lab prefix", 12, ""),
        }
    }
}

/// A name that breaks its rule; the message says which part and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadName(String);

/// Why `name` cannot be a name of this kind, or `None` if it can.
pub fn problem(kind: Kind, name: &str) -> Option<String> {
    check(kind, name).err().map(|BadName(message)| message)
}

/// `name` as a name of this kind.
pub fn check(kind: Kind, name: &str) -> Result<(), BadName> {
    let (what, max, punctuation) = kind.rule();
    let allowed = |c: char| c.is_ascii_alphanumeric() || punctuation.contains(c);
    let reason = if name.is_empty() {
        "it is empty".to_string()
    } else if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        format!("it contains {c:?}")
    } else if let Some(c) = name.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        format!("it starts with {c:?}")
    } else if name.len() > max {
        format!("it is {} bytes long", name.len())
    } else {
        return Ok(());
    };
    let characters = match punctuation {
        "" => "letters or digits".to_string(),
        "-" => "letters, digits or '-'".to_string(),
        _ => "letters, digits, '_', '.' or '-'".to_string(),
    };
    let hint = match name.strip_prefix('/') {
        Some(bare) if kind == Kind::Docker && check(kind, bare).is_ok() => {
            format!(" (Docker shows names with a leading '/'; write {bare:?})")
        }
        _ => String::new(),
    };
    Err(BadName(format!(
        "{name:?} cannot be a {what}: {reason}; use 1 to {max} {characters}, starting with a letter or digit{hint}"
    )))
}

/// The lab's `--prefix`, checked (a clap value parser).
pub fn lab_prefix(text: &str) -> Result<String, BadName> {
    check(Kind::LabPrefix, text).map(|()| text.to_string())
}

/// A name that is not one plain path component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a plain file name: refusing to use it under {}", base.display())]
pub struct NotAComponent {
    pub base: PathBuf,
    pub name: String,
}

impl From<NotAComponent> for std::io::Error {
    fn from(error: NotAComponent) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
    }
}

/// `base/name`, when `name` is one plain path component: not empty, not `.` or
/// `..`, no `/`, no NUL. The result is always directly inside `base`.
pub fn under(base: &Path, name: &str) -> Result<PathBuf, NotAComponent> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
    if plain {
        Ok(base.join(name))
    } else {
        Err(NotAComponent {
            base: base.to_path_buf(),
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_joins_one_plain_component() {
        let base = Path::new("/run/ovsmesh/forwarding");
        assert_eq!(
            under(base, "lab").unwrap(),
            Path::new("/run/ovsmesh/forwarding/lab")
        );
        assert_eq!(
            under(base, "a..b").unwrap(),
            Path::new("/run/ovsmesh/forwarding/a..b")
        );
        for bad in [
            "",
            ".",
            "..",
            "/",
            "/etc",
            "a/b",
            "../x",
            "x/..",
            "../../tmp/x",
            "a\0b",
        ] {
            let error = under(base, bad).unwrap_err();
            assert_eq!(error.name, bad);
            assert!(
                error.to_string().contains("/run/ovsmesh/forwarding"),
                "{error}"
            );
        }
    }

    #[test]
    fn whatever_under_accepts_stays_directly_inside_base() {
        let base = Path::new("/base");
        for name in ["x", "-x", "x y", ".hidden", "...", "a:b", "ü"] {
            let path = under(base, name).unwrap();
            assert_eq!(path.parent(), Some(base), "{name:?}");
            assert_eq!(path.components().count(), 3, "{name:?}");
        }
    }

    #[test]
    fn names_follow_dockers_rule() {
        for kind in [
            Kind::Host,
            Kind::Network,
            Kind::Container,
            Kind::Netns,
            Kind::Docker,
        ] {
            for good in [
                "node1",
                "a",
                "web_1",
                "node1.example.com",
                "db-2",
                "9f86d081",
            ] {
                assert_eq!(problem(kind, good), None, "{kind:?} {good}");
            }
            for bad in ["", "..", ".", "-x", "_x", ".x", "a/b", "a b", "ü", "a:b"] {
                assert!(problem(kind, bad).is_some(), "{kind:?} {bad:?}");
            }
            assert_eq!(problem(kind, &"a".repeat(64)), None);
            assert!(problem(kind, &"a".repeat(65)).is_some());
        }
        let id = "4c01db0b339c0d1b9a85a0e9c6c59cb6e34f3b7c2c7f7e1f6e0d6a0b1c2d3e4f";
        assert_eq!(problem(Kind::Docker, id), None);
    }

    #[test]
    fn messages_say_what_is_wrong_and_what_is_allowed() {
        assert_eq!(
            problem(Kind::Host, "../../tmp/x").unwrap(),
            "\"../../tmp/x\" cannot be a host name: it contains '/'; use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        );
        assert!(problem(Kind::Netns, "-x")
            .unwrap()
            .contains("it starts with '-'"));
        assert!(problem(Kind::Network, "").unwrap().contains("it is empty"));
        assert!(problem(Kind::Container, &"c".repeat(70))
            .unwrap()
            .contains("it is 70 bytes long"));
        assert!(problem(Kind::Docker, "/web")
            .unwrap()
            .ends_with("(Docker shows names with a leading '/'; write \"web\")"));
    }

    #[test]
    fn mesh_names_map_one_to_one_onto_lock_ids() {
        assert_eq!(problem(Kind::Mesh, "prod-eu1"), None);
        for bad in ["..", "a_b", "a.b", "-a", ""] {
            assert!(problem(Kind::Mesh, bad).is_some(), "{bad:?}");
        }
        assert_eq!(problem(Kind::Mesh, &"m".repeat(32)), None);
        assert!(problem(Kind::Mesh, &"m".repeat(33)).is_some());
    }

    #[test]
    fn lab_prefixes_are_letters_and_digits() {
        assert_eq!(lab_prefix("om").unwrap(), "om");
        assert_eq!(lab_prefix("e1234x5").unwrap(), "e1234x5");
        for bad in ["", "-", "a-b", "../x", "..", "a/b", "abcdefghijklm"] {
            assert!(lab_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
