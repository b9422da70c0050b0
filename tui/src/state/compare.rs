//! A trace opened beside another (`vmrr tui FORK --beside`): where each
//! VM's run first differs from the other trace's, as
//! `vmrr_debugger::fork::diff::diff` found it on the worker, and the fork
//! point. The timeline marks both; `D` goes to the focus VM's divergence.

use vmrr_debugger::vtime::format_ms;

/// Where one VM's run first differs from the other trace's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The VM's icount there (the same in both: a fork keeps its parent's icounts).
    pub icount: u64,
    /// Its virtual time there.
    pub vtime_ns: u64,
    /// `event`, `console` or `state`.
    pub what: String,
    /// What the other trace (the parent) shows there, made printable.
    pub theirs: String,
    /// What this trace shows there, made printable.
    pub ours: String,
}

/// This trace compared with another one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    /// The other trace's folder name.
    pub other: String,
    /// How the two are related, as `vmrr diff OTHER THIS` says it (`B is a
    /// fork of A at 122.165321 ms: drop frame 49`).
    pub relation: String,
    /// Where the comparison starts (the fork point).
    pub from_ns: u64,
    /// Per VM of this trace, in its order: where it first differs
    /// (`None`: the same to the end of both).
    pub lanes: Vec<Option<Divergence>>,
}

impl Comparison {
    /// Where VM `vm` first differs, if it does.
    pub fn divergence(&self, vm: usize) -> Option<&Divergence> {
        self.lanes.get(vm).and_then(Option::as_ref)
    }

    /// One line about VM `vm` (named `name`): where it first differs, both
    /// sides; or that it does not.
    pub fn summary(&self, vm: usize, name: &str) -> String {
        match self.divergence(vm) {
            Some(d) => format!(
                "{name} differs ({}) at icount {}, {}: {} ‹{}› · here ‹{}›",
                d.what,
                d.icount,
                format_ms(d.vtime_ns),
                self.other,
                d.theirs,
                d.ours
            ),
            None => format!(
                "{name} runs as in {} from {} to the end",
                self.other,
                format_ms(self.from_ns)
            ),
        }
    }
}
