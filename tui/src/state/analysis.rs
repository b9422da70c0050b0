//! The answers of the analyses as the lower left pane lists them: every
//! call of a function ([`CallsView`]) and the origin chain of a value
//! ([`OriginView`]). Each row carries the position a person can go to;
//! going there is a `Move` the Session performs, never decided here.

use vmrr_index::Pos;

/// One call of the calls view, its text as `vmrr_debugger::analysis::text`
/// formats it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLine {
    /// The VM.
    pub vm: usize,
    /// Before the function's first instruction (Enter goes there).
    pub entry: Pos,
    /// `seq = 5, key = 3, val = 31` (led by `[depth N]` when nested).
    pub args: String,
    /// The return's icount, or `-`.
    pub ret: String,
    /// The return's time, or `never returned`.
    pub ret_time: String,
    /// The value returned, as C prints it.
    pub value: String,
}

/// Every call of a function in every VM, as the last calls job found them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallsView {
    /// The function asked about.
    pub function: String,
    /// Its signature (`void kv_apply(uint32_t seq, ...)`).
    pub signature: String,
    /// Its calls, in the cluster order of their entries.
    pub rows: Vec<CallLine>,
    /// Selected row.
    pub selected: Option<usize>,
}

/// One link of an origin chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginLine {
    /// Where it happened (Enter goes there).
    pub pos: Pos,
    /// `backup2:38711`.
    pub place: String,
    /// `kv_apply+0x1a (kvstore.c:369)`.
    pub at: String,
    /// What the link did: `mov [..],edx: 0x10622c (store+0xc) ... <- edx (copy)`.
    pub description: String,
}

/// The origin chain of a value, newest link first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginView {
    /// What was asked, where, and its value (`origin of store[3]: ...`).
    pub header: String,
    /// The links (those through registers and stack spills left out, as
    /// `vmrr origin` does without `--all`).
    pub links: Vec<OriginLine>,
    /// Links left out.
    pub hidden: usize,
    /// Where the chain ended.
    pub end: String,
    /// Selected link.
    pub selected: Option<usize>,
}

/// Moves a selection among `len` rows by `delta`, within the list.
fn moved(selected: Option<usize>, len: usize, delta: i64) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let cur = selected.unwrap_or(0) as i64;
    Some(cur.saturating_add(delta).clamp(0, len as i64 - 1) as usize)
}

impl CallsView {
    /// Moves the selection by `delta` rows.
    pub fn move_selection(&mut self, delta: i64) {
        self.selected = moved(self.selected, self.rows.len(), delta);
    }

    /// The selected call.
    pub fn selected_call(&self) -> Option<&CallLine> {
        self.rows.get(self.selected?)
    }
}

impl OriginView {
    /// Moves the selection by `delta` links.
    pub fn move_selection(&mut self, delta: i64) {
        self.selected = moved(self.selected, self.links.len(), delta);
    }

    /// The selected link.
    pub fn selected_link(&self) -> Option<&OriginLine> {
        self.links.get(self.selected?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_stays_in_the_list() {
        let line = |i: u64| CallLine {
            vm: 0,
            entry: Pos::new(0, i, i),
            args: String::new(),
            ret: "-".into(),
            ret_time: String::new(),
            value: String::new(),
        };
        let mut v = CallsView {
            rows: (0..3).map(line).collect(),
            selected: Some(0),
            ..CallsView::default()
        };
        v.move_selection(-5);
        assert_eq!(v.selected, Some(0));
        v.move_selection(10);
        assert_eq!(v.selected_call().map(|c| c.entry.icount), Some(2));
        let mut empty = OriginView::default();
        empty.move_selection(1);
        assert_eq!(empty.selected, None);
    }
}
