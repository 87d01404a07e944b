//! `ovsmesh completions SHELL` and `ovsmesh man`: generated from the clap
//! definitions in `mod.rs`, so they never disagree with `--help`.
//!
//! They are commands rather than build-time files so that there is one
//! definition of the command line (a build script would have to compile it a
//! second time) and anyone with the binary can make them; the Debian package
//! runs them at packaging time (`scripts/package.sh`).

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, EXIT_FAILURE, EXIT_OK};

/// The command line as clap sees it (completions, man pages, tests).
pub fn command() -> clap::Command {
    Cli::command()
}

pub(super) fn completions(shell: clap_complete::Shell) -> i32 {
    let mut command = command();
    clap_complete::generate(shell, &mut command, "ovsmesh", &mut std::io::stdout());
    EXIT_OK
}

pub(super) fn man(dir: Option<&Path>) -> i32 {
    let result = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command(), dir))
            .map_err(|e| format!("write man pages to {}: {e}", dir.display())),
        None => clap_mangen::Man::new(command())
            .render(&mut std::io::stdout())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(error) => {
            eprintln!("ovsmesh: {error}");
            EXIT_FAILURE
        }
    }
}
