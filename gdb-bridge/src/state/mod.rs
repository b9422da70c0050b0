//! The state of one gdb connection over a shared session: which VMs gdb is
//! attached to, the threads it selected, its breakpoints, the stops it has
//! not been told about yet, and the messages waiting for its console.
//!
//! A VM is a gdb inferior (process `vm + 1`) with one thread (`pP.1`). The
//! protocol areas (`crate::areas`) are `impl Target` blocks over this
//! state; nothing here knows their packets.

mod pending;
mod points;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use vmrr_debugger::session::{Pos, Session, VmId};

use crate::proto::thread_id::{self, Id, ThreadId};
use crate::Logger;

pub(crate) use pending::Pending;
pub(crate) use points::{BreakKind, PointTable};

/// Locks the session, also after a panic elsewhere poisoned the lock (the
/// session itself stays consistent: every move sets all of its fields).
pub(crate) fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// gdb's process id of VM `vm`: inferior N is VM N, counted from 1.
pub(crate) fn pid_of(vm: VmId) -> u64 {
    u64::from(vm) + 1
}

/// One VM as gdb sees it.
#[derive(Debug, Clone)]
pub(crate) struct VmEntry {
    /// Its name in the cluster.
    pub name: String,
    /// The copy of its image inside the trace (absolute), if readable.
    pub image: Option<PathBuf>,
    /// Whether gdb is attached to it (it detaches with `detach`, `kill`
    /// and when it quits).
    pub attached: bool,
}

/// Which threads a thread id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    /// Every thread (`-1`).
    All,
    /// Any one: the target chooses (`0`).
    Any,
    /// The thread of one VM.
    One(VmId),
}

/// What a `monitor sync` (run by vmrr's gdb settings before each prompt)
/// tells gdb to do.
#[derive(Debug, Default)]
pub(crate) struct Sync {
    /// The cursor moved outside a resume: gdb must drop its cached
    /// registers and frames.
    pub flush: bool,
    /// A `monitor` move made this VM the focus: gdb should select it.
    pub select: Option<VmId>,
}

/// The state of one gdb connection.
pub(crate) struct Target {
    /// The session, shared with other views.
    pub session: Arc<Mutex<Session>>,
    /// Every VM of the trace, by id.
    pub vms: Vec<VmEntry>,
    /// Whether gdb speaks the multiprocess extensions (thread ids `pP.T`).
    pub multiprocess: bool,
    /// The thread of the last `Hg` or stop: registers, memory and
    /// breakpoints apply to it.
    pub general: VmId,
    /// The thread of the last `Hc` (`None`: any or all): what `bs` and `bc`
    /// resume.
    pub cont: Option<VmId>,
    /// The thread selected in gdb as far as gdb tells: the last stop, or
    /// the last `thread N` (gdb checks it with `T` before switching).
    pub selected: VmId,
    /// gdb's breakpoints and watchpoints.
    pub points: PointTable,
    /// Stops found and not yet reported.
    pub pending: Pending,
    /// Where this connection's last move left the cursor: if it stands
    /// elsewhere now, another view (or a `monitor` command) moved it.
    pub moved_to: Option<Pos>,
    /// Messages for gdb's console that no reply could carry (a refused
    /// memory write), fetched by `monitor sync`.
    pub notices: Vec<String>,
    /// What `monitor sync` tells gdb to do.
    pub sync: Sync,
    /// Set by `monitor null-resume`: the next resume reports a stop without
    /// moving (vmrr's gdb settings need one resume to get past a gdb 13 bug).
    pub null_resume: bool,
    /// Messages for the person running the server.
    pub log: Logger,
}

