//! The command line: argument definitions and one module per subcommand.

mod calls;
mod coverage;
mod diff;
mod error;
mod fork;
mod gdb;
mod index;
mod origin;
mod pcap;
mod query;
mod record;
mod replay;
mod run;
mod run_cluster;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for bad input or a VM that could not run (clap uses 2 for usage errors too).
pub const EXIT_ERROR: u8 = 2;
/// Exit status when the guest exited with a non-zero value.
pub const EXIT_GUEST_FAILED: u8 = 3;
/// Exit status when the guest stopped abnormally (halted forever, triple fault).
pub const EXIT_GUEST_STUCK: u8 = 4;
/// Exit status when a trace is damaged (a file or index row edited, missing
/// or corrupt): never reported as a divergence of the guest.
pub const EXIT_DAMAGED: u8 = 6;
/// Exit status of a recording stopped by Ctrl-C (SIGINT): the trace is
/// valid up to the final checkpoints taken when it stopped. 128 + SIGINT,
/// as a shell reports a command killed by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Most worker threads `--jobs` takes (more than the VMs or slices are
/// never started anyway).
pub const MAX_JOBS: u64 = 1024;
/// Largest step count (`--max-steps`, `--checkpoint-every`): icounts are
/// stored as signed 64-bit integers.
pub const MAX_STEPS: u64 = i64::MAX as u64;
/// Largest `--max-vtime-ms`: 2^63 ns, the latest time the index stores.
pub const MAX_VTIME_MS: u64 = MAX_STEPS / 1_000_000;

/// `text` as a whole number from `min` to `max`; the error says the range.
fn number_in(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number (use {min} to {max})"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{n} is out of range: use {min} to {max}"));
    }
    Ok(n)
}

/// `--jobs`: 1 to [`MAX_JOBS`].
pub(crate) fn parse_jobs(text: &str) -> Result<usize, String> {
    number_in(text, 1, MAX_JOBS).map(|n| n as usize)
}

/// `--max-steps`: 0 to [`MAX_STEPS`].
pub(crate) fn parse_steps(text: &str) -> Result<u64, String> {
    number_in(text, 0, MAX_STEPS)
}

/// `--checkpoint-every`: 1 to [`MAX_STEPS`].
pub(crate) fn parse_interval(text: &str) -> Result<u64, String> {
    number_in(text, 1, MAX_STEPS)
}

/// `--max-vtime-ms`: 0 to [`MAX_VTIME_MS`], returned in nanoseconds.
pub(crate) fn parse_vtime_ms(text: &str) -> Result<u64, String> {
    number_in(text, 0, MAX_VTIME_MS).map(|ms| ms * 1_000_000)
}

/// `--rate`: 1 to 1 000 000 instructions per virtual µs.
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    number_in(text, 1, 1_000_000)
}

pub use error::CliError;

