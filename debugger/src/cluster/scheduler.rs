//! Runs the cluster window by window and moves frames at the barriers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vmrr_backend::{Event, EventKind, Machine, RunLimit, Stop, VmError};

pub use vmrr_index::FrameFate;

use super::config::ClusterConfig;
use super::faults::{Faults, Verdict};
use super::switch::Switch;

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Worker threads (at most one per VM is used). One per VM is the
    /// default even on fewer cores: with a barrier per window, a pool smaller
    /// than the VM count leaves cores idle at the end of each window, while
    /// the kernel time-slices one thread per VM evenly (3 busy VMs on 2
    /// cores: 1.78x the sequential throughput with 3 threads, 1.54x with 2).
    pub jobs: usize,
    /// Stop every VM after this many steps.
    pub max_steps: u64,
    /// Stop the cluster at this virtual time.
    pub max_vtime_ns: u64,
    /// Test mode: sleep random host time in the workers, to show that the
    /// result does not depend on thread timing.
    pub host_jitter: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            jobs: usize::MAX,
            max_steps: 100_000_000,
            max_vtime_ns: u64::MAX,
            host_jitter: false,
        }
    }
}

/// One event of one VM, in the cluster's merged stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    /// Index of the VM (its position in the config).
    pub vm: usize,
    /// The event, with the VM's icount and virtual time.
    pub event: Event,
    /// For `FrameSent`/`FrameReceived`: the frame's id (see [`FrameRecord`]).
    pub frame: Option<u64>,
}

/// One frame from one sender to one receiver: the causal edge the debugger follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// Sequence number in send order (the same for every destination of a flooded frame).
    pub id: u64,
    /// Sending VM.
    pub src: usize,
    /// Sender's icount at the send (the instruction that notified the queue).
    pub sent_icount: u64,
    /// Sender's virtual time at the send.
    pub sent_ns: u64,
    /// Receiving VM.
    pub dst: usize,
    /// Virtual time at which it reaches the receiver.
    pub arrival_ns: u64,
    /// What happened to it.
    pub fate: FrameFate,
    /// Where the receiver had it handed to its NIC (its icount and virtual
    /// time), when it was received.
    pub received: Option<(u64, u64)>,
    /// Length in bytes.
    pub len: usize,
}

/// What stops a cluster from being built or run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A VM could not be built, or its engine stopped with an error (an
    /// instruction this host cannot step, a KVM failure): a fault of the
    /// run, not of anything recorded.
    #[error("VM '{vm}': {source}")]
    Vm {
        /// The VM's name.
        vm: String,
        /// What the engine said.
        #[source]
        source: VmError,
    },
}

/// Why the cluster stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterStop {
    /// Every VM stopped by itself.
    AllStopped,
    /// The virtual-time limit was reached.
    TimeLimit,
    /// Some VMs wait forever: halted, with no timer, no frame in flight.
    Deadlock(Vec<usize>),
    /// The caller asked to stop (e.g. Ctrl-C while recording).
    Interrupted,
}

struct Pending {
    arrival_ns: u64,
    record: usize,
    bytes: Vec<u8>,
}

/// A frame handed to a VM during a window: its record's index, where it
/// was received (icount, virtual time) if it was, and its fate.
type Delivery = (usize, Option<(u64, u64)>, FrameFate);

/// One VM in the cluster with its inbox.
struct Node {
    machine: Machine,
    inbox: VecDeque<Pending>,
    stop: Option<Stop>,
    error: Option<VmError>,
    events: Vec<Event>,
    /// (record index, icount, vtime) of deliveries during the window.
    delivered: Vec<Delivery>,
}

/// The running cluster.
pub struct Cluster {
    config: ClusterConfig,
    options: ClusterOptions,
    nodes: Vec<Node>,
    switch: Switch,
    faults: Faults,
    window_ns: u64,
    /// Start of the next window.
    now_ns: u64,
    frames: Vec<FrameRecord>,
    next_frame_id: u64,
    events: Vec<ClusterEvent>,
}

fn jitter() {
    // Host-timing noise on purpose: nanoseconds of the wall clock pick the sleep.
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_micros((ns % 500) as u64));
}

