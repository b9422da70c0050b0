//! Analyses: questions asked of a whole recording, answered by exact
//! replay of the checkpoint slices that can hold the answer.
//!
//! * [`pass`] — the framework: an analysis is code ([`pass::Observer`])
//!   riding on the replay of a slice (stopping at addresses, or seeing every
//!   step with its memory accesses and the network card's), producing rows.
//!   Slices × VMs replay in parallel, several analyses share one pass, and
//!   the execution index says which slices can matter.
//! * [`calls`] — every call of a function: arguments (System V registers,
//!   named and typed from DWARF), return position and value; the call tree
//!   of a window.
//! * [`origin`] — where a value came from: the instruction that last wrote
//!   it, what that instruction read, and so on through copies, across VMs
//!   through the frame that carried it, to a constant, an input or a
//!   computation that mixes several sources.
//! * [`coverage`] — which functions and source lines ran, per VM, in a window.
//! * [`text`] — how the answers read (the command line, gdb's monitor).
//!
//! Results are cached in the trace's index as `analysis_*` tables
//! ([`cache`], documented in `index/SCHEMA.md`), so `vmrr sql`, the TUI and
//! gdb read the same rows and asking twice is instant. A trace opened
//! read-only is analysed but nothing is cached.
//!
//! The index is a filter, never the answer: every row comes from exact
//! replay, and the tests compare each analysis with brute-force stepping.

pub mod cache;
pub mod calls;
pub mod coverage;
mod flow;
mod loc;
pub mod origin;
pub mod pass;
mod steps;
pub mod text;
pub mod tree;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::dwarf::Program;
use crate::trace::{Trace, TraceError};

pub use calls::{Arg, Call, CallQuery, Calls};
pub use coverage::{Coverage, CoverageRow};
pub use origin::{LinkKind, Origin, OriginEnd, OriginLink, OriginQuery, OriginTarget, Place};
pub use pass::{PassOptions, Progress};
pub use tree::{call_tree, CallTreeNode, MAX_TREE_STEPS};

/// What can go wrong in an analysis.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The trace could not be read, is damaged, or its replay failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The index could not answer.
    #[error(transparent)]
    Index(#[from] vmrr_index::IndexError),
    /// The cache tables could not be read or written.
    #[error("the analysis cache in {path}: {source}")]
    Cache {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Someone set the cancel flag.
    #[error("cancelled")]
    Cancelled,
    /// No function of that name in the images asked about.
    #[error("no function '{name}' in the image of {vms}{hint}")]
    UnknownFunction {
        /// What was asked for.
        name: String,
        /// The VMs whose images were searched.
        vms: String,
        /// Names that look alike, if any (", did you mean ...?").
        hint: String,
    },
    /// An address that does not translate at the position asked about.
    #[error("address {addr:#x} is not mapped in VM '{vm}' at icount {icount}")]
    NotMapped {
        /// The VM's name.
        vm: String,
        /// The guest-virtual address.
        addr: u64,
        /// The position.
        icount: u64,
    },
    /// A position past the end of a VM's recording.
    #[error("icount {icount} is past the end of VM '{vm}' ({end})")]
    PastEnd {
        /// The VM's name.
        vm: String,
        /// What was asked for.
        icount: u64,
        /// Its last replayable icount.
        end: u64,
    },
    /// A request that does not fit (a bad register name, a zero length...).
    #[error("{0}")]
    BadRequest(String),
}

impl AnalysisError {
    pub(crate) fn cache(path: &std::path::Path, source: rusqlite::Error) -> AnalysisError {
        AnalysisError::Cache {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The images of a trace's VMs as analyses name code: symbols and DWARF,
/// read once per VM on first use. A VM whose image cannot be read has an
/// empty [`Program`] (addresses are then shown bare).
pub struct Images {
    programs: Vec<OnceLock<Arc<Program>>>,
}

impl Images {
    /// Nothing read yet.
    pub fn new(trace: &Trace) -> Images {
        Images {
            programs: (0..trace.config().vms.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The image of `vm`.
    pub fn program(&self, trace: &Trace, vm: usize) -> Arc<Program> {
        match self.programs.get(vm) {
            Some(cell) => cell
                .get_or_init(|| Arc::new(Program::for_vm(trace, vm).unwrap_or_default()))
                .clone(),
            None => Arc::new(Program::default()),
        }
    }

    /// `function+0x1f` and `file:line` of `addr` in `vm`'s image, as known.
    pub fn place(&self, trace: &Trace, vm: usize, addr: u64) -> (Option<String>, Option<String>) {
        let p = self.program(trace, vm);
        let function = p.symbols().describe(addr);
        let line = p
            .line_at(addr)
            .map(|l| format!("{}:{}", short_file(&l.file_name), l.line));
        (function, line)
    }
}

/// The last part of a source path (`kvstore.c`), as lists show it.
pub(crate) fn short_file(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
