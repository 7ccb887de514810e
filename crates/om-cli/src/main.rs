//! The `om` binary; see the `om_cli` library for the commands.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(om_cli::main().code())
}
