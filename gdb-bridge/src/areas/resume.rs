//! Resuming, all-stop as gdb expects it of several processes:
//!
//! * `vCont`, `c`, `s`, `bc` and `bs` are decoded into one [`Request`]:
//!   a step or a range step of one VM, or a continue of one VM or of the
//!   whole cluster, forward or backward. `bs` and `bc` carry no thread:
//!   the last `Hc` names it (vmrr's gdb settings use `set scheduler-locking
//!   step`, which makes gdb send it), else the thread selected last.
//! * A continue reports every hit at the moment it stops: the first now,
//!   the others (hits of other VMs at the same virtual time) one per later
//!   resume that resumes their VM, before anything runs
//!   (`crate::state::Pending`). Only a resumed VM's stop is reported; gdb
//!   fails an assertion otherwise.
//! * A VM with a pending stop stands at it in gdb's view while gdb steps
//!   the VM it was told about over its breakpoint. The cluster has one
//!   cursor, so that step moves the others too; reporting the pending stop
//!   puts the cursor back on it, which leaves every other VM where it
//!   was. If gdb moved a VM further meanwhile (`stepi` of another thread),
//!   that is no longer so: the stop is not reported but named on the
//!   console, with the moment to go to.
//! * After every stop, the reported thread is the one gdb reads registers
//!   and memory of (`Hg`), as gdb assumes in all-stop mode.

use std::collections::BTreeMap;

use vmrr_debugger::session::{Direction, Hit, HitKind, Scope, Session, SessionError, VmId, WatchKind};

use crate::areas::registers::WHY_NO_WRITES;
use crate::proto::packet::Packet;
use crate::proto::reply::{error, Reason, StopReply, WatchReason, SIGINT, SIGTRAP};
use crate::proto::vcont::{Action, ActionKind};
use crate::run::{Ran, Request};
use crate::state::{lock, pid_of, BreakKind, Target, Threads};

/// A decoded resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resume {
    /// What to run.
    pub request: Request,
    /// The VMs gdb resumed: only their stops may be reported.
    pub resumed: Vec<VmId>,
    /// Console notes to send before the stop (signals not delivered).
    pub notes: Vec<String>,
}

/// A stop reply and the console lines that go before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stop {
    /// Lines for gdb's console.
    pub notes: Vec<String>,
    /// The stop reply.
    pub reply: String,
}

/// What a resume does first.
#[derive(Debug)]
pub(crate) enum Started {
    /// A pending stop is reported at once.
    Now(Stop),
    /// The request must run (on a worker).
    Run(Resume),
}

fn signal_note(signal: Option<u8>) -> Option<String> {
    signal
        .filter(|s| *s != 0)
        .map(|s| format!("vmrr: signal {s} is not delivered: a recording replays only what it recorded\n"))
}

impl Target {
    /// The VM a thread-less `bs` or `s` steps: the `Hc` thread, else the
    /// thread selected last.
    fn step_target(&self) -> VmId {
        self.cont
            .filter(|vm| self.vms[*vm as usize].attached)
            .unwrap_or(self.selected)
    }

    /// A continue of `resumed` that way.
    fn continue_of(&self, resumed: Vec<VmId>, dir: Direction, notes: Vec<String>) -> Result<Resume, String> {
        let scope = match resumed.as_slice() {
            [] => return Err(error("nothing to resume: every VM is detached")),
            [vm] => Scope::Vm(*vm),
            _ => Scope::Cluster,
        };
        Ok(Resume {
            request: Request::Continue { scope, dir },
            resumed,
            notes,
        })
    }

