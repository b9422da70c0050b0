//! The command line: argument definitions and one module per subcommand.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad input or a VM that could not run (clap uses 2 for usage errors too).
pub const EXIT_ERROR: u8 = 2;
/// Exit status when the guest exited with a non-zero value.
pub const EXIT_GUEST_FAILED: u8 = 3;
/// Exit status when the guest stopped abnormally (halted forever, triple fault).
pub const EXIT_GUEST_STUCK: u8 = 4;

/// vmrr: a time-travel debugger for clusters of virtual machines.
#[derive(Debug, Parser)]
#[command(name = "vmrr", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a guest kernel under the exact engine and print its console.
    ///
    /// Exit status: 0 when the guest exits with value 0 or the step limit is
    /// reached, 3 when it exits with another value, 4 when it halts forever or
    /// triple-faults, 2 on bad input or an error.
    Run(RunArgs),
}

/// Arguments of `vmrr run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// ELF64 kernel with a PVH entry note.
    pub image: PathBuf,
    /// Guest memory, e.g. 64M or 1G.
    #[arg(long, default_value = "64M", value_parser = parse_mem)]
    pub mem: u64,
    /// Stop after this many steps (instructions).
    #[arg(long, default_value_t = 100_000_000)]
    pub max_steps: u64,
    /// Kernel command line passed in hvm_start_info.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Virtual CPU rate in instructions per microsecond.
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// Seed for rdrand/rdseed answers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the final state hash in the summary.
    #[arg(long)]
    pub hash: bool,
}

fn parse_mem(text: &str) -> Result<u64, String> {
    vmrr_backend::config::parse_mem_size(text)
}

/// Runs the chosen subcommand; `Err` carries a message for the user.
pub fn dispatch(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Run(args) => run::run(&args),
    }
}
