//! Replay with verification: each checkpoint slice is re-executed on its
//! own (slices are independent, so they run in parallel) and compared with
//! the recording.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vmrr_backend::regs::{GeneralRegs, Gpr, RFLAGS_HOST_BITS};
use vmrr_backend::Machine;
use vmrr_index::{CheckpointRow, EventKind, EventRow, FrameFate, VmId};

use super::checkpoint::CheckpointFile;
use super::codec::{describe, regenerable, same, RowEncoder};
use super::open::Trace;
use super::TraceError;

/// Where a replay first disagreed with the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// VM index.
    pub vm: usize,
    /// VM name.
    pub name: String,
    /// The first icount known to differ (an event's, or the checkpoint's).
    pub icount: u64,
    /// What differs, for the user.
    pub detail: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "divergence in VM '{}' at icount {}: {}",
            self.name, self.icount, self.detail
        )
    }
}

/// Outcome of replaying one checkpoint slice.
#[derive(Debug, Clone)]
pub struct SliceResult {
    /// VM index.
    pub vm: usize,
    /// Slice start and end icounts.
    pub from: u64,
    /// End of the slice.
    pub to: u64,
    /// Steps replayed.
    pub steps: u64,
    /// The divergence, if the replayed VM did not reach the recorded state.
    pub divergence: Option<Divergence>,
    /// Damage to the index found while the VM itself replayed exactly: its
    /// events or frames say something the replay did not do.
    pub damage: Option<String>,
}

/// Most differing pages a divergence report names.
const PAGES_SHOWN: usize = 8;

impl Trace {
    /// Replays slice `k` of `vm` (checkpoint k to k+1) and compares it with
    /// the recording: the end state with the checkpoint's state hash, every
    /// event the engine produces with the index's rows of that slice, and
    /// every frame sent or received with the frames table.
    pub fn replay_slice(&self, vm: usize, k: usize) -> Result<SliceResult, TraceError> {
        let cps = self.checkpoints(vm);
        let (Some(from), Some(to)) = (cps.get(k), cps.get(k + 1)) else {
            return Err(TraceError::Invalid(format!("VM {vm} has no slice {k}")));
        };
        let (mut machine, mut next) = self.machine_at_checkpoint(vm, k)?;
        if k + 2 == cps.len() {
            // Every other checkpoint is restored (and checked) as the start
            // of the next slice; the last one only here.
            let (last, _) = self.machine_at_checkpoint(vm, k + 1)?;
            self.recycle(vm, last);
        }
        let end_file = CheckpointFile::read(self.dir(), Path::new(&to.manifest), to.file_hash.as_deref())?;
        let limit = end_file.inputs_consumed as usize;
        let outcome = self
            .run_to(vm, &mut machine, &mut next, to.icount, limit)
            .and_then(|_| {
                machine
                    .idle_until(end_file.vtime_ns)
                    .map_err(|e| self.vm_error(vm, e))
            });
        let mut encoder = RowEncoder::new(vm as VmId);
        let mut produced = Vec::new();
        // The bytes of every frame the replay sent, by icount, in order:
        // the packets table must hold the same.
        let mut sent: Vec<(u64, Vec<u8>)> = Vec::new();
        for e in machine.take_events() {
            if let vmrr_backend::EventKind::FrameSent(bytes) = &e.kind {
                sent.push((e.icount, bytes.clone()));
            }
            encoder.push(&e, None, &mut produced);
        }
        produced.extend(encoder.flush());
        let recorded = self.recorded_rows(vm, from, to)?;
        let first_difference = first_difference(&recorded, &produced);
        let steps = machine.icount().saturating_sub(from.icount);
        let hash = if self.paged_hash() {
            machine.paged_state_hash()
        } else {
            machine.state_hash()
        };
        let hash = vmrr_backend::state::hex(&hash.map_err(|e| self.vm_error(vm, e))?);
        let state_matches =
            outcome.is_ok() && hash == to.state_hash && machine.icount() == to.icount && next == limit;
        let mut result = SliceResult {
            vm,
            from: from.icount,
            to: to.icount,
            steps,
            divergence: None,
            damage: None,
        };
        if !state_matches {
            let prefix = match &outcome {
                Err(e) => format!("replay failed: {e}; "),
                Ok(()) => String::new(),
            };
            result.divergence = Some(self.explain(vm, to, &machine, &end_file, prefix, first_difference)?);
        } else if let Some((_, diff)) = first_difference {
            // The VM reached exactly the recorded state, so it did what the
            // recording did: the index's rows are what changed.
            result.damage = Some(format!(
                "{}: the events of VM '{}' in icount {}..{} differ from its replay, which reaches the \
                 recorded state: {diff}. The events table was edited or damaged",
                self.dir().join(super::INDEX_FILE).display(),
                self.config().vms[vm].name,
                from.icount,
                to.icount
            ));
        } else {
            result.damage = match self.check_frames(vm, &produced)? {
                Some(damage) => Some(damage),
                None => self.check_packets(vm, &sent)?,
            };
        }
        self.recycle(vm, machine);
        Ok(result)
    }