    /// Decodes a resume packet; `Err` holds the error reply.
    pub(crate) fn decode_resume(&self, packet: &Packet) -> Result<Resume, String> {
        let attached = self.attached();
        let refuse_addr = |addr: Option<u64>| match addr {
            Some(a) => Err(error(&format!(
                "vmrr: cannot resume at {a:#x} (that changes the program counter): {WHY_NO_WRITES}."
            ))),
            None => Ok(()),
        };
        match packet {
            Packet::VCont(actions) => self.decode_vcont(actions),
            Packet::Continue { addr, signal } => {
                refuse_addr(*addr)?;
                self.continue_of(
                    attached,
                    Direction::Forward,
                    signal_note(*signal).into_iter().collect(),
                )
            }
            Packet::Step { addr, signal } => {
                refuse_addr(*addr)?;
                let vm = self.step_target();
                Ok(Resume {
                    request: Request::Step {
                        vm,
                        dir: Direction::Forward,
                    },
                    resumed: vec![vm],
                    notes: signal_note(*signal).into_iter().collect(),
                })
            }
            Packet::ReverseStep => {
                let vm = self.step_target();
                Ok(Resume {
                    request: Request::Step {
                        vm,
                        dir: Direction::Backward,
                    },
                    resumed: vec![vm],
                    notes: Vec::new(),
                })
            }
            Packet::ReverseContinue => {
                let resumed = match self.cont {
                    Some(vm) if self.vms[vm as usize].attached => vec![vm],
                    _ => attached,
                };
                self.continue_of(resumed, Direction::Backward, Vec::new())
            }
            _ => Err(error("not a resume packet")),
        }
    }

    /// `vCont`: each attached VM gets the leftmost action that names it (or
    /// names no thread). A step or range step of one VM wins over the
    /// continues of the others: the cluster has one cursor, and the others
    /// follow the stepped VM.
    fn decode_vcont(&self, actions: &[Action]) -> Result<Resume, String> {
        let mut scoped = Vec::with_capacity(actions.len());
        for a in actions {
            let threads = match a.thread {
                None => Threads::All,
                Some(id) => self.resolve(id).map_err(|e| error(&e))?,
            };
            scoped.push((a, threads));
        }
        let mut notes = Vec::new();
        let mut stepped: Option<(VmId, ActionKind)> = None;
        let mut resumed = Vec::new();
        for vm in self.attached() {
            let action = scoped.iter().find(|(_, t)| match t {
                Threads::All => true,
                Threads::Any => vm == self.general,
                Threads::One(v) => *v == vm,
            });
            let Some((action, _)) = action else { continue };
            if action.kind == ActionKind::Stop {
                continue;
            }
            resumed.push(vm);
            notes.extend(signal_note(action.signal));
            if matches!(action.kind, ActionKind::Step | ActionKind::Range { .. }) && stepped.is_none() {
                stepped = Some((vm, action.kind));
            }
        }
        notes.dedup();
        let request = match stepped {
            Some((vm, ActionKind::Range { start, end })) => Request::Range { vm, start, end },
            Some((vm, _)) => Request::Step {
                vm,
                dir: Direction::Forward,
            },
            None => return self.continue_of(resumed, Direction::Forward, notes),
        };
        Ok(Resume {
            request,
            resumed,
            notes,
        })
    }