impl Target {
    /// The state of a new connection over `session`.
    pub(crate) fn new(session: Arc<Mutex<Session>>, log: Logger) -> Target {
        let (vms, focus) = {
            let s = lock(&session);
            let rows = s.trace().index().vms().unwrap_or_default();
            let dir = s.trace().dir().to_path_buf();
            let vms = s
                .vm_ids()
                .map(|vm| VmEntry {
                    name: s.vm_name(vm).to_string(),
                    image: rows
                        .iter()
                        .find(|r| r.id == vm)
                        .and_then(|r| std::fs::canonicalize(dir.join(&r.image)).ok()),
                    attached: true,
                })
                .collect();
            (vms, s.focus())
        };
        Target {
            session,
            vms,
            multiprocess: false,
            general: 0,
            cont: None,
            // gdb starts in inferior 1 (`?` names it).
            selected: 0,
            points: PointTable::default(),
            pending: Pending::default(),
            moved_to: None,
            notices: Vec::new(),
            // gdb starts in inferior 1: the settings then select the focus.
            sync: Sync {
                flush: false,
                select: (focus != 0).then_some(focus),
            },
            null_resume: false,
            log,
        }
    }

    /// How gdb writes the thread of `vm`.
    pub(crate) fn thread_of(&self, vm: VmId) -> String {
        thread_id::format(self.multiprocess, pid_of(vm), 1)
    }

    /// `backup2 (inferior 3)`.
    pub(crate) fn label(&self, vm: VmId) -> String {
        let name = self.vms.get(vm as usize).map(|v| v.name.as_str()).unwrap_or("?");
        format!("{name} (inferior {})", pid_of(vm))
    }

    /// The VMs gdb is attached to, in order.
    pub(crate) fn attached(&self) -> Vec<VmId> {
        (0..self.vms.len() as VmId)
            .filter(|vm| self.vms[*vm as usize].attached)
            .collect()
    }

    /// The VM of gdb's process number `pid`, if there is one.
    pub(crate) fn vm_of_pid(&self, pid: u64) -> Option<VmId> {
        let vm = VmId::try_from(pid.checked_sub(1)?).ok()?;
        ((vm as usize) < self.vms.len()).then_some(vm)
    }

    /// Which threads `id` names; an error message (for the reply) when it
    /// names a process or thread that does not exist or is detached.
    pub(crate) fn resolve(&self, id: ThreadId) -> Result<Threads, String> {
        let (pid, tid) = match id.pid {
            // The bare form: thread N is VM N.
            None => match id.tid {
                Id::All => return Ok(Threads::All),
                Id::Any => return Ok(Threads::Any),
                Id::Num(n) => (n, Id::Num(1)),
            },
            Some(Id::All) => return Ok(Threads::All),
            Some(Id::Any) => return Ok(Threads::Any),
            Some(Id::Num(p)) => (p, id.tid),
        };
        let vm = self.vm_of_pid(pid).ok_or_else(|| {
            format!(
                "no process {pid:x}: this trace has {} VMs, processes 1 to {:x}",
                self.vms.len(),
                self.vms.len()
            )
        })?;
        if let Id::Num(t) = tid {
            if t != 1 {
                return Err(format!(
                    "no thread {t:x} in process {pid:x}: a VM has one vCPU, thread 1"
                ));
            }
        }
        if !self.vms[vm as usize].attached {
            return Err(format!(
                "{} is detached (attach {pid} to see it again)",
                self.label(vm)
            ));
        }
        Ok(Threads::One(vm))
    }

    /// Keeps a message for gdb's console (fetched by `monitor sync`) and
    /// tells the person running the server.
    pub(crate) fn notice(&mut self, text: String) {
        (self.log)(&text);
        self.notices.push(text);
    }

    /// Notes where a move of this connection left the cursor.
    pub(crate) fn note_moved(&mut self, s: &Session) {
        self.moved_to = Some(s.cursor());
    }

    /// Removes everything this connection added to the session.
    pub(crate) fn cleanup(&mut self) {
        let session = self.session.clone();
        let mut s = lock(&session);
        self.points.clear(&mut s);
    }
}
