//! Records the git revision the binary is built from, for `ovsmesh --version`.
//!
//! In order: `$OVSMESH_GIT_REVISION` (a packager's override), `git rev-parse`
//! in a checkout, the `.cargo_vcs_info.json` cargo writes into a published
//! tarball, else "unknown revision" — a tarball without .git still builds.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit in cargo's `.cargo_vcs_info.json` (`"sha1": "..."`).
fn vcs_info(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after = &text[text.find("\"sha1\"")? + 6..];
    let start = after.find('"')? + 1;
    let sha: String = after[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (sha.len() >= 7).then(|| format!("git {}", &sha[..12.min(sha.len())]))
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    println!("cargo:rerun-if-env-changed=OVSMESH_GIT_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    let from_git = || {
        let head = git(&["-C", dir.to_str()?, "rev-parse", "--short=12", "HEAD"])?;
        // Rebuild when HEAD moves: the HEAD file and the branch it names.
        // (Only files that exist: a missing one would rerun this script on every build.)
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        watched.extend(git(&["-C", dir.to_str()?, "symbolic-ref", "-q", "HEAD"]));
        for path in watched {
            if let Some(file) = git(&["-C", dir.to_str()?, "rev-parse", "--git-path", &path]) {
                let file = dir.join(file);
                if file.exists() {
                    println!("cargo:rerun-if-changed={}", file.display());
                }
            }
        }
        Some(format!("git {head}"))
    };
    let revision = std::env::var("OVSMESH_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(from_git)
        .or_else(|| vcs_info(dir))
        .unwrap_or_else(|| "unknown revision".to_string());
    println!("cargo:rustc-env=OVSMESH_GIT_REVISION={revision}");
}
