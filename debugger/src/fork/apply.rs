//! Turning changes as written into changes of this trace (VM names to
//! indices, frame ids to the frames the trace has, fault numbers to faults,
//! variables to addresses), refusing what cannot be done at the cut with a
//! reason; and making them on the cluster at the cut.

use vmrr_backend::rng::SeededRng;
use vmrr_backend::Gpr;
use vmrr_index::{FrameFate, FrameRow};

use super::change::{Change, FrameSpec, FrameVerb, NewFault};
use super::ForkError;
use crate::cluster::config::{FaultKind, FaultSpec};
use crate::cluster::scheduler::{FrameAction, FrameEdit, FrameTarget};
use crate::cluster::Cluster;
use crate::dwarf::{parse_watch, Program, WatchExpr};
use crate::trace::Trace;
use crate::vtime::format_ms;

/// What `set` writes.
#[derive(Debug, Clone)]
pub(super) enum SetTarget {
    /// A general register.
    Register(Gpr),
    /// Guest-virtual memory: address and length (1 to 8 bytes).
    Memory {
        /// Where.
        addr: u64,
        /// How many bytes.
        len: u64,
    },
}

/// A `set` resolved.
#[derive(Debug, Clone)]
pub(super) struct SetValue {
    pub change: String,
    pub vm: usize,
    pub target: SetTarget,
    pub label: String,
    pub value: u64,
}

/// The changes, resolved against the trace and the cut.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The fault schedule from the cut on.
    pub faults: Vec<FaultSpec>,
    /// The seed from the cut on.
    pub seed: u64,
    /// Whether the seed changed (then each VM's generator restarts from it).
    pub reseed: bool,
    /// Frame changes, with the change as written.
    pub frames: Vec<(String, FrameEdit)>,
    /// Register and memory changes.
    pub sets: Vec<SetValue>,
    /// What the fault changes did, for the summary.
    pub fault_notes: Vec<String>,
}

fn bad(change: &Change, problem: impl Into<String>) -> ForkError {
    ForkError::BadChange {
        change: change.to_string(),
        problem: problem.into(),
    }
}

/// The index of the VM called `name` (or numbered, from 1).
fn vm_index(trace: &Trace, change: &Change, name: &str) -> Result<usize, ForkError> {
    let vms = &trace.config().vms;
    if let Some(i) = vms.iter().position(|v| v.name == name) {
        return Ok(i);
    }
    match name.parse::<usize>() {
        Ok(n) if (1..=vms.len()).contains(&n) => Ok(n - 1),
        _ => {
            let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
            Err(bad(
                change,
                format!("no VM '{name}' in this trace (it has: {})", names.join(", ")),
            ))
        }
    }
}

/// Fault times are whole microseconds, as a cluster file writes them.
fn whole_us(change: &Change, ns: u64) -> Result<u64, ForkError> {
    if !ns.is_multiple_of(1000) {
        return Err(bad(
            change,
            format!(
                "{} is not a whole microsecond, as fault times in cluster.toml are",
                format_ms(ns)
            ),
        ));
    }
    Ok(ns)
}

/// A fault time must not lie before the cut: faults act on frames as they
/// are sent, and those sent before the cut are gone.
fn not_before(change: &Change, ns: u64, cut_ns: u64) -> Result<u64, ForkError> {
    if ns < cut_ns {
        return Err(bad(
            change,
            format!(
                "{} is before the fork point {}: frames sent before it were already judged; fork earlier or choose a later time",
                format_ms(ns),
                format_ms(cut_ns)
            ),
        ));
    }
    whole_us(change, ns)
}

/// The faults of `schedule`, numbered as `move fault N` and `remove fault N` count.
pub fn describe_faults(trace: &Trace) -> Vec<String> {
    let config = trace.config();
    let name = |i: usize| config.vms.get(i).map(|v| v.name.clone()).unwrap_or_default();
    config
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let what = match &f.kind {
                FaultKind::Partition(g) => format!(
                    "partition {}",
                    g.iter().map(|&v| name(v)).collect::<Vec<_>>().join(",")
                ),
                FaultKind::Heal => "heal".into(),
                FaultKind::Drop {
                    between, fraction, ..
                } => format!(
                    "drop {}% between {} and {}",
                    fraction * 100.0,
                    name(between.0),
                    name(between.1)
                ),
                FaultKind::Delay {
                    between, extra_ns, ..
                } => format!(
                    "delay {} between {} and {}",
                    format_ms(*extra_ns),
                    name(between.0),
                    name(between.1)
                ),
            };
            format!("{}: {what} at {}", i + 1, format_ms(f.at_ns))
        })
        .collect()
}