    /// The rows the recorder wrote for slice `from`..`to` of `vm` that
    /// replay regenerates: those between the two checkpoints' own events
    /// (ids follow the recording order, so events at the slice's edge icount
    /// fall on the right side).
    fn recorded_rows(
        &self,
        vm: usize,
        from: &CheckpointRow,
        to: &CheckpointRow,
    ) -> Result<Vec<EventRow>, TraceError> {
        let index = self.index();
        let id_of = |cp: &CheckpointRow| -> Result<u64, TraceError> {
            match index.event_at(vm as VmId, cp.icount, EventKind::Checkpoint)? {
                Some(e) => Ok(e.id),
                None => Err(super::damaged(
                    index.path(),
                    format!(
                        "the checkpoint event of VM '{}' at icount {} is missing from the events table",
                        self.config().vms[vm].name,
                        cp.icount
                    ),
                )),
            }
        };
        let (lo, hi) = (id_of(from)?, id_of(to)?);
        Ok(index
            .events_of_vm_between_ids(vm as VmId, lo, hi)?
            .into_iter()
            .filter(|r| regenerable(r.kind))
            .collect())
    }

    /// Every frame the replay sent or received has its row in the frames table.
    fn check_frames(&self, vm: usize, produced: &[EventRow]) -> Result<Option<String>, TraceError> {
        let index = self.index();
        for row in produced {
            let missing = match row.kind {
                EventKind::FrameSent => index.frames_sent_at(vm as VmId, row.icount)?.is_empty(),
                EventKind::FrameRecv => !index
                    .frames_received_at(vm as VmId, row.icount)?
                    .iter()
                    .any(|f| f.fate == FrameFate::Received),
                _ => false,
            };
            if missing {
                return Ok(Some(format!(
                    "{}: VM '{}' {} at icount {} but the frames table has no row for it. The frames table \
                     was edited or damaged",
                    index.path().display(),
                    self.config().vms[vm].name,
                    if row.kind == EventKind::FrameSent {
                        "sent a frame"
                    } else {
                        "received a frame"
                    },
                    row.icount
                )));
            }
        }
        Ok(None)
    }

    /// Every frame the replay sent has the same bytes in the packets table
    /// (cut at its cap). A trace migrated from schema 2 has no packets:
    /// nothing to compare.
    fn check_packets(&self, vm: usize, sent: &[(u64, Vec<u8>)]) -> Result<Option<String>, TraceError> {
        let index = self.index();
        let mut at = 0;
        while let Some(&(icount, _)) = sent.get(at) {
            let here: Vec<&Vec<u8>> = sent[at..]
                .iter()
                .take_while(|(i, _)| *i == icount)
                .map(|(_, b)| b)
                .collect();
            at += here.len();
            let rows = index.packets_sent_at(vm as VmId, icount)?;
            if rows.is_empty() && index.packet_count()? == 0 {
                return Ok(None);
            }
            let differs = rows.len() != here.len()
                || rows.iter().zip(&here).any(|(row, bytes)| {
                    row.len as usize != bytes.len()
                        || row.bytes[..] != bytes[..bytes.len().min(vmrr_index::PACKET_BYTES_CAP)]
                });
            if differs {
                return Ok(Some(format!(
                    "{}: VM '{}' sent {} frame(s) at icount {} but the packets table holds {} with other                      bytes or lengths. The packets table was edited or damaged",
                    index.path().display(),
                    self.config().vms[vm].name,
                    here.len(),
                    icount,
                    rows.len()
                )));
            }
        }
        Ok(None)
    }

