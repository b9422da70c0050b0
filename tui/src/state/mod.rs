//! Everything the screen shows, as plain data: [`AppState`].
//!
//! The state is filled by the [`App`](crate::app::App) from two sources: a
//! [`Snapshot`] of the focus VM built by the worker thread while it holds the
//! session, and rows read from the trace's index by the UI thread itself.
//! Rendering ([`crate::render::render`]) only reads it, so the screen keeps
//! drawing (with progress) while a long search holds the session.

mod analysis;
mod compare;
mod lists;
mod timeline;

pub use analysis::{CallLine, CallsView, OriginLine, OriginView};
pub use compare::{Comparison, Divergence};
pub use lists::{BookmarksState, EventLine, EventsState, KindPreset, KIND_PRESETS};
use std::sync::Arc;
pub use timeline::{Band, BandKind, Link, Mark, MarkKind, TimelineState, MIN_SPAN};

use vmrr_backend::regs::{GeneralRegs, Gpr};
use vmrr_debugger::dwarf::FunctionScope;
use vmrr_index::Pos;

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
    /// The source line that starts at this address (`file:line` and its
    /// text), for the mixed view: set where the line changes.
    pub source: Option<(String, u32, String)>,
}

/// The source file around the focus VM's current line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceView {
    /// The file's name relative to its build directory (`kvstore/kvstore.c`).
    pub file_name: String,
    /// Its lines, made printable (tabs expanded); empty when it could not be read.
    pub lines: Arc<Vec<String>>,
    /// The current line (1-based).
    pub current: u32,
    /// Lines with a breakpoint of the focus VM.
    pub breakpoints: Vec<u32>,
    /// Why the text is missing, if it is.
    pub error: Option<String>,
}

/// Where the memory view looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemSource {
    /// At the value of a register (follows it as the cursor moves).
    Register(Gpr),
    /// At a fixed address (with the text the user typed, for the title).
    Fixed(u64, String),
}

impl Default for MemSource {
    fn default() -> Self {
        MemSource::Register(Gpr::Rsp)
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
    pub regs: Option<GeneralRegs>,
    /// Disassembly around RIP.
    pub disasm: Vec<DisasmLine>,
    /// The memory view.
    pub memory: MemoryView,
    /// The source around the current line (None: no debugging information here).
    pub source: Option<SourceView>,
    /// The call stack, innermost scope first, with arguments and locals.
    pub stack: Vec<FunctionScope>,
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

/// Which list the lower left pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListPane {
    /// The events list.
    #[default]
    Events,
    /// The bookmarks list.
    Bookmarks,
    /// Every call of a function (the last calls asked for).
    Calls,
    /// The origin chain of a value (the last one asked for).
    Origin,
}

impl ListPane {
    /// The list `B` shows next: bookmarks from the events, the events
    /// from anything else.
    pub fn other(self) -> ListPane {
        match self {
            ListPane::Events => ListPane::Bookmarks,
            ListPane::Bookmarks | ListPane::Calls | ListPane::Origin => ListPane::Events,
        }
    }
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
    /// The selected frame's payload.
    Payload,
}

impl SidePane {
    /// The next one in the cycle of `t`.
    pub fn next(self) -> SidePane {
        match self {
            SidePane::Console => SidePane::Payload,
            SidePane::Payload => SidePane::Memory,
            SidePane::Memory => SidePane::Console,
        }
    }
}

/// What the code pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeView {
    /// The C source around the current line (disassembly where there is none).
    #[default]
    Source,
    /// Source lines with the instructions of each.
    Mixed,
    /// Instructions only.
    Disassembly,
}

impl CodeView {
    /// The next one in the cycle of `s`.
    pub fn next(self) -> CodeView {
        match self {
            CodeView::Source => CodeView::Mixed,
            CodeView::Mixed => CodeView::Disassembly,
            CodeView::Disassembly => CodeView::Source,
        }
    }
}

/// A frame's payload as the payload pane shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadView {
    /// The frame.
    pub frame: u64,
    /// Who sent it to whom (`primary → backup2`).
    pub route: String,
    /// Its bytes (empty when the index keeps none).
    pub bytes: Vec<u8>,
    /// Why there are no bytes, if there are none.
    pub missing: Option<String>,
    /// For a TCP segment, its connection's initial sequence numbers (this
    /// direction's, the other's), so the fields read relative as in the
    /// events list.
    pub isns: (Option<u32>, Option<u32>),
}

/// What a prompt asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKind {
    /// A position: time, icount, `vm:icount`, `#event`.
    Goto,
    /// A breakpoint location (toggles).
    Breakpoint,
    /// A watchpoint expression (toggles).
    Watchpoint,
    /// A new bookmark's name.
    AddBookmark,
    /// A new name for this bookmark.
    RenameBookmark(String),
    /// The memory view's address.
    Memory,
    /// The incremental search of the events list.
    Search,
    /// A function whose calls to list.
    Calls,
    /// A register, variable or address of the focus VM whose origin to trace.
    Origin,
    /// The changes a fork at the cursor makes (`;` between several).
    ForkChange,
    /// The fork's output folder, once its changes are given.
    ForkOutput {
        /// The changes, as typed.
        changes: String,
    },
}

impl PromptKind {
    /// The question shown before the input.
    pub fn question(&self) -> String {
        match self {
            PromptKind::Goto => "go to (12.5ms, icount, vm:icount, #event, bookmark): ".into(),
            PromptKind::Breakpoint => "breakpoint at (file.c:line, function, 0xaddr): ".into(),
            PromptKind::Watchpoint => "watch writes to (variable, name[i], 0xaddr[:len]): ".into(),
            PromptKind::AddBookmark => "bookmark name: ".into(),
            PromptKind::RenameBookmark(old) => format!("rename '{old}' to: "),
            PromptKind::Memory => "memory at (register, symbol or 0xaddr): ".into(),
            PromptKind::Search => "/".into(),
            PromptKind::Calls => "calls of (FUNC [VM...] [A..B]): ".into(),
            PromptKind::Origin => "origin of (register, variable, 0xaddr[:len]): ".into(),
            PromptKind::ForkChange => "fork here, change (none: as recorded): ".into(),
            PromptKind::ForkOutput { .. } => "fork into folder: ".into(),
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
    pub prev_regs: Option<GeneralRegs>,
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
    /// The lower right pane.
    pub side_pane: SidePane,
    /// What the code pane shows.
    pub code_view: CodeView,
    /// The selected frame's payload (when a frame event is selected).
    pub payload: Option<PayloadView>,
    /// The last calls asked for (`a`), listed when the list pane is `Calls`.
    pub calls: Option<CallsView>,
    /// The last origin asked for (`Y`), listed when the list pane is `Origin`.
    pub origin: Option<OriginView>,
    /// The trace this one is opened beside (`--beside`), once compared.
    pub compare: Option<Comparison>,
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
