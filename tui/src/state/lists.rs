//! The two lists of the lower left pane, events and bookmarks: their rows
//! and how the selection moves. Which event is "at the cursor" is decided
//! by the index's rule (`EventRow::happened_at`) and the Session's
//! `cursor_event`, never here.

use vmrr_index::{BookmarkRow, EventKind, EventRow, Pos};

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

    /// The selected event's id.
    pub fn selected_id(&self) -> Option<u64> {
        self.selected_event().map(|e| e.id)
    }

    /// The selected event if it is a frame's send or receipt.
    pub fn selected_frame_event(&self) -> Option<&EventRow> {
        self.selected_event()
            .filter(|e| matches!(e.kind, EventKind::FrameSent | EventKind::FrameRecv))
    }

    /// Replaces the rows (after a filter changed or the window moved).
    pub fn set_lines(&mut self, lines: Vec<EventLine>, truncated: bool) {
        self.lines = lines;
        self.truncated = truncated;
        self.apply_search();
    }

    /// Recomputes which rows match the search; the selection is cleared.
    pub fn apply_search(&mut self) {
        let needle = self.search.to_lowercase();
        self.visible = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| needle.is_empty() || l.haystack.contains(&needle))
            .map(|(i, _)| i)
            .collect();
        self.selected = None;
    }

    /// Moves the selection by `delta` rows, within the list.
    pub fn move_selection(&mut self, delta: i64) {
        let len = self.visible.len();
        if len == 0 {
            return;
        }
        let cur = self.selected.unwrap_or(0) as i64;
        self.selected = Some(cur.saturating_add(delta).clamp(0, len as i64 - 1) as usize);
    }

    /// Selects event `id` if it is listed; false if it is not.
    pub fn select_id(&mut self, id: u64) -> bool {
        let found = self
            .visible
            .iter()
            .position(|&i| self.lines.get(i).is_some_and(|l| l.event.id == id));
        if found.is_some() {
            self.selected = found;
        }
        found.is_some()
    }

    /// How many listed rows have happened at `cursor` (they come first: the
    /// list is in the cluster order).
    fn happened_count(&self, cursor: Pos) -> usize {
        self.visible
            .partition_point(|&i| self.lines.get(i).is_some_and(|l| l.event.happened_at(cursor)))
    }

    /// Selects the event the cursor stands on (`cursor_event`, as the
    /// Session reports it), else the last listed event that has happened.
    pub fn select_at_cursor(&mut self, cursor: Pos, cursor_event: Option<u64>) {
        if cursor_event.is_some_and(|id| self.select_id(id)) {
            return;
        }
        let n = self.happened_count(cursor);
        self.selected = (!self.visible.is_empty()).then(|| n.saturating_sub(1));
    }

    /// Selects the first listed event that has not happened at `cursor`
    /// (the last one if all have): where an incremental search starts.
    pub fn select_first_ahead(&mut self, cursor: Pos) {
        let n = self.happened_count(cursor);
        self.selected = (!self.visible.is_empty()).then(|| n.min(self.visible.len() - 1));
    }

    /// After the rows changed: the same event if it is still listed, else
    /// the one at the cursor.
    pub fn reselect(&mut self, previous: Option<u64>, cursor: Pos, cursor_event: Option<u64>) {
        if !previous.is_some_and(|id| self.select_id(id)) {
            self.select_at_cursor(cursor, cursor_event);
        }
    }

    /// The id of the listed event `delta` rows from the selection (for `n`/`p`
    /// through search results).
    pub fn neighbour_id(&self, forward: bool) -> Option<u64> {
        let target = match self.selected {
            Some(i) if forward => self.visible.get(i + 1),
            Some(i) => i.checked_sub(1).and_then(|j| self.visible.get(j)),
            None => self.visible.first(),
        };
        target.and_then(|&i| self.lines.get(i)).map(|l| l.event.id)
    }

    /// Whether the rows are a window that does not include time `t`.
    pub fn window_misses(&self, t: u64) -> bool {
        self.truncated
            && match (self.lines.first(), self.lines.last()) {
                (Some(a), Some(b)) => t < a.event.vtime_ns || t > b.event.vtime_ns,
                _ => true,
            }
    }

    /// Cycles the VM filter through every VM and back to all of them.
    pub fn cycle_vm_filter(&mut self, vms: usize) {
        self.vm_filter = match self.vm_filter {
            None if vms > 0 => Some(0),
            Some(v) if v + 1 < vms => Some(v + 1),
            _ => None,
        };
    }

    /// Steps the kind filter forward or back through [`KIND_PRESETS`].
    pub fn cycle_preset(&mut self, forward: bool) {
        let n = KIND_PRESETS.len();
        let step = if forward { 1 } else { n - 1 };
        self.preset = (self.preset + step) % n;
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

impl BookmarksState {
    /// The selected bookmark's name.
    pub fn selected_name(&self) -> Option<String> {
        self.selected
            .and_then(|i| self.rows.get(i))
            .map(|r| r.name.clone())
    }

    /// Moves the selection by `delta` rows, within the list.
    pub fn move_selection(&mut self, delta: i64) {
        let len = self.rows.len();
        if len == 0 {
            return;
        }
        let cur = self.selected.unwrap_or(0) as i64;
        self.selected = Some(cur.saturating_add(delta).clamp(0, len as i64 - 1) as usize);
    }

    /// Replaces the rows (sorted by position), keeping the selected
    /// bookmark selected, else selecting the last.
    pub fn set_rows(&mut self, mut rows: Vec<BookmarkRow>) {
        rows.sort_by_key(|b| (b.vtime_ns, b.vm, b.icount, b.id));
        let keep = self.selected.and_then(|i| self.rows.get(i)).map(|b| b.id);
        self.selected = match keep.and_then(|id| rows.iter().position(|b| b.id == id)) {
            Some(i) => Some(i),
            None if rows.is_empty() => None,
            None => Some(rows.len() - 1),
        };
        self.rows = rows;
    }
}
