//! Motion served by the execution index — continue and reverse-continue to
//! breakpoints and watchpoints, finish, next — stops exactly where brute
//! force stops: one VM stepped one instruction at a time from its first
//! checkpoint, with no index, no slices and no engine breakpoints. Probes
//! are drawn at random (seeded) from what the VMs really run and write:
//! rare code, code at slice edges, a global written rarely, a receive buffer
//! the virtio device writes, a buffer `rep movsb` fills, the timer's tick
//! counter, the stack. Needs /dev/kvm.

mod common;

use std::path::Path;

use vmrr_backend::rng::SeededRng;
use vmrr_debugger::session::{
    return_site, Breakpoint, Direction, Hit, HitKind, Move, Outcome, Pos, Returned, Scope, Session,
    StopReason, VmId, WatchKind, Watchpoint,
};
use vmrr_debugger::trace::Trace;

fn trace() -> &'static Path {
    common::kvstore_bug_trace()
}

/// One boundary of a VM's brute-force history: before instruction `icount`.
#[derive(Debug, Clone, Copy)]
struct Boundary {
    rip: u64,
    rsp: u64,
    halted: bool,
    vtime: u64,
}

/// A VM stepped one instruction at a time from its first checkpoint.
struct History {
    vm: VmId,
    at: Vec<Boundary>,
    /// Per watched range: its bytes at every boundary, as (icount, bytes)
    /// whenever they change.
    watched: Vec<Vec<(u64, Vec<u8>)>>,
}

fn brute_force(trace: &Trace, vm: VmId, watches: &[(u64, u64)]) -> History {
    let w = vm as usize;
    let (mut m, mut next) = trace.machine_at_checkpoint(w, 0).expect("checkpoint 0");
    let end = trace.end_icount(w);
    let read = |m: &vmrr_backend::Machine, &(addr, len): &(u64, u64)| {
        let mut b = vec![0u8; len as usize];
        m.read_virt(addr, &mut b);
        b
    };
    let mut at = Vec::with_capacity(end as usize + 1);
    let mut watched: Vec<Vec<(u64, Vec<u8>)>> = watches.iter().map(|r| vec![(0, read(&m, r))]).collect();
    loop {
        let regs = m.regs();
        at.push(Boundary {
            rip: regs.rip,
            rsp: regs.rsp,
            halted: m.is_halted(),
            vtime: m.vtime_ns(),
        });
        if m.icount() >= end || m.finished().is_some() {
            break;
        }
        let to = m.icount() + 1;
        trace.run_to(w, &mut m, &mut next, to, usize::MAX).expect("step");
        assert_eq!(m.icount(), to, "VM {vm} stalled at {to}");
        for (i, r) in watches.iter().enumerate() {
            let now = read(&m, r);
            if watched[i].last().map(|(_, b)| b) != Some(&now) {
                watched[i].push((m.icount(), now));
            }
        }
    }
    History { vm, at, watched }
}

impl History {
    fn pos(&self, i: u64) -> Pos {
        Pos::new(self.vm, i, self.at[i as usize].vtime)
    }

    /// The first breakpoint hit after `n` (a breakpoint where the VM stands
    /// does not stop it) and before the end of the recording (where no
    /// instruction follows), or the last one before `n`.
    fn breakpoint(&self, n: u64, addrs: &[u64], dir: Direction) -> Option<Pos> {
        let hit = |i: &u64| {
            let b = self.at[*i as usize];
            !b.halted && addrs.contains(&b.rip)
        };
        let last = self.at.len() as u64 - 1;
        let found = match dir {
            Direction::Forward => (n + 1..last).find(hit),
            Direction::Backward => (0..n).rev().find(hit),
        };
        found.map(|i| self.pos(i))
    }

    /// The first instruction at or after `n` that changes watched range `w`
    /// (the position after it), or the last one before `n` (before it).
    fn write(&self, n: u64, w: usize, dir: Direction) -> Option<Pos> {
        let changes = &self.watched[w][1..];
        match dir {
            Direction::Forward => changes
                .iter()
                .map(|(i, _)| *i)
                .find(|&i| i > n)
                .map(|i| self.pos(i)),
            Direction::Backward => changes
                .iter()
                .map(|(i, _)| *i)
                .rfind(|&i| i <= n)
                .map(|i| self.pos(i - 1)),
        }
    }

    /// Where the frame at `n` returns to, found by stepping: the first
    /// boundary after `n` at `addr` with RSP `cfa`.
    fn returns(&self, n: u64, addr: u64, cfa: u64) -> Option<u64> {
        (n + 1..self.at.len() as u64).find(|&i| {
            let b = self.at[i as usize];
            b.rip == addr && b.rsp == cfa
        })
    }
}

