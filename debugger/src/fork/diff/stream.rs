//! Where one VM's two runs part: the first event that differs (console
//! text compared as a byte stream, so that runs of bytes cut differently by
//! checkpoints still match), the state where the comparison starts, and the
//! first checkpoint whose state hashes differ.

use std::path::Path;

use vmrr_backend::regs::{GeneralRegs, Gpr, RFLAGS_HOST_BITS};
use vmrr_backend::Machine;
use vmrr_index::{EventKind, EventRow};

use super::{FirstDifference, Place};
use crate::describe::{event_detail, printable};
use crate::trace::codec::{regenerable, same};
use crate::trace::{Trace, TraceError};
use crate::vtime::format_ms;

/// Where a VM's comparison starts: the later of its two traces' starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Start {
    pub icount: u64,
    pub vtime_ns: u64,
}

impl Start {
    /// Whether `row` lies at or after the start.
    fn covers(&self, row: &EventRow) -> bool {
        row.icount > self.icount || (row.icount == self.icount && row.vtime_ns >= self.vtime_ns)
    }
}

/// The first checkpoint of `vm` in `trace`: where its history begins.
fn first_of(trace: &Trace, vm: usize) -> Start {
    trace
        .checkpoints(vm)
        .first()
        .map(|c| Start {
            icount: c.icount,
            vtime_ns: c.vtime_ns,
        })
        .unwrap_or(Start {
            icount: 0,
            vtime_ns: 0,
        })
}

/// The start of the comparison of `vm`.
pub(super) fn start_of(a: &Trace, b: &Trace, vm: usize) -> Start {
    first_of(a, vm).max(first_of(b, vm))
}

/// The VM's events from `start` on that its engine produced (not the
/// recorder's checkpoints, faults and stops), in order.
pub(super) fn rows_from(trace: &Trace, vm: usize, start: Start) -> Result<Vec<EventRow>, TraceError> {
    Ok(trace
        .index()
        .events_of_vm_around(vm as u32, start.icount, 0, usize::MAX)?
        .into_iter()
        .filter(|r| start.covers(r) && regenerable(r.kind))
        .collect())
}

/// A VM's console from the start on: its bytes, and for each row the
/// offset where its bytes begin and its place.
#[derive(Default)]
pub(super) struct Console {
    pub bytes: Vec<u8>,
    rows: Vec<(usize, Place)>,
}

impl Console {
    fn push(&mut self, bytes: &[u8], at: Place) {
        self.rows.push((self.bytes.len(), at));
        self.bytes.extend_from_slice(bytes);
    }

    /// The place of the row holding byte `offset`.
    fn place_of(&self, offset: usize) -> Option<Place> {
        let i = self.rows.partition_point(|(o, _)| *o <= offset);
        self.rows.get(i.checked_sub(1)?).map(|(_, p)| *p)
    }

    /// Its complete and last partial lines.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes)
            .split_inclusive('\n')
            .map(|l| l.trim_end_matches('\n').to_string())
            .collect()
    }
}

fn row_bytes(r: &EventRow) -> Vec<u8> {
    r.payload
        .clone()
        .unwrap_or_else(|| r.text.clone().unwrap_or_default().into_bytes())
}

/// The console of `vm` from `start` on, and, when the trace began before
/// the start, the row that was being written across it (whose bytes after
/// the start are only known by comparing with the other side).
pub(super) fn console(
    trace: &Trace,
    vm: usize,
    start: Start,
    rows: &[EventRow],
) -> Result<(Console, Option<Vec<u8>>), TraceError> {
    let mut out = Console::default();
    for r in rows.iter().filter(|r| r.kind == EventKind::Console) {
        out.push(&row_bytes(r), Place::of(r));
    }
    let across = if first_of(trace, vm) < start {
        trace
            .index()
            .events_of_vm_around(vm as u32, start.icount.saturating_add(1), 512, 0)?
            .into_iter()
            .rev()
            .find(|r| r.kind == EventKind::Console && !start.covers(r))
            .map(|r| row_bytes(&r))
    } else {
        None
    };
    Ok((out, across))
}

