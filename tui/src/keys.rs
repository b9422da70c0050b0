//! The key map: one table of (keys, action, help text) that drives both the
//! key handling ([`action_for`], used by [`App::on_key`](crate::app::App::on_key))
//! and the help overlay (`?`). A key that is not in [`KEYMAP`] does nothing,
//! and every key the overlay lists does what it says.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does. The [`App`](crate::app::App) carries it out; moves of
/// the cursor become [`Move`](vmrr_debugger::session::Move)s for the Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Quit.
    Quit,
    /// Show the help overlay.
    Help,
    /// Cancel a running search, analysis or fork, clear the search, close
    /// the calls or origin list, or clear the message.
    Escape,
    /// Step the focus VM back.
    StepBack,
    /// Step the focus VM forward.
    StepForward,
    /// Step the cluster back.
    ClusterBack,
    /// Step the cluster forward.
    ClusterForward,
    /// The previous event of the list.
    PrevEvent,
    /// The next event of the list.
    NextEvent,
    /// Follow the selected frame to its other end.
    Follow,
    /// Follow the selected TCP segment to its retransmission.
    FollowRetransmission,
    /// Follow the selected TCP segment back to its first copy.
    FollowOriginal,
    /// Follow the selected TCP segment to the ACK that covers it.
    FollowAck,
    /// Continue (focus VM).
    Continue,
    /// Reverse-continue (focus VM).
    ReverseContinue,
    /// Step the focus VM over its source line, calls run through.
    StepOver,
    /// Run the focus VM until its function returns.
    Finish,
    /// Ask for a breakpoint location.
    Breakpoint,
    /// Ask for a watchpoint expression.
    Watchpoint,
    /// Ask for a moment to go to.
    Goto,
    /// Ask for a bookmark name.
    AddBookmark,
    /// Show bookmarks / events.
    ToggleList,
    /// Go to the selected item.
    Enter,
    /// Rename the selected bookmark.
    RenameBookmark,
    /// Delete the selected bookmark.
    DeleteBookmark,
    /// The next focus VM.
    FocusNext,
    /// The previous focus VM.
    FocusPrev,
    /// The focus VM named by the digit typed.
    FocusDigit,
    /// Selection up one row.
    Up,
    /// Selection down one row.
    Down,
    /// Selection up a page.
    PageUp,
    /// Selection down a page.
    PageDown,
    /// First row.
    Home,
    /// Last row.
    End,
    /// Incremental search of the events.
    Search,
    /// Cycle the events' VM filter.
    FilterVm,
    /// Next kind filter.
    KindNext,
    /// Previous kind filter.
    KindPrev,
    /// Zoom the timeline in.
    ZoomIn,
    /// Zoom the timeline out.
    ZoomOut,
    /// Show the whole trace on the timeline.
    ZoomAll,
    /// Scroll the timeline back.
    ScrollBack,
    /// Scroll the timeline forward.
    ScrollForward,
    /// Show or hide interrupts on the timeline.
    ToggleInterrupts,
    /// Ask for the memory view's address.
    Memory,
    /// Cycle the side pane: console, frame payload, memory.
    ToggleSide,
    /// Cycle the code pane: source, mixed, disassembly.
    ToggleCode,
    /// Ask for a function and list its calls in every VM.
    Calls,
    /// Ask for a value of the focus VM and trace its origin.
    Origin,
    /// Fork the recording at the cursor with a change, into a new trace.
    Fork,
    /// Go to where the focus VM's run first differs from the trace this
    /// one is opened beside (`--beside`).
    Divergence,
}

/// A key as the table names it: a code and whether Shift must be held (for
/// keys other than characters, whose case already says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Whether Shift is part of it (arrows only).
    pub shift: bool,
}

const fn c(ch: char) -> Key {
    Key {
        code: KeyCode::Char(ch),
        shift: false,
    }
}

const fn k(code: KeyCode) -> Key {
    Key { code, shift: false }
}

const fn sk(code: KeyCode) -> Key {
    Key { code, shift: true }
}

/// One row of the table: a heading, or keys bound to an action.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys, as the table matches them (empty for a heading).
    pub keys: &'static [Key],
    /// The keys as written in the help (`← h / → l`); for a heading, empty.
    pub label: &'static str,
    /// What the keys do (`None` for a heading).
    pub action: Option<Action>,
    /// What they do, in words (the heading's text for a heading).
    pub help: &'static str,
    /// The same in at most 24 characters, for two columns on a small screen.
    pub short: &'static str,
}

const fn heading(text: &'static str) -> Binding {
    Binding {
        keys: &[],
        label: "",
        action: None,
        help: text,
        short: text,
    }
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    help: &'static str,
    short: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        action: Some(action),
        help,
        short,
    }
}

