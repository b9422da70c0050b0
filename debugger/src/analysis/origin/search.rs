//! Finding the last write of some bytes before a position: slice by
//! slice, newest first, each slice's steps recorded once and kept for the
//! next links of the chain.

use std::sync::Arc;

use vmrr_backend::devices::virtio_net::DmaAccess;
use vmrr_index::{Pos, VmId};

use super::super::flow::{self, Loc};
use super::super::pass::{run_jobs, PassOptions, Progress, SliceJob, Work};
use super::super::steps::{Recorder, SliceSteps};
use super::super::AnalysisError;
use super::{Tracer, Writer, KEEP_RECORDINGS, MAX_REGISTER_SLICES};

impl Tracer<'_> {
    /// Steps of `vm` from checkpoint `slice` to `to`, recorded (or kept
    /// from an earlier link).
    pub(super) fn recording(
        &mut self,
        vm: usize,
        slice: usize,
        to: u64,
    ) -> Result<Arc<SliceSteps>, AnalysisError> {
        if let Some(i) = self
            .recordings
            .iter()
            .position(|r| r.job.vm == vm && r.job.slice == slice && r.job.to >= to)
        {
            let r = self.recordings.remove(i);
            self.recordings.push(r.clone());
            return Ok(r);
        }
        let from = self.trace.checkpoints(vm)[slice].icount;
        let job = SliceJob { vm, slice, from, to };
        let quiet = PassOptions {
            jobs: 1,
            cancel: self.opts.cancel,
            progress: &|_: Progress| {},
        };
        let mut results = run_jobs(
            self.trace,
            vec![Work {
                job,
                observers: vec![Box::new(Recorder::new(job))],
            }],
            &quiet,
        )?;
        let output = results
            .pop()
            .and_then(|r| r.outputs.into_iter().next())
            .and_then(|o| o.downcast::<SliceSteps>().ok())
            .ok_or(AnalysisError::Cancelled)?;
        let rec = Arc::new(*output);
        if self.recordings.len() >= KEEP_RECORDINGS {
            self.recordings.remove(0);
        }
        self.recordings.push(rec.clone());
        Ok(rec)
    }

    /// The last write of `loc` in `vm` before position `at` (instructions
    /// before it, frames handed over at or before it).
    pub(super) fn last_writer(
        &mut self,
        vm: usize,
        at: u64,
        loc: &Loc,
    ) -> Result<Option<Writer>, AnalysisError> {
        let cps = self.trace.checkpoints(vm).to_vec();
        let rows = self.trace.exec_index(vm)?;
        let inputs = self.trace.inputs(vm);
        let mut k = cps.iter().rposition(|c| c.icount <= at).unwrap_or(0);
        let mut searched = 0;
        let total = k + 1;
        loop {
            let from = cps[k].icount;
            let to = if cps[k].icount <= at && cps.get(k + 1).is_none_or(|c| c.icount > at) {
                at
            } else {
                cps[k + 1].icount
            };
            let candidate = match loc {
                Loc::Mem { pa, len } => {
                    // Frames handed over write memory the index may not
                    // name word by word: such slices are always searched.
                    let delivers = inputs.iter().any(|i| (from..=to).contains(&i.icount));
                    delivers
                        || rows
                            .get(k)
                            .and_then(Option::as_ref)
                            .is_none_or(|r| r.may_write(*pa, *len))
                }
                Loc::Reg { .. } => {
                    searched += 1;
                    if searched > MAX_REGISTER_SLICES {
                        return Ok(None);
                    }
                    true
                }
            };
            if candidate {
                let rec = self.recording(vm, k, to)?;
                if let Some(w) = search(&rec, at, loc) {
                    return Ok(Some(w));
                }
            }
            (self.opts.progress)(Progress {
                done: total - k,
                total,
            });
            if k == 0 {
                return Ok(None);
            }
            k -= 1;
        }
    }
}

/// The last write of `loc` in a recording before position `at`.
pub(super) fn search(rec: &Arc<SliceSteps>, at: u64, loc: &Loc) -> Option<Writer> {
    let mut si = rec.steps.partition_point(|s| s.icount < at);
    let mut di = rec.deliveries.partition_point(|d| d.icount <= at);
    let card = |dma: &[DmaAccess], loc: &Loc| {
        dma.iter().rev().filter(|a| a.is_write()).find_map(|a| {
            let part = match loc {
                Loc::Mem { pa, len } => {
                    let lo = (*pa).max(a.gpa);
                    let hi = (pa + len).min(a.gpa + a.len);
                    (lo < hi).then_some(Loc::Mem { pa: lo, len: hi - lo })
                }
                Loc::Reg { .. } => None,
            }?;
            Some((a.clone(), part))
        })
    };
    loop {
        // A frame handed over before instruction c comes before step c.
        let step_later = match (si.checked_sub(1), di.checked_sub(1)) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(d)) => rec.steps[s].icount >= rec.deliveries[d].icount,
        };
        if step_later {
            si -= 1;
            let s = &rec.steps[si];
            // The card's writes during a step follow the instruction's.
            if let Some((dma, part)) = card(&s.dma, loc) {
                return Some(Writer::Card {
                    pos: Pos::new(rec.job.vm as VmId, s.icount, s.vtime),
                    rip: Some(s.regs.rip()),
                    dma,
                    input: None,
                    part,
                });
            }
            if let Some(part) = flow::written(rec, si, loc) {
                return Some(Writer::Step {
                    rec: rec.clone(),
                    step: si,
                    part,
                });
            }
        } else {
            di -= 1;
            let d = &rec.deliveries[di];
            if let Some((dma, part)) = card(&d.dma, loc) {
                return Some(Writer::Card {
                    pos: Pos::new(rec.job.vm as VmId, d.icount, d.vtime),
                    rip: None,
                    dma,
                    input: Some(d.input),
                    part,
                });
            }
        }
    }
}
