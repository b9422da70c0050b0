//! Dense snapshots near the cursor, so that stepping backward is instant.
//!
//! The recording's checkpoints are 10k steps apart: restoring one and
//! replaying forward costs up to ~0.1 s. The first time the cursor moves back
//! inside a checkpoint slice, the cache replays that slice once and keeps a
//! snapshot every `DENSE_STEPS` steps: the vCPU and device state plus the
//! contents of every page changed since the slice's checkpoint. Restoring
//! one rewrites only the pages the live machine changed, then replays at
//! most `DENSE_STEPS` steps.

use std::collections::{BTreeMap, BTreeSet};

use vmrr_backend::{Machine, MachineState, VmError};

use crate::trace::Trace;
use crate::trace::TraceError;

/// Steps between two dense snapshots (~8 ms of replay here).
pub const DENSE_STEPS: u64 = 1000;

struct Snap {
    core: MachineState,
    next_input: usize,
    /// Contents of the pages that differ from the slice's checkpoint.
    pages: BTreeMap<u64, Box<[u8]>>,
}

/// The dense snapshots of one VM, within one checkpoint slice.
#[derive(Default)]
pub(super) struct DenseCache {
    slice: Option<usize>,
    base_ram: Vec<u8>,
    snaps: BTreeMap<u64, Snap>,
    /// Pages the live machine changed since the slice's checkpoint.
    live_dirty: BTreeSet<u64>,
}

/// An engine error of VM `vm`, named.
fn vm_err(trace: &Trace, vm: usize, source: VmError) -> TraceError {
    TraceError::Vm {
        vm: trace.config().vms[vm].name.clone(),
        source,
    }
}

impl DenseCache {
    /// Forgets everything: the live machine was replaced by one the cache
    /// has not followed (a search's), so the next restore starts from its
    /// slice's checkpoint.
    pub(super) fn forget(&mut self) {
        *self = DenseCache::default();
    }

    /// Records the pages the live machine changed while running forward.
    pub(super) fn note_run(&mut self, machine: &mut Machine) -> Result<(), TraceError> {
        let dirty = machine
            .take_dirty_pages()
            .map_err(|e| TraceError::Invalid(e.to_string()))?;
        self.live_dirty.extend(dirty);
        Ok(())
    }

    fn snapshot(
        &mut self,
        trace: &Trace,
        vm: usize,
        machine: &mut Machine,
        next_input: usize,
    ) -> Result<(), TraceError> {
        self.note_run(machine)?;
        let core = machine.capture_core().map_err(|e| vm_err(trace, vm, e))?;
        let mut pages = BTreeMap::new();
        let mut page = [0u8; 4096];
        for &p in &self.live_dirty {
            machine
                .read_page(p, &mut page)
                .map_err(|e| vm_err(trace, vm, e))?;
            let at = p as usize * 4096;
            if self.base_ram.get(at..at + 4096) != Some(&page[..]) {
                pages.insert(p, page.to_vec().into_boxed_slice());
            }
        }
        self.snaps.insert(
            machine.icount(),
            Snap {
                core,
                next_input,
                pages,
            },
        );
        Ok(())
    }

    /// A cache for checkpoint slice `k` of `vm` and a new machine standing
    /// at its checkpoint (with the inputs consumed there): a search that
    /// replays the slice fills the cache as it goes ([`DenseCache::keep_up`]),
    /// so that moving to its hit afterwards replays at most `DENSE_STEPS`.
    pub(super) fn for_slice(
        trace: &Trace,
        vm: usize,
        k: usize,
    ) -> Result<(DenseCache, Machine, usize), TraceError> {
        let Some(at) = trace.checkpoints(vm).get(k).map(|c| c.icount) else {
            return Err(TraceError::Invalid(format!("VM {vm} has no checkpoint {k}")));
        };
        let mut cache = DenseCache::default();
        let (machine, next) = cache.restore(trace, vm, at, None)?;
        Ok((cache, machine, next))
    }

    /// Takes a snapshot of `machine` (which this cache follows) if it ran
    /// `DENSE_STEPS` or more past the last one.
    pub(super) fn keep_up(
        &mut self,
        trace: &Trace,
        vm: usize,
        machine: &mut Machine,
        next_input: usize,
    ) -> Result<(), TraceError> {
        let last = self.snaps.keys().next_back().copied().unwrap_or(0);
        if machine.icount() >= last.saturating_add(DENSE_STEPS) {
            self.snapshot(trace, vm, machine, next_input)?;
        }
        Ok(())
    }

    /// Puts `reuse` (or a new machine) at `icount` of `vm`, through the
    /// nearest dense snapshot at or before it.
    pub(super) fn restore(
        &mut self,
        trace: &Trace,
        vm: usize,
        icount: u64,
        reuse: Option<Machine>,
    ) -> Result<(Machine, usize), TraceError> {
        let k = trace
            .checkpoints(vm)
            .iter()
            .rposition(|c| c.icount <= icount)
            .unwrap_or(0);
        let mut machine = match (self.slice == Some(k), reuse) {
            (true, Some(machine)) => machine,
            (_, reuse) => {
                // A new slice: restore its checkpoint in full and start over.
                let restored = trace.restore_checkpoint(vm, k, reuse)?;
                let mut machine = restored.machine;
                self.slice = Some(k);
                self.base_ram = restored.ram;
                self.snaps.clear();
                self.live_dirty.clear();
                let next = restored.inputs_consumed;
                self.snapshot(trace, vm, &mut machine, next)?;
                machine
            }
        };
        // Restore the nearest snapshot at or before `icount`.
        self.note_run(&mut machine)?;
        let Some((_, snap)) = self.snaps.range(..=icount).next_back() else {
            return Err(TraceError::Invalid(format!("no snapshot before icount {icount}")));
        };
        let mut page = vec![0u8; 4096];
        for &p in &self.live_dirty {
            let at_byte = p as usize * 4096;
            let content = match snap.pages.get(&p) {
                Some(c) => &c[..],
                None => match self.base_ram.get(at_byte..at_byte + 4096) {
                    Some(c) => c,
                    None => continue,
                },
            };
            page.copy_from_slice(content);
            machine.write_page(p, &page).map_err(|e| vm_err(trace, vm, e))?;
        }
        machine
            .restore_core(&snap.core)
            .map_err(|e| vm_err(trace, vm, e))?;
        let mut next = snap.next_input;
        // The live machine now differs from the checkpoint in the snapshot's pages
        // (and the page writes above show up in its dirty log; that is harmless).
        self.live_dirty = snap.pages.keys().copied().collect();
        machine.take_dirty_pages().map_err(|e| vm_err(trace, vm, e))?;
        // Replay forward, adding snapshots past the last one on the way.
        loop {
            let last = self.snaps.keys().next_back().copied().unwrap_or(0);
            let stop_at = if machine.icount() >= last {
                icount.min(machine.icount() + DENSE_STEPS)
            } else {
                icount
            };
            trace.run_to(vm, &mut machine, &mut next, stop_at, usize::MAX)?;
            if machine.icount() >= icount || machine.finished().is_some() || machine.icount() < stop_at {
                self.note_run(&mut machine)?;
                break;
            }
            if machine.icount() > last && machine.icount() - last >= DENSE_STEPS {
                self.snapshot(trace, vm, &mut machine, next)?;
            }
        }
        Ok((machine, next))
    }
}
