//! The command line documents itself: every argument has help text, the
//! environment variables are declared, durations parse as durations, and the
//! completions, man pages and `--version` come from the same definitions.

use std::process::{Command, Output};

fn ovsmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovsmesh"))
        .args(args)
        .env_remove("OVSMESH_HOST")
        .env_remove("OVSMESH_OVSDB")
        .output()
        .unwrap()
}

/// Every (sub)command with its path, e.g. `ovsmesh lab up`.
fn walk(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    for sub in command.get_subcommands() {
        walk(sub, format!("{path} {}", sub.get_name()), out);
    }
    out.push((path, command.clone()));
}

fn commands() -> Vec<(String, clap::Command)> {
    let mut command = ovsmesh::cli::command();
    command.build();
    let mut all = Vec::new();
    walk(&command, "ovsmesh".into(), &mut all);
    all
}

#[test]
fn every_argument_and_command_has_help_text() {
    let mut missing = Vec::new();
    for (path, command) in commands() {
        if command.get_about().is_none() && path != "ovsmesh help" {
            missing.push(path.clone());
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path}: {id}"));
            }
        }
    }
    assert!(missing.is_empty(), "without help text: {missing:?}");
}

#[test]
fn environment_variables_are_declared_where_they_apply() {
    let mut seen = Vec::new();
    for (path, command) in commands() {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                seen.push(format!(
                    "{path} --{} ${}",
                    arg.get_id(),
                    env.to_string_lossy()
                ));
            }
        }
    }
    for expected in [
        "ovsmesh plan --host $OVSMESH_HOST",
        "ovsmesh plan --ovsdb $OVSMESH_OVSDB",
        "ovsmesh apply --ovsdb $OVSMESH_OVSDB",
        "ovsmesh daemon --ovsdb $OVSMESH_OVSDB",
        "ovsmesh status --ovsdb $OVSMESH_OVSDB",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
    let help = String::from_utf8(ovsmesh(&["apply", "--help"]).stdout).unwrap();
    assert!(help.contains("[env: OVSMESH_OVSDB=]"), "{help}");
}

#[test]
fn every_duration_flag_takes_a_duration_and_the_old_wait_seconds_still_works() {
    let command = ovsmesh::cli::command();
    let parse = |args: &[&str]| command.clone().try_get_matches_from(args);
    for ok in [
        &[
            "ovsmesh",
            "apply",
            "t.toml",
            "--timeout",
            "1m 30s",
            "--wait",
            "500ms",
        ][..],
        &["ovsmesh", "down", "t.toml", "--wait", "2m"],
        &["ovsmesh", "apply", "t.toml", "--wait-seconds", "10"],
        &[
            "ovsmesh",
            "daemon",
            "t.toml",
            "--resync",
            "5m",
            "--timeout",
            "10",
        ],
        &["ovsmesh", "plan", "t.toml", "--timeout", "250ms"],
    ] {
        assert!(parse(ok).is_ok(), "{ok:?}: {:?}", parse(ok).err());
    }
    for bad in [
        &["ovsmesh", "apply", "t.toml", "--wait", "soon"][..],
        &["ovsmesh", "daemon", "t.toml", "--resync", "5 fortnights"],
        &["ovsmesh", "plan", "t.toml", "--timeout", "-1s"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
    // The old spelling is accepted but not advertised.
    let help = String::from_utf8(ovsmesh(&["apply", "--help"]).stdout).unwrap();
    assert!(
        help.contains("--wait <WAIT>") && !help.contains("wait-seconds"),
        "{help}"
    );
    let out = ovsmesh(&["apply", "t.toml", "--wait", "soon"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a duration"));
}

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let out = ovsmesh(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let expected_start = format!("ovsmesh {} (", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected_start), "{text}");
    let git = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short=12",
            "HEAD",
        ])
        .output();
    match git {
        Ok(git) if git.status.success() => {
            let head = String::from_utf8(git.stdout).unwrap();
            assert_eq!(text.trim(), format!("{expected_start}git {})", head.trim()));
        }
        // Built from a tarball: still a version line.
        _ => assert!(text.trim().ends_with(')'), "{text}"),
    }
}

#[test]
fn completions_cover_every_command_in_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "_ovsmesh()"),
        ("zsh", "#compdef ovsmesh"),
        ("fish", "complete -c ovsmesh"),
    ] {
        let out = ovsmesh(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {marker}");
        for sub in ["validate", "apply", "daemon", "graph", "completions"] {
            assert!(script.contains(sub), "{shell} completes {sub}");
        }
        assert!(
            script.contains("mermaid"),
            "{shell} completes --format's values"
        );
    }
    assert_eq!(ovsmesh(&["completions", "tcsh"]).status.code(), Some(3));
}

#[test]
fn man_pages_for_the_command_and_each_subcommand() {
    let out = ovsmesh(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH ovsmesh 1"),
        "{page}"
    );
    assert!(page.contains("OVSMESH_OVSDB") && page.contains("Exit status"));
    let dir = std::env::temp_dir().join(format!("ovsmesh-man-{}", std::process::id()));
    let out = ovsmesh(&["man", "--dir", dir.to_str().unwrap()]);
    let pages: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let apply = std::fs::read_to_string(dir.join("ovsmesh-apply.1")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        apply.contains("\\fBOVSMESH_OVSDB\\fR environment variable"),
        "{apply}"
    );
    for expected in [
        "ovsmesh.1",
        "ovsmesh-apply.1",
        "ovsmesh-daemon.1",
        "ovsmesh-lab-up.1",
        "ovsmesh-graph.1",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} in {pages:?}"
        );
    }
}