impl Node {
    /// Runs this VM up to (not including) virtual time `end`, delivering its
    /// inbox frames at the first instruction boundary at or after their arrival.
    fn run_window(&mut self, end: u64, max_steps: u64, host_jitter: bool) {
        while self.stop.is_none() && self.error.is_none() {
            let next_arrival = self.inbox.front().map(|p| p.arrival_ns).filter(|&t| t < end);
            let target = next_arrival.unwrap_or(end);
            if host_jitter {
                jitter();
            }
            match self.machine.run(RunLimit {
                icount: max_steps,
                vtime_ns: Some(target),
            }) {
                Ok(Stop::Limit) => {}
                Ok(stop) => self.stop = Some(stop),
                Err(e) => self.error = Some(e),
            }
            self.events.extend(self.machine.take_events());
            if self.stop.is_some() || self.error.is_some() {
                break;
            }
            if self.machine.icount() >= max_steps {
                self.stop = Some(Stop::Limit);
                break;
            }
            let now = self.machine.vtime_ns();
            if now >= end {
                break;
            }
            while self.inbox.front().is_some_and(|p| p.arrival_ns <= now) {
                let Some(p) = self.inbox.pop_front() else { break };
                let icount = self.machine.icount();
                let (fate, at) = match self.machine.deliver_frame(&p.bytes) {
                    Ok(true) => (FrameFate::Received, Some((icount, now))),
                    Ok(false) => (FrameFate::Overflow, None),
                    Err(e) => {
                        self.error = Some(e);
                        (FrameFate::Overflow, None)
                    }
                };
                self.delivered.push((p.record, at, fate));
                self.events.extend(self.machine.take_events());
            }
        }
    }
}

