//! `vmrr calls`: every call of a function in a trace, with its arguments,
//! return and value; `--tree` for what the calls (or a window) called.
//! Also what `vmrr origin` and `vmrr coverage` share: opening the trace,
//! naming VMs and windows with the one moment grammar, progress, Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use super::CliError;
use vmrr_debugger::analysis::{text, AnalysisError, CallQuery, CallTreeNode};
use vmrr_debugger::session::{Moment, Pos, Session, SessionError, VmId};

/// Prints a line on stdout; a closed pipe (`| head`) ends the output
/// quietly instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        if writeln!(out, $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}
pub(super) use outln;

/// Arguments of `vmrr calls`.
#[derive(Debug, clap::Args)]
pub struct CallsArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// The function (an ELF symbol of the VMs' images). With --tree and no
    /// function, the call tree of the window (one VM).
    pub function: Option<String>,
    /// Only these VMs (names or numbers from 1, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub vm: Vec<String>,
    /// Only calls entered at or after this moment (12.5ms, VM:ICOUNT, #EVENT, a bookmark...).
    #[arg(long)]
    pub from: Option<String>,
    /// Only calls entered before this moment.
    #[arg(long)]
    pub to: Option<String>,
    /// Show what each call called (or, without a function, the window's call tree).
    #[arg(long)]
    pub tree: bool,
    /// With --tree: how many levels of calls to show.
    #[arg(long, default_value_t = 2)]
    pub depth: u32,
    /// Threads replaying slices in parallel (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// A session error as the command line reports it: an analysis's own
/// cause (a damaged trace keeps its exit status).
pub(super) fn report(e: SessionError) -> CliError {
    match e {
        SessionError::Analysis(AnalysisError::Trace(t)) | SessionError::Trace(t) => CliError::of(&t),
        SessionError::Analysis(AnalysisError::Index(i)) | SessionError::Index(i) => CliError::of(&i),
        e => CliError::of(&e),
    }
}

/// Opens the trace for an analysis: writable, so that results are cached;
/// read-only (computed, not cached) if it cannot be written. Ctrl-C
/// cancels the running analysis.
pub(super) fn open_session(trace: &Path, jobs: Option<u64>) -> Result<Session, CliError> {
    if !trace.is_dir() {
        return Err(format!(
            "{} is not a trace directory (record one with `vmrr record`)",
            trace.display()
        )
        .into());
    }
    // A trace that cannot be written opens read-only.
    let mut session = Session::open(trace).map_err(report)?;
    if session.is_read_only() {
        eprintln!(
            "vmrr: {} cannot be written: results are not cached",
            trace.display()
        );
    }
    if let Some(j) = jobs {
        session.set_jobs(j as usize);
    }
    let flag = session.cancel_flag();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    Ok(session)
}

/// Prints a fraction done on a terminal, on one line.
pub(super) fn progress(what: &'static str) -> impl Fn(f64) + Sync {
    let tty = std::io::stderr().is_terminal();
    move |f: f64| {
        if tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\rvmrr: {what}: {:3.0}%", f * 100.0);
            let _ = err.flush();
        }
    }
}

/// Ends a progress line.
pub(super) fn progress_done() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

/// The VMs named on the command line (empty: all).
pub(super) fn vm_list(session: &Session, names: &[String]) -> Result<Vec<VmId>, CliError> {
    names
        .iter()
        .map(|n| session.vm_by_name(n).map_err(report))
        .collect()
}

/// A window's ends as cluster positions (`start` and `end` are no bound).
pub(super) fn window(
    session: &mut Session,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<Pos>, Option<Pos>), CliError> {
    let mut bound = |text: Option<&str>, open: Moment| -> Result<Option<Pos>, CliError> {
        let Some(text) = text else { return Ok(None) };
        let m = Moment::parse(text).map_err(|e| CliError::of(&e))?;
        if m == open {
            return Ok(None);
        }
        session.moment_pos(&m).map(Some).map_err(report)
    };
    let (from_text, to_text) = (from.unwrap_or_default(), to.unwrap_or_default());
    let from = bound(from, Moment::Start)?;
    let to = bound(to, Moment::End)?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(format!(
                "the window ends (--to {to_text}) before it starts (--from {from_text}): write the earlier moment in --from"
            )
            .into());
        }
    }
    Ok((from, to))
}

/// Prints every call.
pub fn run(args: &CallsArgs) -> Result<ExitCode, CliError> {
    let mut session = open_session(&args.trace, args.jobs)?;
    let vms = vm_list(&session, &args.vm)?;
    let (from, to) = window(&mut session, args.from.as_deref(), args.to.as_deref())?;
    let Some(function) = &args.function else {
        if !args.tree {
            return Err("name a function, or give --tree for the call tree of a window"
                .to_string()
                .into());
        }
        return tree_of_window(&mut session, &vms, from, to, args.depth);
    };
    let (tree, max_depth) = (args.tree, args.depth);
    let query = CallQuery {
        function: function.clone(),
        vms: vms.clone(),
        from,
        to,
    };
    let calls = session.calls(&query, &progress("calls")).map_err(report);
    progress_done();
    let calls = calls?;
    let signature = session.signature(function, &vms);
    let header = text::signature(function, signature.as_ref());
    outln!(
        "{header}: {} call{} (replayed {} of {} slices)",
        calls.calls.len(),
        if calls.calls.len() == 1 { "" } else { "s" },
        calls.replayed,
        calls.slices
    );
    if calls.calls.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", text::calls_header());
    let names = session.vm_namer();
    for c in &calls.calls {
        outln!("{}", text::call_row(&names(c.vm), c));
        if tree {
            let end = c
                .ret
                .map(|r| r.icount)
                .unwrap_or_else(|| session.end_icount(c.vm));
            let nodes = session
                .call_tree(c.vm, c.entry.icount, end, &progress("call tree"))
                .map_err(report);
            progress_done();
            // The call itself is the root: its callees are one level down.
            print_tree(&session, &nodes?, 1, max_depth, "    ");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints call-tree nodes from `min` levels deep, down to `max`.
fn print_tree(session: &Session, nodes: &[CallTreeNode], min: u32, max: u32, indent: &str) {
    for line in text::tree_lines(nodes, min, max, indent, &session.vm_namer()) {
        outln!("{line}");
    }
}

/// `--tree` without a function: the call tree of a window of one VM.
fn tree_of_window(
    session: &mut Session,
    vms: &[VmId],
    from: Option<Pos>,
    to: Option<Pos>,
    depth: u32,
) -> Result<ExitCode, CliError> {
    let [vm] = vms else {
        return Err("--tree of a window needs one VM: --vm NAME".to_string().into());
    };
    let lo = match from {
        Some(p) => session.icount_at(*vm, p).map_err(report)?,
        None => 0,
    };
    let hi = match to {
        Some(p) => session.icount_at(*vm, p).map_err(report)?,
        None => session.end_icount(*vm),
    };
    let nodes = session
        .call_tree(*vm, lo, hi, &progress("call tree"))
        .map_err(report);
    progress_done();
    let nodes = nodes?;
    outln!(
        "call tree of {} from icount {lo} to {hi}: {} calls",
        session.vm_name(*vm),
        nodes.len()
    );
    print_tree(session, &nodes, 0, depth, "");
    Ok(ExitCode::SUCCESS)
}