/// Some actions share one help row with another (`← h` and `→ l`): the
/// second of a pair has an empty label and is not listed on its own.
const fn pair(keys: &'static [Key], action: Action) -> Binding {
    Binding {
        keys,
        label: "",
        action: Some(action),
        help: "",
        short: "",
    }
}

/// The key map, in groups, each led by a heading.
pub const KEYMAP: &[Binding] = &[
    heading("Moving in time"),
    bind(
        &[k(KeyCode::Left), c('h')],
        "← h / → l",
        Action::StepBack,
        "step the focus VM back / forward",
        "step focus VM back/fwd",
    ),
    pair(&[k(KeyCode::Right), c('l')], Action::StepForward),
    bind(
        &[c('H'), sk(KeyCode::Left)],
        "H / L",
        Action::ClusterBack,
        "step the cluster back / forward",
        "step cluster back/fwd",
    ),
    pair(&[c('L'), sk(KeyCode::Right)], Action::ClusterForward),
    bind(
        &[c('p')],
        "p / n",
        Action::PrevEvent,
        "previous / next event of the list",
        "prev/next listed event",
    ),
    pair(&[c('n')], Action::NextEvent),
    bind(
        &[c('f')],
        "f",
        Action::Follow,
        "follow the selected frame to its receipt or its send",
        "follow selected frame",
    ),
    bind(
        &[c('R')],
        "R / O / A",
        Action::FollowRetransmission,
        "TCP segment: to its retransmission / its first copy / the ACK covering it",
        "TCP: rexmit/first/ACK",
    ),
    pair(&[c('O')], Action::FollowOriginal),
    pair(&[c('A')], Action::FollowAck),
    bind(
        &[c('c')],
        "c / C",
        Action::Continue,
        "continue / reverse-continue (focus VM)",
        "continue / reverse",
    ),
    pair(&[c('C')], Action::ReverseContinue),
    bind(
        &[c('o')],
        "o / u",
        Action::StepOver,
        "step over the source line (calls run through) / finish: run to the caller",
        "step over / finish",
    ),
    pair(&[c('u')], Action::Finish),
    bind(
        &[c('b')],
        "b",
        Action::Breakpoint,
        "breakpoint at file:line, function or address (again: remove)",
        "breakpoint (toggle)",
    ),
    bind(
        &[c('w')],
        "w",
        Action::Watchpoint,
        "watchpoint on a variable's or an address's bytes (again: remove)",
        "watchpoint (toggle)",
    ),
    bind(
        &[c('g')],
        "g",
        Action::Goto,
        "go to a time (12.5ms), icount, vm:icount, #event, bookmark",
        "go to time/icount/#ev",
    ),
    bind(
        &[k(KeyCode::Esc)],
        "Esc",
        Action::Escape,
        "cancel a running search, analysis or fork / clear the search / close calls, origin",
        "cancel / clear / close",
    ),
    heading("Bookmarks"),
    bind(
        &[c('m')],
        "m",
        Action::AddBookmark,
        "bookmark the cursor",
        "bookmark the cursor",
    ),
    bind(
        &[c('B'), c('\'')],
        "B",
        Action::ToggleList,
        "show bookmarks / events",
        "bookmarks ⇄ events",
    ),
    bind(
        &[k(KeyCode::Enter)],
        "Enter",
        Action::Enter,
        "go to the selected bookmark, event, call or origin link",
        "go to selected item",
    ),
    bind(
        &[c('r')],
        "r / d",
        Action::RenameBookmark,
        "rename / delete the selected bookmark",
        "rename/delete bookmark",
    ),
    pair(&[c('d'), k(KeyCode::Delete)], Action::DeleteBookmark),
    heading("Asking the recording"),
    bind(
        &[c('a')],
        "a",
        Action::Calls,
        "every call of a function (then VMs, a window A..B): arguments, return (Enter: its entry)",
        "calls of a function",
    ),
    bind(
        &[c('Y')],
        "Y",
        Action::Origin,
        "origin of a value: the memory view's target, a register or a variable",
        "where a value came from",
    ),
    bind(
        &[c('F')],
        "F",
        Action::Fork,
        "fork at the cursor with a change (drop frame N...) into a new trace",
        "fork here, changed",
    ),
    bind(
        &[c('D')],
        "D",
        Action::Divergence,
        "opened --beside: go to where the focus VM first differs (≠ on its lane)",
        "to focus VM's divergence",
    ),
    heading("Views"),
    bind(
        &[k(KeyCode::Tab)],
        "Tab S-Tab 1-9",
        Action::FocusNext,
        "switch the focus VM",
        "switch the focus VM",
    ),
    pair(&[k(KeyCode::BackTab)], Action::FocusPrev),
    pair(
        &[
            c('1'),
            c('2'),
            c('3'),
            c('4'),
            c('5'),
            c('6'),
            c('7'),
            c('8'),
            c('9'),
        ],
        Action::FocusDigit,
    ),
    bind(
        &[k(KeyCode::Up)],
        "↑ ↓ PgUp PgDn",
        Action::Up,
        "select in the list",
        "select in the list",
    ),
    pair(&[k(KeyCode::Down)], Action::Down),
    pair(&[k(KeyCode::PageUp)], Action::PageUp),
    pair(&[k(KeyCode::PageDown)], Action::PageDown),
    pair(&[k(KeyCode::Home)], Action::Home),
    pair(&[k(KeyCode::End)], Action::End),
    bind(
        &[c('/')],
        "/",
        Action::Search,
        "search the events (incremental)",
        "search events (live)",
    ),
    bind(
        &[c('v')],
        "v / k K",
        Action::FilterVm,
        "filter events by VM / by kind",
        "filter by VM / kind",
    ),
    pair(&[c('k')], Action::KindNext),
    pair(&[c('K')], Action::KindPrev),
    bind(
        &[c('s')],
        "s",
        Action::ToggleCode,
        "code pane: source / mixed / disassembly",
        "source/mixed/disasm",
    ),
    bind(
        &[c('+'), c('=')],
        "+ / - / z",
        Action::ZoomIn,
        "zoom in / out / whole trace",
        "zoom in/out/whole",
    ),
    pair(&[c('-'), c('_')], Action::ZoomOut),
    pair(&[c('z')], Action::ZoomAll),
    bind(
        &[c('<'), c(',')],
        "< / >",
        Action::ScrollBack,
        "scroll the timeline",
        "scroll the timeline",
    ),
    pair(&[c('>'), c('.')], Action::ScrollForward),
    bind(
        &[c('i')],
        "i",
        Action::ToggleInterrupts,
        "show / hide interrupts on the timeline",
        "timeline interrupts",
    ),
    bind(
        &[c('t')],
        "M / t",
        Action::ToggleSide,
        "memory address / console, frame payload or memory",
        "memory at / side pane",
    ),
    pair(&[c('M')], Action::Memory),
    bind(
        &[c('?'), k(KeyCode::F(1))],
        "? / q",
        Action::Help,
        "this help / quit",
        "this help / quit",
    ),
    pair(&[c('q')], Action::Quit),
];

