//! Event kinds are free text (SCHEMA.md): rows of a kind this vmrr does not
//! know, as a newer vmrr may write, are passed over by the typed queries and
//! counted by `unknown_kinds`, never reported as damage. (Issue 12.)

mod common;

use common::*;
use vmrr_index::{EventFilter, EventKind, Index, Position};

#[test]
fn unknown_kinds_are_passed_over_not_called_damage() {
    let s = Scratch::new("unknown-kinds");
    let path = s.index_path();
    {
        let mut index = Index::create(&path).unwrap();
        for e in small_events() {
            index.add_event(&e).unwrap();
        }
        index.close().unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Between two known events of VM 0 (icount 100 and 200), at a time of its own.
    conn.execute(
        "INSERT INTO events(vm, icount, vtime_ns, kind, value, text) VALUES (0, 150, 1500, 'gpu_irq', 7, 'new')",
        [],
    )
    .unwrap();
    let unknown_id = conn.last_insert_rowid() as u64;
    drop(conn);

    for index in [Index::open_read_only(&path).unwrap(), Index::open(&path).unwrap()] {
        let all = index
            .events_in_window(0, u64::MAX, &EventFilter::all(), usize::MAX)
            .unwrap();
        assert_eq!(all.len(), small_events().len(), "the unknown row is not listed");
        let vm0 = EventFilter::all().with_vms(vec![0]);
        let in_vm = index.events_in_window(0, u64::MAX, &vm0, usize::MAX).unwrap();
        assert!(in_vm.iter().all(|e| e.icount != 150));
        let around = index.events_of_vm_around(0, 150, 5, 5).unwrap();
        assert!(around.iter().all(|e| e.icount != 150), "{around:?}");
        assert_eq!(index.event(unknown_id).unwrap(), None);
        // Searching forward from just before it finds the next known event.
        let from = Position::at(0, 140, 1400);
        let next = index
            .next_event_after(Some(0), from, &EventFilter::all())
            .unwrap();
        assert_eq!(
            next.map(|e| (e.icount, e.kind)),
            Some((200, EventKind::Interrupt))
        );
        assert_eq!(
            index.count_events(&EventFilter::all()).unwrap(),
            small_events().len() as u64
        );
        assert_eq!(index.unknown_kinds().unwrap(), vec![("gpu_irq".to_string(), 1)]);
    }
}
