//! The `ovsmesh` command.

fn main() {
    std::process::exit(ovsmesh::cli::main());
}
