//! The time-travel Session on a recorded kvstore-bug trace: stepping back
//! equals seeking, reverse-continue finds the last breakpoint hit and the
//! last write to a variable, frames are followed both ways, bookmarks
//! persist. Needs /dev/kvm.

mod common;

use std::path::Path;

use vmrr_debugger::session::{
    Breakpoint, Direction, HitKind, Move, Outcome, Scope, Session, StopReason, VmId, WatchKind, Watchpoint,
};

/// `kv_apply` and `store` of guests/build/kvstore.elf, from its symbol table.
fn symbol(name: &str) -> u64 {
    common::kvstore_symbol(name)
}

fn trace() -> &'static Path {
    common::kvstore_bug_trace()
}

const BACKUP2: u32 = 2;

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
        .seek(BACKUP2 as usize, 29_995)
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
            .seek(BACKUP2 as usize, 31_195)
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
    s.goto(BACKUP2, recv_icount).expect("goto receipt");
    let follow = Move::Follow {
        event: None,
        to: None,
    };
    let Outcome::Moved { pos: send, .. } = s.perform(&follow, &|_| {}).expect("follow") else {
        panic!("a send")
    };
    let sent = s.trace().index().frame(frame_id, 2).expect("frame").expect("row");
    assert_eq!((send.vm, send.icount), (sent.src, sent.sent_icount + 1));
    assert_eq!(s.focus(), sent.src);
    let Outcome::Moved { pos: back, event } = s.perform(&follow, &|_| {}).expect("follow") else {
        panic!("a receipt")
    };
    assert_eq!((back.vm, back.icount), (BACKUP2, recv_icount));
    let recv_event = s
        .trace()
        .index()
        .event(event.expect("stands on the receipt"))
        .expect("event");
    assert_eq!(recv_event.and_then(|e| e.value), Some(frame_id));
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
    let cases: [(Scope, VmId, u64, Vec<u64>); 3] = [
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
            for v in fast.vm_ids().collect::<Vec<_>>() {
                assert_eq!(fast.position(v).expect("pos"), slow.position(v).expect("pos"));
            }
        }
    }
}

/// The instructions of every VM from where the session stands up to
/// virtual time `until`, in the cluster order, found by single-stepping a
/// fresh machine per VM (brute force: no index, no snapshots).
fn instructions_until(s: &mut Session, until: u64) -> Vec<vmrr_debugger::session::Pos> {
    let mut keys = Vec::new();
    for vm in s.vm_ids().collect::<Vec<_>>() {
        let from = s.position(vm).expect("pos").icount;
        let trace = s.trace();
        let w = vm as usize;
        let mut m = trace.seek(w, from).expect("seek");
        let mut next = trace.inputs(w).iter().take_while(|i| i.icount <= from).count();
        while m.icount() < trace.end_icount(w) {
            let to = m.icount() + 1;
            trace.run_to(w, &mut m, &mut next, to, usize::MAX).expect("step");
            let start = m.last_start_ns().expect("ran one");
            if start >= until {
                break;
            }
            keys.push(vmrr_debugger::session::Pos::new(vm, m.icount() - 1, start));
        }
    }
    keys.sort();
    keys
}

/// `g backup2:24456` then `L` used to run primary (halted, but ordered as
/// if its next step were now) and drag backup2 across 1447 instructions.
/// Now each `L` runs exactly the next instruction in the cluster order
/// (halted VMs at their wake time), as brute force finds it, and `H` undoes
/// them one by one back to the start.
#[test]
fn cluster_steps_follow_the_cluster_order_and_undo() {
    let mut s = Session::open(trace()).expect("open");
    s.goto(BACKUP2, 24_456).expect("goto");
    let start: Vec<u64> = s
        .vm_ids()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|vm| s.position(vm).expect("pos").icount)
        .collect();
    // Past backup2's halt (50.1025 ms) and into primary's wake (50.1515 ms).
    let expected = instructions_until(&mut s, 50_160_000);
    assert!(expected.len() > 1500, "{} instructions", expected.len());
    assert_eq!((expected[0].vm, expected[0].icount), (BACKUP2, 24_456));
    for (i, want) in expected.iter().enumerate() {
        let moved = s
            .step_cluster(Direction::Forward)
            .expect("step")
            .expect("not at the end");
        assert_eq!((moved.vm, moved.icount - 1), (want.vm, want.icount), "step {i}");
        assert_eq!(s.focus(), want.vm);
    }
    for (i, want) in expected.iter().enumerate().rev() {
        let back = s
            .step_cluster(Direction::Backward)
            .expect("step back")
            .expect("not at the start");
        assert_eq!((back.vm, back.icount), (want.vm, want.icount), "step back {i}");
    }
    for vm in s.vm_ids().collect::<Vec<_>>() {
        assert_eq!(s.position(vm).expect("pos").icount, start[vm as usize], "VM {vm}");
    }
}