/// Whether frame `f` is in flight at `cut_ns`: sent before it and not yet
/// handed over or lost.
fn in_flight_at_cut(f: &FrameRow, cut_ns: u64) -> bool {
    f.sent_vtime_ns < cut_ns
        && match f.fate {
            FrameFate::Received => f.recv_vtime_ns.is_some_and(|t| t >= cut_ns),
            FrameFate::Overflow => f.arrival_ns >= cut_ns,
            FrameFate::InFlight => true,
            _ => false,
        }
}

fn frame_target(
    trace: &Trace,
    change: &Change,
    spec: &FrameSpec,
    frames: &[FrameRow],
    cut_ns: u64,
) -> Result<FrameTarget, ForkError> {
    let name = |vm: u32| trace.config().vms[vm as usize].name.clone();
    match spec {
        FrameSpec::Next { from, to } => Ok(FrameTarget::Next {
            from: from.as_deref().map(|n| vm_index(trace, change, n)).transpose()?,
            to: to.as_deref().map(|n| vm_index(trace, change, n)).transpose()?,
        }),
        FrameSpec::Id { id, to } => {
            let to = to.as_deref().map(|n| vm_index(trace, change, n)).transpose()?;
            let rows: Vec<&FrameRow> = frames
                .iter()
                .filter(|f| f.id == *id && to.is_none_or(|t| t == f.dst as usize))
                .collect();
            let Some(first) = rows.first() else {
                let last = frames.iter().map(|f| f.id).max();
                return Err(bad(
                    change,
                    match (to, last) {
                        (Some(t), _) if frames.iter().any(|f| f.id == *id) => format!(
                            "frame {id} did not go to {}: `vmrr sql TRACE \"SELECT * FROM frames WHERE id = {id}\"` shows where it went",
                            trace.config().vms[t].name
                        ),
                        (_, Some(last)) => format!("no frame {id} in this trace (its frames are 0 to {last})"),
                        (_, None) => "this trace has no frames".into(),
                    },
                ));
            };
            if first.sent_vtime_ns < cut_ns && !rows.iter().any(|f| in_flight_at_cut(f, cut_ns)) {
                let what = match (first.fate, first.recv_vtime_ns) {
                    (FrameFate::Received, Some(t)) => {
                        format!("was delivered to {} at {}", name(first.dst), format_ms(t))
                    }
                    (fate, _) => format!(
                        "was {} when sent at {}",
                        fate.as_str().replace('_', " "),
                        format_ms(first.sent_vtime_ns)
                    ),
                };
                return Err(bad(
                    change,
                    format!(
                        "frame {id} {what}, before the fork point {}: fork at or before its arrival ({})",
                        format_ms(cut_ns),
                        format_ms(first.arrival_ns.max(first.sent_vtime_ns))
                    ),
                ));
            }
            Ok(FrameTarget::Id {
                id: *id,
                src: first.src as usize,
                sent_icount: first.sent_icount,
                to,
            })
        }
    }
}

fn fault_kind(trace: &Trace, change: &Change, fault: &NewFault) -> Result<FaultKind, ForkError> {
    let pair = |(a, b): &(String, String)| -> Result<(usize, usize), ForkError> {
        let (a, b) = (vm_index(trace, change, a)?, vm_index(trace, change, b)?);
        if a == b {
            return Err(bad(change, "a link joins two different VMs"));
        }
        Ok((a, b))
    };
    let until = |u: &Option<u64>| u.map_or(Ok(u64::MAX), |u| whole_us(change, u));
    Ok(match fault {
        NewFault::Partition(vms) => {
            let mut group = Vec::new();
            for v in vms {
                group.push(vm_index(trace, change, v)?);
            }
            FaultKind::Partition(group)
        }
        NewFault::Heal => FaultKind::Heal,
        NewFault::Drop {
            between,
            fraction,
            until_ns,
        } => FaultKind::Drop {
            between: pair(between)?,
            fraction: *fraction,
            until_ns: until(until_ns)?,
        },
        NewFault::Delay {
            between,
            extra_ns,
            until_ns,
        } => FaultKind::Delay {
            between: pair(between)?,
            extra_ns: whole_us(change, *extra_ns)?,
            until_ns: until(until_ns)?,
        },
    })
}

