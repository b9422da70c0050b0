//! What can go wrong in a session, typed so that a caller can tell a request
//! that does not fit the trace from a damaged trace from a guest that
//! misbehaved on replay.

use crate::session::moment::MomentError;
use crate::trace::TraceError;

/// Errors of a [`Session`](super::Session).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The trace could not be read, is damaged, or its replay failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The index could not answer (damaged, read-only, a bookmark name taken).
    #[error(transparent)]
    Index(#[from] vmrr_index::IndexError),
    /// Debugging information could not be read or does not know a name.
    #[error(transparent)]
    Source(#[from] crate::dwarf::DwarfError),
    /// A text names no moment.
    #[error(transparent)]
    Moment(#[from] MomentError),
    /// No VM of that name or number.
    #[error("no VM '{name}' in this trace (it has: {known}; or number them from 1)")]
    NoSuchVm {
        /// What was asked for.
        name: String,
        /// The VMs there are.
        known: String,
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
    /// A position before the start of a VM's recording (a fork's trace
    /// starts at its cut).
    #[error("icount {icount} is before the start of VM '{vm}' in this trace ({start}): it is a fork; open its parent for the earlier history")]
    BeforeStart {
        /// The VM's name.
        vm: String,
        /// What was asked for.
        icount: u64,
        /// Its first icount in the trace.
        start: u64,
    },
    /// No event with that id.
    #[error("no event #{0} in this trace")]
    NoSuchEvent(u64),
    /// No bookmark with that name.
    #[error("no bookmark called '{0}'")]
    NoSuchBookmark(String),
    /// A bookmark name that could not be stored.
    #[error("a bookmark name {0}")]
    BadBookmarkName(&'static str),
    /// A watchpoint of an unsupported length.
    #[error("a watchpoint covers 1 to 4096 bytes, not {0}")]
    WatchLength(u64),
    /// Following a frame from a place where none was sent or received.
    #[error("{0}")]
    NoFrame(String),
    /// The index and the replay disagree: the trace is damaged.
    #[error("the trace is damaged: {0}")]
    Inconsistent(String),
    /// An analysis (calls, origin, coverage) failed.
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    /// A question to an analysis that does not parse.
    #[error("{0}")]
    BadQuestion(String),
}
