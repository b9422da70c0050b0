//! The SQLite index of a vmrr trace: `index.sqlite` in the trace directory.
//!
//! The recorder writes it through a batched writer (rows are buffered and
//! committed together, so recording stays fast; [`Index::flush`] at every
//! checkpoint makes an interrupted recording keep everything up to it). The
//! debugger, the TUI, gdb, `vmrr events` and `vmrr sql` read it through the
//! typed queries here or through [`Index::query_read_only`].
//!
//! The index knows nothing about execution: rows are plain values, VM ids are
//! [`VmId`]s (positions in the cluster configuration), positions are
//! `(vm, icount)` with the virtual time stored beside them.
//!
//! Tables (see `index/SCHEMA.md` and [`schema`]): `meta`, `vms`, `events`,
//! `frames`, `packets` (each frame's bytes and decoded headers, [`decode`]),
//! `checkpoints`, `exec_slices`, `bookmarks`; schema version [`SCHEMA_VERSION`].
//!
//! ```no_run
//! use vmrr_index::{EventFilter, EventKind, EventRow, Index};
//! # fn main() -> vmrr_index::Result<()> {
//! let mut index = Index::create("/tmp/trace/index.sqlite")?;
//! index.add_event(&EventRow::new(0, 1200, 12_000, EventKind::Marker).with_text("ready").with_value(1))?;
//! index.flush()?;
//! let markers = index.events_in_window(0, 1_000_000, &EventFilter::all().with_kinds([EventKind::Marker]), 100)?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod bookmarks;
mod checksum;
pub mod decode;
mod error;
mod exec;
mod index;
mod kinds;
mod packets;
mod pos;
mod query;
mod rows;
pub mod schema;
mod sql;
mod time;
mod write;

pub use bookmarks::MAX_BOOKMARK_NAME_CHARS;
pub use error::{IndexError, Result};
pub use exec::ExecSliceRow;
pub use index::{Index, DEFAULT_BATCH_ROWS};
pub use packets::{PacketRow, PACKET_BYTES_CAP};
pub use pos::{Pos, Position};
pub use rows::{
    BookmarkRow, CheckpointRow, EventFilter, EventKind, EventRow, FrameFate, FrameRow, IndexStats, SqlRows,
    SqlValue, UnknownName, VmId, VmRow,
};
pub use schema::{INDEX_FILE_NAME, SCHEMA_VERSION};
