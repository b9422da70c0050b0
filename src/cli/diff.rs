//! `vmrr diff A B`: where two runs of a cluster part, and how their
//! outcomes differ.

use super::CliError;
use std::path::PathBuf;
use std::process::ExitCode;

use vmrr_debugger::fork::diff::diff;

/// Arguments of `vmrr diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// A trace (usually the original).
    pub a: PathBuf,
    /// Another trace of the same cluster (usually a fork of A).
    pub b: PathBuf,
    /// Print the whole comparison as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Exit status when the runs differ (as diff(1) and cmp(1) say it).
pub const EXIT_DIFFERENT: u8 = 1;

/// Compares and prints.
pub fn run(args: &DiffArgs) -> Result<ExitCode, CliError> {
    let report = diff(&args.a, &args.b).map_err(|e| CliError::of(&e))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", report.summary());
    }
    Ok(if report.identical() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DIFFERENT)
    })
}