/// The action bound to a key press, if any.
pub fn action_for(key: &KeyEvent) -> Option<Action> {
    let shift = key.modifiers.contains(KeyModifiers::SHIFT);
    KEYMAP.iter().find_map(|b| {
        let hit = b.keys.iter().any(|k| match k.code {
            // A character's case already says whether Shift was held.
            KeyCode::Char(ch) => key.code == KeyCode::Char(ch),
            code => key.code == code && k.shift == shift,
        });
        if hit {
            b.action
        } else {
            None
        }
    })
}

/// The rows the help overlay lists: headings and the first binding of each
/// group of keys (the ones with a label).
pub fn help_rows() -> impl Iterator<Item = &'static Binding> {
    KEYMAP
        .iter()
        .filter(|b| b.action.is_none() || !b.label.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let keys: Vec<Key> = KEYMAP.iter().flat_map(|b| b.keys.iter().copied()).collect();
        for (i, a) in keys.iter().enumerate() {
            assert!(!keys[i + 1..].contains(a), "{a:?} is bound twice");
        }
    }

    #[test]
    fn every_action_is_reachable_and_listed() {
        let press = |code| KeyEvent::new(code, KeyModifiers::NONE);
        assert_eq!(
            action_for(&press(KeyCode::Char('L'))),
            Some(Action::ClusterForward)
        );
        assert_eq!(action_for(&press(KeyCode::Left)), Some(Action::StepBack));
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Left, KeyModifiers::SHIFT)),
            Some(Action::ClusterBack)
        );
        assert_eq!(action_for(&press(KeyCode::Char('7'))), Some(Action::FocusDigit));
        assert_eq!(action_for(&press(KeyCode::Char('a'))), Some(Action::Calls));
        assert_eq!(action_for(&press(KeyCode::Char('Y'))), Some(Action::Origin));
        assert_eq!(action_for(&press(KeyCode::Char('F'))), Some(Action::Fork));
        assert_eq!(action_for(&press(KeyCode::Char('D'))), Some(Action::Divergence));
        assert_eq!(action_for(&press(KeyCode::Char('o'))), Some(Action::StepOver));
        assert_eq!(action_for(&press(KeyCode::Char('u'))), Some(Action::Finish));
        // Every binding without a help row of its own follows one that has one.
        let mut listed = false;
        for b in KEYMAP {
            if b.action.is_none() {
                listed = false;
            } else if !b.label.is_empty() {
                listed = true;
            } else {
                assert!(listed, "{:?} has no help row", b.action);
            }
        }
    }
}