fn set_value(
    trace: &Trace,
    change: &Change,
    vm: usize,
    target: &str,
    value: u64,
) -> Result<SetValue, ForkError> {
    if let Some(reg) = Gpr::from_name(&target.to_ascii_lowercase()) {
        return Ok(SetValue {
            change: change.to_string(),
            vm,
            target: SetTarget::Register(reg),
            label: reg.name().to_string(),
            value,
        });
    }
    let expr = parse_watch(target).map_err(|e| bad(change, e.to_string()))?;
    if let WatchExpr::Address { len, .. } = expr {
        if !(1..=8).contains(&len) {
            return Err(bad(
                change,
                format!("a value is 1 to 8 bytes, not {len}: write 0xADDR:LEN with LEN 1 to 8"),
            ));
        }
    }
    let program = Program::for_vm(trace, vm).map_err(|e| bad(change, e.to_string()))?;
    let (addr, len, label) = program
        .resolve_watch(&expr, &[])
        .map_err(|e| bad(change, e.to_string()))?;
    let len = len.clamp(1, 8);
    // The value must fit the target (or be a negative number that does).
    let high = if len == 8 { 0 } else { value >> (len * 8) };
    let sign_extended = len < 8 && high == u64::MAX >> (len * 8) && (value >> (len * 8 - 1)) & 1 == 1;
    if high != 0 && !sign_extended {
        return Err(bad(
            change,
            format!("{value:#x} does not fit in {label} ({len} bytes)"),
        ));
    }
    Ok(SetValue {
        change: change.to_string(),
        vm,
        target: SetTarget::Memory { addr, len },
        label,
        value,
    })
}

/// Resolves `changes` against `trace` for a cut at `cut_ns`.
pub(super) fn plan(
    trace: &Trace,
    changes: &[Change],
    frames: &[FrameRow],
    cut_ns: u64,
) -> Result<Plan, ForkError> {
    let config = trace.config();
    // Numbered faults first (moves and removes refer to the trace's numbers).
    let mut schedule: Vec<Option<FaultSpec>> = config.faults.iter().cloned().map(Some).collect();
    let numbered = |change: &Change, number: usize| -> Result<usize, ForkError> {
        if number == 0 || number > config.faults.len() {
            let list = describe_faults(trace);
            return Err(bad(
                change,
                if list.is_empty() {
                    "this trace has no faults".to_string()
                } else {
                    format!(
                        "no fault {number}; the trace's faults are:\n    {}",
                        list.join("\n    ")
                    )
                },
            ));
        }
        Ok(number - 1)
    };
    let mut plan = Plan {
        faults: Vec::new(),
        seed: config.seed,
        reseed: false,
        frames: Vec::new(),
        sets: Vec::new(),
        fault_notes: Vec::new(),
    };
    let listed = describe_faults(trace);
    let was = |i: usize| listed.get(i).cloned().unwrap_or_default();
    let mut added = Vec::new();
    for change in changes {
        match change {
            Change::MoveFault { number, to_ns } => {
                let i = numbered(change, *number)?;
                let to = not_before(change, *to_ns, cut_ns)?;
                match schedule[i].as_mut() {
                    Some(f) => f.at_ns = to,
                    None => {
                        return Err(bad(
                            change,
                            format!("fault {number} was removed by another change"),
                        ))
                    }
                }
                plan.fault_notes.push(format!("{change}: was {}", was(i)));
            }
            Change::RemoveFault { number } => {
                let i = numbered(change, *number)?;
                if schedule[i].take().is_none() {
                    return Err(bad(change, format!("fault {number} is removed twice")));
                }
                plan.fault_notes.push(format!("{change}: was {}", was(i)));
            }
            Change::AddFault { at_ns, fault } => {
                let at_ns = not_before(change, *at_ns, cut_ns)?;
                added.push(FaultSpec {
                    at_ns,
                    kind: fault_kind(trace, change, fault)?,
                });
                plan.fault_notes.push(format!("{change}: added"));
            }
            Change::Seed(seed) => {
                plan.seed = *seed;
                plan.reseed = true;
            }
            Change::Frame { frame, verb } => {
                let target = frame_target(trace, change, frame, frames, cut_ns)?;
                let action = match verb {
                    FrameVerb::Drop => FrameAction::Drop,
                    FrameVerb::Delay(ns) => FrameAction::Delay { ns: *ns },
                    FrameVerb::Duplicate(ns) => FrameAction::Duplicate { after_ns: *ns },
                };
                plan.frames
                    .push((change.to_string(), FrameEdit::new(target, action)));
            }
            Change::Set { vm, target, value } => {
                let vm = vm_index(trace, change, vm)?;
                plan.sets.push(set_value(trace, change, vm, target, *value)?);
            }
        }
    }
    plan.faults = schedule.into_iter().flatten().chain(added).collect();
    // Stable: faults at one time keep the file's order, then the new ones.
    plan.faults.sort_by_key(|f| f.at_ns);
    Ok(plan)
}