fn symbol(name: &str) -> u64 {
    common::kvstore_symbol(name)
}

/// Memory worth watching: (address, length, what it is).
fn watch_targets() -> Vec<(u64, u64, &'static str)> {
    vec![
        (symbol("store") + 12, 4, "store[3]: written rarely"),
        (
            symbol("rx_buf") + 20,
            4,
            "a receive buffer: written by the virtio device",
        ),
        (symbol("tx_buf") + 20, 4, "a transmit buffer: filled by rep movsb"),
        (symbol("ticks"), 8, "the timer's tick counter: written often"),
        (symbol("boot_stack_top") - 0x120, 8, "the stack"),
    ]
}

fn hit_pos(stop: &StopReason) -> Option<Pos> {
    match stop {
        StopReason::Hit(Hit { pos, .. }) => Some(*pos),
        _ => None,
    }
}

#[test]
fn continue_finish_and_next_stop_where_brute_force_stops() {
    let trace_dir = trace();
    let trace = Trace::open(trace_dir, false).expect("open");
    let targets = watch_targets();
    let ranges: Vec<(u64, u64)> = targets.iter().map(|&(a, l, _)| (a, l)).collect();
    let mut session = Session::open(trace_dir).expect("session");
    for vm in session.vm_ids().collect::<Vec<_>>() {
        assert!(
            session.has_exec_index(vm).expect("index"),
            "the recording wrote the execution index"
        );
    }
    let mut rng = SeededRng::new(0x5eed_0010);
    let mut checked = 0;
    let mut hits = 0;
    for vm in [0u32, 2] {
        let h = brute_force(&trace, vm, &ranges);
        let last = h.at.len() as u64 - 1;
        // Code: how often each address runs, and the slice edges.
        let mut counts = std::collections::BTreeMap::<u64, u32>::new();
        for b in h.at.iter().filter(|b| !b.halted) {
            *counts.entry(b.rip).or_default() += 1;
        }
        let rare: Vec<u64> = counts.iter().filter(|(_, &c)| c <= 2).map(|(&a, _)| a).collect();
        let common: Vec<u64> = counts.keys().copied().collect();
        let edges: Vec<u64> = trace
            .checkpoints(vm as usize)
            .iter()
            .map(|c| h.at[c.icount.min(last) as usize])
            .filter(|b| !b.halted)
            .map(|b| b.rip)
            .collect();
        let mut starts: Vec<u64> = trace.checkpoints(vm as usize).iter().map(|c| c.icount).collect();
        starts.extend((0..4).map(|_| rng.below(last)));
        for &n in &starts {
            let pick = |rng: &mut SeededRng, from: &[u64]| from[rng.below(from.len() as u64) as usize];
            let addrs = vec![
                pick(&mut rng, &rare),
                pick(&mut rng, &edges),
                pick(&mut rng, &common),
            ];
            for dir in [Direction::Forward, Direction::Backward] {
                // Breakpoints.
                session.goto(vm, n).expect("goto");
                for &addr in &addrs {
                    session.add_breakpoint(Breakpoint { addr, vm: Some(vm) });
                }
                let stop = session.continue_(Scope::Vm(vm), dir, &|_| {}).expect("continue");
                let want = h.breakpoint(n, &addrs, dir);
                hits += usize::from(want.is_some());
                assert_eq!(
                    hit_pos(&stop),
                    want,
                    "VM {vm} from {n} {dir:?} to {addrs:x?}: {stop:?}"
                );
                for &addr in &addrs {
                    session.remove_breakpoint(Breakpoint { addr, vm: Some(vm) });
                }
                checked += 1;
            }
            // One watchpoint at a time, both ways.
            let w = rng.below(ranges.len() as u64) as usize;
            let (addr, len) = ranges[w];
            let wp = Watchpoint {
                addr,
                len,
                kind: WatchKind::Write,
                vm: Some(vm),
            };
            session.add_watchpoint(wp).expect("watch");
            for dir in [Direction::Forward, Direction::Backward] {
                session.goto(vm, n).expect("goto");
                let stop = session.continue_(Scope::Vm(vm), dir, &|_| {}).expect("continue");
                let want = h.write(n, w, dir);
                hits += usize::from(want.is_some());
                assert_eq!(
                    hit_pos(&stop),
                    want,
                    "VM {vm} from {n} {dir:?} watching {}: {stop:?}",
                    targets[w].2
                );
                checked += 1;
            }
            session.remove_watchpoint(wp);
            // finish and next from here.
            session.goto(vm, n).expect("goto");
            let program = session.program(vm);
            let m = session.machine(vm).expect("machine");
            if !m.is_halted() {
                if let Some(site) = return_site(m, program.as_deref()) {
                    let want = h.returns(n, site.addr, site.cfa);
                    let got = session.finish(vm, &|_| {}).expect("finish");
                    match want {
                        Some(i) => assert_eq!(got, Returned::Yes(h.pos(i)), "finish in VM {vm} from {n}"),
                        None => assert!(
                            matches!(got, Returned::No(_)),
                            "finish in VM {vm} from {n}: {got:?}"
                        ),
                    }
                    checked += 1;
                }
            }
        }
        // next: over a call, through to its return with the same RSP;
        // anything else, one instruction.
        let mut calls = 0;
        for _ in 0..12 {
            let i = rng.below(last);
            session.goto(vm, i).expect("goto");
            let m = session.machine(vm).expect("machine");
            if m.is_halted() {
                continue;
            }
            let regs = m.regs();
            let mut bytes = [0u8; 15];
            let n = m.read_virt(regs.rip, &mut bytes);
            let instr = iced_x86::Decoder::with_ip(64, &bytes[..n], regs.rip, iced_x86::DecoderOptions::NONE)
                .decode();
            let want = if matches!(
                instr.flow_control(),
                iced_x86::FlowControl::Call | iced_x86::FlowControl::IndirectCall
            ) {
                calls += 1;
                h.returns(i, instr.next_ip(), regs.rsp)
            } else {
                Some(i + 1)
            };
            let got = session.next(vm, None, &|_| {}).expect("next");
            match want {
                Some(j) => assert_eq!(got, Returned::Yes(h.pos(j)), "next in VM {vm} from {i}"),
                None => assert!(
                    matches!(got, Returned::No(_)),
                    "next in VM {vm} from {i}: {got:?}"
                ),
            }
            checked += 1;
        }
        // And over calls found in the history: a push of the return address
        // onto a lower stack into a new function.
        let call_sites: Vec<u64> = (0..last)
            .filter(|&i| {
                let (a, b) = (h.at[i as usize], h.at[i as usize + 1]);
                !a.halted && !b.halted && b.rsp == a.rsp.wrapping_sub(8) && counts.contains_key(&b.rip)
            })
            .step_by(97)
            .take(6)
            .collect();
        for &i in &call_sites {
            session.goto(vm, i).expect("goto");
            let m = session.machine(vm).expect("machine");
            let regs = m.regs();
            let mut bytes = [0u8; 15];
            let n = m.read_virt(regs.rip, &mut bytes);
            let instr = iced_x86::Decoder::with_ip(64, &bytes[..n], regs.rip, iced_x86::DecoderOptions::NONE)
                .decode();
            if instr.flow_control() != iced_x86::FlowControl::Call {
                continue;
            }
            calls += 1;
            let want = h.returns(i, instr.next_ip(), regs.rsp);
            let got = session.next(vm, None, &|_| {}).expect("next");
            match want {
                Some(j) => assert_eq!(
                    got,
                    Returned::Yes(h.pos(j)),
                    "next over the call at {i} in VM {vm}"
                ),
                None => assert!(matches!(got, Returned::No(_)), "{got:?}"),
            }
            checked += 1;
        }
        // Step over a source line: the same as `next`s repeated while the
        // VM stays on the line's addresses, and it leaves the line (or the
        // function, or the recording).
        let program = session.program(vm).expect("the guest has line tables");
        let mut lines = 0;
        for _ in 0..8 {
            let i = rng.below(last);
            session.goto(vm, i).expect("goto");
            let m = session.machine(vm).expect("machine");
            let rip = m.regs().rip;
            if m.is_halted() {
                continue;
            }
            let Some((start, end)) = program.line_range(rip) else {
                continue;
            };
            let here = program.line_at(rip).expect("a row covers rip");
            assert!(start <= rip && rip < end, "{start:#x}..{end:#x} holds {rip:#x}");
            // The range is the line's, no more: every row in it is that line.
            assert!(
                program
                    .rows_between(start, end)
                    .iter()
                    .all(|r| r.line == here.line && r.file == here.file),
                "{start:#x}..{end:#x} spans more than line {}",
                here.line
            );
            lines += 1;
            let got = session
                .perform(&Move::NextLine { vm }, &|_| {})
                .expect("next line");
            let after = session.position(vm).expect("position");
            // The same through single `next`s from the same place.
            session.goto(vm, i).expect("goto");
            let want = loop {
                match session.next(vm, None, &|_| {}).expect("next") {
                    Returned::Yes(p) => {
                        let r = session.machine(vm).expect("machine").regs().rip;
                        if !(start..end).contains(&r) {
                            break Some(p);
                        }
                    }
                    Returned::No(_) => break None,
                }
            };
            match want {
                Some(p) => {
                    assert_eq!(after, p, "next line in VM {vm} from {i} ({got:?})");
                    let r = session.machine(vm).expect("machine").regs().rip;
                    let there = program.line_at(r);
                    assert!(
                        there.is_none_or(|t| t.line != here.line
                            || t.file != here.file
                            || t.addr != here.addr),
                        "next line in VM {vm} from {i} stayed on line {}",
                        here.line
                    );
                }
                None => assert!(!matches!(got, Outcome::Moved { .. }), "{got:?}"),
            }
            checked += 1;
        }
        assert!(lines > 0, "no source line was stepped over in VM {vm}");
        assert!(calls > 0, "no call was stepped over in VM {vm}");
    }
    assert!(checked > 60, "only {checked} cases");
    assert!(
        hits * 2 > checked / 2,
        "only {hits} of {checked} cases found a hit"
    );
    eprintln!("{checked} cases, {hits} with a hit");
}

