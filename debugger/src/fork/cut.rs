//! The whole cluster at a window barrier of a recording, rebuilt from the
//! trace: every VM (restored from its checkpoint and replayed to the
//! barrier), the frames then in the inboxes with their bytes, the next frame
//! id and the switch's MAC table. The fault schedule needs nothing: its
//! verdicts depend only on the frame's send time, id and ends and the seed.
//!
//! A fork's cut can lie anywhere; the scheduler runs on live from the last
//! barrier at or before it (`Cluster::advance_to`), so that the windows, and
//! with them the fork's checkpoints and fault events, fall where the
//! recording's did.

use std::collections::{BTreeMap, BTreeSet};

use vmrr_backend::{EventKind as VmEvent, Machine, RunLimit, Stop};
use vmrr_index::{EventFilter, EventKind, FrameFate, FrameRow, Position};

use crate::cluster::scheduler::{ClusterCut, FrameRecord, Learnt};
use crate::cluster::switch::{macs, Switch};
use crate::trace::checkpoint::{CheckpointFile, PageMap};
use crate::trace::learnt::{learnt_from_json, LEARNT_KEY};
use crate::trace::{Trace, TraceError};

/// Where the fork starts replaying: a barrier of the recording at or before
/// the cut (or, in a fork, its own start), and per VM the checkpoint
/// restored to get there.
#[derive(Debug, Clone)]
pub(super) struct Base {
    /// Where the VMs stand: every instruction before this time has run.
    pub vtime_ns: u64,
    /// The start of the cluster's window there (the same at a barrier).
    pub window_ns: u64,
    /// Whether that is a barrier (else a fork's start, inside a window).
    pub at_barrier: bool,
    /// Per VM, the index of the checkpoint restored.
    pub checkpoints: Vec<usize>,
}

/// What a fork's `meta` says about its start, for a fork of it: (cut time,
/// window start, next frame id, where checkpoints are counted from).
pub(super) struct ForkStart {
    pub at_ns: u64,
    pub window_ns: u64,
    pub next_frame_id: u64,
    pub due: Vec<u64>,
}

/// The start of `trace` if it is a fork (written by this vmrr).
pub(super) fn fork_start(trace: &Trace) -> Result<Option<ForkStart>, TraceError> {
    let index = trace.index();
    let num =
        |key: &str| -> Result<Option<u64>, TraceError> { Ok(index.meta(key)?.and_then(|v| v.parse().ok())) };
    let (Some(at_ns), Some(window_ns), Some(next_frame_id)) = (
        num("fork.at_ns")?,
        num("fork.window_ns")?,
        num("fork.next_frame_id")?,
    ) else {
        return Ok(None);
    };
    let due: Option<Vec<u64>> = index
        .meta("fork.due")?
        .and_then(|v| serde_json::from_str(&v).ok());
    Ok(due.map(|due| ForkStart {
        at_ns,
        window_ns,
        next_frame_id,
        due,
    }))
}

/// The barrier `file` was taken at, if it says or shows it: recorded by this
/// vmrr, or (older traces) a halted VM, whose clock stops at the barrier,
/// or the start.
fn barrier_of(file: &CheckpointFile) -> Option<u64> {
    file.cluster_ns
        .or_else(|| (file.state.halted || (file.icount == 0 && file.vtime_ns == 0)).then_some(file.vtime_ns))
}

/// Reads checkpoint `k` of `vm`.
pub(super) fn read_checkpoint(trace: &Trace, vm: usize, k: usize) -> Result<CheckpointFile, TraceError> {
    let row = &trace.checkpoints(vm)[k];
    CheckpointFile::read(
        trace.dir(),
        std::path::Path::new(&row.manifest),
        row.file_hash.as_deref(),
    )
}

/// The latest barrier at or before `t` that some VM's checkpoint names.
pub(super) fn choose_base(trace: &Trace, t: u64) -> Result<Base, TraceError> {
    let n = trace.config().vms.len();
    let mut best = 0;
    for vm in 0..n {
        let cps = trace.checkpoints(vm);
        for k in (0..cps.len()).rev().filter(|&k| cps[k].vtime_ns <= t) {
            match barrier_of(&read_checkpoint(trace, vm, k)?) {
                Some(b) if b <= t => {
                    best = best.max(b);
                    break;
                }
                _ => {}
            }
        }
    }
    // A fork's first checkpoints stand inside a window, where its cluster
    // was built: a fork of it can start there too.
    if let Some(start) = fork_start(trace)?.filter(|s| s.at_ns <= t && s.at_ns >= best) {
        return Ok(Base {
            vtime_ns: start.at_ns,
            window_ns: start.window_ns,
            at_barrier: false,
            checkpoints: vec![0; n],
        });
    }
    // Each VM starts from its last checkpoint whose clock is not past the barrier.
    let checkpoints = (0..n)
        .map(|vm| {
            trace
                .checkpoints(vm)
                .iter()
                .rposition(|c| c.vtime_ns <= best)
                .unwrap_or(0)
        })
        .collect();
    Ok(Base {
        vtime_ns: best,
        window_ns: best,
        at_barrier: true,
        checkpoints,
    })
}

