//! How the two runs end differently: exit values, console lines, markers,
//! and frame fates, each from where the comparison starts.

use std::collections::BTreeMap;

use vmrr_index::{EventKind, EventRow, FrameRow};

use super::{FrameDiff, OnlyIn, StopDiff};
use crate::trace::{Trace, TraceError};
use crate::vtime::format_ms;

/// The items of `a` that `b` lacks and the reverse, as multisets, each in
/// its own order.
pub(super) fn only_in<T: Clone + Ord>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let count = |v: &[T]| {
        let mut m: BTreeMap<T, usize> = BTreeMap::new();
        for x in v {
            *m.entry(x.clone()).or_default() += 1;
        }
        m
    };
    let side = |v: &[T], other: &BTreeMap<T, usize>| {
        let mut left = other.clone();
        let mut out = Vec::new();
        for x in v {
            match left.get_mut(x) {
                Some(n) if *n > 0 => *n -= 1,
                _ => out.push(x.clone()),
            }
        }
        out
    };
    (side(a, &count(b)), side(b, &count(a)))
}

/// Lines present on one side only, named by VM.
pub(super) fn lines_only_in(vm: &str, a: &[String], b: &[String], out: &mut Vec<OnlyIn>) {
    let (xa, xb) = only_in(a, b);
    out.extend(xa.into_iter().map(|text| OnlyIn {
        vm: vm.to_string(),
        side: "A".into(),
        text,
    }));
    out.extend(xb.into_iter().map(|text| OnlyIn {
        vm: vm.to_string(),
        side: "B".into(),
        text,
    }));
}

/// The markers of `rows`, as `name = value`.
pub(super) fn markers(rows: &[EventRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.kind == EventKind::Marker)
        .map(|r| {
            format!(
                "{} = {}",
                r.text.as_deref().unwrap_or("?"),
                r.value.unwrap_or(0) as i64
            )
        })
        .collect()
}

/// How each VM's run ended, where the two differ.
pub(super) fn stops(a: &Trace, b: &Trace) -> Result<Vec<StopDiff>, TraceError> {
    let (ra, rb) = (a.index().vms()?, b.index().vms()?);
    let mut out = Vec::new();
    for (x, y) in ra.iter().zip(&rb) {
        let text = |r: &vmrr_index::VmRow| r.stop.clone().unwrap_or_else(|| "recording unfinished".into());
        if text(x) != text(y) || x.final_icount != y.final_icount {
            out.push(StopDiff {
                vm: x.name.clone(),
                a: format!("{} at icount {}", text(x), x.final_icount.unwrap_or(0)),
                b: format!("{} at icount {}", text(y), y.final_icount.unwrap_or(0)),
            });
        }
    }
    Ok(out)
}

/// Whether frame `f` is part of the comparison from `from_ns`: sent since,
/// or then on its way (a frame lost at its send has no arrival).
fn counts(f: &FrameRow, from_ns: u64) -> bool {
    f.sent_vtime_ns >= from_ns || f.arrival_ns >= from_ns
}

/// Frames per fate: (in A, in B).
pub(super) type FateCounts = BTreeMap<String, (usize, usize)>;

/// The frames from one VM to another, in send order.
fn by_link(rows: Vec<FrameRow>, from_ns: u64) -> BTreeMap<(u32, u32), Vec<FrameRow>> {
    let mut out: BTreeMap<(u32, u32), Vec<FrameRow>> = BTreeMap::new();
    for f in rows.into_iter().filter(|f| counts(f, from_ns)) {
        out.entry((f.src, f.dst)).or_default().push(f);
    }
    for list in out.values_mut() {
        list.sort_by_key(|f| (f.sent_vtime_ns, f.id));
    }
    out
}

/// The frames whose fate differs, and the count of each fate on each side.
/// The frames of one link are paired in send order (the n-th frame from
/// one VM to another in A with the n-th in B), which keeps pairing the same
/// messages after a sender's icounts have shifted; a frame one run sent
/// more shows as not sent in the other.
pub(super) fn frames(a: &Trace, b: &Trace, from_ns: u64) -> Result<(Vec<FrameDiff>, FateCounts), TraceError> {
    let la = by_link(a.index().frame_edges(usize::MAX)?, from_ns);
    let lb = by_link(b.index().frame_edges(usize::MAX)?, from_ns);
    let name = |vm: u32| {
        a.config()
            .vms
            .get(vm as usize)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let mut fates: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in la.values().flatten() {
        fates.entry(f.fate.as_str().into()).or_default().0 += 1;
    }
    for f in lb.values().flatten() {
        fates.entry(f.fate.as_str().into()).or_default().1 += 1;
    }
    let fate = |f: Option<&FrameRow>| match f {
        Some(f) => format!("{} (frame {})", f.fate.as_str().replace('_', " "), f.id),
        None => "not sent".into(),
    };
    let empty = Vec::new();
    let mut links: Vec<&(u32, u32)> = la.keys().chain(lb.keys()).collect();
    links.sort();
    links.dedup();
    let mut out = Vec::new();
    for link in links {
        let (xa, xb) = (la.get(link).unwrap_or(&empty), lb.get(link).unwrap_or(&empty));
        for i in 0..xa.len().max(xb.len()) {
            let (x, y) = (xa.get(i), xb.get(i));
            if x.map(|f| f.fate) == y.map(|f| f.fate) {
                continue;
            }
            let Some(f) = x.or(y) else { continue };
            out.push(FrameDiff {
                from: name(f.src),
                to: name(f.dst),
                sent_icount: f.sent_icount,
                sent_ns: f.sent_vtime_ns,
                a: fate(x),
                b: fate(y),
            });
        }
    }
    out.sort_by_key(|d| (d.sent_ns, d.sent_icount));
    Ok((out, fates))
}

/// A frame difference on one line.
pub(super) fn frame_line(d: &FrameDiff) -> String {
    format!(
        "{} → {} sent at {} (icount {}): {} in A, {} in B",
        d.from,
        d.to,
        format_ms(d.sent_ns),
        d.sent_icount,
        d.a,
        d.b
    )
}
