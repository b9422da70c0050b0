//! `diff`: where two runs of one cluster part, and how they end
//! differently. Usually a trace and a fork of it, but any two traces of
//! clusters with the same VMs compare (two forks of one parent, or two
//! recordings of cluster files that differ in their faults).
//!
//! Each VM is compared from the later of its two traces' starts (a fork
//! starts at its cut): the first position where they differ is the earliest
//! of a differing state there (a fork that set memory or a register), the
//! first differing event (frame ids aside: they are numbered across the
//! cluster, so a frame more elsewhere shifts them; the bytes of a received
//! frame count), the first differing console byte, and the first checkpoint
//! at the same position with another state hash.

mod outcome;
mod stream;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::trace::{Trace, TraceError};
use crate::vtime::format_ms;

/// A position of one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    icount: u64,
    vtime_ns: u64,
}

impl Place {
    fn of(r: &vmrr_index::EventRow) -> Place {
        Place {
            icount: r.icount,
            vtime_ns: r.vtime_ns,
        }
    }

    fn start(s: stream::Start) -> Place {
        Place {
            icount: s.icount,
            vtime_ns: s.vtime_ns,
        }
    }
}

/// Where one VM's runs first differ, with what each side shows there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstDifference {
    /// The VM's icount there.
    pub icount: u64,
    /// Its virtual time there.
    pub vtime_ns: u64,
    /// `event`, `console` or `state`.
    pub what: String,
    /// What A shows.
    pub a: String,
    /// What B shows.
    pub b: String,
}

/// One VM compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmDiff {
    /// The VM's name.
    pub vm: String,
    /// Compared from this icount (the later start of the two traces).
    pub from_icount: u64,
    /// And this virtual time.
    pub from_ns: u64,
    /// Where they first differ; `None`: identical to the end of both.
    pub first: Option<FirstDifference>,
}

/// A line (console or marker) one side has and the other lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnlyIn {
    /// The VM.
    pub vm: String,
    /// `A` or `B`.
    pub side: String,
    /// The line.
    pub text: String,
}

/// A VM that ended differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopDiff {
    /// The VM.
    pub vm: String,
    /// How it ended in A.
    pub a: String,
    /// How it ended in B.
    pub b: String,
}

/// A frame (by its sender and the sending instruction) whose fate differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameDiff {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// The sender's icount at the send.
    pub sent_icount: u64,
    /// The send's virtual time.
    pub sent_ns: u64,
    /// Its fate (and id) in A, or `not sent`.
    pub a: String,
    /// Its fate (and id) in B.
    pub b: String,
}

/// How the two runs end differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// VMs that stopped differently (exit values, where, why).
    pub stops: Vec<StopDiff>,
    /// Markers (`name = value`) only one side has.
    pub markers: Vec<OnlyIn>,
    /// Console lines only one side has.
    pub console: Vec<OnlyIn>,
    /// Frames whose fate differs.
    pub frames: Vec<FrameDiff>,
    /// Frames per fate: (A, B).
    pub frame_fates: BTreeMap<String, (usize, usize)>,
}

/// Two traces compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    /// Trace A.
    pub a: String,
    /// Trace B.
    pub b: String,
    /// How they are related (one a fork of the other...).
    pub relation: String,
    /// Frames are compared from this virtual time (a fork's cut).
    pub from_ns: u64,
    /// Every VM, the one that differs first first.
    pub vms: Vec<VmDiff>,
    /// How the runs end.
    pub outcome: Outcome,
}

/// Why two traces cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The traces are not of one cluster.
    #[error("{0}")]
    NotComparable(String),
}

impl From<vmrr_index::IndexError> for DiffError {
    fn from(e: vmrr_index::IndexError) -> DiffError {
        DiffError::Trace(TraceError::Index(e))
    }
}

/// What `meta` says about a fork: (parent, cut time, changes).
fn fork_meta(t: &Trace) -> Result<Option<(String, u64, Vec<String>)>, TraceError> {
    let index = t.index();
    let Some(parent) = index.meta("fork.parent")? else {
        return Ok(None);
    };
    let at = index
        .meta("fork.at_ns")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let changes: Vec<String> = index
        .meta("fork.changes")?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    Ok(Some((parent, at, changes)))
}

/// The relation of the two traces, and the time frames are compared from.
fn relation(a_path: &Path, a: &Trace, b_path: &Path, b: &Trace) -> Result<(String, u64), TraceError> {
    let (fa, fb) = (fork_meta(a)?, fork_meta(b)?);
    let same = |p: &str, q: &Path| stream::canonical(Path::new(p)) == stream::canonical(q);
    let changes = |c: &[String]| {
        if c.is_empty() {
            "no change".to_string()
        } else {
            c.join("; ")
        }
    };
    Ok(match (&fa, &fb) {
        (_, Some((p, at, c))) if same(p, a_path) => (
            format!("B is a fork of A at {}: {}", format_ms(*at), changes(c)),
            *at,
        ),
        (Some((p, at, c)), _) if same(p, b_path) => (
            format!("A is a fork of B at {}: {}", format_ms(*at), changes(c)),
            *at,
        ),
        (Some((pa, ta, ca)), Some((pb, tb, cb)))
            if stream::canonical(Path::new(pa)) == stream::canonical(Path::new(pb)) =>
        {
            (
                format!(
                    "both fork {pa}: A at {} ({}), B at {} ({})",
                    format_ms(*ta),
                    changes(ca),
                    format_ms(*tb),
                    changes(cb)
                ),
                (*ta).max(*tb),
            )
        }
        _ => {
            let from = (fa.map_or(0, |f| f.1)).max(fb.map_or(0, |f| f.1));
            ("two recordings of the same VMs".to_string(), from)
        }
    })
}

