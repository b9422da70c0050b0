//! The key map, as shown by the help overlay (`?`). The handling itself is
//! in [`App::on_key`](crate::app::App::on_key); keep the two in step.

/// One help entry: the keys and what they do.
pub struct KeyHelp {
    /// The keys, as written on the keyboard.
    pub keys: &'static str,
    /// What they do.
    pub action: &'static str,
    /// The same in at most 24 characters, for two columns on a small screen.
    pub short: &'static str,
}

const fn k(keys: &'static str, action: &'static str) -> KeyHelp {
    KeyHelp {
        keys,
        action,
        short: action,
    }
}

const fn ks(keys: &'static str, action: &'static str, short: &'static str) -> KeyHelp {
    KeyHelp { keys, action, short }
}

/// The key map, in groups separated by an entry with empty keys (a heading).
pub const KEYMAP: &[KeyHelp] = &[
    k("", "Moving in time"),
    ks(
        "← h / → l",
        "step the focus VM back / forward",
        "step focus VM back/fwd",
    ),
    ks(
        "H / L",
        "step the cluster back / forward",
        "step cluster back/fwd",
    ),
    ks(
        "p / n",
        "previous / next event of the list",
        "prev/next listed event",
    ),
    ks(
        "f",
        "follow the selected frame to its receipt or its send",
        "follow selected frame",
    ),
    ks(
        "c / C",
        "continue / reverse-continue (focus VM)",
        "continue / reverse",
    ),
    ks(
        "b",
        "breakpoint at a symbol or address (again: remove)",
        "breakpoint (toggle)",
    ),
    ks(
        "g",
        "go to a time (12.5ms), icount, vm:icount, #event",
        "go to time/icount/#ev",
    ),
    ks(
        "Esc",
        "cancel a running search / clear the search",
        "cancel / clear search",
    ),
    k("", "Bookmarks"),
    k("m", "bookmark the cursor"),
    ks("B", "show bookmarks / events", "bookmarks ⇄ events"),
    ks(
        "Enter",
        "go to the selected bookmark or event",
        "go to selected item",
    ),
    ks(
        "r / d",
        "rename / delete the selected bookmark",
        "rename/delete bookmark",
    ),
    k("", "Views"),
    k("Tab S-Tab 1-9", "switch the focus VM"),
    ks("↑ ↓ PgUp PgDn", "select in the list", "select in the list"),
    ks("/", "search the events (incremental)", "search events (live)"),
    ks("v / k K", "filter events by VM / by kind", "filter by VM / kind"),
    ks("+ / - / z", "zoom in / out / whole trace", "zoom in/out/whole"),
    k("< / >", "scroll the timeline"),
    ks(
        "M / t",
        "memory address / console or memory",
        "memory at / ⇄ console",
    ),
    k("? / q", "this help / quit"),
];