    /// Says precisely how a slice's replay differs: the first event that
    /// differs from the recording, and the registers and pages at its end.
    fn explain(
        &self,
        vm: usize,
        to: &CheckpointRow,
        machine: &Machine,
        end: &CheckpointFile,
        mut detail: String,
        first_difference: Option<(u64, String)>,
    ) -> Result<Divergence, TraceError> {
        let name = self.config().vms[vm].name.clone();
        if let Some((icount, what)) = first_difference {
            detail += &what;
            return Ok(Divergence {
                vm,
                name,
                icount,
                detail,
            });
        }
        // Same events: compare the end states.
        // Host-owned RFLAGS bits (TF, RF) are not the guest's: leave them out.
        let guest_view = |mut regs: GeneralRegs| {
            regs[Gpr::Rflags] &= !RFLAGS_HOST_BITS;
            regs
        };
        let now = guest_view(machine.general_regs());
        let want = guest_view(GeneralRegs::from_kvm(&end.state.vcpu.regs));
        let diffs: Vec<String> = Gpr::DISPLAY_ORDER
            .into_iter()
            .filter(|&g| now[g] != want[g])
            .map(|g| format!("{} {:#x} (recorded {:#x})", g.name(), now[g], want[g]))
            .collect();
        let k = self
            .checkpoints(vm)
            .iter()
            .position(|c| c.icount == to.icount)
            .unwrap_or(0);
        let (_, ram) = self.checkpoint_state(vm, k)?;
        let mut pages = Vec::new();
        let mut page = [0u8; 4096];
        for (i, want) in ram.chunks(4096).enumerate() {
            if machine.read_page(i as u64, &mut page).is_ok() && page[..] != *want {
                pages.push(format!("{:#x}", i * 4096));
            }
        }
        if machine.icount() != to.icount {
            detail += &format!(
                "replay stopped at icount {} instead of {}; ",
                machine.icount(),
                to.icount
            );
        }
        detail += &format!(
            "state at the checkpoint differs: registers [{}], pages [{}]{}",
            if diffs.is_empty() {
                "none".into()
            } else {
                diffs.join(", ")
            },
            pages
                .iter()
                .take(PAGES_SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if pages.len() > PAGES_SHOWN {
                format!(" and {} more", pages.len() - PAGES_SHOWN)
            } else {
                String::new()
            }
        );
        Ok(Divergence {
            vm,
            name,
            icount: to.icount.min(machine.icount()),
            detail,
        })
    }

    /// Replays every slice of the chosen VMs on `jobs` threads; returns the
    /// results ordered by VM and icount.
    pub fn verify(
        &self,
        vms: &[usize],
        jobs: usize,
        on_done: &(dyn Fn(&SliceResult) + Sync),
    ) -> Result<Vec<SliceResult>, TraceError> {
        let work: Vec<(usize, usize)> = vms
            .iter()
            .flat_map(|&vm| (0..self.checkpoints(vm).len().saturating_sub(1)).map(move |k| (vm, k)))
            .collect();
        let results: Mutex<Vec<Result<SliceResult, TraceError>>> = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, work.len().max(1)) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(vm, k)) = work.get(i) else { break };
                    let r = self.replay_slice(vm, k);
                    if let Ok(done) = &r {
                        on_done(done);
                    }
                    if let Ok(mut all) = results.lock() {
                        all.push(r);
                    }
                });
            }
        });
        let mut out = Vec::new();
        for r in results.into_inner().unwrap_or_default() {
            out.push(r?);
        }
        out.sort_by_key(|r| (r.vm, r.from));
        Ok(out)
    }
}

/// The first place where the recorded rows and the replayed ones differ:
/// its icount and what differs.
fn first_difference(recorded: &[EventRow], produced: &[EventRow]) -> Option<(u64, String)> {
    for i in 0..recorded.len().max(produced.len()) {
        match (recorded.get(i), produced.get(i)) {
            (Some(r), Some(p)) if same(r, p) => continue,
            (Some(r), Some(p)) => {
                return Some((
                    p.icount.min(r.icount),
                    format!(
                        "recorded {} (event #{}), replay gave {}",
                        describe(r),
                        r.id,
                        describe(p)
                    ),
                ))
            }
            (Some(r), None) => {
                return Some((
                    r.icount,
                    format!(
                        "recorded {} (event #{}), replay produced nothing more",
                        describe(r),
                        r.id
                    ),
                ))
            }
            (None, Some(p)) => {
                return Some((
                    p.icount,
                    format!("replay gave {}, which the recording lacks", describe(p)),
                ))
            }
            (None, None) => break,
        }
    }
    None
}