/// A hit whose kind says what it was, for the record: a watchpoint hit
/// carries the bytes before and after.
#[test]
fn a_watch_hit_says_what_changed() {
    let mut s = Session::open(trace()).expect("open");
    let end = s.end_icount(2);
    s.goto(2, end).expect("end");
    let wp = Watchpoint {
        addr: symbol("store") + 12,
        len: 4,
        kind: WatchKind::Write,
        vm: Some(2),
    };
    s.add_watchpoint(wp).expect("watch");
    let StopReason::Hit(Hit {
        kind: HitKind::Watch { old, new, .. },
        ..
    }) = s
        .continue_(Scope::Vm(2), Direction::Backward, &|_| {})
        .expect("rc")
    else {
        panic!("a write")
    };
    assert_eq!(
        (old, new),
        (32u32.to_le_bytes().to_vec(), 31u32.to_le_bytes().to_vec())
    );
}

/// Continue and reverse-continue over the whole cluster stop at the hit
/// that comes first (last) in cluster order among every VM's brute-force
/// hits after (before) where the cursor puts that VM — the merged,
/// early-stopping search across VMs finds the same stop.
#[test]
fn cluster_continue_stops_where_brute_force_of_every_vm_stops() {
    let trace_dir = trace();
    let trace = Trace::open(trace_dir, false).expect("open");
    let mut session = Session::open(trace_dir).expect("session");
    let vms: Vec<VmId> = session.vm_ids().collect();
    let histories: Vec<History> = vms.iter().map(|&vm| brute_force(&trace, vm, &[])).collect();
    // The same image runs everywhere: code run by some VMs, rarely or often.
    let mut counts = std::collections::BTreeMap::<u64, u32>::new();
    for h in &histories {
        for b in h.at.iter().filter(|b| !b.halted) {
            *counts.entry(b.rip).or_default() += 1;
        }
    }
    let rare: Vec<u64> = counts.iter().filter(|(_, &c)| c <= 3).map(|(&a, _)| a).collect();
    let common: Vec<u64> = counts.iter().filter(|(_, &c)| c > 3).map(|(&a, _)| a).collect();
    let mut rng = SeededRng::new(0x5eed_0c1a);
    let (mut checked, mut hits) = (0, 0);
    for round in 0..10 {
        let vm = vms[rng.below(vms.len() as u64) as usize];
        let n = rng.below(histories[vm as usize].at.len() as u64);
        let pick = |rng: &mut SeededRng, from: &[u64]| from[rng.below(from.len() as u64) as usize];
        // Rare code makes the search go far and across VMs; common code
        // keeps it near.
        let addrs = if round % 3 == 0 {
            vec![pick(&mut rng, &common)]
        } else {
            vec![pick(&mut rng, &rare), pick(&mut rng, &rare)]
        };
        for &addr in &addrs {
            session.add_breakpoint(Breakpoint { addr, vm: None });
        }
        for dir in [Direction::Forward, Direction::Backward] {
            session.goto(vm, n).expect("goto");
            let froms: Vec<u64> = vms
                .iter()
                .map(|&v| session.position(v).expect("position").icount)
                .collect();
            let each = histories
                .iter()
                .zip(&froms)
                .filter_map(|(h, &from)| h.breakpoint(from, &addrs, dir));
            let want = match dir {
                Direction::Forward => each.min(),
                Direction::Backward => each.max(),
            };
            let stop = session.continue_(Scope::Cluster, dir, &|_| {}).expect("continue");
            hits += usize::from(want.is_some());
            assert_eq!(
                hit_pos(&stop),
                want,
                "cluster from VM {vm} at {n} (VMs at {froms:?}) {dir:?} to {addrs:x?}: {stop:?}"
            );
            checked += 1;
        }
        for &addr in &addrs {
            session.remove_breakpoint(Breakpoint { addr, vm: None });
        }
    }
    assert!(hits * 2 >= checked, "only {hits} of {checked} cases found a hit");
    eprintln!("{checked} cluster cases, {hits} with a hit");
}
