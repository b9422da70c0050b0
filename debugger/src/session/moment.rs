//! How a person names a moment of a trace, the same way everywhere: the
//! command line's `--at`, the TUI's `g`, gdb's `monitor goto`.
//!
//! | text | moment |
//! |---|---|
//! | `12.5ms`, `300us`, `2s`, `800ns` | a virtual time of the cluster |
//! | `45000` | an icount of the focus VM |
//! | `backup2:45000`, `3:45000` | an icount of a VM named by name or by number (1 = the first VM, as gdb's inferior 1 and the TUI's key 1) |
//! | `#123` | the position of event 123 |
//! | `start`, `end` | the start of the trace, the end of the focus VM |
//! | `late #5`, `"start"`, `bookmark late #5` | a bookmark (spaces allowed; quotes or the word `bookmark` for a name that reads like one of the above) |
//!
//! Parsing needs no trace; the Session's moves (`Move::Goto`) turn a
//! moment into a position, and [`Moment::vtime_in`] into a virtual time
//! from the index alone (for commands that replay nothing, as `vmrr pcap`).

use std::fmt;

use vmrr_index::{Index, VmId};

use super::SessionError;
use crate::vtime;

/// A moment as a person names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moment {
    /// The start of the trace: nothing has run.
    Start,
    /// The end of the focus VM's recording.
    End,
    /// A virtual time of the cluster (nanoseconds).
    Time(u64),
    /// An icount of a VM (of the focus VM when `vm` is `None`).
    Icount {
        /// The VM as written: a name or a number (1-based).
        vm: Option<String>,
        /// Instructions executed.
        icount: u64,
    },
    /// The position of an event (its id in the index).
    Event(u64),
    /// A bookmark, by name.
    Bookmark(String),
}

/// Why a text names no moment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MomentError {
    /// Nothing was written.
    #[error(
        "no moment given: write a time (12.5ms), an icount, VM:ICOUNT, #EVENT, start, end or a bookmark name"
    )]
    Empty,
    /// A number too large for an icount or an event id.
    #[error("'{0}' is too large a number")]
    TooLarge(String),
    /// A time that cannot be held: beyond about 584 years of virtual time,
    /// or finer than a nanosecond.
    #[error("'{0}' is not a time vmrr can hold: write whole nanoseconds, below about 584 years")]
    BadTime(String),
}

/// The short help shown by every view that asks for a moment.
pub const MOMENT_HELP: &str = "a time (12.5ms), an icount, VM:ICOUNT, #EVENT, start, end or a bookmark";

/// `12_000` or `12000` as a number; `None` if it is not all digits.
fn number(text: &str) -> Option<Result<u64, MomentError>> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) || text.starts_with('_') {
        return None;
    }
    Some(
        digits
            .parse::<u64>()
            .map_err(|_| MomentError::TooLarge(text.to_string())),
    )
}

/// The text inside matching quotes, if `text` is quoted.
fn unquote(text: &str) -> Option<&str> {
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            if text.len() >= 2 {
                return Some(inner);
            }
        }
    }
    None
}

impl Moment {
    /// Parses a moment (see the module documentation for the forms).
    pub fn parse(text: &str) -> Result<Moment, MomentError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(MomentError::Empty);
        }
        if let Some(name) = unquote(t) {
            return Ok(Moment::Bookmark(name.to_string()));
        }
        if let Some(rest) = t.strip_prefix("bookmark ") {
            let rest = rest.trim();
            return Ok(Moment::Bookmark(unquote(rest).unwrap_or(rest).to_string()));
        }
        match t.to_ascii_lowercase().as_str() {
            "start" => return Ok(Moment::Start),
            "end" => return Ok(Moment::End),
            _ => {}
        }
        if let Some(id) = t.strip_prefix('#').and_then(number) {
            return id.map(Moment::Event);
        }
        if let Some(ns) = vtime::parse(t) {
            return Ok(Moment::Time(ns));
        }
        if vtime::looks_like_time(t) {
            // Beyond u64 nanoseconds, or finer than one.
            return Err(MomentError::BadTime(t.to_string()));
        }
        if let Some(n) = number(t) {
            return n.map(|icount| Moment::Icount { vm: None, icount });
        }
        if let Some((vm, n)) = t.rsplit_once([':', '@']) {
            let vm = vm.trim();
            if let (false, Some(n)) = (vm.is_empty(), number(n.trim())) {
                return n.map(|icount| Moment::Icount {
                    vm: Some(vm.to_string()),
                    icount,
                });
            }
        }
        Ok(Moment::Bookmark(t.to_string()))
    }
}