    /// Starts a resume: a pending stop of a resumed VM is reported at once;
    /// otherwise the request is to run.
    pub(crate) fn start_resume(&mut self, resume: Resume) -> Started {
        let dir = match resume.request {
            Request::Step { dir, .. } | Request::Continue { dir, .. } => dir,
            Request::Range { .. } => Direction::Forward,
        };
        let session = self.session.clone();
        let mut s = lock(&session);
        if std::mem::take(&mut self.null_resume) {
            // Nothing moves, not even the focus: only gdb's state changes.
            let vm = resume.resumed.first().copied().unwrap_or(self.general);
            self.general = vm;
            self.note_moved(&s);
            return Started::Now(Stop {
                notes: resume.notes,
                reply: StopReply {
                    signal: SIGTRAP,
                    pid: pid_of(vm),
                    tid: 1,
                    reason: Reason::Signal,
                }
                .format(self.multiprocess),
            });
        }
        // Pending stops hold only while the cursor stands where this
        // connection left it, and only in the direction they were found.
        if self.moved_to != Some(s.cursor()) || self.pending.direction() != Some(dir) {
            self.pending.clear();
        }
        // gdb removes and reinserts its points around every stop: a stop at
        // a point it no longer has is not reported (as gdbserver does).
        let (bps, wps) = (s.breakpoints().to_vec(), s.watchpoints().to_vec());
        let points = &self.points;
        self.pending.retain(|h| match &h.kind {
            HitKind::Breakpoint { addr } => {
                points.break_kind(h.pos.vm, *addr).is_some()
                    || bps.iter().any(|b| b.addr == *addr && b.vm.is_none())
            }
            HitKind::Watch { watch, .. } => points.has_watch(watch) || wps.contains(watch),
        });
        let mut notes = resume.notes.clone();
        while let Some(hit) = self.pending.take_first(|h| resume.resumed.contains(&h.pos.vm)) {
            let frozen = self.pending.vms();
            match stand_at(&mut s, &hit, &frozen, self.pending.seen()) {
                Ok(true) => {
                    let stop = self.stopped_at(&mut s, &hit, &resume.resumed);
                    notes.extend(stop.notes);
                    return Started::Now(Stop {
                        notes,
                        reply: stop.reply,
                    });
                }
                Ok(false) => notes.push(format!(
                    "vmrr: {} also hit {} at {} (icount {}), but gdb has moved other VMs past that \
                     moment since; `monitor goto {}:{}` goes there\n",
                    self.label(hit.pos.vm),
                    what_hit(&hit),
                    vmrr_debugger::vtime::format_ms(hit.pos.vtime_ns),
                    hit.pos.icount,
                    pid_of(hit.pos.vm),
                    hit.pos.icount
                )),
                Err(e) => notes.push(format!("vmrr: {e}\n")),
            }
        }
        Started::Run(Resume { notes, ..resume })
    }

    /// The stop gdb is told about after `ran`, and what becomes pending.
    pub(crate) fn finish_resume(&mut self, resume: &Resume, ran: Ran) -> Stop {
        let session = self.session.clone();
        let mut s = lock(&session);
        let mut notes = resume.notes.clone();
        let first_resumed = resume.resumed.first().copied().unwrap_or(self.selected);
        let (vm, signal, reason) = match ran {
            Ran::Moved { vm } => (vm, SIGTRAP, Reason::Signal),
            Ran::End { vm, dir } => {
                let vm = if resume.resumed.contains(&vm) {
                    vm
                } else {
                    first_resumed
                };
                let reason = match dir {
                    Direction::Backward => Reason::HistoryBegin,
                    Direction::Forward => Reason::HistoryEnd,
                };
                (vm, SIGTRAP, reason)
            }
            Ran::Cancelled => {
                let vm = if resume.resumed.contains(&self.selected) {
                    self.selected
                } else {
                    first_resumed
                };
                (vm, SIGINT, Reason::Signal)
            }
            Ran::Failed(message) => {
                (self.log)(&message);
                notes.push(format!("vmrr: {message}\n"));
                (first_resumed, 0, Reason::Signal)
            }
            Ran::Hits(hits) => {
                let dir = match resume.request {
                    Request::Continue { dir, .. } | Request::Step { dir, .. } => dir,
                    Request::Range { .. } => Direction::Forward,
                };
                let (shown, hidden): (Vec<Hit>, Vec<Hit>) =
                    hits.into_iter().partition(|h| resume.resumed.contains(&h.pos.vm));
                for h in &hidden {
                    notes.push(format!(
                        "vmrr: {} (not resumed by gdb) hit {} at {}\n",
                        self.label(h.pos.vm),
                        what_hit(h),
                        vmrr_debugger::vtime::format_ms(h.pos.vtime_ns)
                    ));
                }
                let mut shown = shown.into_iter();
                match shown.next() {
                    Some(first) => {
                        if first.pos != s.cursor() {
                            // The first hit was in a VM gdb does not see.
                            if let Err(e) = s.goto(first.pos.vm, first.pos.icount) {
                                notes.push(format!("vmrr: {e}\n"));
                            }
                        }
                        self.pending.set(dir, shown);
                        let stop = self.stopped_at(&mut s, &first, &resume.resumed);
                        notes.extend(stop.notes);
                        return Stop {
                            notes,
                            reply: stop.reply,
                        };
                    }
                    None => (first_resumed, SIGTRAP, Reason::Signal),
                }
            }
        };
        Stop {
            notes,
            reply: self.stop_reply(&mut s, vm, signal, reason, &resume.resumed),
        }
    }

