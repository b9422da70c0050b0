//! A cluster built from a consistent cut of a recording, run on from there,
//! and changes to single frames: what `fork` needs from the scheduler.
//!
//! A cut is taken at a window barrier of the recording (the state there is
//! each VM's, the frames in the inboxes, the switch's table and the next
//! frame id). [`Cluster::advance_to`] then runs on to any virtual time inside
//! a window without a barrier, routing the frames sent so far: they could
//! not arrive before the window ends, so routing them early changes nothing,
//! and their ids follow the same order as at the barrier. Routing early only
//! asks whether the receiver has stopped too soon; the next barrier asks
//! again (`recheck_prerouted`).

use std::collections::VecDeque;

use vmrr_backend::{Machine, Stop};

use super::{Cluster, ClusterError, ClusterOptions, ClusterStop, FrameFate, FrameRecord, Node, Pending};
use crate::cluster::config::{ClusterConfig, FaultSpec};
use crate::cluster::faults::Faults;
use crate::cluster::switch::Switch;

/// A change of the switch's MAC table: the id of the frame that taught it,
/// the MAC, and the port (VM) it now leads to.
pub type Learnt = (u64, [u8; 6], usize);

/// Ids of duplicates made by a fork start here, far above any id a run
/// gives, so that every frame a VM sends keeps the id it has in the parent.
pub const DUPLICATE_IDS: u64 = 1 << 40;

/// Which frame a change applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameTarget {
    /// The frame with this id, sent by `src` at `sent_icount` (checked, so
    /// that a fork which diverged before it leaves another frame alone);
    /// only its copy to `to` when given.
    Id {
        /// The frame's id.
        id: u64,
        /// Its sender.
        src: usize,
        /// The sender's icount at the send.
        sent_icount: u64,
        /// One receiver, or every one.
        to: Option<usize>,
    },
    /// The first frame in send order, among those not yet delivered, that
    /// goes from `from` to `to` (either may be any VM) and is not lost to a
    /// fault.
    Next {
        /// The sender, or any.
        from: Option<usize>,
        /// The receiver, or any.
        to: Option<usize>,
    },
}

/// What a change does to its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// The frame is lost (its fate becomes `dropped`).
    Drop,
    /// The frame arrives this much later.
    Delay {
        /// Extra latency, ns.
        ns: u64,
    },
    /// A second copy arrives this much after the frame (0: at the same time).
    Duplicate {
        /// Delay of the copy after the original's arrival, ns.
        after_ns: u64,
    },
}

/// A change to one frame, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameEdit {
    /// Which frame.
    pub target: FrameTarget,
    /// What happens to it.
    pub action: FrameAction,
    /// The frame it chose (for [`FrameTarget::Next`], once chosen).
    pub chosen: Option<u64>,
    /// Each copy it changed: (frame id, receiver).
    pub applied: Vec<(u64, usize)>,
}

impl FrameEdit {
    /// A change not applied yet.
    pub fn new(target: FrameTarget, action: FrameAction) -> FrameEdit {
        FrameEdit {
            target,
            action,
            chosen: None,
            applied: Vec::new(),
        }
    }

