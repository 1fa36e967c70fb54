//! The `opsbot` binary; see `opsbot --help`.

fn main() -> std::process::ExitCode {
    opsbot::cli::main()
}