impl Moment {
    /// The virtual time of this moment in the trace of `index`, without
    /// replaying: an icount's time comes from the VM's last event at or
    /// before it plus the instructions since (idle time only passes at
    /// events: halts, wakes, receipts), so it is the time the VM reached
    /// that icount. `end` is the end of `focus`, or of the whole trace when
    /// no VM is the focus; `N` alone is an icount of `focus` (of the first
    /// VM without one).
    pub fn vtime_in(&self, index: &Index, focus: Option<VmId>) -> Result<u64, SessionError> {
        let vms = index.vms()?;
        let end_of = |vm: &vmrr_index::VmRow| vm.final_vtime_ns.unwrap_or(0);
        Ok(match self {
            Moment::Start => 0,
            Moment::Time(t) => *t,
            Moment::End => match focus.and_then(|f| vms.iter().find(|v| v.id == f)) {
                Some(vm) => end_of(vm),
                None => vms.iter().map(end_of).max().unwrap_or(0),
            },
            Moment::Event(id) => index.event(*id)?.ok_or(SessionError::NoSuchEvent(*id))?.vtime_ns,
            Moment::Bookmark(name) => {
                index
                    .bookmark_by_name(name)?
                    .ok_or_else(|| SessionError::NoSuchBookmark(name.trim().to_string()))?
                    .vtime_ns
            }
            Moment::Icount { vm, icount } => {
                let row = match vm {
                    None => vms.iter().find(|v| Some(v.id) == focus).or(vms.first()),
                    Some(text) => {
                        let text = text.trim();
                        vms.iter().find(|v| v.name == text).or_else(|| {
                            text.parse::<usize>()
                                .ok()
                                .and_then(|n| n.checked_sub(1))
                                .and_then(|i| vms.get(i))
                        })
                    }
                };
                let row = row.ok_or_else(|| SessionError::NoSuchVm {
                    name: vm.clone().unwrap_or_default(),
                    known: vms.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", "),
                })?;
                let end = row.final_icount.unwrap_or(u64::MAX);
                if *icount > end {
                    return Err(SessionError::PastEnd {
                        vm: row.name.clone(),
                        icount: *icount,
                        end,
                    });
                }
                let busy = |i: u64| ((u128::from(i) * 1000) / u128::from(row.instr_per_us.max(1))) as u64;
                match index
                    .events_of_vm_around(row.id, icount.saturating_add(1), 1, 0)?
                    .pop()
                {
                    Some(e) => e
                        .vtime_ns
                        .saturating_add(busy(*icount).saturating_sub(busy(e.icount))),
                    None => busy(*icount),
                }
            }
        })
    }
}

impl std::str::FromStr for Moment {
    type Err = MomentError;

    fn from_str(s: &str) -> Result<Moment, MomentError> {
        Moment::parse(s)
    }
}

impl fmt::Display for Moment {
    /// The canonical spelling, which parses back to the same moment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Start => f.write_str("start"),
            Moment::End => f.write_str("end"),
            Moment::Time(ns) => f.write_str(&vtime::format_exact(*ns)),
            Moment::Icount { vm: None, icount } => write!(f, "{icount}"),
            Moment::Icount { vm: Some(vm), icount } => write!(f, "{vm}:{icount}"),
            Moment::Event(id) => write!(f, "#{id}"),
            Moment::Bookmark(name) => {
                // Quote a name that would read as another form.
                if Moment::parse(name) == Ok(Moment::Bookmark(name.trim().to_string())) && name.trim() == name
                {
                    f.write_str(name)
                } else {
                    write!(f, "\"{name}\"")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icount(vm: Option<&str>, n: u64) -> Moment {
        Moment::Icount {
            vm: vm.map(str::to_string),
            icount: n,
        }
    }

    #[test]
    fn every_form() {
        let cases = [
            ("12.5ms", Moment::Time(12_500_000)),
            ("300us", Moment::Time(300_000)),
            ("45000", icount(None, 45_000)),
            ("45_000", icount(None, 45_000)),
            ("backup2:24456", icount(Some("backup2"), 24_456)),
            ("backup2@24456", icount(Some("backup2"), 24_456)),
            ("3:10", icount(Some("3"), 10)),
            ("#12", Moment::Event(12)),
            ("start", Moment::Start),
            (" END ", Moment::End),
            ("late #5", Moment::Bookmark("late #5".into())),
            ("\"start\"", Moment::Bookmark("start".into())),
            ("'12ms'", Moment::Bookmark("12ms".into())),
            ("bookmark late #5", Moment::Bookmark("late #5".into())),
            ("bookmark \"end\"", Moment::Bookmark("end".into())),
            ("resend: seen", Moment::Bookmark("resend: seen".into())),
            ("#late", Moment::Bookmark("#late".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Moment::parse(text), Ok(want), "{text}");
        }
        assert_eq!(Moment::parse("  "), Err(MomentError::Empty));
        assert!(matches!(
            Moment::parse("99999999999999999999999"),
            Err(MomentError::TooLarge(_))
        ));
        // A time too large, or finer than a nanosecond, is not a bookmark.
        for text in ["99999999999999999999ms", "1.0000000001s"] {
            assert!(
                matches!(Moment::parse(text), Err(MomentError::BadTime(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn display_parses_back() {
        for text in [
            "12.5ms",
            "45000",
            "backup2:24456",
            "#12",
            "start",
            "end",
            "late #5",
            "\"start\"",
            "1ns",
            "\"12ms\"",
            "'7'",
        ] {
            let m = Moment::parse(text).expect("parses");
            assert_eq!(Moment::parse(&m.to_string()), Ok(m.clone()), "{text} -> {m}");
        }
    }
}