/// Puts the part of a row written across the start that the other side
/// shows in front of `side`. The other side (a fork) begins with that part
/// as a row of its own, standing where `side` has no row: the end of the
/// row written across the start.
pub(super) fn align(side: &mut Console, across: Option<Vec<u8>>, other: &Console, start: Start) {
    let Some(across) = across else { return };
    let Some(&(_, first)) = other.rows.first() else {
        return;
    };
    let first_end = other.rows.get(1).map_or(other.bytes.len(), |(o, _)| *o);
    let continues = side.rows.first().is_none_or(|(_, p)| first < *p);
    let head = &other.bytes[..first_end];
    if continues && !head.is_empty() && across.ends_with(head) {
        let tail = head;
        let mut bytes = tail.to_vec();
        bytes.extend_from_slice(&side.bytes);
        let mut rows = vec![(0, Place::start(start))];
        rows.extend(side.rows.iter().map(|(o, p)| (o + tail.len(), *p)));
        side.bytes = bytes;
        side.rows = rows;
    }
}

/// An event as the diff shows it.
fn show(trace: &Trace, r: &EventRow) -> String {
    let names = |vm: u32| {
        trace
            .config()
            .vms
            .get(vm as usize)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "?".into())
    };
    let peers = trace.index().frame_peers(r).unwrap_or_default();
    format!(
        "{} {} (#{} at icount {}, {})",
        r.kind.as_str(),
        event_detail(r, &names, &peers),
        r.id,
        r.icount,
        format_ms(r.vtime_ns)
    )
}

/// What one side shows where the other has more: its end.
fn ended(trace: &Trace, vm: usize) -> String {
    let row = trace.index().vm(vm as u32).ok().flatten();
    match row {
        Some(r) => format!(
            "nothing more: the VM ends at icount {} ({})",
            r.final_icount.map_or("?".into(), |i| i.to_string()),
            r.stop.unwrap_or_else(|| "recording unfinished".into())
        ),
        None => "nothing more".into(),
    }
}

/// The first of the engine's events (console aside) where the sides differ.
pub(super) fn first_event_difference(
    a: (&Trace, &[EventRow]),
    b: (&Trace, &[EventRow]),
    vm: usize,
) -> Option<FirstDifference> {
    let keep = |r: &&EventRow| r.kind != EventKind::Console;
    let ra: Vec<&EventRow> = a.1.iter().filter(keep).collect();
    let rb: Vec<&EventRow> = b.1.iter().filter(keep).collect();
    for i in 0..ra.len().max(rb.len()) {
        let (x, y) = (ra.get(i), rb.get(i));
        if let (Some(x), Some(y)) = (x, y) {
            if same(x, y) {
                continue;
            }
        }
        let at = match (x, y) {
            (Some(x), Some(y)) => Place::of(x).min(Place::of(y)),
            (Some(x), None) => Place::of(x),
            (None, Some(y)) => Place::of(y),
            (None, None) => break,
        };
        // Two receipts alike but for their bytes: say where those differ.
        let bytes = match (x, y) {
            (Some(x), Some(y)) if x.kind == y.kind && x.payload != y.payload => {
                let (p, q) = (
                    x.payload.clone().unwrap_or_default(),
                    y.payload.clone().unwrap_or_default(),
                );
                let at = p.iter().zip(&q).take_while(|(u, v)| u == v).count();
                format!(", the bytes differ from offset {at}")
            }
            _ => String::new(),
        };
        return Some(FirstDifference {
            icount: at.icount,
            vtime_ns: at.vtime_ns,
            what: "event".into(),
            a: x.map(|r| show(a.0, r) + &bytes).unwrap_or_else(|| ended(a.0, vm)),
            b: y.map(|r| show(b.0, r) + &bytes).unwrap_or_else(|| ended(b.0, vm)),
        });
    }
    None
}