impl Cluster {
    /// Builds every VM of `config` (each with a NIC) at its entry point.
    pub fn new(config: ClusterConfig, options: ClusterOptions) -> Result<Cluster, ClusterError> {
        let mut nodes = Vec::new();
        for spec in &config.vms {
            let mut vm_config = spec.config.clone();
            vm_config.nic_mac = Some(spec.mac);
            let machine = Machine::new(&spec.image, vm_config).map_err(|source| ClusterError::Vm {
                vm: spec.name.clone(),
                source,
            })?;
            nodes.push(Node {
                machine,
                inbox: VecDeque::new(),
                stop: None,
                error: None,
                events: Vec::new(),
                delivered: Vec::new(),
            });
        }
        Ok(Cluster {
            window_ns: config.min_latency_ns(),
            faults: Faults::new(config.faults.clone(), config.seed),
            config,
            options,
            nodes,
            switch: Switch::new(),
            now_ns: 0,
            frames: Vec::new(),
            next_frame_id: 0,
            events: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The VM with index `vm`.
    pub fn machine(&self, vm: usize) -> &Machine {
        &self.nodes[vm].machine
    }

    /// Why VM `vm` stopped, if it has.
    pub fn vm_stop(&self, vm: usize) -> Option<&Stop> {
        self.nodes[vm].stop.as_ref()
    }

    /// Every frame edge so far, in id order per send.
    pub fn frames(&self) -> &[FrameRecord] {
        &self.frames
    }

    /// Virtual time the cluster has reached (start of the next window).
    pub fn vtime_ns(&self) -> u64 {
        self.now_ns
    }

    /// Takes the merged events produced since the last call, ordered by
    /// (virtual time, VM, icount).
    pub fn take_events(&mut self) -> Vec<ClusterEvent> {
        std::mem::take(&mut self.events)
    }

    /// Runs windows until the cluster stops, calling `on_window` after each
    /// barrier (for output, recording); it returns false to stop early.
    /// Errors name the VM.
    pub fn run(
        &mut self,
        mut on_window: impl FnMut(&mut Cluster) -> bool,
    ) -> Result<ClusterStop, ClusterError> {
        loop {
            let stop = self.step_window()?;
            let go_on = on_window(self);
            if let Some(stop) = stop {
                return Ok(stop);
            }
            if !go_on {
                return Ok(ClusterStop::Interrupted);
            }
        }
    }

    /// The VM with index `vm`, mutably (to capture a checkpoint at a barrier).
    pub fn machine_mut(&mut self, vm: usize) -> &mut Machine {
        &mut self.nodes[vm].machine
    }

    /// Runs one window and its barrier. Returns the stop, if the cluster is done.
    pub fn step_window(&mut self) -> Result<Option<ClusterStop>, ClusterError> {
        if self.now_ns >= self.options.max_vtime_ns {
            return Ok(Some(ClusterStop::TimeLimit));
        }
        let end = self
            .now_ns
            .saturating_add(self.window_ns)
            .min(self.options.max_vtime_ns);
        self.run_nodes(end);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(source) = node.error.take() {
                return Err(ClusterError::Vm {
                    vm: self.config.vms[i].name.clone(),
                    source,
                });
            }
        }
        self.barrier();
        self.now_ns = end;
        if self.nodes.iter().all(|n| n.stop.is_some()) {
            return Ok(Some(ClusterStop::AllStopped));
        }
        Ok(self.skip_idle())
    }

    /// Runs every live VM to `end`, on up to `jobs` threads.
    fn run_nodes(&mut self, end: u64) {
        let max_steps = self.options.max_steps;
        let jitter = self.options.host_jitter;
        let jobs = self.options.jobs.clamp(1, self.nodes.len().max(1));
        if jobs == 1 {
            for node in &mut self.nodes {
                node.run_window(end, max_steps, jitter);
            }
            return;
        }
        // Workers take the next VM from a shared counter: whichever thread is
        // free runs it. Which thread runs which VM does not matter, because a
        // VM's window depends only on its own state and inbox.
        let slots: Vec<Mutex<&mut Node>> = self.nodes.iter_mut().map(Mutex::new).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = slots.get(i) else { break };
                    if let Ok(mut node) = slot.lock() {
                        node.run_window(end, max_steps, jitter);
                    }
                });
            }
        });
    }

    /// Merges the window's events, records deliveries, and routes the frames
    /// sent in the window through the switch into the receivers' inboxes.
    fn barrier(&mut self) {
        let mut window: Vec<ClusterEvent> = Vec::new();
        for (vm, node) in self.nodes.iter_mut().enumerate() {
            // Each delivery produced exactly one FrameReceived event, in order.
            let mut deliveries = node.delivered.drain(..);
            for event in node.events.drain(..) {
                let mut frame = None;
                if matches!(event.kind, EventKind::FrameReceived(_)) {
                    if let Some((record, at, fate)) = deliveries.next() {
                        if let Some(r) = self.frames.get_mut(record) {
                            r.fate = fate;
                            r.received = at;
                            frame = Some(r.id);
                        }
                    }
                }
                window.push(ClusterEvent { vm, event, frame });
            }
        }
        window.sort_by_key(|e| (e.event.vtime_ns, e.vm, e.event.icount));
        let ports = self.nodes.len();
        // Frame ids follow the merged order, so they are the same in every run.
        for e in &mut window {
            if matches!(e.event.kind, EventKind::FrameSent(_)) {
                e.frame = Some(self.next_frame_id);
                self.next_frame_id += 1;
            }
        }
        for e in &window {
            let (EventKind::FrameSent(bytes), Some(id)) = (&e.event.kind, e.frame) else {
                continue;
            };
            for dst in self.switch.forward(bytes, e.vm, ports) {
                let mut record = FrameRecord {
                    id,
                    src: e.vm,
                    sent_icount: e.event.icount,
                    sent_ns: e.event.vtime_ns,
                    dst,
                    arrival_ns: 0,
                    fate: FrameFate::InFlight,
                    received: None,
                    len: bytes.len(),
                };
                match self.faults.judge(id, e.event.vtime_ns, e.vm, dst) {
                    Verdict::Partitioned => record.fate = FrameFate::Partitioned,
                    Verdict::Dropped => record.fate = FrameFate::Dropped,
                    Verdict::Pass { extra_ns } => {
                        let serialise = self
                            .config
                            .bandwidth_bps
                            .map(|bps| (bytes.len() as u64 * 8).saturating_mul(1_000_000_000) / bps)
                            .unwrap_or(0);
                        // Saturating: the configured ranges keep this far from
                        // u64::MAX, but a sum that cannot fit must mean "never",
                        // not wrap to before the send.
                        record.arrival_ns = e
                            .event
                            .vtime_ns
                            .saturating_add(self.config.latency_ns(e.vm, dst))
                            .saturating_add(extra_ns)
                            .saturating_add(serialise);
                        if self.nodes[dst].stop.is_some() {
                            record.fate = FrameFate::ReceiverStopped;
                        } else {
                            let pending = Pending {
                                arrival_ns: record.arrival_ns,
                                record: self.frames.len(),
                                bytes: bytes.clone(),
                            };
                            let inbox = &mut self.nodes[dst].inbox;
                            // Keep the inbox in arrival order; equal arrivals keep send order.
                            let at = inbox.partition_point(|p| p.arrival_ns <= pending.arrival_ns);
                            inbox.insert(at, pending);
                        }
                    }
                }
                self.frames.push(record);
            }
        }
        self.events.extend(window);
    }

    /// When every live VM is halted, jumps the next window to the earliest
    /// thing that can wake one: a timer, a frame arrival. Nothing at all means deadlock.
    fn skip_idle(&mut self) -> Option<ClusterStop> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].stop.is_none())
            .collect();
        if live.iter().any(|&i| !self.nodes[i].machine.is_halted()) {
            return None;
        }
        let next = live
            .iter()
            .flat_map(|&i| {
                let n = &self.nodes[i];
                [n.machine.next_timer_ns(), n.inbox.front().map(|p| p.arrival_ns)]
            })
            .flatten()
            .min();
        match next {
            Some(t) if t > self.now_ns => {
                self.now_ns = t.min(self.options.max_vtime_ns);
                None
            }
            Some(_) => None,
            None => Some(ClusterStop::Deadlock(live)),
        }
    }
}