    /// Whether this change applies to `record` (choosing it, for a `Next`).
    fn takes(&mut self, record: &FrameRecord) -> bool {
        match self.target {
            FrameTarget::Id {
                id,
                src,
                sent_icount,
                to,
            } => {
                id == record.id
                    && src == record.src
                    && sent_icount == record.sent_icount
                    && to.is_none_or(|t| t == record.dst)
            }
            FrameTarget::Next { from, to } => {
                let fits = from.is_none_or(|f| f == record.src) && to.is_none_or(|t| t == record.dst);
                match self.chosen {
                    Some(id) => id == record.id && fits,
                    None if fits => {
                        self.chosen = Some(record.id);
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// The state of a whole cluster at a window barrier of a recording, or at
/// the start of a fork (inside a window).
pub struct ClusterCut {
    /// Every VM, standing at the barrier.
    pub machines: Vec<Machine>,
    /// Why each VM had stopped by then (`Stop::Limit` for a step limit).
    pub stopped: Vec<Option<Stop>>,
    /// The frames in the inboxes: each frame's record (fate in flight) and bytes.
    pub in_flight: Vec<(FrameRecord, Vec<u8>)>,
    /// The id the next frame sent gets.
    pub next_frame_id: u64,
    /// The switch's MAC table.
    pub switch: Switch,
    /// The start of the cluster's current window: the barrier's time (after
    /// any skip over idle time).
    pub vtime_ns: u64,
    /// Whether the VMs stand at that barrier (then the cluster first does
    /// what follows a barrier: skip idle time), or inside the window (a
    /// fork's start).
    pub at_barrier: bool,
}

impl Cluster {
    /// A cluster standing at the barrier `cut` was taken at, as the run that
    /// recorded it stood there: running it on gives the same windows, frames,
    /// ids and faults.
    pub fn from_cut(config: ClusterConfig, options: ClusterOptions, cut: ClusterCut) -> Cluster {
        let nodes = cut
            .machines
            .into_iter()
            .zip(cut.stopped)
            .map(|(mut machine, stop)| {
                // What it did before the barrier (a replay's events) is past.
                drop(machine.take_events());
                (machine, stop)
            })
            .map(|(machine, stop)| Node {
                machine,
                inbox: VecDeque::new(),
                stop,
                error: None,
                events: Vec::new(),
                delivered: Vec::new(),
            })
            .collect();
        let mut cluster = Cluster {
            window_ns: config.min_latency_ns(),
            faults: Faults::new(config.faults.clone(), config.seed),
            config,
            options,
            nodes,
            switch: cut.switch,
            now_ns: cut.vtime_ns,
            frames: Vec::new(),
            next_frame_id: cut.next_frame_id,
            events: Vec::new(),
            learnt: Vec::new(),
            prerouted: Vec::new(),
            edits: Vec::new(),
            next_duplicate_id: DUPLICATE_IDS,
        };
        let at_barrier = cut.at_barrier;
        let mut in_flight = cut.in_flight;
        // Duplicates a fork made before keep their ids.
        if let Some(last) = in_flight
            .iter()
            .map(|(r, _)| r.id)
            .filter(|&id| id >= DUPLICATE_IDS)
            .max()
        {
            cluster.next_duplicate_id = last + 1;
        }
        // The inboxes held them in arrival order, equal arrivals in send order.
        in_flight.sort_by_key(|(r, _)| (r.arrival_ns, r.id));
        for (record, bytes) in in_flight {
            if record.dst < cluster.nodes.len() {
                cluster.enqueue(record, &bytes);
            }
        }
        if at_barrier {
            // What the recording did right after this barrier. A deadlock
            // shows again at the end of the next window.
            let _ = cluster.skip_idle();
        }
        cluster
    }

    /// Runs on to virtual time `t`: whole windows while they end by `t`,
    /// then the window holding `t` only up to `t` (every instruction that
    /// starts before `t`), routing the frames sent so far. Nothing waits
    /// for a barrier then: a change made now acts as if made at `t`.
    /// Returns the stop if the cluster stopped before `t`.
    pub fn advance_to(&mut self, t: u64) -> Result<Option<ClusterStop>, ClusterError> {
        while self.now_ns < t {
            let end = self
                .now_ns
                .saturating_add(self.window_ns)
                .min(self.options.max_vtime_ns);
            if end > t {
                break;
            }
            if let Some(stop) = self.step_window()? {
                return Ok(Some(stop));
            }
        }
        self.run_nodes(t);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(source) = node.error.take() {
                return Err(ClusterError::Vm {
                    vm: self.config.vms[i].name.clone(),
                    source,
                });
            }
        }
        let first = self.frames.len();
        self.barrier();
        self.prerouted = (first..self.frames.len())
            .filter(|&i| self.frames[i].fate == FrameFate::InFlight)
            .collect();
        Ok(None)
    }

    /// Forgets the frames whose fate is settled, keeping those in flight
    /// (a fork's trace starts with them).
    pub fn forget_settled_frames(&mut self) {
        let mut new_index = vec![usize::MAX; self.frames.len()];
        let mut kept = Vec::new();
        for (i, f) in std::mem::take(&mut self.frames).into_iter().enumerate() {
            if f.fate == FrameFate::InFlight {
                new_index[i] = kept.len();
                kept.push(f);
            }
        }
        self.frames = kept;
        for node in &mut self.nodes {
            node.inbox.retain(|p| new_index[p.record] != usize::MAX);
            for p in &mut node.inbox {
                p.record = new_index[p.record];
            }
        }
        self.prerouted = self
            .prerouted
            .iter()
            .map(|&i| new_index[i])
            .filter(|&i| i != usize::MAX)
            .collect();
    }

    /// Replaces the fault schedule and the seed for every frame sent from
    /// now on (frames already routed keep their verdicts).
    pub fn set_faults(&mut self, schedule: Vec<FaultSpec>, seed: u64) {
        self.config.faults = schedule.clone();
        self.config.seed = seed;
        self.faults = Faults::new(schedule, seed);
    }

    /// Changes how far the cluster runs.
    pub fn set_limits(&mut self, max_steps: u64, max_vtime_ns: u64) {
        self.options.max_steps = max_steps;
        self.options.max_vtime_ns = max_vtime_ns;
    }

    /// Adds a change to a frame: applied at once to a frame in flight that
    /// it targets, else kept for the frames routed from now on. Returns
    /// whether it applied now.
    pub fn add_frame_edit(&mut self, mut edit: FrameEdit) -> bool {
        let mut targets: Vec<usize> = (0..self.frames.len())
            .filter(|&i| self.frames[i].fate == FrameFate::InFlight && self.frames[i].id < DUPLICATE_IDS)
            .collect();
        targets.sort_by_key(|&i| (self.frames[i].id, self.frames[i].dst));
        let chosen: Vec<usize> = targets
            .into_iter()
            .filter(|&i| edit.takes(&self.frames[i]))
            .collect();
        for &i in &chosen {
            self.edit_in_flight(i, edit.action);
            edit.applied.push((self.frames[i].id, self.frames[i].dst));
        }
        // Kept either way: one that applied to a frame in flight, or whose
        // frame was sent before, can match no frame routed from now on
        // (ids only grow), and the list says what each change did.
        self.edits.push(edit);
        !chosen.is_empty()
    }

    /// Starts the switch's log over with its whole table (as if learnt
    /// before frame 0): a fork's log then holds the table at its cut.
    pub fn restart_switch_log(&mut self) {
        self.learnt = self
            .switch
            .table()
            .iter()
            .map(|(mac, port)| (0, *mac, *port))
            .collect();
    }

    /// The frame changes and what each did.
    pub fn frame_edits(&self) -> &[FrameEdit] {
        &self.edits
    }

    /// Every change of the switch's MAC table so far.
    pub fn learnt(&self) -> &[Learnt] {
        &self.learnt
    }

    /// The id the next frame sent gets.
    pub fn next_frame_id(&self) -> u64 {
        self.next_frame_id
    }

    /// The switch.
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// Applies `action` to the frame in flight with record `i`.
    fn edit_in_flight(&mut self, i: usize, action: FrameAction) {
        let dst = self.frames[i].dst;
        let Some(at) = self.nodes[dst].inbox.iter().position(|p| p.record == i) else {
            return;
        };
        let Some(mut pending) = self.nodes[dst].inbox.remove(at) else {
            return;
        };
        match action {
            FrameAction::Drop => self.frames[i].fate = FrameFate::Dropped,
            FrameAction::Delay { ns } => {
                pending.arrival_ns = pending.arrival_ns.saturating_add(ns);
                self.frames[i].arrival_ns = pending.arrival_ns;
                let inbox = &mut self.nodes[dst].inbox;
                let at = inbox.partition_point(|p| p.arrival_ns <= pending.arrival_ns);
                inbox.insert(at, pending);
            }
            FrameAction::Duplicate { after_ns } => {
                let record = self.frames[i].clone();
                let bytes = pending.bytes.clone();
                self.nodes[dst].inbox.insert(at, pending);
                self.duplicate(&record, &bytes, after_ns);
            }
        }
    }

    /// Applies the changes that target `record`, a frame being routed that
    /// passed the faults; returns the delay of a duplicate to make.
    pub(super) fn edit_routed(&mut self, record: &mut FrameRecord) -> Option<u64> {
        let mut duplicate = None;
        for edit in &mut self.edits {
            if !edit.takes(record) {
                continue;
            }
            edit.applied.push((record.id, record.dst));
            match edit.action {
                FrameAction::Drop => record.fate = FrameFate::Dropped,
                FrameAction::Delay { ns } => record.arrival_ns = record.arrival_ns.saturating_add(ns),
                FrameAction::Duplicate { after_ns } => duplicate = Some(after_ns),
            }
        }
        duplicate
    }

    /// Sends a copy of `record`'s frame to the same receiver, `after_ns` after it.
    pub(super) fn duplicate(&mut self, record: &FrameRecord, bytes: &[u8], after_ns: u64) {
        let copy = FrameRecord {
            id: self.next_duplicate_id,
            arrival_ns: record.arrival_ns.saturating_add(after_ns),
            fate: FrameFate::InFlight,
            received: None,
            ..record.clone()
        };
        self.next_duplicate_id += 1;
        self.enqueue(copy, bytes);
    }

    /// At the barrier after a cut inside a window: a frame routed at the
    /// cut whose receiver has stopped since is one routing now would have
    /// found stopped.
    pub(super) fn recheck_prerouted(&mut self) {
        for i in std::mem::take(&mut self.prerouted) {
            let Some(record) = self.frames.get(i) else {
                continue;
            };
            let dst = record.dst;
            if record.fate != FrameFate::InFlight || self.nodes[dst].stop.is_none() {
                continue;
            }
            self.nodes[dst].inbox.retain(|p: &Pending| p.record != i);
            self.frames[i].fate = FrameFate::ReceiverStopped;
        }
    }
}
