//! The documentation stays usable: README.md is a short front page that keeps
//! the two set-up commands CI and newcomers rely on, and every relative link in
//! README.md, ARCHITECTURE.md and docs/*.md names a file that exists (and, with
//! a `#fragment`, a heading of that file). No root, no network: it reads files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md, ARCHITECTURE.md and every Markdown file in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines outside fenced and indented code blocks, numbered from 1.
fn outside_code(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && !line.starts_with("    ") {
            out.push((n + 1, line));
        }
    }
    out
}

/// The prose of each line: without inline code spans (a `[x](y)` inside code
/// is an example, not a link).
fn prose(text: &str) -> Vec<(usize, String)> {
    outside_code(text)
        .into_iter()
        .map(|(n, line)| {
            let kept: String = line.split('`').step_by(2).collect();
            (n, kept)
        })
        .collect()
}

/// Link targets `[text](target)` and `![alt](target)` of one line.
fn targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                out.push(after[..end].trim().to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    outside_code(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            let title = &line[hashes..];
            (hashes > 0 && title.starts_with(' ')).then(|| anchor(&title.replace('`', "")))
        })
        .collect()
}

/// Every broken relative link of the pages, as `FILE:LINE: target (why)`.
fn broken_links() -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for (line, prose) in prose(&text) {
            for target in targets(&prose) {
                if target.is_empty()
                    || target.contains("://")
                    || target.starts_with("mailto:")
                    || target.starts_with("man:")
                {
                    continue;
                }
                let (file, fragment) = match target.split_once('#') {
                    Some((file, fragment)) => (file, Some(fragment)),
                    None => (target.as_str(), None),
                };
                let resolved = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                if !resolved.exists() {
                    broken.push(format!("{name}:{line}: {target} (no such file)"));
                    continue;
                }
                if let Some(fragment) = fragment {
                    let is_markdown = resolved.extension().is_some_and(|e| e == "md");
                    if is_markdown && !anchors(&read(&resolved)).contains(fragment) {
                        broken.push(format!("{name}:{line}: {target} (no such heading)"));
                    }
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_resolves() {
    let broken = broken_links();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_links_and_headings() {
    // The checker itself: a link in prose is found, one in code is not, and
    // anchors follow GitHub's rule.
    assert_eq!(
        targets("see [a](docs/a.md#x-y) and ![b](b.svg)"),
        ["docs/a.md#x-y", "b.svg"]
    );
    assert!(prose("```\n[a](nowhere.md)\n```\n`[b](nowhere.md)`")
        .iter()
        .all(|(_, l)| targets(l).is_empty()));
    assert_eq!(
        anchor("plan, apply, down: what a host gets"),
        "plan-apply-down-what-a-host-gets"
    );
    assert!(
        anchors("# `ovsmesh graph`: a picture\n```\n# not a heading\n```")
            .into_iter()
            .eq(["ovsmesh-graph-a-picture".to_string()])
    );
    // And it has something to check: the pages link to each other.
    let links: usize = pages()
        .iter()
        .map(|p| {
            prose(&read(p))
                .iter()
                .map(|(_, l)| targets(l).len())
                .sum::<usize>()
        })
        .sum();
    assert!(links > 20, "only {links} links found");
}

#[test]
fn readme_is_short_and_keeps_the_two_set_up_commands() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(lines <= 220, "README.md has {lines} lines (at most 220)");
    for command in ["`./scripts/demo.sh`", "`./scripts/test.sh`"] {
        assert!(readme.contains(command), "README.md lacks {command}");
        let script = root().join(command.trim_matches('`'));
        assert!(script.exists(), "{} does not exist", script.display());
    }
    assert!(
        readme.contains("fresh Debian machine, as root"),
        "README.md no longer says where the set-up commands run"
    );
}

#[test]
fn readme_quick_start_shows_what_ovsmesh_prints() {
    // The first topology of README.md, validated and planned offline: what the
    // README shows after `$ ovsmesh validate` and `$ ovsmesh plan` is what the
    // binary prints for it today.
    let readme = read(&root().join("README.md"));
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md has a toml example");
    let dir = std::env::temp_dir().join(format!("ovsmesh-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("first.toml");
    std::fs::write(&file, example).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
            .args(args)
            .arg("first.toml")
            .current_dir(&dir)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let validate = run(&["validate"]);
    let plan = run(&["plan", "--host", "alpha", "--offline"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(validate.0, Some(0), "{}", validate.1);
    assert_eq!(plan.0, Some(2), "{}", plan.1);
    let shown: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect();
    for line in validate.1.lines().chain(plan.1.lines()) {
        assert!(
            shown.contains(&line),
            "README.md's quick start does not show this line ovsmesh prints:\n{line}"
        );
    }
}
