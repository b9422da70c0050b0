//! `vmrr coverage`: which functions and source lines ran in each VM within
//! a window, from the execution index (replaying only the slices the
//! window cuts).

use std::path::PathBuf;
use std::process::ExitCode;

use super::calls::{open_session, outln, progress, progress_done, report, vm_list, window};
use super::CliError;

/// Arguments of `vmrr coverage`.
#[derive(Debug, clap::Args)]
pub struct CoverageArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Only these VMs (names or numbers from 1, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub vm: Vec<String>,
    /// From this moment (12.5ms, VM:ICOUNT, #EVENT, a bookmark...).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this moment.
    #[arg(long)]
    pub to: Option<String>,
    /// Also list every source line that ran.
    #[arg(long)]
    pub lines: bool,
    /// Threads replaying slices in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// Prints the table.
pub fn run(args: &CoverageArgs) -> Result<ExitCode, CliError> {
    let mut session = open_session(&args.trace, args.jobs)?;
    let vms = vm_list(&session, &args.vm)?;
    let (from, to) = window(&mut session, args.from.as_deref(), args.to.as_deref())?;
    let cov = session
        .coverage(&vms, from, to, &progress("coverage"))
        .map_err(report);
    progress_done();
    let cov = cov?;
    outln!(
        "{} functions ran ({} slices from the execution index, {} replayed)",
        cov.rows.len(),
        cov.from_index,
        cov.replayed
    );
    outln!(
        "{:<12} {:<28} {:<16} {:>8} {:>10}",
        "vm",
        "function",
        "file",
        "instrs",
        "lines"
    );
    for r in &cov.rows {
        outln!(
            "{:<12} {:<28} {:<16} {:>8} {:>10}",
            session.vm_name(r.vm),
            r.function,
            r.file.as_deref().unwrap_or("-"),
            r.addrs_run,
            format!("{}/{}", r.lines_run, r.lines_total)
        );
        if args.lines {
            for (file, line) in &r.lines {
                outln!("{:<12}   {file}:{line}", "");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
