//! Property tests of the topology loader, on stable Rust.
//!
//! The loader reads files written by someone else, as root: whatever the text,
//! it must never panic, and every problem it reports must be located — a file,
//! a line and column inside the file, and a key path (only TOML syntax errors
//! and a missing `[mesh]` sit at the top level, and those carry the parser's
//! offset). Inputs come from a small deterministic PRNG (`fuzz_inputs/`): mutations of every
//! valid file in `topology/` and `tests/fixtures/` (lines deleted, duplicated,
//! swapped, values replaced by other types or edge values, keys renamed,
//! truncation, random bytes) and random TOML built from the real keys.
//! `OVSMESH_FUZZ_CASES` and `OVSMESH_FUZZ_SEED` run more or other cases.
//! Findings keep their own regression test: a dotted key past the parser's
//! nesting limit was reported at 1:1 (`tests/invalid/dotted-key-too-deep.toml`).

mod fuzz_inputs;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use fuzz_inputs::{mutate, random_toml, Rng};
use ovsmesh::topology::{self, source::At};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every valid topology the repository holds.
fn seeds() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("topology"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    for entry in std::fs::read_dir(root.join("tests/fixtures")).unwrap() {
        let file = entry.unwrap().path().join("topology.toml");
        if file.exists() {
            files.push(file);
        }
    }
    files.sort();
    let seeds: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect();
    assert!(
        seeds.len() >= 8,
        "expected the seed topologies and fixtures"
    );
    for (file, text) in &seeds {
        if let Err(invalid) = topology::parse(file, text) {
            panic!("seed {} is invalid:\n{invalid}", file.display());
        }
    }
    seeds
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Panics caught inside the loader are findings, reported with their input:
/// keep the default hook from printing them, and only them.
fn quiet_panics_inside_the_loader() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Why the loader's answer for `text` breaks the property, if it does.
fn violation(text: &str) -> Option<String> {
    let file = Path::new("fuzz.toml");
    QUIET.with(|quiet| quiet.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(|| topology::parse(file, text)));
    QUIET.with(|quiet| quiet.set(false));
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Some(format!("panic: {message}"));
        }
    };
    let Err(invalid) = result else {
        return None;
    };
    if invalid.problems.is_empty() {
        return Some("rejected without a problem".into());
    }
    let lines = text.split('\n').count();
    for problem in &invalid.problems {
        let rendered = invalid.file.render(problem);
        let Some(rest) = rendered.strip_prefix("fuzz.toml:") else {
            return Some(format!("no file: {rendered}"));
        };
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let column: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        if line == 0 || line > lines || column == 0 {
            return Some(format!("not a place in the file: {rendered}"));
        }
        if problem.path.is_root() {
            let top_level = problem.message.starts_with("TOML syntax: ")
                || problem.message.starts_with("missing required table [mesh]");
            if !top_level {
                return Some(format!("no key path: {rendered}"));
            }
            if problem.message.starts_with("TOML syntax: ") && problem.offset.is_none() {
                return Some(format!("syntax error without an offset: {rendered}"));
            }
            continue;
        }
        // The key itself or one of its tables must be in the file (else the
        // location falls back to the top of the file), or the parser gave an offset.
        let mut probe = Some(problem.path.clone());
        let mut found = problem.offset.is_some();
        while let Some(path) = probe.filter(|p| !p.is_root() && !found) {
            found = invalid.file.has(&path);
            probe = path.parent();
        }
        if !found {
            return Some(format!("located nowhere: {rendered}"));
        }
        if problem.at == At::Value && problem.message.is_empty() {
            return Some(format!("empty message: {rendered}"));
        }
    }
    None
}

const DEFAULT_SEED: u64 = 0x0f53_e5e5;

fn run(name: &str, cases: u64, mut input: impl FnMut(&mut Rng) -> String) {
    let seed = env_number("OVSMESH_FUZZ_SEED", DEFAULT_SEED);
    let mut rng = Rng(seed ^ name.len() as u64);
    quiet_panics_inside_the_loader();
    let mut failures = Vec::new();
    for case in 0..cases {
        let text = input(&mut rng);
        if let Some(why) = violation(&text) {
            failures.push(format!(
                "case {case}: {why}\n--- input ---\n{text}\n-------------"
            ));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name} (seed {seed:#x}):\n{}",
        failures.join("\n")
    );
}

#[test]
fn mutated_valid_files_never_panic_and_every_problem_is_located() {
    let seeds = seeds();
    let cases = env_number("OVSMESH_FUZZ_CASES", 5000);
    run("mutations", cases, |rng| {
        let (_, text) = rng.pick(&seeds);
        let (_, other) = rng.pick(&seeds);
        let mut text = mutate(rng, text, other);
        for _ in 0..rng.below(3) {
            text = mutate(rng, &text, other);
        }
        text
    });
}

#[test]
fn random_toml_never_panics_and_every_problem_is_located() {
    let cases = env_number("OVSMESH_FUZZ_CASES", 5000);
    run("random TOML", cases, random_toml);
}

#[test]
fn random_bytes_never_panic() {
    let cases = env_number("OVSMESH_FUZZ_CASES", 5000) / 3;
    run("random bytes", cases, |rng| {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.chance(70) {
                    *rng.pick(b"[]{}=\"'.,#\n abcdeghmnostx0123456789-_")
                } else {
                    rng.next() as u8
                }
            })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    });
}
