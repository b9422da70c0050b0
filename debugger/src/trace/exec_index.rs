//! The execution index of a trace (see `vmrr_index::ExecSliceRow`): written
//! while recording, one row per VM and checkpoint slice, or built afterwards
//! for a trace recorded without it (`vmrr index`), by replaying each slice
//! with the engine's execution log on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use vmrr_backend::state::DirtyPages;
use vmrr_backend::{ExecLog, WORD_BYTES};
use vmrr_index::{ExecSliceRow, VmId};

use super::{Trace, TraceError};

/// Words of the write log in a 4 KiB page.
const WORDS_PER_PAGE: u64 = 4096 / WORD_BYTES;

/// The row of the slice of `vm` from `start` to `end`: what the engine
/// logged, plus every page written that no logged word explains (the
/// devices' DMA, the CPU's own accessed/dirty bits) as written whole, so the
/// written set is never smaller than what happened.
pub fn slice_row(vm: VmId, start: u64, end: u64, log: ExecLog, dirty: &DirtyPages) -> ExecSliceRow {
    let explained = |page: u64| {
        let lo = page * WORDS_PER_PAGE;
        let i = log.words.partition_point(|&l| l < lo);
        log.words.get(i).is_some_and(|&l| l < lo + WORDS_PER_PAGE)
    };
    let mut pages: Vec<u64> = dirty
        .guest
        .iter()
        .copied()
        .filter(|&p| !explained(p))
        .chain(dirty.vmm.iter().copied())
        .collect();
    pages.sort_unstable();
    pages.dedup();
    ExecSliceRow {
        vm,
        icount: start,
        end_icount: end,
        addrs: log.addrs,
        words: log.words,
        pages,
    }
}

impl Trace {
    /// Replays slice `k` of `vm` with the execution log on: its row.
    pub fn index_slice(&self, vm: usize, k: usize) -> Result<ExecSliceRow, TraceError> {
        let cps = self.checkpoints(vm);
        let (Some(from), Some(to)) = (cps.get(k), cps.get(k + 1)) else {
            return Err(TraceError::Invalid(format!("VM {vm} has no slice {k}")));
        };
        let (mut machine, mut next) = self.machine_at_checkpoint(vm, k)?;
        machine.set_exec_log(true);
        let limit = {
            let file = super::checkpoint::CheckpointFile::read(
                self.dir(),
                std::path::Path::new(&to.manifest),
                to.file_hash.as_deref(),
            )?;
            file.inputs_consumed as usize
        };
        self.run_to(vm, &mut machine, &mut next, to.icount, limit)?;
        let dirty = machine
            .take_dirty_pages_by_writer()
            .map_err(|e| self.vm_error(vm, e))?;
        Ok(slice_row(
            vm as VmId,
            from.icount,
            to.icount,
            machine.take_exec_log(),
            &dirty,
        ))
    }

    /// The (VM, checkpoint slice) pairs the execution index lacks.
    pub fn unindexed_slices(&self) -> Result<Vec<(usize, usize)>, TraceError> {
        let mut work = Vec::new();
        for vm in 0..self.config().vms.len() {
            let have: std::collections::HashSet<u64> = self
                .index()
                .exec_slices(vm as VmId)?
                .iter()
                .map(|r| r.icount)
                .collect();
            for k in 0..self.checkpoints(vm).len().saturating_sub(1) {
                if !have.contains(&self.checkpoints(vm)[k].icount) {
                    work.push((vm, k));
                }
            }
        }
        Ok(work)
    }

    /// Builds the execution index rows this trace lacks, replaying slices on
    /// `jobs` threads; `progress` gets (slices done, slices to do). Returns
    /// how many rows were written. `cancel` stops it between slices (what is
    /// done is kept).
    pub fn build_exec_index(
        &self,
        jobs: usize,
        cancel: &AtomicBool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<usize, TraceError> {
        let work = self.unindexed_slices()?;
        let done = AtomicUsize::new(0);
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<TraceError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, work.len().max(1)) {
                scope.spawn(|| loop {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(&(vm, k)) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let row = self.index_slice(vm, k);
                    let written = row.and_then(|row| {
                        let mut index = self.index();
                        index.add_exec_slice(&row)?;
                        index.flush()?;
                        Ok(())
                    });
                    if let Err(e) = written {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        cancel.store(true, Ordering::Relaxed);
                        return;
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, work.len());
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or(None) {
            return Err(e);
        }
        // A trace recorded before checksums were kept gets them now, so
        // that later changes to what replay depends on are caught.
        let mut index = self.index();
        if !index.has_checksums()? {
            index.seal_checksums()?;
        }
        Ok(done.into_inner())
    }
}