/// One VM at the base barrier, and the memory map of the checkpoint it was
/// restored from (its pages since then are the machine's dirty log).
pub(super) struct RestoredVm {
    pub machine: Machine,
    pub base_map: PageMap,
    pub stopped: Option<Stop>,
}

/// Every VM at the base barrier: each has run the instructions that start
/// before it and taken the frames delivered before it. The VMs replay in
/// parallel, each on its own thread (as the cluster runs them).
pub(super) fn restore_vms(trace: &Trace, base: &Base, max_steps: u64) -> Result<Vec<RestoredVm>, TraceError> {
    let restore = |vm: usize, k: usize| -> Result<RestoredVm, TraceError> {
        let (mut machine, mut next) = trace.machine_at_checkpoint(vm, k)?;
        trace.run_to_vtime(vm, &mut machine, &mut next, base.vtime_ns)?;
        // As the scheduler does: a VM at the step limit has stopped.
        let stopped = machine
            .finished()
            .cloned()
            .or_else(|| (machine.icount() >= max_steps).then_some(Stop::Limit));
        Ok(RestoredVm {
            machine,
            base_map: trace.page_map(vm, k)?,
            stopped,
        })
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = base
            .checkpoints
            .iter()
            .enumerate()
            .map(|(vm, &k)| scope.spawn(move || restore(vm, k)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(trace.invalid("a VM's replay thread panicked".into())))
            })
            .collect()
    })
}

/// The `frame_recv` event that handed frame `f` to its receiver, if any.
fn receipt(trace: &Trace, f: &FrameRow) -> Result<Option<vmrr_index::EventRow>, TraceError> {
    let index = trace.index();
    if let Some(icount) = f.recv_icount {
        return Ok(index.frame_event(f.dst, icount, EventKind::FrameRecv, f.id)?);
    }
    if f.fate != FrameFate::Overflow {
        return Ok(None);
    }
    // Handed over but dropped by a full NIC: the row keeps no position;
    // the event follows the arrival within an instruction or two.
    let filter = EventFilter::all()
        .with_vms(vec![f.dst])
        .with_kinds(vec![EventKind::FrameRecv]);
    Ok(index
        .events_in_window(f.arrival_ns, u64::MAX, &filter, 64)?
        .into_iter()
        .find(|e| e.value == Some(f.id)))
}

