//! The `aiwarden` command. Everything is in [`aiwarden::cli`]; this file only runs it.

fn main() -> std::process::ExitCode {
    aiwarden::cli::main()
}
