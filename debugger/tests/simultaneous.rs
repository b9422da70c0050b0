//! `Session::continue_all`: the three VMs of the kvstore-bug trace boot in
//! lockstep (one image, one rate), so they reach the same breakpoint and
//! make the same write at the same virtual time; a continue must return
//! every one of those hits, each the same as that VM's own continue. Needs
//! /dev/kvm.

mod common;

use std::path::Path;

use vmrr_debugger::session::{
    Breakpoint, Direction, Hit, HitKind, Scope, Session, StopReason, Stops, VmId, WatchKind, Watchpoint,
};

fn trace() -> &'static Path {
    common::kvstore_bug_trace()
}

fn hits(stops: Stops) -> Vec<Hit> {
    match stops {
        Stops::Hits(hits) => hits,
        other => panic!("expected hits, got {other:?}"),
    }
}

/// VM `vm`'s own first hit that way, alone, on a fresh session standing at
/// `start` (a VM and an icount).
fn alone(vm: VmId, start: (VmId, u64), dir: Direction, setup: &dyn Fn(&mut Session)) -> Hit {
    let mut s = Session::open(trace()).expect("open");
    setup(&mut s);
    s.goto(start.0, start.1).expect("goto");
    match s.continue_(Scope::Vm(vm), dir, &|_| {}).expect("continue") {
        StopReason::Hit(hit) => hit,
        other => panic!("VM {vm} alone: {other:?}"),
    }
}

#[test]
fn a_breakpoint_reached_in_lockstep_is_reported_for_every_vm() {
    let entry = common::kvstore_symbol("kit_entry");
    let setup = |s: &mut Session| {
        s.add_breakpoint(Breakpoint {
            addr: entry,
            vm: None,
        })
    };
    let mut s = Session::open(trace()).expect("open");
    setup(&mut s);
    let found = hits(
        s.continue_all(Scope::Cluster, Direction::Forward, &|_| {})
            .expect("continue"),
    );
    let vms: Vec<VmId> = found.iter().map(|h| h.pos.vm).collect();
    assert_eq!(vms, vec![0, 1, 2], "{found:?}");
    for hit in &found {
        assert_eq!(hit.pos.vtime_ns, found[0].pos.vtime_ns, "{found:?}");
        assert_eq!(hit.kind, HitKind::Breakpoint { addr: entry });
        assert_eq!(*hit, alone(hit.pos.vm, (0, 0), Direction::Forward, &setup));
        // Each VM stands before its breakpoint at the cursor.
        assert_eq!(s.position(hit.pos.vm).expect("position"), hit.pos);
        assert_eq!(s.machine(hit.pos.vm).expect("machine").regs().rip, entry);
    }
    assert_eq!(s.cursor(), found[0].pos);

    // Backward from the end: the same three, in reverse cluster order.
    let end = s.end_icount(0);
    s.goto(0, end).expect("goto end");
    let back = hits(
        s.continue_all(Scope::Cluster, Direction::Backward, &|_| {})
            .expect("reverse continue"),
    );
    let vms: Vec<VmId> = back.iter().map(|h| h.pos.vm).collect();
    assert_eq!(vms, vec![2, 1, 0], "{back:?}");
    for hit in &back {
        assert_eq!(hit.pos, found[hit.pos.vm as usize].pos);
        assert_eq!(*hit, alone(hit.pos.vm, (0, end), Direction::Backward, &setup));
    }
    assert_eq!(s.cursor(), back[0].pos);
    // Going to each hit in turn stands that VM before its breakpoint.
    for hit in &back[1..] {
        s.goto(hit.pos.vm, hit.pos.icount).expect("goto hit");
        assert_eq!(s.machine(hit.pos.vm).expect("machine").regs().rip, entry);
    }
}

#[test]
fn a_write_made_in_lockstep_is_reported_for_every_vm_and_only_where_watched() {
    let var = common::kvstore_symbol("vmrr_start_info");
    let watch = |vm: Option<VmId>| Watchpoint {
        addr: var,
        len: 8,
        kind: WatchKind::Write,
        vm,
    };
    let setup = |s: &mut Session| s.add_watchpoint(watch(None)).expect("watch");
    let mut s = Session::open(trace()).expect("open");
    setup(&mut s);
    let found = hits(
        s.continue_all(Scope::Cluster, Direction::Forward, &|_| {})
            .expect("continue"),
    );
    assert_eq!(found.len(), 3, "{found:?}");
    for (vm, hit) in found.iter().enumerate() {
        assert_eq!(hit.pos.vm, vm as VmId);
        assert_eq!(hit.pos.vtime_ns, found[0].pos.vtime_ns);
        let HitKind::Watch { old, new, .. } = &hit.kind else {
            panic!("not a watch hit: {hit:?}");
        };
        assert_ne!(old, new);
        assert_eq!(*hit, alone(vm as VmId, (0, 0), Direction::Forward, &setup));
        // Each has just made the write.
        assert_eq!(s.position(vm as VmId).expect("position"), hit.pos);
    }

    // Watched in backup1 only: only backup1 reports it.
    let mut s = Session::open(trace()).expect("open");
    s.add_watchpoint(watch(Some(1))).expect("watch");
    let only = hits(
        s.continue_all(Scope::Cluster, Direction::Forward, &|_| {})
            .expect("continue"),
    );
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0].pos, found[1].pos);
    assert!(
        matches!(&only[0].kind, HitKind::Watch { watch: w, .. } if w.vm == Some(1)),
        "{only:?}"
    );
}