/// The bytes of frame `f` as its sender sent them, by replaying the sender
/// over the sending instruction (for a frame never handed to anyone).
fn sent_bytes(trace: &Trace, f: &FrameRow) -> Result<Vec<u8>, TraceError> {
    let src = f.src as usize;
    let mut machine = trace.seek(src, f.sent_icount)?;
    machine.take_events();
    machine
        .run(RunLimit::icount(f.sent_icount + 1))
        .map_err(|e| trace.vm_error(src, e))?;
    let sent: Vec<Vec<u8>> = machine
        .take_events()
        .into_iter()
        .filter(|e| e.icount == f.sent_icount)
        .filter_map(|e| match e.kind {
            VmEvent::FrameSent(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    // Several frames from one instruction have consecutive ids.
    let ids: Vec<u64> = trace
        .index()
        .events_of_vm_around(f.src, f.sent_icount, 0, 64)?
        .into_iter()
        .filter(|e| e.icount == f.sent_icount && e.kind == EventKind::FrameSent)
        .filter_map(|e| e.value)
        .collect();
    ids.iter()
        .position(|&id| id == f.id)
        .and_then(|i| sent.get(i).cloned())
        .ok_or_else(|| {
            trace.invalid(format!(
                "frame {} of VM '{}' at icount {}: replaying the send gave no such frame",
                f.id,
                trace.config().vms[src].name,
                f.sent_icount
            ))
        })
}

/// The frames in the inboxes at barrier `at`: sent before it, not lost, not
/// delivered before it; with their bytes.
pub(super) fn in_flight_at(
    trace: &Trace,
    frames: &[FrameRow],
    at: u64,
) -> Result<Vec<(FrameRecord, Vec<u8>)>, TraceError> {
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.sent_vtime_ns < at) {
        if !matches!(
            f.fate,
            FrameFate::Received | FrameFate::Overflow | FrameFate::InFlight
        ) {
            continue;
        }
        let receipt = receipt(trace, f)?;
        if receipt.as_ref().is_some_and(|e| e.vtime_ns < at) {
            continue;
        }
        let bytes = match receipt.and_then(|e| e.payload) {
            Some(bytes) => bytes,
            None => sent_bytes(trace, f)?,
        };
        out.push((
            FrameRecord {
                id: f.id,
                src: f.src as usize,
                sent_icount: f.sent_icount,
                sent_ns: f.sent_vtime_ns,
                dst: f.dst as usize,
                arrival_ns: f.arrival_ns,
                fate: FrameFate::InFlight,
                received: None,
                len: f.len as usize,
            },
            bytes,
        ));
    }
    Ok(out)
}

/// The id the first frame sent at or after `at` gets (in a fork, at least
/// the first id its own run gave).
pub(super) fn next_frame_id(trace: &Trace, at: u64) -> Result<u64, TraceError> {
    let filter = EventFilter::all().with_kinds(vec![EventKind::FrameSent]);
    let last = trace
        .index()
        .prev_event_before(None, Position::at(0, 0, at), &filter)?;
    let floor = fork_start(trace)?.map_or(0, |s| s.next_frame_id);
    Ok(last.and_then(|e| e.value).map_or(0, |id| id + 1).max(floor))
}

/// The switch's MAC table after the frames with ids below `next_id`, and
/// whether it is exact: from the table changes the recorder logs, or, for
/// a trace recorded before it did, learnt again from the frames whose bytes
/// the trace holds (a frame it lacks is taken to carry its sender's MAC).
pub(super) fn switch_at(
    trace: &Trace,
    frames: &[FrameRow],
    next_id: u64,
) -> Result<(Switch, bool), TraceError> {
    let logged = trace.index().meta(LEARNT_KEY)?;
    if let Some(text) = logged {
        let learnt: Vec<Learnt> =
            learnt_from_json(&text).ok_or_else(|| crate::trace::TraceError::Damaged {
                path: trace.dir().join(crate::trace::INDEX_FILE),
                problem: format!("meta '{LEARNT_KEY}' is not a list of MAC table changes"),
            })?;
        let mut table = BTreeMap::new();
        for (_, mac, port) in learnt.into_iter().filter(|(id, _, _)| *id < next_id) {
            table.insert(mac, port);
        }
        return Ok((Switch::with_table(table), true));
    }
    let filter = EventFilter::all().with_kinds(vec![EventKind::FrameRecv]);
    let mut bytes: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for e in trace.index().events_in_window(0, u64::MAX, &filter, usize::MAX)? {
        if let (Some(id), Some(p)) = (e.value, e.payload) {
            bytes.entry(id).or_insert(p);
        }
    }
    let mut seen = BTreeSet::new();
    let mut table = BTreeMap::new();
    for f in frames.iter().filter(|f| f.id < next_id) {
        if !seen.insert(f.id) {
            continue;
        }
        let src = bytes
            .get(&f.id)
            .and_then(|b| macs(b))
            .map(|(_, src)| src)
            .or_else(|| trace.config().vms.get(f.src as usize).map(|v| v.mac));
        if let Some(src) = src.filter(|m| m[0] & 1 == 0) {
            table.insert(src, f.src as usize);
        }
    }
    Ok((Switch::with_table(table), false))
}

/// Everything at the base barrier.
pub(super) struct BaseState {
    pub cut: ClusterCut,
    pub base_maps: Vec<PageMap>,
    pub switch_exact: bool,
}

/// Builds the cluster's state at `base`.
pub(super) fn base_state(trace: &Trace, base: &Base, max_steps: u64) -> Result<BaseState, TraceError> {
    let frames = trace.index().frame_edges(usize::MAX)?;
    let vms = restore_vms(trace, base, max_steps)?;
    let in_flight = in_flight_at(trace, &frames, base.vtime_ns)?;
    let next_id = next_frame_id(trace, base.vtime_ns)?;
    let (switch, switch_exact) = switch_at(trace, &frames, next_id)?;
    let mut machines = Vec::new();
    let mut stopped = Vec::new();
    let mut base_maps = Vec::new();
    for v in vms {
        machines.push(v.machine);
        stopped.push(v.stopped);
        base_maps.push(v.base_map);
    }
    Ok(BaseState {
        cut: ClusterCut {
            machines,
            stopped,
            in_flight,
            next_frame_id: next_id,
            switch,
            vtime_ns: base.window_ns,
            at_barrier: base.at_barrier,
        },
        base_maps,
        switch_exact,
    })
}
