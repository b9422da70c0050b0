//! Plain row types, one per table, and the small value types the queries take.
//!
//! All coordinates are unsigned in Rust and stored as SQLite's signed 64-bit
//! integers; the writer refuses coordinates ≥ 2^63 (they would not sort).
//! [`EventRow::value`] is the exception: it is stored bit for bit, so a value
//! ≥ 2^63 (a random number, say) reads back exactly here but shows as a
//! negative number in plain SQL.

use std::fmt;
use std::str::FromStr;

use crate::pos::{Pos, Position};

/// A VM's id: its position in the cluster configuration, the `vms.id` column.
pub type VmId = u32;

/// What kind of event an [`EventRow`] is; stored as text in `events.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Bytes written to the serial console: `text` holds a run of them,
    /// `icount` is the instruction that wrote the first.
    Console,
    /// The VM's NIC transmitted a frame; `value` = frame id.
    FrameSent,
    /// A frame was handed to the VM's NIC; `value` = frame id.
    FrameRecv,
    /// An interrupt was delivered; `value` = vector.
    Interrupt,
    /// A named guest marker; `text` = name, `value` = its value.
    Marker,
    /// The guest halted.
    Halt,
    /// The halted guest woke; `value` = idle nanoseconds skipped.
    Wake,
    /// A virtual TSC read; `value` = the TSC returned.
    Tsc,
    /// An `rdrand`/`rdseed` answer; `value` = the number returned.
    Rand,
    /// A scheduled fault took effect; `text` = description.
    Fault,
    /// A checkpoint was taken here (see the `checkpoints` table).
    Checkpoint,
    /// The VM stopped; `text` = why.
    Stop,
    /// The guest exited through the debug-exit port; `value` = exit value.
    Exit,
}

impl EventKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [EventKind; 13] = [
        EventKind::Console,
        EventKind::FrameSent,
        EventKind::FrameRecv,
        EventKind::Interrupt,
        EventKind::Marker,
        EventKind::Halt,
        EventKind::Wake,
        EventKind::Tsc,
        EventKind::Rand,
        EventKind::Fault,
        EventKind::Checkpoint,
        EventKind::Stop,
        EventKind::Exit,
    ];

    /// The text stored in `events.kind` (`"console"`, `"frame_sent"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Console => "console",
            EventKind::FrameSent => "frame_sent",
            EventKind::FrameRecv => "frame_recv",
            EventKind::Interrupt => "interrupt",
            EventKind::Marker => "marker",
            EventKind::Halt => "halt",
            EventKind::Wake => "wake",
            EventKind::Tsc => "tsc",
            EventKind::Rand => "rand",
            EventKind::Fault => "fault",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Stop => "stop",
            EventKind::Exit => "exit",
        }
    }

    /// The kind whose [`as_str`](Self::as_str) is `s`, if any.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether events of this kind happen *between* instructions (a frame
    /// handed to the NIC, a checkpoint, a fault, the VM stopping) rather than
    /// being caused by the instruction at their icount. A VM standing at
    /// icount n has already seen the boundary events at n.
    pub fn at_boundary(self) -> bool {
        matches!(
            self,
            EventKind::FrameRecv | EventKind::Checkpoint | EventKind::Fault | EventKind::Stop
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown event kind or frame fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was being parsed ("event kind", "frame fate").
    pub what: &'static str,
    /// The text that matched nothing.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for EventKind {
    type Err = UnknownName;

    /// Parses the text of `events.kind`; the error names the unknown text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::parse(s).ok_or_else(|| UnknownName {
            what: "event kind",
            name: s.to_string(),
        })
    }
}

/// One row of `events`: something that happened at an exact position of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Row id, assigned by the index in the order events are added (from 1).
    /// [`Index::add_event`](crate::Index::add_event) ignores it and returns the
    /// id it assigns.
    pub id: u64,
    /// The VM it happened on.
    pub vm: VmId,
    /// The instruction that caused it (counting from 0).
    pub icount: u64,
    /// The VM's virtual time at that instruction.
    pub vtime_ns: u64,
    /// What happened.
    pub kind: EventKind,
    /// The kind's number (frame id, vector, TSC, ...); see [`EventKind`].
    pub value: Option<u64>,
    /// Raw bytes, when the kind has any (e.g. a frame's bytes, or console
    /// bytes that are not valid UTF-8).
    pub payload: Option<Vec<u8>>,
    /// The kind's text (console output, marker name, fault or stop description).
    pub text: Option<String>,
}

