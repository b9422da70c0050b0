//! Each query on the small synthetic trace, with answers worked out by hand,
//! and next/prev checked against a brute-force search over every position.

mod common;

use common::*;
use vmrr_index::{EventFilter, EventKind, EventRow, FrameFate, Position};

fn key(e: &EventRow) -> (u64, u32, u64, u64) {
    (e.vtime_ns, e.vm, e.icount, e.id)
}

fn ids(events: &[EventRow]) -> Vec<(u32, u64, EventKind)> {
    events.iter().map(|e| (e.vm, e.icount, e.kind)).collect()
}

#[test]
fn events_around_a_position() {
    let s = Scratch::new("around");
    let (index, _) = build_small(&s.index_path());
    let got = index.events_of_vm_around(0, 300, 2, 2).unwrap();
    assert_eq!(
        ids(&got),
        vec![
            (0, 200, EventKind::Interrupt),
            (0, 200, EventKind::Tsc),
            (0, 300, EventKind::FrameSent),
            (0, 600, EventKind::FrameRecv),
        ]
    );
    // the events of instruction `icount` count as after
    let got = index.events_of_vm_around(1, 1000, 1, 5).unwrap();
    assert_eq!(
        ids(&got),
        vec![
            (1, 700, EventKind::Rand),
            (1, 1000, EventKind::Stop),
            (1, 1000, EventKind::Exit)
        ]
    );
    assert!(index.events_of_vm_around(0, 0, 10, 0).unwrap().is_empty());
    assert_eq!(index.events_of_vm_around(2, 10_000, 100, 100).unwrap().len(), 6);
    assert!(index.events_of_vm_around(7, 100, 5, 5).unwrap().is_empty());
}

#[test]
fn events_in_a_time_window() {
    let s = Scratch::new("window");
    let (index, stored) = build_small(&s.index_path());
    // [2000, 4005): vm0@200 (2000) x2, vm2@100 (2000), vm0@300 (3000), vm2@200 (4000), vm1@400 (4005) excluded
    let got = index
        .events_in_window(2000, 4005, &EventFilter::all(), 100)
        .unwrap();
    assert_eq!(
        ids(&got),
        vec![
            (0, 200, EventKind::Interrupt),
            (0, 200, EventKind::Tsc),
            (2, 100, EventKind::Interrupt),
            (0, 300, EventKind::FrameSent),
            (2, 200, EventKind::FrameRecv),
        ]
    );
    let got = index
        .events_in_window(2000, 4005, &EventFilter::all(), 2)
        .unwrap();
    assert_eq!(got.len(), 2);
    let f = EventFilter::all().with_vms([2u32]);
    assert_eq!(
        ids(&index.events_in_window(2000, 4005, &f, 100).unwrap()),
        vec![(2, 100, EventKind::Interrupt), (2, 200, EventKind::FrameRecv)]
    );
    let f = EventFilter::all().with_kinds([EventKind::FrameSent, EventKind::FrameRecv]);
    let got = index.events_in_window(0, u64::MAX, &f, 100).unwrap();
    assert_eq!(
        ids(&got),
        vec![
            (0, 300, EventKind::FrameSent),
            (2, 200, EventKind::FrameRecv),
            (1, 400, EventKind::FrameRecv),
            (1, 500, EventKind::FrameSent),
            (0, 600, EventKind::FrameRecv),
        ]
    );
    let f = EventFilter::all()
        .with_kinds([EventKind::Marker])
        .with_vms([0u32, 2]);
    assert_eq!(index.events_in_window(0, u64::MAX, &f, 100).unwrap().len(), 3);
    // empty windows and empty filters
    assert!(index
        .events_in_window(5, 5, &EventFilter::all(), 100)
        .unwrap()
        .is_empty());
    assert!(index
        .events_in_window(0, u64::MAX, &EventFilter::all().with_vms([]), 9)
        .unwrap()
        .is_empty());
    assert!(index
        .events_in_window(0, u64::MAX, &EventFilter::all().with_kinds([]), 9)
        .unwrap()
        .is_empty());
    // the whole trace is in the cluster order
    let all = index
        .events_in_window(0, u64::MAX, &EventFilter::all(), usize::MAX)
        .unwrap();
    let mut sorted = stored.clone();
    sorted.sort_by_key(key);
    assert_eq!(all, sorted);
}

#[test]
fn one_event_by_id() {
    let s = Scratch::new("by-id");
    let (index, stored) = build_small(&s.index_path());
    assert_eq!(index.event(1).unwrap().as_ref(), Some(&stored[0]));
    assert_eq!(index.event(0).unwrap(), None);
    assert_eq!(index.event(10_000).unwrap(), None);
    assert_eq!(index.event(u64::MAX).unwrap(), None);
}

