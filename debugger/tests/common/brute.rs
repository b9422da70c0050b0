//! Brute force for the analyses' tests: one VM stepped one instruction at a
//! time from its first checkpoint, frames handed over one by one, with no
//! execution index, no slices and no engine breakpoints.

use vmrr_backend::Machine;
use vmrr_debugger::trace::Trace;

/// What a brute-force walk sees.
pub enum Seen {
    /// Standing before instruction `icount` (after the frames handed over there).
    Before,
    /// A recorded input was just handed over (before instruction `icount`).
    Delivered,
    /// Instruction `.0` just ran.
    After(u64),
}

/// Steps `vm` one instruction at a time over the whole trace.
pub fn brute_force(trace: &Trace, vm: usize, mut f: impl FnMut(&Machine, Seen)) {
    let (mut m, mut next) = trace.machine_at_checkpoint(vm, 0).expect("checkpoint 0");
    let end = trace.end_icount(vm);
    let inputs = trace.inputs(vm).to_vec();
    loop {
        while next < inputs.len() && inputs[next].icount == m.icount() {
            let i = next;
            let here = m.icount();
            trace.run_to(vm, &mut m, &mut next, here, i + 1).expect("deliver");
            f(&m, Seen::Delivered);
        }
        if m.icount() >= end || m.finished().is_some() {
            return;
        }
        f(&m, Seen::Before);
        let c = m.icount();
        let no_inputs = next;
        trace
            .run_to(vm, &mut m, &mut next, c + 1, no_inputs)
            .expect("step");
        m.take_events();
        if m.icount() == c {
            return;
        }
        f(&m, Seen::After(c));
    }
}

/// Every change of some physical ranges in a VM, by brute force: per
/// range, (icount, by a delivery?) of each change.
pub fn changes(trace: &Trace, vm: usize, ranges: &[(u64, u64)]) -> Vec<Vec<(u64, bool)>> {
    let read = |m: &Machine, &(pa, len): &(u64, u64)| {
        let mut b = vec![0u8; len as usize];
        m.read_phys(pa, &mut b);
        b
    };
    let mut last: Vec<Vec<u8>> = Vec::new();
    let mut out: Vec<Vec<(u64, bool)>> = vec![Vec::new(); ranges.len()];
    brute_force(trace, vm, |m, seen| {
        if last.is_empty() {
            last = ranges.iter().map(|r| read(m, r)).collect();
        }
        let (at, delivery) = match seen {
            Seen::Before => return,
            Seen::Delivered => (m.icount(), true),
            Seen::After(c) => (c, false),
        };
        for (i, r) in ranges.iter().enumerate() {
            let now = read(m, r);
            if now != last[i] {
                out[i].push((at, delivery));
                last[i] = now;
            }
        }
    });
    out
}

/// The last change before position `at` (steps before it, deliveries at or before it).
pub fn last_change(changes: &[(u64, bool)], at: u64) -> Option<(u64, bool)> {
    changes
        .iter()
        .rev()
        .find(|(c, delivery)| if *delivery { *c <= at } else { *c < at })
        .copied()
}