    /// The stop reply for `vm`; it becomes the thread gdb reads (`Hg`) and
    /// the session's focus, and the cursor is noted as this connection's.
    /// gdb re-reads the `resumed` VMs: while stops are pending, where they
    /// stand now is noted as what gdb believes.
    fn stop_reply(
        &mut self,
        s: &mut Session,
        vm: VmId,
        signal: u8,
        reason: Reason,
        resumed: &[VmId],
    ) -> String {
        self.general = vm;
        self.selected = vm;
        let _ = s.set_focus(vm);
        if !self.pending.is_empty() {
            for &x in resumed {
                match s.position(x) {
                    Ok(p) => self.pending.note_seen(x, p.icount),
                    // Unknown: no pending stop can be checked against it.
                    Err(_) => self.pending.clear(),
                }
            }
        }
        self.note_moved(s);
        StopReply {
            signal,
            pid: pid_of(vm),
            tid: 1,
            reason,
        }
        .format(self.multiprocess)
    }

    /// The stop of a hit the cursor stands at.
    fn stopped_at(&mut self, s: &mut Session, hit: &Hit, resumed: &[VmId]) -> Stop {
        let vm = hit.pos.vm;
        let reason = match &hit.kind {
            HitKind::Breakpoint { addr } => match self.points.break_kind(vm, *addr) {
                Some(BreakKind::Software) => Reason::SwBreak,
                Some(BreakKind::Hardware) => Reason::HwBreak,
                // Set by another view of the session: a plain trap.
                None => Reason::Signal,
            },
            HitKind::Watch { watch, .. } => Reason::Watch(
                match watch.kind {
                    WatchKind::Write => WatchReason::Write,
                    WatchKind::Read => WatchReason::Read,
                    WatchKind::Access => WatchReason::Access,
                },
                watch.addr,
            ),
        };
        Stop {
            notes: Vec::new(),
            reply: self.stop_reply(s, vm, SIGTRAP, reason, resumed),
        }
    }
}

/// "a breakpoint at 0x…" or "a watchpoint on 0x…".
fn what_hit(hit: &Hit) -> String {
    match &hit.kind {
        HitKind::Breakpoint { addr } => format!("a breakpoint at {addr:#x}"),
        HitKind::Watch { watch, .. } => format!("a watchpoint on {:#x}", watch.addr),
    }
}

/// Whether every VM in `seen` but `vm` and the `frozen` ones stands where
/// gdb believes.
fn as_gdb_believes(
    s: &mut Session,
    vm: VmId,
    frozen: &[VmId],
    seen: &BTreeMap<VmId, u64>,
) -> Result<bool, SessionError> {
    for (&x, &icount) in seen {
        if x != vm && !frozen.contains(&x) && s.position(x)?.icount != icount {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Puts the cursor where `hit`'s VM stands at its hit (it may be there
/// already), if every other VM then stands where gdb believes (the VMs of
/// the other pending stops, `frozen`, excepted: gdb holds them at their
/// stops). True if so; otherwise the cursor is put back and false returned.
fn stand_at(
    s: &mut Session,
    hit: &Hit,
    frozen: &[VmId],
    seen: &BTreeMap<VmId, u64>,
) -> Result<bool, SessionError> {
    let vm = hit.pos.vm;
    if s.position(vm)?.icount == hit.pos.icount && as_gdb_believes(s, vm, frozen, seen)? {
        return Ok(true);
    }
    let here = s.cursor();
    s.goto(vm, hit.pos.icount)?;
    if as_gdb_believes(s, vm, frozen, seen)? {
        return Ok(true);
    }
    s.goto(here.vm, here.icount)?;
    Ok(false)
}