/// vmrr: a time-travel debugger for clusters of virtual machines.
#[derive(Debug, Parser)]
#[command(name = "vmrr", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a guest kernel, or a whole cluster from a cluster.toml, under the
    /// exact engine and print the console.
    ///
    /// Exit status: 0 when the guest exits with value 0 or the step limit is
    /// reached, 3 when it exits with another value, 4 when it halts forever or
    /// triple-faults, 2 on bad input or an error.
    Run(RunArgs),
    /// Record a cluster (cluster.toml) or one guest image into a trace folder.
    Record(record::RecordArgs),
    /// Open a trace in gdb, every VM an inferior with its own symbols
    /// (like `rr replay`; --at MOMENT to start there); with --verify,
    /// re-execute it from its checkpoints and recorded inputs instead and
    /// report the first divergence.
    ///
    /// Exit status: gdb's; with --verify, 0 when the replay matches, 5 when
    /// it diverged, 2 on error.
    Replay(replay::ReplayArgs),
    /// List a trace's events, filtered by VM, kind and virtual time.
    Events(query::EventsArgs),
    /// Run a read-only SQL query on a trace's index (see index/SCHEMA.md).
    Sql(query::SqlArgs),
    /// Export a trace's frames as a pcapng capture (Wireshark, tshark,
    /// tcpdump): one interface per VM's link, virtual timestamps in ns,
    /// frames lost to a fault marked in a comment.
    Pcap(pcap::PcapArgs),
    /// Build the execution index of a trace recorded by an older vmrr (which
    /// makes continue, finish and watchpoints fast), replaying its slices.
    Index(index::IndexArgs),
    /// Serve a trace to a gdb started elsewhere (an IDE): each VM is an
    /// inferior; stepi, continue, breakpoints and watchpoints work both
    /// ways. Prints the gdb command that attaches.
    Gdb(gdb::GdbArgs),
    /// What if: run a trace on from a moment with one thing changed (a frame
    /// dropped, delayed or duplicated; a fault added, moved or removed;
    /// memory, a register or the seed set), recording into a new trace.
    /// With no change the new trace reproduces the original from there.
    Fork(fork::ForkArgs),
    /// Compare two runs of one cluster (a trace and a fork of it): for each
    /// VM the first position where they differ, then how their outcomes
    /// differ (exit values, console lines, markers, frame fates).
    ///
    /// Exit status: 0 when they are the same, 1 when they differ, 2 on error.
    Diff(diff::DiffArgs),
    /// Every call of a function in every VM: entry, arguments (named and
    /// typed from DWARF), return and value; --tree for what they called.
    Calls(calls::CallsArgs),
    /// Where a value came from: the chain of writes that put bytes of a
    /// VM's memory (or a register) there, across VMs through frames.
    Origin(origin::OriginArgs),
    /// Which functions and source lines ran in each VM within a window.
    Coverage(coverage::CoverageArgs),
    /// Explore a trace in a full-screen terminal UI: timeline, registers,
    /// disassembly, events, bookmarks; step both ways, follow frames.
    /// Press ? inside for the keys.
    Tui(tui::TuiArgs),
}

/// Arguments of `vmrr run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// ELF64 kernel with a PVH entry note, or a cluster file (*.toml).
    pub image: PathBuf,
    /// Guest memory, e.g. 64M or 1G.
    #[arg(long, default_value = "64M", value_parser = parse_mem)]
    pub mem: u64,
    /// Stop after this many steps (instructions), 0 to 2^63-1.
    #[arg(long, default_value_t = 100_000_000, value_parser = parse_steps)]
    pub max_steps: u64,
    /// Kernel command line passed in hvm_start_info.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Virtual CPU rate in instructions per microsecond, 1 to 1000000.
    #[arg(long, default_value_t = 100, value_parser = parse_rate)]
    pub rate: u64,
    /// Seed for rdrand/rdseed answers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the final state hash in the summary.
    #[arg(long)]
    pub hash: bool,
    /// Cluster only: worker threads, 1 to 1024 (default: one per VM).
    #[arg(long, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Cluster only: stop at this virtual time, in milliseconds (0 to 2^63 ns).
    #[arg(long = "max-vtime-ms", value_parser = parse_vtime_ms)]
    pub max_vtime_ns: Option<u64>,
    /// Cluster only, for testing: random host-side delays in the workers
    /// (the output must not change).
    #[arg(long, hide = true)]
    pub host_jitter: bool,
}

pub(crate) fn parse_mem(text: &str) -> Result<u64, String> {
    use vmrr_backend::config::{parse_mem_size, MAX_MEM_BYTES, MIN_MEM_BYTES};
    let bytes = parse_mem_size(text)?;
    if !(MIN_MEM_BYTES..=MAX_MEM_BYTES).contains(&bytes) {
        return Err(format!(
            "'{text}' is out of range: guest memory must be between 4M and 3G"
        ));
    }
    if !bytes.is_multiple_of(4096) {
        return Err(format!("'{text}' is not a multiple of 4K"));
    }
    Ok(bytes)
}

/// Runs the chosen subcommand; `Err` carries a message for the user.
pub fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Run(args) if args.image.extension().is_some_and(|e| e == "toml") => {
            run_cluster::run(&args.image.clone(), &args)
        }
        Command::Run(args) => run::run(&args),
        Command::Record(args) => record::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Events(args) => query::events(&args),
        Command::Sql(args) => query::sql(&args),
        Command::Pcap(args) => pcap::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Gdb(args) => gdb::run(&args),
        Command::Fork(args) => fork::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Tui(args) => tui::run(&args),
        Command::Calls(args) => calls::run(&args),
        Command::Origin(args) => origin::run(&args),
        Command::Coverage(args) => coverage::run(&args),
    }
}
