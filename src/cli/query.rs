//! `vmrr events` and `vmrr sql`: read a trace's index.

use super::CliError;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use vmrr_debugger::describe::{event_line_with, EventContext};
use vmrr_index::{EventFilter, EventKind, Index};

/// Arguments of `vmrr events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Only these VMs (names, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub vm: Vec<String>,
    /// Only these kinds (comma-separated): console, frame_sent, frame_recv,
    /// interrupt, marker, halt, wake, tsc, rand, fault, checkpoint, stop, exit.
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// From this virtual time, e.g. 12ms, 150us, 2s, 1000ns.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<u64>,
    /// Up to (not including) this virtual time.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<u64>,
    /// At most this many events.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
}

/// Arguments of `vmrr sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// A read-only statement, e.g. "SELECT kind, count(*) FROM events GROUP BY kind".
    pub query: String,
}

/// Parses a virtual time with a unit (ns, us, ms, s); a bare number is ns.
pub fn parse_time(text: &str) -> Result<u64, String> {
    vmrr_debugger::vtime::parse(text)
        .or_else(|| text.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("'{text}' is not a time: write e.g. 12ms, 150us, 2s"))
}

fn open(trace: &std::path::Path) -> Result<Index, CliError> {
    let path = trace.join(vmrr_debugger::trace::INDEX_FILE);
    vmrr_debugger::trace::check_is_trace(trace).map_err(|e| CliError::of(&e))?;
    Index::open_read_only(&path).map_err(|e| CliError::of(&e))
}

/// Prints events, one per line: time, VM, icount, kind, details.
pub fn events(args: &EventsArgs) -> Result<ExitCode, CliError> {
    let index = open(&args.trace)?;
    // A damaged trace would list a past that did not happen.
    index.verify_checksums().map_err(|e| CliError::of(&e))?;
    let vms = index.vms().map_err(|e| e.to_string())?;
    let mut filter = EventFilter::all();
    if !args.vm.is_empty() {
        let mut ids = Vec::new();
        for name in &args.vm {
            let Some(v) = vms.iter().find(|v| &v.name == name) else {
                let known: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
                return Err(format!("no VM '{name}' in this trace (it has: {})", known.join(", ")).into());
            };
            ids.push(v.id);
        }
        filter = filter.with_vms(ids);
    }
    if !args.kind.is_empty() {
        let mut kinds = Vec::new();
        for k in &args.kind {
            let kind = EventKind::parse(k).ok_or_else(|| {
                let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown event kind '{k}' (kinds: {})", all.join(", "))
            })?;
            kinds.push(kind);
        }
        filter = filter.with_kinds(kinds);
    }
    let rows = index
        .events_in_window(
            args.from.unwrap_or(0),
            args.to.unwrap_or(u64::MAX),
            &filter,
            args.limit,
        )
        .map_err(|e| e.to_string())?;
    let width = vms.iter().map(|v| v.name.len()).max().unwrap_or(4);
    let name = |vm: u32| {
        vms.iter()
            .find(|v| v.id == vm)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let mut out = String::new();
    for r in rows {
        let ctx = EventContext::of(&index, &r).map_err(|e| e.to_string())?;
        out += &event_line_with(&r, &name, &ctx, width);
        out.push('\n');
    }
    print!("{out}");
    // Kinds are free text: a newer vmrr may have written some this one does
    // not know. They are not damage; say that they are left out.
    let unknown = index.unknown_kinds().map_err(|e| CliError::of(&e))?;
    if !unknown.is_empty() && args.kind.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|(k, n)| format!("{} ({n})", vmrr_debugger::describe::printable(k)))
            .collect();
        eprintln!(
            "vmrr: note: events of kinds this vmrr does not know are not listed: {}; `vmrr sql` shows them",
            list.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a read-only SQL statement and prints the rows tab-separated.
pub fn sql(args: &SqlArgs) -> Result<ExitCode, CliError> {
    let index = open(&args.trace)?;
    // SQL is how a damaged trace is looked into: say so, then answer.
    if let Err(e) = index.verify_checksums() {
        eprintln!("vmrr: warning: {e}");
    }
    let (columns, rows) = index.query_read_only(&args.query).map_err(|e| e.to_string())?;
    // Cells are data from the trace (console text, names): on a terminal,
    // their control characters are shown, not obeyed. A pipe gets them raw.
    let shown = |text: String| {
        if std::io::stdout().is_terminal() {
            vmrr_debugger::describe::printable(&text)
        } else {
            text
        }
    };
    println!("{}", shown(columns.join("\t")));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|v| shown(v.to_string())).collect();
        println!("{}", cells.join("\t"));
    }
    Ok(ExitCode::SUCCESS)
}
