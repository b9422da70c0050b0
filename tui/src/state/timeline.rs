//! The timeline's state: which window of virtual time is shown, what is in
//! it, and how zooming and scrolling move the window.

use vmrr_index::EventKind;

/// Smallest timeline window, in ns.
pub const MIN_SPAN: u64 = 1_000;

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
    /// The entry of a call the calls view lists.
    Call,
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
            MarkKind::Call => 'ƒ',
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
            MarkKind::Call => "call",
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

/// What a band on a lane stands for: a fault in force over an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandKind {
    /// The VM is cut off from the others.
    Partition,
    /// Frames on a link are dropped (some or all).
    Drop,
    /// Frames on a link are delayed.
    Delay,
}

impl BandKind {
    /// Its name in the legend.
    pub fn name(self) -> &'static str {
        match self {
            BandKind::Partition => "partition",
            BandKind::Drop => "drop",
            BandKind::Delay => "delay",
        }
    }
}

/// A fault drawn as a band over the lane of a VM it affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// The lane.
    pub vm: usize,
    /// From (inclusive).
    pub from: u64,
    /// To (exclusive).
    pub to: u64,
    /// What.
    pub kind: BandKind,
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
    /// Faults in force, as bands on the lanes they affect (the whole trace).
    pub bands: Vec<Band>,
    /// The frame of the selected event, drawn highlighted.
    pub selected_frame: Option<u64>,
    /// Whether interrupts are drawn (off by default: a lane's baseline
    /// would be a row of timer ticks).
    pub show_interrupts: bool,
}

impl TimelineState {
    /// The end of the window.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.span)
    }

    /// Shows the whole trace, `0..end_vtime`.
    pub fn show_all(&mut self, end_vtime: u64) {
        self.start = 0;
        self.span = end_vtime.max(MIN_SPAN);
    }

    /// Moves the window, if needed, so that time `t` is inside it (centred).
    pub fn keep_in_view(&mut self, t: u64) {
        // The end of the trace is in a window that ends there.
        if t < self.start || t > self.end() {
            self.start = t.saturating_sub(self.span / 2);
        }
    }

    /// Multiplies the span by `num / den`, keeping `center` at the same
    /// place on screen; the span stays between [`MIN_SPAN`] and twice the trace.
    pub fn zoom(&mut self, num: u64, den: u64, center: u64, end_vtime: u64) {
        let max_span = end_vtime.max(MIN_SPAN) * 2;
        let span = (self.span.saturating_mul(num) / den.max(1)).clamp(MIN_SPAN, max_span);
        let frac = if self.span == 0 {
            0.5
        } else {
            center.saturating_sub(self.start) as f64 / self.span as f64
        };
        self.start = center.saturating_sub((span as f64 * frac.clamp(0.0, 1.0)) as u64);
        self.span = span;
    }

    /// Scrolls a quarter of the window forward or back (not past the end).
    pub fn scroll(&mut self, forward: bool, end_vtime: u64) {
        let step = (self.span / 4).max(1);
        self.start = if forward {
            self.start.saturating_add(step).min(end_vtime)
        } else {
            self.start.saturating_sub(step)
        };
    }
}