impl EventRow {
    /// An event with no value, payload or text (id 0 until it is added).
    pub fn new(vm: VmId, icount: u64, vtime_ns: u64, kind: EventKind) -> EventRow {
        EventRow {
            id: 0,
            vm,
            icount,
            vtime_ns,
            kind,
            value: None,
            payload: None,
            text: None,
        }
    }

    /// The same event with `value` set.
    pub fn with_value(mut self, value: u64) -> EventRow {
        self.value = Some(value);
        self
    }

    /// The same event with `text` set.
    pub fn with_text(mut self, text: impl Into<String>) -> EventRow {
        self.text = Some(text.into());
        self
    }

    /// The same event with `payload` set.
    pub fn with_payload(mut self, payload: impl Into<Vec<u8>>) -> EventRow {
        self.payload = Some(payload.into());
        self
    }

    /// Where this event stands in the cluster order; queries that take a
    /// [`Position`] treat this event itself as already passed.
    pub fn position(&self) -> Position {
        Position::of_event(self)
    }

    /// The position of the instruction (or boundary) this event belongs to.
    pub fn pos(&self) -> Pos {
        Pos::new(self.vm, self.icount, self.vtime_ns)
    }

    /// Whether this event has happened when the cluster cursor is `cursor`
    /// (the rule is [`Pos::has_happened`]).
    pub fn happened_at(&self, cursor: Pos) -> bool {
        cursor.has_happened(self.pos(), self.kind)
    }
}

/// What became of a frame on its way to one destination; stored as text in `frames.fate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameFate {
    /// Handed to the receiver's NIC (`recv_icount`/`recv_vtime_ns` say when).
    Received,
    /// Lost to a network partition.
    Partitioned,
    /// Lost to a drop fault.
    Dropped,
    /// Lost because the receiver's NIC had no room.
    Overflow,
    /// Lost because the receiver had stopped for good.
    ReceiverStopped,
    /// Still travelling when the recording ended (or was last flushed).
    InFlight,
}

impl FrameFate {
    /// Every fate, in the order of the enum.
    pub const ALL: [FrameFate; 6] = [
        FrameFate::Received,
        FrameFate::Partitioned,
        FrameFate::Dropped,
        FrameFate::Overflow,
        FrameFate::ReceiverStopped,
        FrameFate::InFlight,
    ];

    /// The text stored in `frames.fate` (`"received"`, `"in_flight"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FrameFate::Received => "received",
            FrameFate::Partitioned => "partitioned",
            FrameFate::Dropped => "dropped",
            FrameFate::Overflow => "overflow",
            FrameFate::ReceiverStopped => "receiver_stopped",
            FrameFate::InFlight => "in_flight",
        }
    }

    /// The fate whose [`as_str`](Self::as_str) is `s`, if any.
    pub fn parse(s: &str) -> Option<FrameFate> {
        FrameFate::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FrameFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FrameFate {
    type Err = UnknownName;

    /// Parses the text of `frames.fate`; the error names the unknown text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FrameFate::parse(s).ok_or_else(|| UnknownName {
            what: "frame fate",
            name: s.to_string(),
        })
    }
}

/// One row of `frames`: one frame from one sender to one receiver, the causal
/// edge the debugger follows. A flooded frame has one row per destination,
/// all with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRow {
    /// Sequence number in send order (shared by every destination of one send).
    pub id: u64,
    /// Sending VM.
    pub src: VmId,
    /// Receiving VM.
    pub dst: VmId,
    /// Length in bytes.
    pub len: u32,
    /// Sender's icount at the send.
    pub sent_icount: u64,
    /// Sender's virtual time at the send.
    pub sent_vtime_ns: u64,
    /// Virtual time at which it reaches the receiver.
    pub arrival_ns: u64,
    /// Receiver's icount at delivery, if it was delivered.
    pub recv_icount: Option<u64>,
    /// Receiver's virtual time at delivery, if it was delivered.
    pub recv_vtime_ns: Option<u64>,
    /// What became of it.
    pub fate: FrameFate,
    /// The frame's bytes, if the recording keeps them.
    pub payload: Option<Vec<u8>>,
}