/// Frame #0 is flooded to both backups: following its send offers both
/// receivers instead of picking one, and each can be followed.
#[test]
fn following_a_flooded_frame_offers_every_receiver() {
    let mut s = Session::open(trace()).expect("open");
    let sent = {
        let index = s.trace().index();
        let filter = vmrr_index::EventFilter::all().with_kinds(vec![vmrr_index::EventKind::FrameSent]);
        let rows = index.events_in_window(0, u64::MAX, &filter, 1).expect("events");
        rows[0].clone()
    };
    assert_eq!(sent.value, Some(0));
    let receipts = s.trace().index().frame_receipts_of_send(0).expect("receipts");
    assert_eq!(receipts.iter().map(|r| r.dst).collect::<Vec<_>>(), vec![1, 2]);
    let before = s.cursor();
    let Outcome::Choose(ends) = s
        .perform(
            &Move::Follow {
                event: Some(sent.id),
                to: None,
            },
            &|_| {},
        )
        .expect("follow")
    else {
        panic!("both receivers are offered")
    };
    assert_eq!(ends.iter().map(|e| e.vm).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(s.cursor(), before, "nothing moved");
    for r in &receipts {
        let out = s
            .perform(
                &Move::Follow {
                    event: Some(sent.id),
                    to: Some(r.dst),
                },
                &|_| {},
            )
            .expect("follow");
        let Outcome::Moved { pos, event } = out else {
            panic!("{out:?}")
        };
        assert_eq!((pos.vm, pos.icount), (r.dst, r.recv_icount.expect("received")));
        let e = s
            .trace()
            .index()
            .event(event.expect("on the receipt"))
            .expect("event")
            .expect("row");
        assert_eq!(
            (e.kind, e.value, e.vm),
            (vmrr_index::EventKind::FrameRecv, Some(0), r.dst)
        );
        assert_eq!(s.cursor_event(), Some(e.id));
        assert!(
            e.happened_at(s.cursor()),
            "the receipt counts as happened where it stands"
        );
    }
}

/// Moments read the same wherever they are typed; next/previous event
/// moves from the event the cursor stands on.
#[test]
fn moments_and_event_moves() {
    use vmrr_debugger::session::Moment;
    let mut s = Session::open(trace()).expect("open");
    let by_name = s
        .goto_moment(&Moment::parse("backup2:24456").expect("parse"))
        .expect("goto");
    let by_number = s
        .goto_moment(&Moment::parse("3:24456").expect("parse"))
        .expect("goto");
    assert_eq!(by_name, by_number);
    assert_eq!((by_name.vm, by_name.icount), (BACKUP2, 24_456));
    let markers = vmrr_index::EventFilter::all().with_kinds(vec![vmrr_index::EventKind::Marker]);
    let next = s
        .perform(
            &Move::Event {
                dir: Direction::Forward,
                filter: markers.clone(),
            },
            &|_| {},
        )
        .expect("next");
    let Outcome::Moved {
        event: Some(apply), ..
    } = next
    else {
        panic!("{next:?}")
    };
    let e = s.trace().index().event(apply).expect("e").expect("row");
    assert_eq!(
        (e.vm, e.icount, e.text.as_deref()),
        (BACKUP2, 24_502, Some("apply"))
    );
    let prev = s
        .perform(
            &Move::Event {
                dir: Direction::Backward,
                filter: markers,
            },
            &|_| {},
        )
        .expect("prev");
    let Outcome::Moved { event: Some(id), .. } = prev else {
        panic!("{prev:?}")
    };
    let e = s.trace().index().event(id).expect("e").expect("row");
    assert_eq!(
        (e.vm, e.text.as_deref(), e.value),
        (0, Some("send-write"), Some(4))
    );
    // A bookmark with spaces and a '#', reached by name.
    let name = format!("late #{}", std::process::id());
    s.goto(1, 30_000).expect("goto");
    s.add_bookmark(&name, "").expect("bookmark");
    s.goto_vtime(0).expect("start");
    let p = s
        .goto_moment(&Moment::parse(&name).expect("parse"))
        .expect("goto bookmark");
    assert_eq!((p.vm, p.icount), (1, 30_000));
    s.delete_bookmark(&name).expect("delete");
    let err = s
        .goto_moment(&Moment::parse("no such mark").expect("parse"))
        .expect_err("unknown bookmark");
    assert!(
        err.to_string().contains("no bookmark called 'no such mark'"),
        "{err}"
    );
}
