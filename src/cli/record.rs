//! `vmrr record`: run a cluster (or one image) and write a trace.

use super::CliError;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vmrr_backend::VmConfig;
use vmrr_debugger::cluster::{ClusterConfig, ClusterStop};
use vmrr_debugger::trace::record::{record, Progress, RecordOptions, DEFAULT_CHECKPOINT_STEPS};
use vmrr_debugger::trace::TraceError;

/// Arguments of `vmrr record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// A cluster file (*.toml) or one ELF64 guest image.
    pub input: PathBuf,
    /// The trace folder to create (must not exist, or be empty).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Replace the output folder if it holds a trace (a folder holding
    /// anything else is never touched).
    #[arg(long)]
    pub force: bool,
    /// Steps between two checkpoints of a VM, 1 to 2^63-1.
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_STEPS, value_parser = super::parse_interval)]
    pub checkpoint_every: u64,
    /// Stop every VM after this many steps, 0 to 2^63-1.
    #[arg(long, default_value_t = 100_000_000, value_parser = super::parse_steps)]
    pub max_steps: u64,
    /// Stop at this virtual time, in milliseconds (0 to 2^63 ns).
    #[arg(long = "max-vtime-ms", value_parser = super::parse_vtime_ms)]
    pub max_vtime_ns: Option<u64>,
    /// Worker threads, 1 to 1024 (default: one per VM).
    #[arg(long, value_parser = super::parse_jobs)]
    pub jobs: Option<usize>,
    /// For a single image: its command line.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// For a single image: guest memory, e.g. 64M.
    #[arg(long, default_value = "64M", value_parser = super::parse_mem)]
    pub mem: u64,
}

fn human_bytes(b: u64) -> String {
    match b {
        0..=9_999 => format!("{b} B"),
        10_000..=9_999_999 => format!("{:.1} KB", b as f64 / 1e3),
        _ => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// Records and prints a summary.
pub fn run(args: &RecordArgs) -> Result<ExitCode, CliError> {
    let config = if args.input.extension().is_some_and(|e| e == "toml") {
        ClusterConfig::load(&args.input).map_err(|e| e.to_string())?
    } else {
        let vm = VmConfig {
            mem_bytes: args.mem,
            cmdline: args.cmdline.clone(),
            ..VmConfig::default()
        };
        ClusterConfig::single(&args.input, vm).map_err(|e| e.to_string())?
    };
    let names: Vec<String> = config.vms.iter().map(|v| v.name.clone()).collect();
    let options = RecordOptions {
        checkpoint_every: args.checkpoint_every,
        jobs: args.jobs.unwrap_or(usize::MAX),
        max_steps: args.max_steps,
        max_vtime_ns: args.max_vtime_ns.unwrap_or(u64::MAX),
        force: args.force,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // The first Ctrl-C stops cleanly at the next barrier with a final checkpoint.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    let tty = std::io::stderr().is_terminal();
    let mut show = |p: &Progress| {
        if !tty {
            return;
        }
        let steps: Vec<String> = names
            .iter()
            .zip(&p.steps)
            .map(|(n, s)| format!("{n} {s}"))
            .collect();
        eprint!(
            "\r\x1b[Krecording: {} | vtime {:.3} ms | trace {} (Ctrl-C stops)",
            steps.join(", "),
            p.vtime_ns as f64 / 1e6,
            human_bytes(p.trace_bytes)
        );
        let _ = std::io::stderr().flush();
    };
    let index = args.output.join(vmrr_debugger::trace::INDEX_FILE);
    let had_index = index.is_file();
    let summary = record(&config, &args.output, &options, &interrupted, &mut show).map_err(|e| {
        // An index there now, and not one left from before, means this
        // recording got past its first checkpoints.
        let ours = !matches!(e, TraceError::Output { .. }) && (!had_index || args.force);
        let mut error = CliError::of(&e);
        if ours && index.is_file() {
            // A failure after the first checkpoints keeps the trace (see OutputDir).
            error.text += &format!(
                "\n(what was recorded is kept: `vmrr replay {}` replays it up to its last checkpoint)",
                args.output.display()
            );
        }
        error
    })?;
    if tty {
        eprint!("\r\x1b[K");
    }
    for (name, steps, vtime, why) in &summary.vms {
        eprintln!(
            "vmrr: {name}: {steps} steps, virtual time {:.6} ms, {why}",
            *vtime as f64 / 1e6
        );
    }
    eprintln!(
        "vmrr: recorded {} ({:?}): {} checkpoints, {} frames, {}",
        args.output.display(),
        summary.stop,
        summary.checkpoints,
        summary.frames,
        human_bytes(summary.trace_bytes)
    );
    if summary.stop == ClusterStop::Interrupted {
        eprintln!(
            "vmrr: interrupted: the trace is valid up to the checkpoints taken when it stopped (exit status {})",
            super::EXIT_INTERRUPTED
        );
        return Ok(ExitCode::from(super::EXIT_INTERRUPTED));
    }
    Ok(ExitCode::SUCCESS)
}
