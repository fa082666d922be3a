//! The `daftari` binary: parses arguments and hands over to one subcommand.
//!
//! Exit codes: 0 success (for `verify`: intact), 1 integrity failure (`verify`), 2 could not
//! run (bad arguments, unreadable data directory, any other error).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("daftari: error: {err:#}");
            ExitCode::from(daftari::verify::EXIT_CANNOT_RUN)
        }
    }
}
