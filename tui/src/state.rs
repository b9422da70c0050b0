//! Everything the screen shows, as plain data: [`AppState`].
//!
//! The state is filled by the [`App`](crate::app::App) from two sources: a
//! [`Snapshot`] of the focus VM built by the worker thread while it holds the
//! session, and rows read from the trace's index by the UI thread itself.
//! Rendering ([`crate::render::render`]) only reads it, so the screen keeps
//! drawing (with progress) while a long search holds the session.

use vmrr_index::{BookmarkRow, EventKind, EventRow, Pos};

/// Names of the registers in [`Regs::values`], in display order.
pub const REG_NAMES: [&str; 18] = [
    "rip", "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rflags",
];

/// The general registers of a VM, in the order of [`REG_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Regs {
    /// Values, in the order of [`REG_NAMES`].
    pub values: [u64; 18],
}

impl Regs {
    /// From KVM's register block.
    pub fn from_kvm(r: &kvm_bindings::kvm_regs) -> Regs {
        Regs {
            values: [
                r.rip, r.rsp, r.rbp, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15, r.rflags,
            ],
        }
    }

    /// RIP.
    pub fn rip(&self) -> u64 {
        self.values[0]
    }

    /// The value of the register called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<u64> {
        REG_NAMES.iter().position(|n| *n == name).map(|i| self.values[i])
    }
}

/// One line of disassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisasmLine {
    /// Address of the instruction.
    pub addr: u64,
    /// `function+offset`, or empty without symbols.
    pub label: String,
    /// Intel-syntax text.
    pub text: String,
    /// Whether this is the instruction at RIP (the next to run).
    pub current: bool,
    /// Whether a breakpoint of the focus VM is at this address.
    pub breakpoint: bool,
}

/// Where the memory view looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemSource {
    /// At the value of a register (follows it as the cursor moves).
    Register(&'static str),
    /// At a fixed address (with the text the user typed, for the title).
    Fixed(u64, String),
}

impl Default for MemSource {
    fn default() -> Self {
        MemSource::Register("rsp")
    }
}

/// A few rows of guest memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryView {
    /// First address shown.
    pub addr: u64,
    /// What the user asked for (`rsp`, `store`, `0x1000`).
    pub label: String,
    /// The bytes; `None` where the address is not mapped.
    pub bytes: Vec<Option<u8>>,
}

/// The focus VM at the cursor, built by the worker while it holds the session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The session's generation when this was taken.
    pub generation: u64,
    /// The cluster cursor (what has happened is decided against it).
    pub cursor: Pos,
    /// The event the cursor stands on, if the last move went to one.
    pub cursor_event: Option<u64>,
    /// The cluster cursor's time.
    pub cursor_vtime: u64,
    /// The focus VM.
    pub focus: usize,
    /// The focus VM's icount.
    pub icount: u64,
    /// The focus VM's virtual time.
    pub vtime: u64,
    /// Its registers (None if the VM could not be materialised).
    pub regs: Option<Regs>,
    /// Disassembly around RIP.
    pub disasm: Vec<DisasmLine>,
    /// The memory view.
    pub memory: MemoryView,
    /// Why the VM could not be shown, if it could not.
    pub error: Option<String>,
}

/// A VM of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInfo {
    /// Its name.
    pub name: String,
    /// Last replayable icount.
    pub end_icount: u64,
    /// Virtual time when its recording ended.
    pub end_vtime: u64,
}

/// What a timeline glyph stands for, highest priority last (one glyph per
/// cell: the most telling one wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    /// An interrupt.
    Interrupt,
    /// Console output.
    Console,
    /// A frame received.
    FrameRecv,
    /// A frame sent.
    FrameSent,
    /// A guest marker.
    Marker,
    /// The VM stopped or exited.
    Exit,
    /// A fault (partition, heal, drop...).
    Fault,
    /// A bookmark.
    Bookmark,
}