/// Makes the planned changes on `cluster`, which stands at the cut; says
/// what each did (frame changes that wait for their frame say so).
pub(super) fn apply(cluster: &mut Cluster, plan: &Plan) -> Result<Vec<String>, ForkError> {
    let mut done = plan.fault_notes.clone();
    cluster.set_faults(plan.faults.clone(), plan.seed);
    let vm_err = |cluster: &Cluster, vm: usize, source| ForkError::Vm {
        vm: cluster.config().vms[vm].name.clone(),
        source,
    };
    if plan.reseed {
        for vm in 0..cluster.config().vms.len() {
            let machine = cluster.machine_mut(vm);
            let mut state = machine.capture_core().map_err(|e| vm_err(cluster, vm, e))?;
            // As a cluster file derives each VM's seed from the cluster's.
            state.rng = SeededRng::new(plan.seed ^ (vm as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let machine = cluster.machine_mut(vm);
            machine.restore_core(&state).map_err(|e| vm_err(cluster, vm, e))?;
        }
        done.push(format!(
            "seed {}: fault decisions and rdrand from the new seed",
            plan.seed
        ));
    }
    for set in &plan.sets {
        let machine = cluster.machine_mut(set.vm);
        match set.target {
            SetTarget::Register(reg) => {
                let mut state = machine.capture_core().map_err(|e| vm_err(cluster, set.vm, e))?;
                let old = reg.get(&state.vcpu.regs);
                reg.set(&mut state.vcpu.regs, set.value);
                let machine = cluster.machine_mut(set.vm);
                machine
                    .restore_core(&state)
                    .map_err(|e| vm_err(cluster, set.vm, e))?;
                done.push(format!("{}: {} was {old:#x}", set.change, set.label));
            }
            SetTarget::Memory { addr, len } => {
                let mut old = [0u8; 8];
                let read = machine.read_virt(addr, &mut old[..len as usize]);
                let bytes = set.value.to_le_bytes();
                let written = machine.write_virt(addr, &bytes[..len as usize]);
                if written != len as usize || read != len as usize {
                    return Err(ForkError::BadChange {
                        change: set.change.clone(),
                        problem: format!(
                            "{} ({addr:#x}, {len} bytes) is not mapped in '{}' at the fork point",
                            set.label,
                            cluster.config().vms[set.vm].name
                        ),
                    });
                }
                let old = u64::from_le_bytes(old);
                done.push(format!("{}: {} at {addr:#x} was {old:#x}", set.change, set.label));
            }
        }
    }
    for (text, edit) in &plan.frames {
        if cluster.add_frame_edit(edit.clone()) {
            done.push(format!("{text}: applied to a frame in flight at the fork point"));
        } else {
            done.push(format!("{text}: waits for its frame"));
        }
    }
    Ok(done)
}
