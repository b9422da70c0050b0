//! The time-travel Session on a recorded kvstore-bug trace: stepping back
//! equals seeking, reverse-continue finds the last breakpoint hit and the
//! last write to a variable, frames are followed both ways, bookmarks
//! persist. Needs /dev/kvm.

mod demo;

use std::path::Path;

use vmrr_debugger::session::{
    Breakpoint, Direction, HitKind, Scope, Session, StopReason, WatchKind, Watchpoint,
};

/// `kv_apply` and `store` of guests/build/kvstore.elf, from its symbol table.
fn symbol(name: &str) -> u64 {
    demo::kvstore_symbol(name)
}

fn trace() -> &'static Path {
    demo::kvstore_bug_trace()
}

const BACKUP2: usize = 2;

#[test]
fn stepping_back_equals_seeking() {
    let mut s = Session::open(trace()).expect("open");
    s.goto(BACKUP2, 30_000).expect("goto");
    for i in 1..=5u64 {
        let p = s
            .step(BACKUP2, Direction::Backward)
            .expect("step")
            .expect("not at start");
        assert_eq!(p.icount, 30_000 - i);
    }
    let stepped = s.machine(BACKUP2).expect("machine").state_hash().expect("hash");
    let seeked = s
        .trace()
        .seek(BACKUP2, 29_995)
        .expect("seek")
        .state_hash()
        .expect("hash");
    assert_eq!(stepped, seeked);
    // And forward again, across a dense snapshot boundary.
    for _ in 0..1200 {
        s.step(BACKUP2, Direction::Forward).expect("step");
    }
    let forward = s.machine(BACKUP2).expect("machine").state_hash().expect("hash");
    assert_eq!(
        forward,
        s.trace()
            .seek(BACKUP2, 31_195)
            .expect("seek")
            .state_hash()
            .expect("hash")
    );
    assert_eq!(
        s.step(BACKUP2, Direction::Backward)
            .expect("step")
            .map(|p| p.icount),
        Some(31_194)
    );
    s.goto(BACKUP2, 0).expect("start");
    assert_eq!(
        s.step(BACKUP2, Direction::Backward).expect("step"),
        None,
        "no history before the start"
    );
}

#[test]
fn reverse_continue_to_the_last_breakpoint_hit() {
    let mut s = Session::open(trace()).expect("open");
    let end = s.end_icount(BACKUP2);
    s.goto(BACKUP2, end).expect("goto end");
    let apply = symbol("kv_apply");
    s.add_breakpoint(Breakpoint {
        addr: apply,
        vm: Some(BACKUP2),
    });
    let stop = s
        .continue_(Scope::Vm(BACKUP2), Direction::Backward, &|_| {})
        .expect("reverse-continue");
    let StopReason::Hit(hit) = stop else {
        panic!("expected a hit, got {stop:?}")
    };
    assert_eq!(hit.kind, HitKind::Breakpoint { addr: apply });
    assert_eq!(s.machine(BACKUP2).expect("m").regs().rip, apply);
    let first = hit.pos.icount;
    // It is the last one: going forward from just past it there is no other.
    s.step(BACKUP2, Direction::Forward).expect("step");
    let stop = s
        .continue_(Scope::Vm(BACKUP2), Direction::Forward, &|_| {})
        .expect("continue");
    assert_eq!(stop, StopReason::EndOfHistory(Direction::Forward));
    // The one before is earlier, and a reverse-continue past the first gives the start.
    s.goto(BACKUP2, first).expect("back to the hit");
    let StopReason::Hit(prev) = s
        .continue_(Scope::Vm(BACKUP2), Direction::Backward, &|_| {})
        .expect("rc")
    else {
        panic!("an earlier kv_apply")
    };
    assert!(prev.pos.icount < first);
    s.goto(BACKUP2, 1000).expect("early");
    let stop = s
        .continue_(Scope::Vm(BACKUP2), Direction::Backward, &|_| {})
        .expect("rc");
    assert_eq!(stop, StopReason::EndOfHistory(Direction::Backward));
    assert_eq!(s.position(BACKUP2).expect("pos").icount, 0);
}

