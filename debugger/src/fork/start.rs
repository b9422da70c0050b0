//! The first moments of a fork's trace: its first checkpoint of each VM
//! (the whole memory at the cut, pages shared with the parent), where its
//! next checkpoints fall, and the fault events due at the cut.

use std::collections::BTreeSet;

use vmrr_backend::Machine;
use vmrr_index::{EventKind, EventRow};

use super::cut::read_checkpoint;
use crate::cluster::Cluster;
use crate::trace::checkpoint::{CheckpointFile, PageMap};
use crate::trace::pages::PAGE_BYTES;
use crate::trace::record::{describe_fault, Recorder};
use crate::trace::{Trace, TraceError};

/// Writes the first checkpoint of `vm` in the fork: the VM as it stands at
/// the cut, all of its memory listed (a trace's first checkpoint starts
/// from empty RAM). `base` is the memory of the parent's checkpoint the
/// machine was restored from; the pages written since are in its dirty log.
/// Pages the parent has are linked from its store, not written again.
pub(super) fn first_checkpoint(
    rec: &mut Recorder,
    vm: usize,
    machine: &mut Machine,
    base: &PageMap,
) -> Result<(), TraceError> {
    let err = |source| TraceError::Vm {
        vm: rec.names[vm].clone(),
        source,
    };
    let icount = machine.icount();
    let dirty = machine.take_dirty_pages().map_err(err)?;
    // What ran before the cut belongs to the parent's execution index.
    drop(machine.take_exec_log());
    let mut map = base.0.clone();
    let mut fresh = BTreeSet::new();
    let mut page = [0u8; PAGE_BYTES];
    for index in dirty {
        machine.read_page(index, &mut page).map_err(err)?;
        if page.iter().all(|&b| b == 0) {
            map.remove(&index);
        } else {
            map.insert(index, rec.store.put(&page)?);
            fresh.insert(index);
        }
    }
    for (index, hash) in &map {
        if !fresh.contains(index) {
            rec.store.adopt(hash)?;
        }
    }
    let state = machine.capture_core().map_err(err)?;
    // The kind of hash every checkpoint of a new trace has (meta `state_hash`).
    let hash = vmrr_backend::state::hex(&machine.paged_state_hash().map_err(err)?);
    let file = CheckpointFile {
        vm,
        icount,
        vtime_ns: machine.vtime_ns(),
        state_hash: hash,
        inputs_consumed: 0,
        state,
        changed: map.iter().map(|(i, h)| (*i, h.clone())).collect(),
        zeroed: Vec::new(),
        // Inside a window: not a barrier a fork of this fork could start from.
        cluster_ns: None,
    };
    rec.vms[vm].pages = map;
    rec.write_checkpoint(file)
}

/// For each VM, the icount the parent counted its next checkpoint from at
/// the last barrier the fork passed (`barrier_ns`): its last checkpoint
/// taken at or before that barrier. With it the fork checkpoints where the
/// parent did, and the two traces' checkpoints can be compared one by one.
/// `fork_due` is where the trace (itself a fork) counted from at its start.
pub(super) fn due_points(
    trace: &Trace,
    cluster: &Cluster,
    barrier_ns: u64,
    fork_due: Option<&[u64]>,
) -> Result<Vec<u64>, TraceError> {
    let mut out = Vec::new();
    for vm in 0..trace.config().vms.len() {
        let here = cluster.machine(vm).icount();
        let cps = trace.checkpoints(vm);
        let mut due = 0;
        for k in (0..cps.len()).rev().filter(|&k| cps[k].icount <= here) {
            let file = read_checkpoint(trace, vm, k)?;
            match (file.cluster_ns, k, fork_due) {
                (Some(at), _, _) if at <= barrier_ns => {}
                (Some(_), _, _) => continue,
                (None, 0, Some(from)) => {
                    due = from.get(vm).copied().unwrap_or(0);
                    break;
                }
                // Older traces do not name the barrier: the VM's clock is close.
                (None, _, _) if file.vtime_ns <= barrier_ns => {}
                (None, _, _) => continue,
            }
            due = file.icount;
            break;
        }
        out.push(due);
    }
    Ok(out)
}

/// Writes the events of the faults at or after the cut that the parent had
/// already written at its last barrier (the cut lies in idle time the
/// cluster skipped); returns how many faults of the schedule are written.
pub(super) fn faults_at_start(
    rec: &mut Recorder,
    cluster: &Cluster,
    cut_ns: u64,
) -> Result<usize, TraceError> {
    let config = cluster.config();
    let now = cluster.vtime_ns();
    for f in config
        .faults
        .iter()
        .filter(|f| f.at_ns >= cut_ns && f.at_ns < now)
    {
        let (text, vms) = describe_fault(config, &f.kind);
        for vm in vms {
            let row = EventRow::new(vm as u32, cluster.machine(vm).icount(), f.at_ns, EventKind::Fault)
                .with_text(text.clone());
            rec.index.add_event(&row)?;
        }
    }
    Ok(config.faults.iter().filter(|f| f.at_ns < now).count())
}
