//! `vmrr pcap`: a trace's frames as a pcapng capture for Wireshark, tshark
//! and tcpdump (the writing is `vmrr_debugger::trace::pcap`).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vmrr_debugger::session::Moment;
use vmrr_debugger::trace::pcap::{write_pcapng, PcapFilter, PcapSummary};
use vmrr_index::Index;

use super::CliError;

/// Arguments of `vmrr pcap`.
#[derive(Debug, clap::Args)]
pub struct PcapArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Where to write the capture; `-` for standard output (default:
    /// TRACE-NAME.pcapng in the current folder).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Only the frames this VM sent or was sent (its name, or its number from 1).
    #[arg(long)]
    pub vm: Option<String>,
    /// Only frames sent from this moment: a time (12.5ms), VM:ICOUNT, #EVENT,
    /// start, end or a bookmark.
    #[arg(long)]
    pub from: Option<Moment>,
    /// Only frames sent before this moment.
    #[arg(long)]
    pub to: Option<Moment>,
}

/// The trace's index, opened read-only and checked: a damaged trace would
/// export a past that did not happen.
fn open(trace: &Path) -> Result<Index, CliError> {
    vmrr_debugger::trace::check_is_trace(trace).map_err(|e| CliError::of(&e))?;
    let index =
        Index::open_read_only(trace.join(vmrr_debugger::trace::INDEX_FILE)).map_err(|e| CliError::of(&e))?;
    index.verify_checksums().map_err(|e| CliError::of(&e))?;
    Ok(index)
}

/// Writes the capture.
pub fn run(args: &PcapArgs) -> Result<ExitCode, CliError> {
    let index = open(&args.trace)?;
    let vms = index.vms().map_err(|e| CliError::of(&e))?;
    let vm = match &args.vm {
        None => None,
        Some(name) => {
            let by_number = name
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| vms.get(i));
            let found = vms.iter().find(|v| &v.name == name).or(by_number);
            let Some(v) = found else {
                let known: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
                return Err(format!("no VM '{name}' in this trace (it has: {})", known.join(", ")).into());
            };
            Some(v.id)
        }
    };
    let time = |m: &Option<Moment>| -> Result<Option<u64>, CliError> {
        m.as_ref()
            .map(|m| m.vtime_in(&index, vm))
            .transpose()
            .map_err(|e| CliError::of(&e))
    };
    let filter = PcapFilter {
        vm,
        from_ns: time(&args.from)?.unwrap_or(0),
        to_ns: time(&args.to)?,
    };
    let trace_name = args
        .trace
        .canonicalize()
        .unwrap_or_else(|_| args.trace.clone())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{trace_name}.pcapng")));
    let shown = vmrr_debugger::describe::printable(&trace_name);
    let summary: PcapSummary = if output.as_os_str() == "-" {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            return Err(
                "refusing to write a binary capture to a terminal: pipe it (-o - | tshark -r -) or \
                        name a file with -o"
                    .to_string()
                    .into(),
            );
        }
        write_pcapng(&index, &shown, &filter, BufWriter::new(stdout.lock())).map_err(|e| CliError::of(&e))?
    } else {
        let file = std::fs::File::create(&output)
            .map_err(|e| CliError::from(format!("{}: {e}", output.display())))?;
        match write_pcapng(&index, &shown, &filter, BufWriter::new(file)) {
            Ok(s) => s,
            Err(e) => {
                // Leave no half-written capture that looks whole.
                let _ = std::fs::remove_file(&output);
                let mut err = CliError::of(&e);
                err.text = format!("{}: {}", output.display(), err.text);
                return Err(err);
            }
        }
    };
    if output.as_os_str() != "-" {
        eprintln!(
            "vmrr: wrote {} frames ({} lost on the way, marked in comments) to {}",
            summary.frames,
            summary.lost,
            output.display()
        );
    }
    std::io::stderr().flush().ok();
    Ok(ExitCode::SUCCESS)
}
