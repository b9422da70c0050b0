//! `vmrr origin`: where a value came from — the chain of writes that put
//! bytes of a VM's memory (or a register) where they are at a moment,
//! across VMs through the frames that carried them.

use std::path::PathBuf;
use std::process::ExitCode;

use super::calls::{open_session, outln, progress, progress_done, report};
use super::CliError;
use vmrr_debugger::analysis::{text, Origin};
use vmrr_debugger::session::{Moment, Session};

/// Arguments of `vmrr origin`.
#[derive(Debug, clap::Args)]
pub struct OriginArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// What to trace: VM:ADDR[:LEN] (VM:0x10622c:4), VM:VARIABLE
    /// (backup2:store[3], a global or a variable in scope at the moment) or
    /// VM:REGISTER (backup2:edx).
    pub what: String,
    /// The moment (12.5ms, VM:ICOUNT, #EVENT, end, a bookmark...).
    #[arg(long, default_value = "end")]
    pub at: String,
    /// Show every link, also the value passing through registers and the stack.
    #[arg(long)]
    pub all: bool,
    /// Follow at most this many links.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_links: u64,
    /// Threads replaying slices in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// Traces the value and prints the chain.
pub fn run(args: &OriginArgs) -> Result<ExitCode, CliError> {
    let mut session = open_session(&args.trace, args.jobs)?;
    let Some((vm_name, what)) = args.what.split_once(':') else {
        return Err(format!(
            "'{}': write VM:ADDR[:LEN], VM:VARIABLE or VM:REGISTER (e.g. backup2:store[3])",
            args.what
        )
        .into());
    };
    let vm = session.vm_by_name(vm_name).map_err(report)?;
    let moment = Moment::parse(&args.at).map_err(|e| CliError::of(&e))?;
    // `end` means the end of that VM; any other moment puts the whole cluster there.
    if moment == Moment::End {
        session.goto(vm, session.end_icount(vm)).map_err(report)?;
    } else {
        session.goto_moment(&moment).map_err(report)?;
    }
    let (target, label) = session.origin_target(vm, what).map_err(report)?;
    let origin = session
        .origin_with_limit(vm, target, args.max_links as usize, &progress("origin"))
        .map_err(report);
    progress_done();
    print(&session, &origin?, &label, args.all);
    Ok(ExitCode::SUCCESS)
}

/// Prints the chain, newest link first.
fn print(session: &Session, o: &Origin, label: &str, all: bool) {
    for line in text::origin_lines(o, label, all, &session.vm_namer()) {
        outln!("{line}");
    }
}
