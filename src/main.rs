//! `vmrr`: record, replay and debug clusters of KVM virtual machines.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmrr: error: {}", e.text);
            ExitCode::from(e.exit)
        }
    }
}
