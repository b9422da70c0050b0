//! `vmrr replay`: re-execute a trace's VMs from their checkpoints and inputs,
//! and with `--verify` compare the state at every checkpoint.

use super::CliError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use vmrr_debugger::trace::Trace;

/// Arguments of `vmrr replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Only this VM (by name).
    #[arg(long)]
    pub vm: Option<String>,
    /// Threads replaying checkpoint slices in parallel, 1 to 1024 (default:
    /// one per core).
    #[arg(long, value_parser = super::parse_jobs)]
    pub jobs: Option<usize>,
    /// Compare the state hash at every checkpoint and report the first divergence.
    #[arg(long)]
    pub verify: bool,
}

/// Exit status when the replay diverged from the recording.
pub const EXIT_DIVERGED: u8 = 5;

/// Replays and reports.
pub fn run(args: &ReplayArgs) -> Result<ExitCode, CliError> {
    let trace = Trace::open(&args.trace, false).map_err(|e| CliError::of(&e))?;
    if !trace.is_complete() {
        eprintln!("vmrr: note: this recording did not finish; replaying up to its last checkpoint");
    }
    let vms: Vec<usize> = match &args.vm {
        Some(name) => vec![trace.vm_by_name(name).map_err(|e| e.to_string())?],
        None => (0..trace.config().vms.len()).collect(),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let started = Instant::now();
    let results = trace.verify(&vms, jobs, &|_| {}).map_err(|e| CliError::of(&e))?;
    let secs = started.elapsed().as_secs_f64();
    let steps: u64 = results.iter().map(|r| r.steps).sum();
    let first = results
        .iter()
        .filter_map(|r| r.divergence.as_ref())
        .min_by_key(|d| (d.icount, d.vm));
    for &vm in &vms {
        let name = &trace.config().vms[vm].name;
        let slices = results.iter().filter(|r| r.vm == vm).count();
        let bad = results
            .iter()
            .filter(|r| r.vm == vm && r.divergence.is_some())
            .count();
        eprintln!(
            "vmrr: {name}: replayed to icount {} in {slices} slices{}",
            trace.end_icount(vm),
            if bad > 0 {
                format!(", {bad} diverged")
            } else {
                String::new()
            }
        );
    }
    eprintln!(
        "vmrr: {steps} steps in {secs:.2} s on {} threads ({:.0} steps/s)",
        // verify() starts no more threads than there are slices.
        jobs.min(results.len()).max(1),
        steps as f64 / secs.max(1e-9)
    );
    // A damaged index is damage, whatever else happened.
    if let Some(damage) = results.iter().find_map(|r| r.damage.as_ref()) {
        return Err(CliError {
            text: format!("{damage}. The trace is damaged: record it again"),
            exit: super::EXIT_DAMAGED,
        });
    }
    match first {
        Some(d) => {
            eprintln!("vmrr: {d}");
            Ok(ExitCode::from(EXIT_DIVERGED))
        }
        None => {
            if args.verify {
                eprintln!(
                    "vmrr: verified: every checkpoint's state, every event and every frame matches the recording"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