/// One row of `checkpoints`: a VM state saved in the page store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// The VM.
    pub vm: VmId,
    /// Its icount at the checkpoint.
    pub icount: u64,
    /// Its virtual time at the checkpoint.
    pub vtime_ns: u64,
    /// The state hash at the checkpoint (for verification).
    pub state_hash: String,
    /// Name of the checkpoint's manifest in the page store (opaque here).
    pub manifest: String,
    /// blake3 of the manifest file, checked whenever it is read (`None` for
    /// checkpoints recorded before schema 2).
    pub file_hash: Option<String>,
}

/// One row of `vms`: a VM of the cluster and how its recording ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmRow {
    /// The VM's id (its position in the cluster configuration).
    pub id: VmId,
    /// Its name from the configuration (unique).
    pub name: String,
    /// Path of its image inside the trace directory.
    pub image: String,
    /// Hash of the image.
    pub image_hash: String,
    /// Guest memory size in bytes.
    pub mem_bytes: u64,
    /// Kernel command line.
    pub cmdline: String,
    /// Virtual instructions per microsecond.
    pub instr_per_us: u64,
    /// MAC address of its NIC, as text.
    pub mac: String,
    /// Its icount when the recording ended (`None` while recording).
    pub final_icount: Option<u64>,
    /// Its virtual time when the recording ended.
    pub final_vtime_ns: Option<u64>,
    /// Why it stopped, as text.
    pub stop: Option<String>,
}

/// One row of `bookmarks`: a named position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarkRow {
    /// Row id (assigned by SQLite).
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Free text (empty if none).
    pub note: String,
    /// The VM the position is on.
    pub vm: VmId,
    /// Its icount.
    pub icount: u64,
    /// Its virtual time.
    pub vtime_ns: u64,
    /// When the bookmark was made (UTC, RFC 3339).
    pub created: String,
}

/// Which events a query returns: `None` means no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these VMs.
    pub vms: Option<Vec<VmId>>,
    /// Only these kinds.
    pub kinds: Option<Vec<EventKind>>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> EventFilter {
        EventFilter::default()
    }

    /// The same filter restricted to these VMs.
    pub fn with_vms(mut self, vms: impl Into<Vec<VmId>>) -> EventFilter {
        self.vms = Some(vms.into());
        self
    }

    /// The same filter restricted to these kinds.
    pub fn with_kinds(mut self, kinds: impl Into<Vec<EventKind>>) -> EventFilter {
        self.kinds = Some(kinds.into());
        self
    }

    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &EventRow) -> bool {
        self.vms.as_ref().is_none_or(|v| v.contains(&event.vm))
            && self.kinds.as_ref().is_none_or(|k| k.contains(&event.kind))
    }
}

/// Row counts of the main tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Rows of `vms`.
    pub vms: u64,
    /// Rows of `events`.
    pub events: u64,
    /// Rows of `frames` (one per frame and destination).
    pub frames: u64,
    /// Rows of `checkpoints`.
    pub checkpoints: u64,
    /// Rows of `bookmarks`.
    pub bookmarks: u64,
}

/// One value of a `vmrr sql` result, shown by its `Display`.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL, shown as `NULL`.
    Null,
    /// An integer, shown in decimal.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text, shown as is.
    Text(String),
    /// A blob, shown as `x'…'` with its first 16 bytes in hex and its length.
    Blob(Vec<u8>),
}

/// Bytes of a blob shown by [`SqlValue`]'s `Display`.
const BLOB_SHOWN: usize = 16;

impl fmt::Display for SqlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlValue::Null => f.write_str("NULL"),
            SqlValue::Integer(i) => write!(f, "{i}"),
            SqlValue::Real(r) => write!(f, "{r}"),
            SqlValue::Text(t) => f.write_str(t),
            SqlValue::Blob(b) => {
                f.write_str("x'")?;
                for byte in b.iter().take(BLOB_SHOWN) {
                    write!(f, "{byte:02x}")?;
                }
                if b.len() > BLOB_SHOWN {
                    write!(f, "…' ({} bytes)", b.len())
                } else {
                    f.write_str("'")
                }
            }
        }
    }
}

impl From<rusqlite::types::ValueRef<'_>> for SqlValue {
    fn from(v: rusqlite::types::ValueRef<'_>) -> SqlValue {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(r) => SqlValue::Real(r),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }
}

/// The result of [`Index::query_read_only_limited`](crate::Index::query_read_only_limited).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
    /// Whether more rows were left out because of the row limit.
    pub truncated: bool,
}
