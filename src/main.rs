//! `vmrr`: record, replay and debug clusters of KVM virtual machines.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            // Messages quote names and file contents: control characters in
            // them are shown (·), never sent to the terminal raw.
            let text: Vec<String> = e.text.lines().map(vmrr_debugger::describe::printable).collect();
            eprintln!("vmrr: error: {}", text.join("\n"));
            ExitCode::from(e.exit)
        }
    }
}