#[test]
fn next_and_prev_by_hand() {
    let s = Scratch::new("next-prev");
    let (index, _) = build_small(&s.index_path());
    let all = EventFilter::all();
    // before vm0's instruction 200: its interrupt is next
    let pos = Position::at(0, 200, vtime(0, 200));
    let next = index.next_event_after(None, pos, &all).unwrap().unwrap();
    assert_eq!((next.vm, next.icount, next.kind), (0, 200, EventKind::Interrupt));
    // standing on it, the TSC read at the same instruction is next
    let next2 = index
        .next_event_after(None, next.position(), &all)
        .unwrap()
        .unwrap();
    assert_eq!((next2.vm, next2.icount, next2.kind), (0, 200, EventKind::Tsc));
    // then VM 2's interrupt, at the same virtual time but a higher VM id
    let next3 = index
        .next_event_after(None, next2.position(), &all)
        .unwrap()
        .unwrap();
    assert_eq!((next3.vm, next3.icount), (2, 100));
    // back again
    let back = index
        .prev_event_before(None, next3.position(), &all)
        .unwrap()
        .unwrap();
    assert_eq!(back, next2);
    let before = index.prev_event_before(None, pos, &all).unwrap().unwrap();
    assert_eq!((before.vm, before.icount), (1, 100));
    // one VM only
    let n = index.next_event_after(Some(1), pos, &all).unwrap().unwrap();
    assert_eq!((n.vm, n.icount, n.kind), (1, 400, EventKind::FrameRecv));
    // one kind only
    let markers = EventFilter::all().with_kinds([EventKind::Marker]);
    let n = index.next_event_after(None, pos, &markers).unwrap().unwrap();
    assert_eq!((n.vm, n.icount, n.text.as_deref()), (2, 500, Some("done")));
    assert!(index
        .next_event_after(None, n.position(), &markers)
        .unwrap()
        .is_none());
    // a VM that the filter excludes
    assert!(index
        .next_event_after(Some(1), pos, &EventFilter::all().with_vms([0u32]))
        .unwrap()
        .is_none());
    // the ends of the trace
    let start = Position::at(0, 0, 0);
    assert_eq!(index.next_event_after(None, start, &all).unwrap().unwrap().id, 1);
    assert!(index.prev_event_before(None, start, &all).unwrap().is_none());
    let end = Position::at(2, 1 << 40, 1 << 41);
    let last = index.prev_event_before(None, end, &all).unwrap().unwrap();
    // VM 1's exit (10 005 ns) is after VM 2's last marker (10 000 ns)
    assert_eq!((last.vm, last.icount, last.kind), (1, 1000, EventKind::Exit));
}

