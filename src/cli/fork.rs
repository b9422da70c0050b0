//! `vmrr fork`: run a trace on from a moment with something changed, into a
//! new trace.

use super::CliError;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vmrr_debugger::fork::{describe_faults, fork, Change, ForkOptions, CHANGES_HELP};
use vmrr_debugger::session::{Moment, MOMENT_HELP};
use vmrr_debugger::trace::record::Progress;
use vmrr_debugger::trace::Trace;
use vmrr_debugger::vtime::format_ms;

/// Arguments of `vmrr fork`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("CHANGE is one argument (quote it), one of:\n{CHANGES_HELP}\n\n\
Examples:\n  vmrr fork kv --at 122ms \"drop frame 49\" -o kv-drop\n  \
vmrr fork kv --at 100ms \"move fault 2 to 110ms\" -o kv-heal\n  \
vmrr fork kv --at 130ms \"set backup2 store[3] = 99\" -o kv-poke"))]
pub struct ForkArgs {
    /// The trace to fork.
    pub trace: PathBuf,
    /// Where to fork: a time (12.5ms), VM:ICOUNT, #EVENT or a bookmark.
    #[arg(long, value_parser = parse_moment, required_unless_present = "list_faults")]
    pub at: Option<Moment>,
    /// What to change at that moment (none: reproduce the original from there).
    #[arg(value_parser = parse_change)]
    pub changes: Vec<Change>,
    /// The new trace folder (must not exist, or be empty).
    #[arg(short = 'o', long = "output", required_unless_present = "list_faults")]
    pub output: Option<PathBuf>,
    /// Stop at this virtual time (default: where the original was stopped).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<u64>,
    /// Stop every VM after this many steps (default: the original's limit).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Steps between two checkpoints of a VM (default: the original's).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Worker threads (default: one per VM).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print the trace's faults, numbered as `move fault N` counts, and stop.
    #[arg(long)]
    pub list_faults: bool,
}

fn parse_moment(text: &str) -> Result<Moment, String> {
    Moment::parse(text).map_err(|e| format!("{e} ({MOMENT_HELP})"))
}

fn parse_time(text: &str) -> Result<u64, String> {
    vmrr_debugger::vtime::parse(text)
        .ok_or_else(|| format!("'{text}' is not a time: write it with a unit, as 150ms"))
}

fn parse_change(text: &str) -> Result<Change, String> {
    Change::parse(text).map_err(|e| e.to_string())
}

fn human_bytes(b: u64) -> String {
    match b {
        0..=9_999 => format!("{b} B"),
        10_000..=9_999_999 => format!("{:.1} KB", b as f64 / 1e3),
        _ => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// Forks and prints a summary.
pub fn run(args: &ForkArgs) -> Result<ExitCode, CliError> {
    if args.list_faults {
        let trace = Trace::open(&args.trace, false).map_err(|e| CliError::of(&e))?;
        let faults = describe_faults(&trace);
        if faults.is_empty() {
            println!("(no faults)");
        }
        for f in faults {
            println!("{f}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(at), Some(output)) = (&args.at, &args.output) else {
        return Err("give --at MOMENT and -o NEW".to_string().into());
    };
    let options = ForkOptions {
        until_ns: args.until,
        max_steps: args.max_steps,
        checkpoint_every: args.checkpoint_every,
        jobs: args.jobs.unwrap_or(usize::MAX),
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // The first Ctrl-C stops cleanly at the next barrier with a final checkpoint.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    let tty = std::io::stderr().is_terminal();
    let mut show = |p: &Progress| {
        if tty {
            eprint!(
                "\r\x1b[Kforking: vtime {} | trace {} (Ctrl-C stops)",
                format_ms(p.vtime_ns),
                human_bytes(p.trace_bytes)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let summary = fork(
        &args.trace,
        at,
        &args.changes,
        output,
        &options,
        &interrupted,
        &mut show,
    )
    .map_err(|e| CliError::of(&e))?;
    if tty {
        eprint!("\r\x1b[K");
    }
    let cut: Vec<String> = summary
        .cut
        .iter()
        .map(|c| format!("{} at icount {}", c.vm, c.icount))
        .collect();
    eprintln!(
        "vmrr: forked {} at {}: {} (built in {:.2} s from the barrier at {})",
        args.trace.display(),
        format_ms(summary.at_ns),
        cut.join(", "),
        summary.cut_secs,
        format_ms(summary.base_ns)
    );
    if !summary.switch_exact {
        eprintln!(
            "vmrr: note: this trace predates the switch's log; its MAC table at the cut was learnt again from the frames it keeps"
        );
    }
    for c in &summary.changes {
        eprintln!("vmrr: change: {c}");
    }
    for (name, steps, vtime, why) in &summary.record.vms {
        eprintln!(
            "vmrr: {name}: {steps} steps, virtual time {}, {why}",
            format_ms(*vtime)
        );
    }
    eprintln!(
        "vmrr: recorded {} ({:?}): {} checkpoints, {} frames, {} (pages: {} own, {} shared with the parent)",
        output.display(),
        summary.record.stop,
        summary.record.checkpoints,
        summary.record.frames,
        human_bytes(summary.record.trace_bytes),
        human_bytes(summary.pages_own.1),
        human_bytes(summary.pages_shared.1),
    );
    Ok(ExitCode::SUCCESS)
}