/// Up to 60 characters of console text from `offset`, for the report.
fn snippet(bytes: &[u8], offset: usize) -> String {
    let end = bytes.len().min(offset + 60);
    let text = String::from_utf8_lossy(&bytes[offset.min(end)..end]);
    format!("\"{}\"", printable(&text))
}

/// The first console byte where the sides differ.
pub(super) fn first_console_difference(a: &Console, b: &Console) -> Option<FirstDifference> {
    let common = a.bytes.iter().zip(&b.bytes).take_while(|(x, y)| x == y).count();
    if common == a.bytes.len() && common == b.bytes.len() {
        return None;
    }
    // From the start of the line that differs, which reads better.
    let line = a.bytes[..common]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let pa = a.place_of(common.min(a.bytes.len().saturating_sub(1)));
    let pb = b.place_of(common.min(b.bytes.len().saturating_sub(1)));
    let at = match (pa, pb) {
        (Some(x), Some(y)) => x.min(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return None,
    };
    let side = |c: &Console| {
        if line >= c.bytes.len() {
            "no more console output".to_string()
        } else {
            format!("console {}", snippet(&c.bytes, line))
        }
    };
    Some(FirstDifference {
        icount: at.icount,
        vtime_ns: at.vtime_ns,
        what: "console".into(),
        a: side(a),
        b: side(b),
    })
}

/// `vm` of `trace` exactly at `start`: before instruction `start.icount`,
/// with the frames delivered before `start.vtime_ns`.
fn machine_at(trace: &Trace, vm: usize, start: Start) -> Result<Machine, TraceError> {
    let cps = trace.checkpoints(vm);
    let k = cps.iter().rposition(|c| c.icount <= start.icount).unwrap_or(0);
    let (mut machine, mut next) = trace.machine_at_checkpoint(vm, k)?;
    let limit = trace
        .inputs(vm)
        .partition_point(|i| (i.icount, i.vtime_ns) < (start.icount, start.vtime_ns));
    trace.run_to(vm, &mut machine, &mut next, start.icount, limit)?;
    machine
        .idle_until(start.vtime_ns)
        .map_err(|e| trace.vm_error(vm, e))?;
    Ok(machine)
}

/// How the two VMs differ where the comparison starts (registers and
/// memory pages), if they do.
pub(super) fn state_at_start(
    a: &Trace,
    b: &Trace,
    vm: usize,
    start: Start,
) -> Result<Option<FirstDifference>, TraceError> {
    let hash_at = |t: &Trace| {
        t.checkpoints(vm)
            .iter()
            .find(|c| c.icount == start.icount && c.vtime_ns == start.vtime_ns)
            .map(|c| c.state_hash.clone())
    };
    if let (Some(x), Some(y)) = (hash_at(a), hash_at(b)) {
        if x == y {
            return Ok(None);
        }
    }
    let mut ma = machine_at(a, vm, start)?;
    let mut mb = machine_at(b, vm, start)?;
    let hash = |t: &Trace, m: &Machine| {
        m.state_hash()
            .map(|h| vmrr_backend::state::hex(&h))
            .map_err(|e| t.vm_error(vm, e))
    };
    if hash(a, &ma)? == hash(b, &mb)? {
        return Ok(None);
    }
    let view = |m: &Machine| {
        let mut regs: GeneralRegs = m.general_regs();
        regs[Gpr::Rflags] &= !RFLAGS_HOST_BITS;
        regs
    };
    let (ra, rb) = (view(&ma), view(&mb));
    let regs: Vec<Gpr> = Gpr::DISPLAY_ORDER
        .into_iter()
        .filter(|&g| ra[g] != rb[g])
        .collect();
    let mut pages = Vec::new();
    let (mut pa, mut pb) = ([0u8; 4096], [0u8; 4096]);
    // The first bytes that differ, on each side: (address, A's, B's).
    let mut first: Option<(u64, Vec<u8>, Vec<u8>)> = None;
    for i in 0..ma.config().mem_bytes / 4096 {
        if ma.read_page(i, &mut pa).is_ok() && mb.read_page(i, &mut pb).is_ok() && pa != pb {
            pages.push(i * 4096);
            if first.is_none() {
                let from = pa.iter().zip(&pb).take_while(|(x, y)| x == y).count();
                let to = (from + 8).min(4096);
                first = Some((
                    i * 4096 + from as u64,
                    pa[from..to].to_vec(),
                    pb[from..to].to_vec(),
                ));
            }
        }
    }
    // Neither registers nor memory: say which part of the engine's state.
    let engine = {
        let (sa, sb) = (
            ma.capture_core().map_err(|e| a.vm_error(vm, e))?,
            mb.capture_core().map_err(|e| b.vm_error(vm, e))?,
        );
        let mut what = Vec::new();
        if sa.rng != sb.rng {
            what.push("the rdrand generator");
        }
        if sa.clock != sb.clock || sa.halted != sb.halted {
            what.push("the clock");
        }
        if json(&sa.devices) != json(&sb.devices) {
            what.push("the devices");
        }
        if what.is_empty() {
            what.push("system registers");
        }
        let verb = if what.len() == 1 { "differs" } else { "differ" };
        format!("{} {verb}", what.join(", "))
    };
    let side = |regs_of: &GeneralRegs, bytes: Option<&Vec<u8>>| {
        let mut parts = Vec::new();
        if !regs.is_empty() {
            let r: Vec<String> = regs
                .iter()
                .map(|&g| format!("{} {:#x}", g.name(), regs_of[g]))
                .collect();
            parts.push(r.join(", "));
        }
        if let (Some((addr, _, _)), Some(bytes)) = (&first, bytes) {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let more = match pages.len() {
                1 => String::new(),
                n => format!(" ({n} pages differ)"),
            };
            parts.push(format!("memory at {addr:#x}: {}{more}", hex.join(" ")));
        }
        if parts.is_empty() {
            parts.push(engine.clone());
        }
        format!("state at the start: {}", parts.join("; "))
    };
    let (bytes_a, bytes_b) = (first.as_ref().map(|f| &f.1), first.as_ref().map(|f| &f.2));
    Ok(Some(FirstDifference {
        icount: start.icount,
        vtime_ns: start.vtime_ns,
        what: "state".into(),
        a: side(&ra, bytes_a),
        b: side(&rb, bytes_b),
    }))
}

/// The first checkpoint both sides took at one position whose state
/// hashes differ, after the start.
pub(super) fn first_state_difference(
    a: &Trace,
    b: &Trace,
    vm: usize,
    start: Start,
) -> Option<FirstDifference> {
    let cb = b.checkpoints(vm);
    let mut last_equal = None;
    for ca in a.checkpoints(vm).iter().filter(|c| c.icount > start.icount) {
        let Some(other) = cb
            .iter()
            .find(|c| c.icount == ca.icount && c.vtime_ns == ca.vtime_ns)
        else {
            continue;
        };
        if other.state_hash == ca.state_hash {
            last_equal = Some(ca.icount);
            continue;
        }
        let since = last_equal.map_or(format!("the start (icount {})", start.icount), |i| {
            format!("icount {i}")
        });
        let short = |h: &str| h.chars().take(16).collect::<String>();
        return Some(FirstDifference {
            icount: ca.icount,
            vtime_ns: ca.vtime_ns,
            what: "state".into(),
            a: format!(
                "checkpoint state {} (states last equal at {since})",
                short(&ca.state_hash)
            ),
            b: format!("checkpoint state {}", short(&other.state_hash)),
        });
    }
    None
}

/// The same trace path, for relations: canonical where it exists.
pub(super) fn canonical(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Serialised text of a value, to compare states without `PartialEq`.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