impl MarkKind {
    /// The timeline kind of an index event (None: not drawn).
    pub fn of(kind: EventKind) -> Option<MarkKind> {
        Some(match kind {
            EventKind::Interrupt => MarkKind::Interrupt,
            EventKind::Console => MarkKind::Console,
            EventKind::FrameRecv => MarkKind::FrameRecv,
            EventKind::FrameSent => MarkKind::FrameSent,
            EventKind::Marker => MarkKind::Marker,
            EventKind::Exit | EventKind::Stop => MarkKind::Exit,
            EventKind::Fault => MarkKind::Fault,
            _ => return None,
        })
    }

    /// Its glyph.
    pub fn glyph(self) -> char {
        match self {
            MarkKind::Interrupt => '·',
            MarkKind::Console => '≡',
            MarkKind::FrameRecv => '▼',
            MarkKind::FrameSent => '▲',
            MarkKind::Marker => '◆',
            MarkKind::Exit => '■',
            MarkKind::Fault => 'X',
            MarkKind::Bookmark => '★',
        }
    }

    /// Its name in the legend.
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Interrupt => "irq",
            MarkKind::Console => "console",
            MarkKind::FrameRecv => "recv",
            MarkKind::FrameSent => "sent",
            MarkKind::Marker => "marker",
            MarkKind::Exit => "exit",
            MarkKind::Fault => "fault",
            MarkKind::Bookmark => "bookmark",
        }
    }
}

/// A glyph on a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The lane (VM).
    pub vm: usize,
    /// When.
    pub vtime: u64,
    /// What.
    pub kind: MarkKind,
}

/// A frame drawn from the sender's lane to the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Frame id.
    pub id: u64,
    /// Sending VM.
    pub src: usize,
    /// Receiving VM.
    pub dst: usize,
    /// Sent at.
    pub sent: u64,
    /// Received at (or would have arrived at, when lost).
    pub recv: u64,
    /// Whether it was lost (partition, drop...).
    pub lost: bool,
}

/// The timeline: which window of virtual time is shown, and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineState {
    /// Start of the window.
    pub start: u64,
    /// Its length (≥ 1).
    pub span: u64,
    /// Glyphs in the window.
    pub marks: Vec<Mark>,
    /// Frames that cross the window.
    pub links: Vec<Link>,
    /// The frame of the selected event, drawn highlighted.
    pub selected_frame: Option<u64>,
}

/// A row of the events list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    /// The event.
    pub event: EventRow,
    /// What it is about (see `vmrr_debugger::describe::event_detail`).
    pub detail: String,
    /// Lower-case text the search matches against.
    pub haystack: String,
}

/// The kinds a filter preset shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindPreset {
    /// Its name in the title.
    pub name: &'static str,
    /// Its kinds.
    pub kinds: &'static [EventKind],
}

/// The kind filters `k` cycles through; the first is the default.
pub const KIND_PRESETS: [KindPreset; 6] = [
    KindPreset {
        name: "main",
        kinds: &[
            EventKind::Console,
            EventKind::FrameSent,
            EventKind::FrameRecv,
            EventKind::Marker,
            EventKind::Fault,
            EventKind::Exit,
            EventKind::Stop,
        ],
    },
    KindPreset {
        name: "frames",
        kinds: &[EventKind::FrameSent, EventKind::FrameRecv],
    },
    KindPreset {
        name: "markers",
        kinds: &[EventKind::Marker],
    },
    KindPreset {
        name: "console",
        kinds: &[EventKind::Console],
    },
    KindPreset {
        name: "irq+idle",
        kinds: &[EventKind::Interrupt, EventKind::Halt, EventKind::Wake],
    },
    KindPreset {
        name: "all",
        kinds: &EventKind::ALL,
    },
];

/// The events list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventsState {
    /// Events passing the VM and kind filters (all of them, or a window
    /// around the cursor in a very large trace).
    pub lines: Vec<EventLine>,
    /// Indices into `lines` of those matching the search (all without one).
    pub visible: Vec<usize>,
    /// Selected row (index into `visible`).
    pub selected: Option<usize>,
    /// Only this VM (None: all).
    pub vm_filter: Option<usize>,
    /// Index into [`KIND_PRESETS`].
    pub preset: usize,
    /// The incremental search text (empty: none).
    pub search: String,
    /// Whether `lines` is a window of a larger set.
    pub truncated: bool,
}