/// Compares trace `a` with trace `b`.
pub fn diff(a_path: &Path, b_path: &Path) -> Result<DiffReport, DiffError> {
    let a = Trace::open(a_path, false)?;
    let b = Trace::open(b_path, false)?;
    let names = |t: &Trace| t.config().vms.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    if names(&a) != names(&b) {
        return Err(DiffError::NotComparable(format!(
            "the traces have different VMs ({} in {}, {} in {}): diff compares two runs of one cluster",
            names(&a).join(", "),
            a_path.display(),
            names(&b).join(", "),
            b_path.display()
        )));
    }
    let (relation, from_ns) = relation(a_path, &a, b_path, &b)?;
    let mut vms = Vec::new();
    let mut markers = Vec::new();
    let mut console = Vec::new();
    for (vm, name) in names(&a).iter().enumerate() {
        let start = stream::start_of(&a, &b, vm);
        let (rows_a, rows_b) = (
            stream::rows_from(&a, vm, start)?,
            stream::rows_from(&b, vm, start)?,
        );
        let (mut con_a, across_a) = stream::console(&a, vm, start, &rows_a)?;
        let (mut con_b, across_b) = stream::console(&b, vm, start, &rows_b)?;
        stream::align(&mut con_a, across_a, &con_b, start);
        stream::align(&mut con_b, across_b, &con_a, start);
        let candidates = [
            stream::state_at_start(&a, &b, vm, start)?,
            stream::first_event_difference((&a, &rows_a), (&b, &rows_b), vm),
            stream::first_console_difference(&con_a, &con_b),
            stream::first_state_difference(&a, &b, vm, start),
        ];
        let first = candidates
            .into_iter()
            .flatten()
            .min_by_key(|d| (d.icount, d.vtime_ns));
        vms.push(VmDiff {
            vm: name.clone(),
            from_icount: start.icount,
            from_ns: start.vtime_ns,
            first,
        });
        outcome::lines_only_in(name, &con_a.lines(), &con_b.lines(), &mut console);
        outcome::lines_only_in(
            name,
            &outcome::markers(&rows_a),
            &outcome::markers(&rows_b),
            &mut markers,
        );
    }
    // The VM that parts first first (by virtual time), identical ones last.
    vms.sort_by_key(|v| v.first.as_ref().map_or((1, 0), |f| (0, f.vtime_ns)));
    let (frames, frame_fates) = outcome::frames(&a, &b, from_ns)?;
    Ok(DiffReport {
        a: a_path.display().to_string(),
        b: b_path.display().to_string(),
        relation,
        from_ns,
        vms,
        outcome: Outcome {
            stops: outcome::stops(&a, &b)?,
            markers,
            console,
            frames,
            frame_fates,
        },
    })
}

/// At most this many lines of each list in the summary.
const SHOWN: usize = 6;

impl DiffReport {
    /// Whether the runs are the same from where they are compared.
    pub fn identical(&self) -> bool {
        self.vms.iter().all(|v| v.first.is_none())
            && self.outcome.stops.is_empty()
            && self.outcome.frames.is_empty()
    }

    /// The report for a person: about one screen.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "A: {}\nB: {}\n{}", self.a, self.b, self.relation);
        let width = self.vms.iter().map(|v| v.vm.len()).max().unwrap_or(0);
        for v in &self.vms {
            match &v.first {
                None => {
                    let _ = writeln!(
                        s,
                        "{:<width$}  identical from icount {} ({}) to the end",
                        v.vm,
                        v.from_icount,
                        format_ms(v.from_ns)
                    );
                }
                Some(f) => {
                    let _ = writeln!(
                        s,
                        "{:<width$}  first difference ({}) at icount {}, {}\n{:<width$}    A: {}\n{:<width$}    B: {}",
                        v.vm,
                        f.what,
                        f.icount,
                        format_ms(f.vtime_ns),
                        "",
                        f.a,
                        "",
                        f.b
                    );
                }
            }
        }
        let o = &self.outcome;
        if self.identical() {
            let _ = writeln!(s, "outcome: the same");
            return s;
        }
        let _ = writeln!(s, "outcome:");
        for d in &o.stops {
            let _ = writeln!(s, "  {}: {} in A, {} in B", d.vm, d.a, d.b);
        }
        let list = |s: &mut String, title: &str, items: &[OnlyIn]| {
            for item in items.iter().take(SHOWN) {
                let _ = writeln!(
                    s,
                    "  {title} only in {}: {} {}",
                    item.side,
                    item.vm,
                    crate::describe::printable(&item.text)
                );
            }
            if items.len() > SHOWN {
                let _ = writeln!(
                    s,
                    "  ... and {} more {title} lines (--json lists all)",
                    items.len() - SHOWN
                );
            }
        };
        list(&mut s, "console", &o.console);
        list(&mut s, "marker", &o.markers);
        let fates: Vec<String> = o
            .frame_fates
            .iter()
            .filter(|(_, (x, y))| x != y)
            .map(|(f, (x, y))| format!("{f} {x} → {y}"))
            .collect();
        if !fates.is_empty() {
            let _ = writeln!(s, "  frames (A → B): {}", fates.join(", "));
        }
        for d in o.frames.iter().take(SHOWN) {
            let _ = writeln!(s, "  frame {}", outcome::frame_line(d));
        }
        if o.frames.len() > SHOWN {
            let _ = writeln!(
                s,
                "  ... and {} more frames (--json lists all)",
                o.frames.len() - SHOWN
            );
        }
        s
    }
}