/// next/prev agree with a brute-force search for every event position and
/// many instruction positions, under every kind of filter.
#[test]
fn next_and_prev_match_brute_force() {
    let s = Scratch::new("brute");
    let (index, stored) = build_small(&s.index_path());
    let mut positions: Vec<Position> = stored.iter().map(Position::of_event).collect();
    for vm in 0..3u32 {
        for icount in (0..=1100u64).step_by(50) {
            positions.push(Position::at(vm, icount, vtime(vm, icount)));
        }
    }
    let filters = vec![
        EventFilter::all(),
        EventFilter::all().with_vms([1u32]),
        EventFilter::all().with_vms([0u32, 2]),
        EventFilter::all().with_kinds([EventKind::Marker]),
        EventFilter::all().with_kinds([EventKind::FrameRecv, EventKind::Halt]),
        EventFilter::all()
            .with_kinds([EventKind::Console])
            .with_vms([1u32]),
    ];
    let pos_key = |p: &Position| (p.pos.vtime_ns, p.pos.vm, p.pos.icount, p.event.unwrap_or(0));
    let mut checked = 0;
    for filter in &filters {
        for scope in [None, Some(0u32), Some(2u32)] {
            for pos in &positions {
                let pass = |e: &&EventRow| filter.matches(e) && scope.is_none_or(|v| e.vm == v);
                let expect_next = stored
                    .iter()
                    .filter(pass)
                    .filter(|e| key(e) > pos_key(pos))
                    .min_by_key(|e| key(e));
                let expect_prev = stored
                    .iter()
                    .filter(pass)
                    .filter(|e| key(e) < pos_key(pos))
                    .max_by_key(|e| key(e));
                let got_next = index.next_event_after(scope, *pos, filter).unwrap();
                let got_prev = index.prev_event_before(scope, *pos, filter).unwrap();
                assert_eq!(
                    got_next.as_ref(),
                    expect_next,
                    "next after {pos:?} {filter:?} {scope:?}"
                );
                assert_eq!(
                    got_prev.as_ref(),
                    expect_prev,
                    "prev before {pos:?} {filter:?} {scope:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn frames_both_ends() {
    let s = Scratch::new("frames");
    let (index, _) = build_small(&s.index_path());
    // frame 1 was flooded to VMs 1 and 2
    let receipts = index.frame_receipts_of_send(1).unwrap();
    assert_eq!(
        receipts
            .iter()
            .map(|f| (f.dst, f.recv_icount))
            .collect::<Vec<_>>(),
        vec![(1, Some(400)), (2, Some(200))]
    );
    assert!(index.frame_receipts_of_send(99).unwrap().is_empty());
    // VM 1 received frame 1 at 400: its send was VM 0 at 300
    let send = index.frame_send_of_receipt(1, 400).unwrap().unwrap();
    assert_eq!((send.id, send.src, send.sent_icount), (1, 0, 300));
    assert!(index.frame_send_of_receipt(1, 401).unwrap().is_none());
    // two frames reached VM 0 at the same instruction
    let both = index.frames_received_at(0, 600).unwrap();
    assert_eq!(both.iter().map(|f| f.id).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(index.frame_send_of_receipt(0, 600).unwrap().unwrap().id, 2);
    // sent at one instruction, one row per destination
    let sent = index.frames_sent_at(0, 300).unwrap();
    assert_eq!(
        sent.iter().map(|f| (f.id, f.dst)).collect::<Vec<_>>(),
        vec![(1, 1), (1, 2)]
    );
    // lost frames keep their fate and no receipt
    let lost = index.frame(4, 1).unwrap().unwrap();
    assert_eq!((lost.fate, lost.recv_icount), (FrameFate::Dropped, None));
    assert_eq!(index.frame(4, 2).unwrap(), None);
    // the frame_recv event's value leads to the frame
    let recv = index.events_of_vm_around(2, 200, 0, 1).unwrap().pop().unwrap();
    assert_eq!(recv.kind, EventKind::FrameRecv);
    let frame = index.frame(recv.value.unwrap(), recv.vm).unwrap().unwrap();
    assert_eq!(
        (frame.src, frame.sent_icount, frame.recv_icount),
        (0, 300, Some(200))
    );
}

#[test]
fn nearest_checkpoint_at_or_before() {
    let s = Scratch::new("checkpoints");
    let (index, _) = build_small(&s.index_path());
    let at = |vm, icount| index.nearest_checkpoint(vm, icount).unwrap().map(|c| c.icount);
    assert_eq!(at(0, 0), Some(0));
    assert_eq!(at(0, 249), Some(0));
    assert_eq!(at(0, 250), Some(250));
    assert_eq!(at(1, 600), Some(500));
    assert_eq!(at(2, u64::MAX), Some(750));
    assert_eq!(at(5, 100), None);
    let cp = index.nearest_checkpoint(1, 300).unwrap().unwrap();
    assert_eq!(cp.manifest, "cp-1-250.manifest");
    assert_eq!(cp.state_hash, "h1-250");
    assert_eq!(cp.vtime_ns, vtime(1, 250));
    assert_eq!(index.checkpoints(2).unwrap().len(), 4);
    assert!(index.checkpoints(9).unwrap().is_empty());
}

#[test]
fn empty_index_answers_nothing() {
    let s = Scratch::new("empty");
    let index = vmrr_index::Index::create(s.index_path()).unwrap();
    let all = EventFilter::all();
    assert!(index.events_in_window(0, u64::MAX, &all, 10).unwrap().is_empty());
    assert!(index
        .next_event_after(None, Position::at(0, 0, 0), &all)
        .unwrap()
        .is_none());
    assert!(index.nearest_checkpoint(0, 10).unwrap().is_none());
    assert!(index.vms().unwrap().is_empty());
    assert!(index.bookmarks().unwrap().is_empty());
    assert_eq!(index.stats().unwrap(), vmrr_index::IndexStats::default());
}

/// events_in_window agrees with a brute-force filter for many windows,
/// filters and limits (several lanes are merged and cut to the limit).
#[test]
fn windows_match_brute_force() {
    let s = Scratch::new("brute-window");
    let (index, stored) = build_small(&s.index_path());
    let mut sorted = stored.clone();
    sorted.sort_by_key(key);
    let filters = vec![
        EventFilter::all(),
        EventFilter::all().with_vms([1u32]),
        EventFilter::all().with_vms([2u32, 0, 2]),
        EventFilter::all().with_kinds([EventKind::Marker, EventKind::Console, EventKind::Marker]),
        EventFilter::all()
            .with_kinds([EventKind::FrameRecv])
            .with_vms([0u32, 2]),
        EventFilter::all()
            .with_kinds([EventKind::Interrupt, EventKind::Tsc])
            .with_vms([0u32]),
    ];
    let bounds = [
        0u64, 5, 1000, 2000, 2005, 3000, 4000, 4005, 7000, 10_000, 10_005, 20_000,
    ];
    let mut checked = 0;
    for filter in &filters {
        for &from in &bounds {
            for &to in &bounds {
                for limit in [1usize, 2, 3, usize::MAX] {
                    let expect: Vec<EventRow> = sorted
                        .iter()
                        .filter(|e| filter.matches(e) && e.vtime_ns >= from && e.vtime_ns < to)
                        .take(limit)
                        .cloned()
                        .collect();
                    let got = index.events_in_window(from, to, filter, limit).unwrap();
                    assert_eq!(got, expect, "[{from}, {to}) {filter:?} limit {limit}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 3000);
}