impl EventsState {
    /// The selected event.
    pub fn selected_event(&self) -> Option<&EventRow> {
        let i = *self.visible.get(self.selected?)?;
        self.lines.get(i).map(|l| &l.event)
    }
}

/// The bookmarks list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookmarksState {
    /// All bookmarks, by position.
    pub rows: Vec<BookmarkRow>,
    /// Selected row.
    pub selected: Option<usize>,
}

/// Which list the lower left pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListPane {
    /// The events list.
    #[default]
    Events,
    /// The bookmarks list.
    Bookmarks,
}

/// Which view the lower right pane shows when the screen is too narrow
/// for memory beside the registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SidePane {
    /// The focus VM's console.
    #[default]
    Console,
    /// The memory view.
    Memory,
}

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKind {
    /// A position: time, icount, `vm:icount`, `#event`.
    Goto,
    /// A breakpoint location (toggles).
    Breakpoint,
    /// A new bookmark's name.
    AddBookmark,
    /// A new name for this bookmark.
    RenameBookmark(String),
    /// The memory view's address.
    Memory,
    /// The incremental search of the events list.
    Search,
}

impl PromptKind {
    /// The question shown before the input.
    pub fn question(&self) -> String {
        match self {
            PromptKind::Goto => "go to (122.2ms, icount, vm:icount, #event): ".into(),
            PromptKind::Breakpoint => "breakpoint at (symbol[+off] or 0xaddr): ".into(),
            PromptKind::AddBookmark => "bookmark name: ".into(),
            PromptKind::RenameBookmark(old) => format!("rename '{old}' to: "),
            PromptKind::Memory => "memory at (register, symbol or 0xaddr): ".into(),
            PromptKind::Search => "/".into(),
        }
    }
}

/// A line being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// What for.
    pub kind: PromptKind,
    /// The text so far.
    pub input: String,
}

/// A long operation under way.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    /// What it is ("reverse-continue").
    pub label: String,
    /// Fraction done, when the operation reports it.
    pub progress: Option<f64>,
    /// Operations queued behind it.
    pub queued: usize,
}

/// A line of feedback in the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// A breakpoint as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakpointInfo {
    /// Its VM.
    pub vm: usize,
    /// Its address.
    pub addr: u64,
    /// `function+offset` or the address.
    pub label: String,
}

/// Everything the screen shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppState {
    /// The trace folder's name (not its full path: screens must not depend on where it is).
    pub trace_name: String,
    /// The VMs.
    pub vms: Vec<VmInfo>,
    /// The latest end time of any VM.
    pub end_vtime: u64,
    /// The focus VM at the cursor.
    pub snapshot: Snapshot,
    /// The focus VM's registers before the last move (for highlighting), if it was the same VM.
    pub prev_regs: Option<Regs>,
    /// The timeline.
    pub timeline: TimelineState,
    /// The events list.
    pub events: EventsState,
    /// The bookmarks.
    pub bookmarks: BookmarksState,
    /// The breakpoints.
    pub breakpoints: Vec<BreakpointInfo>,
    /// The focus VM's console output up to the cursor, last lines.
    pub console: Vec<String>,
    /// Whether the console ends in the middle of a line.
    pub console_partial: bool,
    /// The lower left pane.
    pub list_pane: ListPane,
    /// The lower right pane (narrow screens).
    pub side_pane: SidePane,
    /// A line being typed.
    pub prompt: Option<Prompt>,
    /// Feedback of the last action.
    pub message: Option<Message>,
    /// A long operation under way.
    pub busy: Option<Busy>,
    /// Whether the help overlay is shown.
    pub show_help: bool,
    /// The gdb port, when gdb is served too.
    pub gdb_port: Option<u16>,
}

impl AppState {
    /// Name of VM `vm`.
    pub fn vm_name(&self, vm: usize) -> &str {
        self.vms.get(vm).map(|v| v.name.as_str()).unwrap_or("?")
    }
}
