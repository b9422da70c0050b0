//! The engine is exact: the same guest run twice, or resumed from a captured
//! state, gives identical events (with their icounts) and identical state hashes.
//! These tests need /dev/kvm and fail loudly without it.

use vmrr_backend::{Event, EventKind, Machine, RunLimit, Stop, VmConfig};

fn config(cmdline: &str) -> VmConfig {
    VmConfig {
        cmdline: cmdline.into(),
        seed: 42,
        ..VmConfig::default()
    }
}

fn boot(name: &str, cmdline: &str) -> Machine {
    let image = vmrr_guests::image(name);
    Machine::new(&image, config(cmdline)).unwrap_or_else(|e| panic!("cannot start {}: {e}", image.display()))
}

/// Runs to the end (or `max` steps), returning all events, the stop and the final hash.
fn run_to_end(vm: &mut Machine, max: u64) -> (Vec<Event>, Stop, [u8; 32]) {
    let stop = vm.run(RunLimit::icount(max)).expect("guest runs");
    let events = vm.take_events();
    (events, stop, vm.state_hash().expect("hash"))
}

fn console(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Console(b) => Some(b as char),
            _ => None,
        })
        .collect()
}

#[test]
fn hello_runs_identically_twice() {
    let (ev1, stop1, h1) = run_to_end(&mut boot("hello", "greeting=1"), 5_000_000);
    let (ev2, stop2, h2) = run_to_end(&mut boot("hello", "greeting=1"), 5_000_000);
    assert_eq!(stop1, Stop::Exited(0), "console was:\n{}", console(&ev1));
    let text = console(&ev1);
    assert!(text.contains("hello from vmrr"), "{text}");
    assert!(text.contains("tick 3"), "{text}");
    // The run must exercise what we claim to make deterministic.
    let interrupts = ev1
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Interrupt(_)))
        .count();
    let tsc_reads = ev1
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TscRead(_)))
        .count();
    let halts = ev1.iter().filter(|e| matches!(e.kind, EventKind::Halt)).count();
    assert!(interrupts >= 3, "timer interrupts delivered: {interrupts}");
    assert!(tsc_reads >= 1, "rdtsc reads: {tsc_reads}");
    assert!(halts >= 3, "halts: {halts}");
    assert_eq!(stop1, stop2);
    assert_eq!(ev1, ev2, "event streams differ");
    assert_eq!(h1, h2, "final state hashes differ");
}

#[test]
fn compute_runs_identically_twice() {
    let (ev1, stop1, h1) = run_to_end(&mut boot("compute", "iters=2000"), 5_000_000);
    let (ev2, _, h2) = run_to_end(&mut boot("compute", "iters=2000"), 5_000_000);
    assert_eq!(stop1, Stop::Exited(0), "console was:\n{}", console(&ev1));
    assert!(console(&ev1).contains("checksum=0x"));
    assert_eq!(ev1, ev2);
    assert_eq!(h1, h2);
}

#[test]
fn virtual_time_follows_icount_and_idle_only() {
    let mut vm = boot("hello", "");
    let (events, _, _) = run_to_end(&mut vm, 5_000_000);
    // Events are in icount order with non-decreasing virtual time.
    for pair in events.windows(2) {
        assert!(
            pair[0].icount <= pair[1].icount,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
        assert!(
            pair[0].vtime_ns <= pair[1].vtime_ns,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    // The TSC a guest reads is the virtual time of the reading instruction.
    for e in &events {
        if let EventKind::TscRead(v) = e.kind {
            assert_eq!(v, e.vtime_ns);
        }
    }
    // Three 1 ms ticks were slept: virtual time covers them although the busy
    // instructions alone account for far less.
    assert!(vm.vtime_ns() >= 3_000_000, "vtime {}", vm.vtime_ns());
}

/// Capture at step N, run on; restore the capture (into the same VM and into a
/// fresh one) and run on again: all three continuations must be identical.
#[test]
fn capture_restore_continues_identically() {
    for (name, cmdline, at) in [
        ("compute", "iters=3000", 40_000u64),
        ("hello", "", 4_500),
        ("hello", "", 5_100),
    ] {
        let mut vm = boot(name, cmdline);
        assert_eq!(vm.run(RunLimit::icount(at)).expect("runs"), Stop::Limit);
        vm.take_events();
        let snapshot = vm.capture().expect("capture");
        let hash_at = vm.state_hash().expect("hash");
        let (ev_a, stop_a, h_a) = run_to_end(&mut vm, 10_000_000);
        assert!(stop_a.is_final(), "{name} should finish, got {stop_a}");

        vm.restore(&snapshot).expect("restore into the same VM");
        assert_eq!(vm.state_hash().expect("hash"), hash_at, "{name}: restored hash");
        let (ev_b, stop_b, h_b) = run_to_end(&mut vm, 10_000_000);

        let mut fresh = Machine::from_state(config(cmdline), &snapshot).expect("restore into a fresh VM");
        assert_eq!(fresh.icount(), at);
        let (ev_c, stop_c, h_c) = run_to_end(&mut fresh, 10_000_000);

        assert_eq!(stop_a, stop_b);
        assert_eq!(stop_a, stop_c);
        assert_eq!(ev_a, ev_b, "{name}: same-VM continuation differs");
        assert_eq!(ev_a, ev_c, "{name}: fresh-VM continuation differs");
        assert_eq!(h_a, h_b);
        assert_eq!(h_a, h_c);
    }
}