#[test]
fn watchpoint_reverse_continue_finds_the_stale_write() {
    let mut s = Session::open(trace()).expect("open");
    let end = s.end_icount(BACKUP2);
    s.goto(BACKUP2, end).expect("goto end");
    let k3 = symbol("store") + 3 * 4;
    s.add_watchpoint(Watchpoint {
        addr: k3,
        len: 4,
        kind: WatchKind::Write,
        vm: Some(BACKUP2),
    })
    .expect("watch");
    let stop = s
        .continue_(Scope::Vm(BACKUP2), Direction::Backward, &|_| {})
        .expect("reverse-continue");
    let StopReason::Hit(hit) = stop else {
        panic!("expected the last write, got {stop:?}")
    };
    let HitKind::Watch { old, new, .. } = &hit.kind else {
        panic!("{hit:?}")
    };
    // The bug: the resent #5 (k3=31) overwrote #9's k3=32.
    assert_eq!(new.as_slice(), 31u32.to_le_bytes(), "old {old:?}");
    assert_eq!(old.as_slice(), 32u32.to_le_bytes());
    // The cursor stands before the writing instruction, inside kv_apply.
    let rip = s.machine(BACKUP2).expect("m").regs().rip;
    let apply = symbol("kv_apply");
    assert!(
        (apply..apply + 64).contains(&rip),
        "rip {rip:#x} not in kv_apply {apply:#x}"
    );
    let mut v = [0u8; 4];
    s.machine(BACKUP2).expect("m").read_virt(k3, &mut v);
    assert_eq!(v, 32u32.to_le_bytes(), "before the write the value is still 32");
    assert_eq!(
        s.last_write(BACKUP2, k3, 4)
            .expect("last write")
            .map(|p| p.icount < hit.pos.icount),
        Some(true)
    );
}

#[test]
fn follow_a_frame_to_its_send_and_back() {
    let mut s = Session::open(trace()).expect("open");
    let (recv_icount, frame_id) = {
        let index = s.trace().index();
        let f = index
            .events_in_window(
                0,
                u64::MAX,
                &vmrr_index::EventFilter::all()
                    .with_vms(vec![2])
                    .with_kinds(vec![vmrr_index::EventKind::FrameRecv]),
                5,
            )
            .expect("events");
        (f[3].icount, f[3].value.expect("frame id"))
    };
    s.set_focus(BACKUP2).expect("focus");
    s.goto(BACKUP2, recv_icount).expect("goto receipt");
    let send = s.follow_frame().expect("follow").expect("a send");
    let sent = s.trace().index().frame(frame_id, 2).expect("frame").expect("row");
    assert_eq!((send.vm, send.icount), (sent.src as usize, sent.sent_icount + 1));
    assert_eq!(s.focus(), sent.src as usize);
    let back = s.follow_frame().expect("follow").expect("a receipt");
    assert_eq!(back.icount, recv_icount);
}

#[test]
fn bookmarks_persist_in_the_trace() {
    let mut s = Session::open(trace()).expect("open");
    s.set_focus(1).expect("focus");
    s.goto(1, 12_345).expect("goto");
    let name = format!("mark-{}", std::process::id());
    s.add_bookmark(&name, "a note").expect("add");
    s.goto(0, 10).expect("elsewhere");
    let p = s.goto_bookmark(&name).expect("goto bookmark");
    assert_eq!((p.vm, p.icount), (1, 12_345));
    let again = Session::open(trace()).expect("reopen");
    assert!(again
        .bookmarks()
        .expect("list")
        .iter()
        .any(|b| b.name == name && b.note == "a note"));
    s.delete_bookmark(&name).expect("delete");
}

/// Breakpoint-only reverse-continue replays long runs of slices per core; a
/// watchpoint forces the one-slice-per-worker, step-by-step search. Both must
/// stop at exactly the same place, also for a breakpoint hit thousands of
/// times across checkpoints and inputs (the idle loop's poll).
#[test]
fn fast_reverse_continue_agrees_with_the_step_by_step_search() {
    let poll = symbol("virtio_net_rx_next") + 230;
    let cases: [(Scope, usize, u64, Vec<u64>); 3] = [
        (Scope::Vm(BACKUP2), BACKUP2, u64::MAX, vec![symbol("kv_apply")]),
        (Scope::Vm(BACKUP2), BACKUP2, 45_000, vec![poll]),
        (
            Scope::Cluster,
            0,
            60_000,
            vec![symbol("net_recv"), symbol("printf")],
        ),
    ];
    for (scope, vm, at, addrs) in cases {
        let mut fast = Session::open(trace()).expect("open");
        let mut slow = Session::open(trace()).expect("open");
        for s in [&mut fast, &mut slow] {
            let icount = at.min(s.end_icount(vm));
            s.goto(vm, icount).expect("goto");
            for &addr in &addrs {
                s.add_breakpoint(Breakpoint { addr, vm: None });
            }
        }
        // A watch on a byte nothing writes: it never fires, but it makes the
        // session search slice by slice, checking every step.
        slow.add_watchpoint(Watchpoint {
            addr: 0x8,
            len: 1,
            kind: WatchKind::Write,
            vm: None,
        })
        .expect("watch");
        for round in 0..2 {
            let a = fast
                .continue_(scope, Direction::Backward, &|_| {})
                .expect("fast search");
            let b = slow
                .continue_(scope, Direction::Backward, &|_| {})
                .expect("step-by-step search");
            assert_eq!(a, b, "{scope:?} from {vm}@{at}, round {round}, {addrs:x?}");
            for v in 0..fast.vm_count() {
                assert_eq!(fast.position(v).expect("pos"), slow.position(v).expect("pos"));
            }
        }
    }
}
