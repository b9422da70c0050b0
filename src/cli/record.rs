//! `vmrr record`: run a cluster (or one image) and write a trace.

use super::CliError;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vmrr_backend::VmConfig;
use vmrr_debugger::cluster::ClusterConfig;
use vmrr_debugger::trace::record::{record, Progress, RecordOptions, DEFAULT_CHECKPOINT_STEPS};

/// Arguments of `vmrr record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// A cluster file (*.toml) or one ELF64 guest image.
    pub input: PathBuf,
    /// The trace folder to create (must not exist, or be empty).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Steps between two checkpoints of a VM.
    #[arg(long, default_value_t = DEFAULT_CHECKPOINT_STEPS)]
    pub checkpoint_every: u64,
    /// Stop every VM after this many steps.
    #[arg(long, default_value_t = 100_000_000)]
    pub max_steps: u64,
    /// Stop at this virtual time, in milliseconds.
    #[arg(long)]
    pub max_vtime_ms: Option<u64>,
    /// Worker threads (default: one per VM).
    #[arg(long)]
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
        max_vtime_ns: args
            .max_vtime_ms
            .map(|ms| ms.saturating_mul(1_000_000))
            .unwrap_or(u64::MAX),
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
    let summary =
        record(&config, &args.output, &options, &interrupted, &mut show).map_err(|e| e.to_string())?;
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
    Ok(ExitCode::SUCCESS)
}
