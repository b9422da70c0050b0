//! `vmrr index`: builds the execution index of a trace recorded without one
//! (by an older vmrr), replaying its checkpoint slices in parallel; and
//! keeps, for a trace recorded before frames were kept (schema 3), the
//! bytes of the frames its receipts carry.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::CliError;
use vmrr_debugger::trace::Trace;

/// Arguments of `vmrr index`.
#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Threads replaying slices in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// Builds what is missing and says how much that was.
pub fn run(args: &IndexArgs) -> Result<ExitCode, CliError> {
    let writable = vmrr_debugger::trace::is_writable(&args.trace);
    let trace = Trace::open(&args.trace, writable).map_err(|e| CliError::of(&e))?;
    if !writable {
        // Nothing can be added to a read-only trace; say whether anything
        // needs to be.
        let missing = trace.unindexed_slices().map_err(|e| CliError::of(&e))?.len();
        let sealed = trace.index().has_checksums().map_err(|e| CliError::of(&e))?;
        if missing == 0 && sealed {
            eprintln!(
                "vmrr: the execution index of {} is complete",
                args.trace.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        return Err(CliError::from(format!(
            "{} is read-only (a read-only mount or no write permission), and its index lacks {missing} \
             execution slices{}: copy it somewhere writable (cp -r {} COPY) and run `vmrr index COPY`",
            args.trace.display(),
            if sealed { "" } else { " and its checksums" },
            args.trace.display()
        )));
    }
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        if tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\rvmrr: indexing slice {done} of {total}");
            let _ = err.flush();
        }
    };
    let built = trace
        .build_exec_index(jobs, &AtomicBool::new(false), &progress)
        .map_err(|e| CliError::of(&e))?;
    if tty && built > 0 {
        eprintln!();
    }
    let packets = trace
        .index()
        .fill_packets_from_receipts()
        .map_err(|e| CliError::of(&e))?;
    if packets > 0 {
        eprintln!(
            "vmrr: kept the bytes of {packets} received frames of {} (frames lost on the way kept none when it was recorded)",
            args.trace.display()
        );
    }
    if built == 0 {
        eprintln!(
            "vmrr: the execution index of {} is complete",
            args.trace.display()
        );
    } else {
        eprintln!(
            "vmrr: indexed {built} slices of {} in {:.1} s on {jobs} threads",
            args.trace.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
