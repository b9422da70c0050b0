//! gdb on a recording, with the real gdb (batch mode, commands typed
//! through a pipe, and in a terminal) against `vmrr gdb` and `vmrr replay`:
//! every VM is an inferior with its own symbols and memory; simultaneous
//! hits are all reported, in cluster order, both ways; thread-scoped
//! breakpoints; writes refused with the reason; the one-command launcher at
//! a bookmark; stepping both ways, the ends of the trace, monitor commands;
//! and a raw client sending malformed packets, requests naming what does
//! not exist, a second connection and a Ctrl-C. Needs /dev/kvm, gdb, tmux.

mod common;
mod demo;
mod gdb_support;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use gdb_support::{between, hex, mixed_trace, registers, stops, symbol, trace, Raw, Server, Terminal};
use vmrr_backend::rng::SeededRng;
use vmrr_debugger::session::Session;

/// VM index of backup2 (inferior 3), where the kvstore bug shows.
const BACKUP2: u32 = 2;

/// The thread part of each stop line: `Thread 2.1 "backup1"`.
fn stop_threads(output: &str) -> Vec<String> {
    stops(output)
        .iter()
        .map(|l| l.split(" hit ").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn simultaneous_breakpoint_hits_are_reported_one_after_another_both_ways() {
    // The three VMs boot in lockstep: they reach kit_entry at the same
    // virtual time.
    let server = Server::start(&[]);
    let out = server.gdb(&[
        "break kit_entry",
        "continue",
        "continue",
        "continue",
        "echo <threads>\\n",
        "monitor vm",
        "echo </threads>\\n",
        "echo <on>\\n",
        "continue",
        "echo </on>\\n",
        "echo <back>\\n",
        "reverse-continue",
        "reverse-continue",
        "reverse-continue",
        "echo </back>\\n",
        "echo <start>\\n",
        "reverse-continue",
        "echo </start>\\n",
    ]);
    let forward = between(&out, "Breakpoint 1 at", "<threads>");
    assert_eq!(
        stop_threads(forward),
        [
            "Thread 1.1 \"primary\"",
            "Thread 2.1 \"backup1\"",
            "Thread 3.1 \"backup2\""
        ],
        "{out}"
    );
    assert_eq!(forward.matches("kit_entry (si=0x6000)").count(), 3, "{out}");
    // All three at the same time: backup2 stands at its hit (gdb was told
    // of it last), the others just past theirs, all at 0.02637 ms.
    let threads = between(&out, "<threads>", "</threads>");
    assert!(
        threads.contains("inferior 1  primary  icount 2638, 0.026380 ms"),
        "{threads}"
    );
    assert!(
        threads.contains("inferior 2  backup1  icount 2638, 0.026380 ms"),
        "{threads}"
    );
    assert!(
        threads.contains("* inferior 3  backup2  icount 2637, 0.026370 ms"),
        "{threads}"
    );
    // Then the run goes on: no hit is left, the continue reaches the end.
    let on = between(&out, "<on>", "</on>");
    assert!(
        stops(on).is_empty() && on.contains("No more reverse-execution history."),
        "{out}"
    );
    // Backwards: the same three in reverse cluster order, then the start.
    assert_eq!(
        stop_threads(between(&out, "<back>", "</back>")),
        [
            "Thread 3.1 \"backup2\"",
            "Thread 2.1 \"backup1\"",
            "Thread 1.1 \"primary\""
        ],
        "{out}"
    );
    let start = between(&out, "<start>", "</start>");
    assert!(
        stops(start).is_empty() && start.contains("No more reverse-execution history."),
        "{out}"
    );
}

#[test]
fn a_simultaneous_hit_that_gdb_stepped_past_is_named_not_lost() {
    // gdb holds backup1 and backup2 at their pending hits while primary
    // steps; after 50 steps of primary the cluster is past that moment, so
    // the hits cannot be reported as stops any more: the console says
    // where they are.
    let server = Server::start(&[]);
    let out = server.gdb(&["break kit_entry", "continue", "stepi 50", "continue"]);
    assert_eq!(stop_threads(&out), ["Thread 1.1 \"primary\""], "{out}");
    let entry = symbol("kit_entry");
    for (name, n) in [("backup1", 2), ("backup2", 3)] {
        assert!(
            out.contains(&format!(
                "vmrr: {name} (inferior {n}) also hit a breakpoint at {entry:#x} at 0.026370 ms (icount 2637), \
                 but gdb has moved other VMs past that moment since; `monitor goto {n}:2637` goes there"
            )),
            "{out}"
        );
    }
}

#[test]
fn simultaneous_watchpoint_hits_are_reported_one_after_another() {
    let server = Server::start(&[]);
    // A watchpoint belongs to the inferior it was set in: set it in each.
    let out = server.gdb(&[
        "watch vmrr_start_info",
        "inferior 2",
        "watch vmrr_start_info",
        "inferior 3",
        "watch vmrr_start_info",
        "inferior 1",
        "echo <hits>\\n",
        "continue",
        "continue",
        "continue",
        "echo </hits>\\n",
        "continue",
    ]);
    let hits = between(&out, "<hits>", "</hits>");
    assert_eq!(
        stops(hits),
        [
            "Thread 1.1 \"primary\" hit Hardware watchpoint 1: vmrr_start_info",
            "Thread 2.1 \"backup1\" hit Hardware watchpoint 2: vmrr_start_info",
            "Thread 3.1 \"backup2\" hit Hardware watchpoint 3: vmrr_start_info",
        ],
        "{out}"
    );
    assert_eq!(
        hits.matches(
            "Old value = (struct hvm_start_info *) 0x0\nNew value = (struct hvm_start_info *) 0x6000"
        )
        .count(),
        3,
        "{out}"
    );
    assert!(out.ends_with_end_of_history(), "{out}");
}

/// The last continue of a run reached the end of the trace.
trait EndOfHistory {
    fn ends_with_end_of_history(&self) -> bool;
}

impl EndOfHistory for String {
    fn ends_with_end_of_history(&self) -> bool {
        self.rfind("No more reverse-execution history.")
            .is_some_and(|at| !self[at..].contains(" hit "))
    }
}

#[test]
fn thread_and_inferior_scoped_breakpoints_stop_only_there() {
    let server = Server::start(&[]);
    let out = server.gdb(&[
        "break kv_apply thread 3.1",
        "continue",
        "continue",
        "delete",
        // gdb 13 has no `break … inferior N`: a condition on $_inferior.
        "break kv_apply if $_inferior == 2",
        "continue",
        "continue",
    ]);
    assert_eq!(
        stop_threads(&out),
        [
            "Thread 3.1 \"backup2\"",
            "Thread 3.1 \"backup2\"",
            "Thread 2.1 \"backup1\"",
            "Thread 2.1 \"backup1\""
        ],
        "{out}"
    );
    assert!(
        out.contains("kv_apply (seq=seq@entry=1, key=1 '\\001', val=10)"),
        "{out}"
    );
    assert!(
        out.contains("kv_apply (seq=seq@entry=2, key=2 '\\002', val=20)"),
        "{out}"
    );
}

#[test]
fn two_images_each_inferior_has_its_own_symbols_and_memory() {
    let trace = mixed_trace();
    let server = Server::start_on(trace, &[]);
    let out = server.gdb(&[
        "info inferiors",
        "break checksum",
        "continue",
        "echo <calc>\\n",
        "bt",
        "list",
        "p/x &table",
        "p table[63]",
        "info symbol 0x105000",
        "echo </calc>\\n",
        "inferior 1",
        "echo <ping>\\n",
        "bt",
        "list pinger",
        "p table",
        "p/x &irq_handlers",
        "info symbol 0x105000",
        "p node_id",
        "echo </ping>\\n",
    ]);
    for name in ["ping", "pong", "calc"] {
        assert!(out.contains(&format!("images/{name}.elf")), "{out}");
    }
    let calc = between(&out, "<calc>", "</calc>");
    assert!(
        out.contains("Thread 3.1 \"calc\" hit Breakpoint 1, 0x") && out.contains(" in checksum ("),
        "{out}"
    );
    assert!(
        calc.contains("kmain (si=<optimized out>) at compute/compute.c"),
        "{calc}"
    );
    assert!(calc.contains("in _start64 () at kit/boot.S"), "{calc}");
    assert!(!calc.contains("?? ()"), "bt ends at the entry:\n{calc}");
    assert!(calc.contains("x ^= x << 13;"), "list shows compute.c:\n{calc}");
    assert!(calc.contains("= 0x105000"), "{calc}");
    assert!(calc.contains("table in section .bss"), "{calc}");
    let ping = between(&out, "<ping>", "</ping>");
    assert!(
        ping.contains("_start64 () at kit/boot.S") || ping.contains("_start32"),
        "{ping}"
    );
    assert!(
        ping.contains("pinger(long count)"),
        "list shows pingpong.c:\n{ping}"
    );
    assert!(ping.contains("No symbol \"table\" in current context."), "{ping}");
    assert!(ping.contains("irq_handlers in section .bss"), "{ping}");

    // The same address is compute's table[0] in calc and pingpong's
    // irq_handlers[0] in ping and pong: a watchpoint in one inferior
    // never reports another's memory. (Each run from the start: a server
    // keeps its cursor between connections.)
    drop(server);
    let server = Server::start_on(trace, &[]);
    let out = server.gdb(&["watch irq_handlers[0]", "continue", "continue", "continue"]);
    let threads = stop_threads(&out);
    assert_eq!(threads, ["Thread 1.1 \"ping\""], "{out}");
    assert!(out.ends_with_end_of_history(), "{out}");
    drop(server);
    let server = Server::start_on(trace, &[]);
    let out = server.gdb(&["inferior 3", "watch table[0]", "continue", "continue", "continue"]);
    assert_eq!(threads_of(&out), vec!["Thread 3.1 \"calc\""; 3], "{out}");
    assert!(
        out.contains("Hardware watchpoint 1: table[0]\n\nOld value = 0\nNew value = "),
        "{out}"
    );
}

/// The thread of every stop line.
fn threads_of(output: &str) -> Vec<String> {
    stop_threads(output)
}

#[test]
fn writes_are_refused_with_the_reason() {
    let server = Server::start(&[]);
    let out = server.gdb_typed(&[
        "inferior 3",
        "monitor goto backup2:60000",
        "p store[3]",
        "set var store[3] = 999",
        "p store[3]",
        "set $rax = 7",
        "p $rax == 7",
        "call kv_apply(1, 1, 1)",
        "return",
        "stepi",
        "p store[3]",
        "monitor when",
    ]);
    // Memory: gdb 13 only says it could not write; vmrr's settings print why.
    assert!(out.contains("Cannot access memory at address 0x"), "{out}");
    assert!(
        out.contains("vmrr: memory of backup2 (inferior 3) not changed (4 bytes at 0x")
            && out.contains("a recording cannot change. Go where it has the values you want"),
        "{out}"
    );
    // Registers: gdb shows the reply's text itself.
    assert!(
        out.contains(
            "Could not write register \"rax\"; remote failure reply 'E.vmrr: registers of backup2 (inferior 3) \
             not changed (nor can call, return or jump run)"
        ),
        "{out}"
    );
    // `call` stops at its first write; `return` at its register write.
    assert!(out.matches("vmrr: memory of backup2").count() >= 2, "{out}");
    assert!(out.matches("Could not write register").count() >= 2, "{out}");
    // Nothing changed, and the session goes on.
    assert_eq!(out.matches("= 31\n").count(), 3, "{out}");
    assert!(out.contains("= 0\n"), "$rax is not 7: {out}");
    assert!(out.contains("backup2 (inferior 3), icount 60001,"), "{out}");
}

#[test]
fn replay_opens_gdb_at_a_bookmark_with_spaces() {
    let name = format!("late #5 {}", std::process::id());
    {
        let mut s = Session::open(trace()).expect("open");
        s.goto(BACKUP2, 61_000).expect("goto");
        s.add_bookmark(&name, "for the replay test").expect("bookmark");
    }
    let term = Terminal::start(&format!(
        "{} replay {} --at '{name}'; echo gdb-exited-$?; sleep 60",
        common::VMRR,
        trace().display()
    ));
    let screen = term.wait_for("(gdb) ", 1, Duration::from_secs(60));
    assert!(
        screen.contains("[Switching to inferior 3 [process 3]"),
        "{screen}"
    );
    term.type_line("monitor when");
    let screen = term.wait_for("(gdb) ", 2, Duration::from_secs(30));
    assert!(screen.contains("backup2 (inferior 3), icount 61000,"), "{screen}");
    term.type_line("bt");
    let screen = term.wait_for("(gdb) ", 3, Duration::from_secs(30));
    let bt = between(&screen, "(gdb) bt", "(gdb) ");
    assert!(bt.contains("in _start64 () at kit/boot.S"), "{bt}");
    assert!(!bt.contains("?? ()"), "{bt}");
    term.type_line("info inferiors");
    let screen = term.wait_for("(gdb) ", 4, Duration::from_secs(30));
    assert!(screen.contains("images/backup2.elf"), "{screen}");
    term.type_line("quit");
    term.wait_for("Quit anyway? (y or n)", 1, Duration::from_secs(30));
    term.type_line("y");
    term.wait_for("gdb-exited-0", 1, Duration::from_secs(30));
    // gdb's settings were not written into the trace.
    let written: Vec<_> = std::fs::read_dir(trace())
        .expect("list the trace")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "gdb"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn range_stepping_serves_next() {
    let server = Server::start(&["--at", "backup2:30000"]);
    let out = server.gdb(&[
        "break kv_apply thread 3.1",
        "continue",
        "set debug remote 1",
        "next",
        "set debug remote 0",
        "echo <after>\\n",
        "info line *$pc",
        "echo </after>\\n",
    ]);
    assert!(out.contains("vCont;r"), "gdb did not range-step:\n{out}");
    let after = between(&out, "<after>", "</after>");
    assert!(
        after.contains("Line 370 of \"kvstore/kvstore.c\""),
        "{after}\n{out}"
    );
    assert!(out.contains("370\t    marker(\"apply\", seq);"), "{out}");
}

#[test]
fn reverse_stepi_returns_to_the_same_registers() {
    let server = Server::start(&["--at", "backup2:30000"]);
    let out = server.gdb(&[
        "echo <before>\\n",
        "info registers",
        "echo </before>\\n",
        "stepi 25",
        "echo <middle>\\n",
        "info registers",
        "echo </middle>\\n",
        "reverse-stepi 25",
        "echo <after>\\n",
        "info registers",
        "echo </after>\\n",
        "monitor when",
    ]);
    let before = registers(between(&out, "<before>", "</before>"));
    let middle = registers(between(&out, "<middle>", "</middle>"));
    let after = registers(between(&out, "<after>", "</after>"));
    assert!(before.len() >= 30, "too few registers:\n{out}");
    assert!(before.iter().any(|(n, _)| n == "fs_base") && before.iter().any(|(n, _)| n == "cr3"));
    assert_ne!(before, middle, "25 steps changed nothing?\n{out}");
    assert_eq!(before, after, "reverse-stepi did not come back:\n{out}");
    assert!(out.contains("backup2 (inferior 3), icount 30000"), "{out}");
}

#[test]
fn reverse_continue_stops_at_the_previous_breakpoint_hit() {
    let server = Server::start(&["--at", "end", "--vm", "backup2"]);
    let apply = symbol("kv_apply");
    let out = server.gdb(&[
        // Only backup2 runs (gdb's locking makes `bc` name its thread).
        "set scheduler-locking on",
        "monitor goto backup2:67000",
        "break kv_apply",
        "reverse-continue",
        "echo <first>\\n",
        "p/x $pc",
        "monitor when",
        "echo </first>\\n",
        "reverse-continue",
        "echo <second>\\n",
        "p/x $pc",
        "monitor when",
        "echo </second>\\n",
        "reverse-finish",
        "echo <caller>\\n",
        "x/i $pc",
        "echo </caller>\\n",
    ]);
    let icount = |text: &str| -> u64 {
        text.split("icount ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no icount in {text:?}\n{out}"))
    };
    let first = between(&out, "<first>", "</first>");
    let second = between(&out, "<second>", "</second>");
    assert!(out.contains("Thread 3.1 \"backup2\" hit Breakpoint 1."), "{out}");
    for part in [first, second] {
        assert!(
            part.contains(&format!("= {apply:#x}")),
            "not at kv_apply {apply:#x}: {part}\n{out}"
        );
        assert!(part.contains("backup2 (inferior 3)"), "{part}\n{out}");
    }
    assert!(icount(second) < icount(first), "{out}");
    let caller = between(&out, "<caller>", "</caller>");
    assert!(
        caller.contains("call") && caller.contains("kv_apply"),
        "{caller}\n{out}"
    );
    assert!(out.contains("in on_write"), "{out}");
}

#[test]
fn watch_and_reverse_continue_find_the_stale_write() {
    // `end` is the end of the --vm VM.
    let server = Server::start(&["--vm", "backup2", "--at", "end"]);
    let out = server.gdb(&[
        "monitor when",
        "p store[3]",
        "watch store[3]",
        "reverse-continue",
        "echo <hit>\\n",
        "p store[3]",
        "p applied",
        "bt 2",
        "echo </hit>\\n",
        "continue",
    ]);
    assert!(
        out.contains("backup2 (inferior 3), icount 67008, 220.004183 ms of 67008"),
        "{out}"
    );
    // backup2 ends with k3=31: the late #5 overwrote #9's 32.
    assert!(out.contains("$1 = 31"), "{out}");
    let hit = between(&out, "<hit>", "</hit>");
    assert!(out.contains("Hardware watchpoint 1: store[3]"), "{out}");
    assert!(out.contains("Old value = 31\nNew value = 32"), "{out}");
    // Stopped before the writing instruction, inside kv_apply(seq=5, key=3, val=31).
    assert!(hit.contains("$2 = 32"), "{hit}");
    assert!(hit.contains("$3 = 9"), "applied is already #9: {hit}");
    assert!(
        hit.contains("kv_apply (seq=seq@entry=5, key=3 '\\003', val=31)"),
        "{hit}\n{out}"
    );
    assert!(hit.contains("on_write"), "{hit}");
    // Forward again: the same write, reported after it.
    assert!(out.contains("Old value = 32\nNew value = 31"), "{out}");
}

#[test]
fn inferiors_are_vms_with_their_own_registers_and_memory() {
    let server = Server::start(&["--at", "backup2:30000"]);
    let out = server.gdb(&[
        "info inferiors",
        "info threads",
        "inferior 1",
        "echo <t1>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t1>\\n",
        "inferior 2",
        "echo <t2>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t2>\\n",
        "inferior 3",
        "echo <t3>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t3>\\n",
        "x/4x 0xdead00000000",
        "x/4x 0xffffffffffffff00",
        "p *(int *)0x7fffffffffff",
        "p me",
    ]);
    for (n, name) in [(1, "primary"), (2, "backup1"), (3, "backup2")] {
        assert!(out.contains(&format!("Thread {n}.1 \"{name}\"")), "{out}");
        assert!(out.contains(&format!("process {n} ")) && out.contains(&format!("images/{name}.elf")));
    }
    // Each inferior shows its own VM, as the session sees it at the same cursor.
    let mut s = Session::open(trace()).expect("open");
    s.goto(BACKUP2, 30_000).expect("goto");
    for vm in 0..3 {
        let part = between(&out, &format!("<t{}>", vm + 1), &format!("</t{}>", vm + 1));
        let got = registers(part);
        let r = s.machine(vm).expect("machine").regs();
        let want = [
            ("rip", r.rip),
            ("rsp", r.rsp),
            ("rbp", r.rbp),
            ("rax", r.rax),
            ("rbx", r.rbx),
            ("rcx", r.rcx),
            ("rdx", r.rdx),
        ];
        for (name, value) in want {
            assert!(
                got.iter().any(|(n, v)| n == name && *v == format!("{value:#x}")),
                "inferior {} {name} should be {value:#x}: {part}\n{out}",
                vm + 1
            );
        }
        // `me` is the node id: each VM's own memory.
        assert!(
            part.contains(&format!("= {vm}\n")),
            "inferior {} reads me = {vm}: {part}",
            vm + 1
        );
    }
    for addr in ["0xdead00000000", "0xffffffffffffff00", "0x7fffffffffff"] {
        assert!(
            out.contains(&format!("Cannot access memory at address {addr}")),
            "{out}"
        );
    }
    // ... and the run ended normally (gdb detached every VM at the end).
    assert!(out.contains("[Inferior 3 (process 3) detached]"), "{out}");
}

#[test]
fn the_ends_of_the_trace_say_no_more_history() {
    let server = Server::start(&["--at", "backup2:3"]);
    let out = server.gdb(&[
        "reverse-stepi 3",
        "echo <start>\\n",
        "reverse-stepi",
        "monitor when",
        "reverse-continue",
        "echo </start>\\n",
        "monitor goto backup2:67008",
        "echo <end>\\n",
        "stepi",
        "monitor when",
        "echo </end>\\n",
    ]);
    let start = between(&out, "<start>", "</start>");
    let end_part = between(&out, "<end>", "</end>");
    assert_eq!(
        start.matches("No more reverse-execution history.").count(),
        2,
        "reverse-stepi and reverse-continue at the start:\n{out}"
    );
    assert!(start.contains("backup2 (inferior 3), icount 0, "), "{out}");
    assert!(
        end_part.contains("No more reverse-execution history."),
        "stepi at the end:\n{out}"
    );
    assert!(
        !out[..out.find("<start>").unwrap_or(0)].contains("No more"),
        "3 steps back are fine:\n{out}"
    );
    let end = Session::open(trace()).expect("open").end_icount(BACKUP2);
    assert!(
        end_part.contains(&format!("icount {end}, 220.004183 ms of {end};")),
        "{out}"
    );
}

#[test]
fn monitor_commands() {
    let server = Server::start(&[]);
    let mark = format!("gdb mark {}", std::process::id());
    let out = server.gdb(&[
        "monitor help",
        "monitor vm",
        "monitor vm backup1",
        "monitor when",
        "monitor goto 1234",
        "monitor goto 12.5ms",
        "monitor goto backup2:36000",
        "monitor events 3 marker",
        &format!("monitor bookmark add \"{mark}\" the late write"),
        "monitor goto start",
        "monitor bookmark list",
        &format!("monitor goto {mark}"),
        "monitor goto start",
        &format!("monitor goto bookmark {mark}"),
        "monitor goto start",
        &format!("monitor bookmark goto {mark}"),
        "echo <at-mark>\\n",
        "info inferiors",
        "echo </at-mark>\\n",
        "monitor goto 122.1ms",
        "monitor events 2 frame_recv backup2",
        "monitor follow",
        "monitor goto nonsense",
        "monitor frobnicate",
    ]);
    assert!(out.contains("vmrr monitor commands"), "{out}");
    assert!(
        out.contains("* inferior 1  primary  icount 0, 0.000000 ms (of 97868)"),
        "{out}"
    );
    assert!(out.contains("focus: backup1 (in gdb: inferior 2)"), "{out}");
    assert!(out.contains("backup1 (inferior 2), icount 0,"), "{out}");
    assert!(out.contains("backup1 (inferior 2), icount 1234,"), "{out}");
    assert!(out.contains("cluster cursor at 12.500000 ms"), "{out}");
    assert!(out.contains("backup2 (inferior 3), icount 36000,"), "{out}");
    assert!(out.contains("marker"), "{out}");
    assert!(
        out.contains(&format!("bookmark '{mark}': backup2 (inferior 3), icount 36000")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&mark) && l.contains("icount 36000") && l.ends_with("the late write")),
        "{out}"
    );
    // A bookmark named with spaces is reached three ways.
    assert_eq!(
        out.matches("backup2 (inferior 3), icount 36000, 122.087851 ms of 67008")
            .count(),
        4,
        "{out}"
    );
    // A move selects its VM in gdb (vmrr's settings).
    let at_mark = between(&out, "<at-mark>", "</at-mark>");
    assert!(at_mark.contains("* 3    process 3"), "{at_mark}\n{out}");
    assert!(out.contains("frame_recv"), "{out}");
    assert!(out.contains("error: no bookmark called 'nonsense'"), "{out}");
    assert!(out.contains("error: unknown command 'frobnicate'"), "{out}");
    assert!(out.contains("sent or received no frame at the cursor"), "{out}");

    // goto event ID, with an id from the listing.
    let id = out
        .lines()
        .filter(|l| l.contains("frame_recv"))
        .find_map(|l| {
            l.trim()
                .strip_prefix('#')?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no event id in:\n{out}"));
    let event = Session::open(trace())
        .expect("open")
        .trace()
        .index()
        .event(id)
        .expect("query")
        .expect("event");
    let out2 = server.gdb(&[&format!("monitor goto #{id}"), "monitor follow"]);
    assert!(
        out2.contains(&format!("icount {},", event.icount)),
        "goto event {id} ({event:?}):\n{out2}"
    );
    assert!(out2.contains("primary (inferior 1)"), "{out2}");
    let sql = common::vmrr([
        "sql",
        &trace().display().to_string(),
        "SELECT name FROM bookmarks",
    ]);
    sql.expect_code(0).expect_stdout(&[&mark]);
}

#[test]
fn startup_prints_the_attach_command_and_starts_where_asked() {
    let server = Server::start(&["--at", "backup2:30000"]);
    assert!(
        server.banner.contains(&format!(
            "gdb -q -ex 'set sysroot /' -ex 'set remotetimeout 60' -ex 'set schedule-multiple on' \
             -ex 'target extended-remote 127.0.0.1:{}' -x {}",
            server.port,
            server.settings.display()
        )),
        "{}",
        server.banner
    );
    assert!(server.banner.contains("3 = backup2"), "{}", server.banner);
    assert!(!server.settings.starts_with(trace()), "{}", server.banner);
    assert!(!trace().join("vmrr.gdb").exists());
    // gdb starts in the focus VM, standing where asked.
    let out = server.gdb(&[
        "info threads",
        "p/x $pc",
        "inferior 2",
        "stepi",
        "reverse-stepi",
        "reverse-stepi",
        "monitor when",
    ]);
    assert!(out.contains("* 3.1  Thread 3.1 \"backup2\""), "{out}");
    let mut s = Session::open(trace()).expect("open");
    s.goto(BACKUP2, 30_000).expect("goto");
    let pc = s.machine(BACKUP2).expect("machine").regs().rip;
    assert!(out.contains(&format!("$1 = {pc:#x}")), "pc {pc:#x}:\n{out}");
    let backup1 = s.position(1).expect("position").icount;
    assert!(
        out.contains(&format!("backup1 (inferior 2), icount {},", backup1 - 1)),
        "one step forward and two back from {backup1}:\n{out}"
    );
}

#[test]
fn detach_and_attach_again() {
    let server = Server::start(&[]);
    // (gdb 13 resumes the last stepped thread after `detach`: the
    // settings' own step is cleared by a continue first.)
    let out = server.gdb(&[
        "break kit_entry",
        "continue",
        "delete",
        "inferior 2",
        "detach",
        "info threads",
        "attach 2",
        "echo <again>\\n",
        "info threads",
        "echo </again>\\n",
    ]);
    assert!(out.contains("[Inferior 2 (process 2) detached]"), "{out}");
    let again = between(&out, "<again>", "</again>");
    assert!(again.contains("* 2.1  Thread 2.1 \"backup1\""), "{out}");
}

/// One of `items`, chosen by the fuzz's generator.
fn pick<'a>(rng: &mut SeededRng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// Packets a client might send by mistake or malice (never a continue:
/// that would run the target for long, which is tested elsewhere).
fn fuzz_packet(rng: &mut SeededRng) -> Vec<u8> {
    let num = |rng: &mut SeededRng| -> String {
        match rng.below(6) {
            0 => "0".into(),
            1 => "ffffffffffffffff".into(),
            2 => "1122334455667788990011".into(),
            3 => format!("{:x}", rng.next_u64()),
            4 => format!("{:x}", rng.below(0x20_0000)),
            _ => "-1".into(),
        }
    };
    let thread = |rng: &mut SeededRng| -> &'static str {
        pick(
            rng,
            &[
                "0", "-1", "p1.1", "p1.-1", "p2.1", "p9.1", "p1.9", "99", "p0.0", "p-1.-1", "zz", "",
            ],
        )
    };
    match rng.below(16) {
        0 => {
            let n = rng.below(64);
            // Not `k` or `D` alone: those end the session, as they should.
            let mut p: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
            if matches!(p.as_slice(), [b'k'] | [b'D']) {
                p.push(b'?');
            }
            p
        }
        1 => format!("m{},{}", num(rng), num(rng)).into_bytes(),
        2 => format!(
            "M{},{}:{}",
            num(rng),
            num(rng),
            pick(rng, &["", "00", "zz", "0102030405"])
        )
        .into_bytes(),
        3 => {
            let mut p = format!("X{},{}:", num(rng), num(rng)).into_bytes();
            p.extend((0..rng.below(16)).map(|_| rng.below(256) as u8));
            p
        }
        4 => format!(
            "{}{},{},{}",
            pick(rng, &["Z", "z"]),
            rng.below(6),
            num(rng),
            num(rng)
        )
        .into_bytes(),
        5 => format!("H{}{}", pick(rng, &["g", "c", "x", ""]), thread(rng)).into_bytes(),
        6 => pick(
            rng,
            &[
                "g",
                "G00",
                "p10",
                "p999",
                "P10=00",
                "?",
                "qC",
                "qfThreadInfo",
                "qsThreadInfo",
                "T0",
                "T99",
                "Tp1.2",
                "Tp2.1",
                "vCont?",
                "vMustReplyEmpty",
                "qAttached:1",
                "qAttached:9",
                "vAttach;1",
                "vAttach;9",
                "vKill;9",
                "D;9",
                "vRun;",
                "qSymbol::",
            ],
        )
        .as_bytes()
        .to_vec(),
        7 => format!(
            "qXfer:features:read:{}:{},{}",
            pick(rng, &["target.xml", "x.xml", ""]),
            num(rng),
            num(rng)
        )
        .into_bytes(),
        8 => format!(
            "qXfer:{}:read:{}:{},{}",
            pick(rng, &["exec-file", "threads", "memory-map", "auxv", "x"]),
            pick(rng, &["", "1", "2", "9", "zz"]),
            num(rng),
            num(rng)
        )
        .into_bytes(),
        9 => format!(
            "qRcmd,{}",
            pick(
                rng,
                &[
                    "",
                    "zz",
                    "6",
                    &hex("goto"),
                    &hex("goto #99999999"),
                    &hex("vm nobody"),
                    &hex("events 100000 all"),
                    &hex("bookmark goto nowhere"),
                    &hex("sync"),
                ]
            )
        )
        .into_bytes(),
        10 => format!("qThreadExtraInfo,{}", thread(rng)).into_bytes(),
        11 => format!(
            "qSupported:{}",
            pick(rng, &["multiprocess+", "xmlRegisters=i386", "=", ";;;"])
        )
        .into_bytes(),
        12 => format!(
            "vCont;{}:{}",
            pick(rng, &["s", "x", "r0,1", "C", "S05", "t"]),
            thread(rng)
        )
        .into_bytes(),
        13 => pick(
            rng,
            &[
                "vCont;x",
                "vCont;",
                "vFile:open:zz",
                "qTStatus",
                "QTinit",
                "qAttached:zz",
                "qOffsets",
                "!",
                "A",
                "",
                "bs",
                "c1000",
                "s1000",
            ],
        )
        .as_bytes()
        .to_vec(),
        _ => format!("{}", rng.next_u64()).into_bytes(),
    }
}

#[test]
fn malformed_packets_never_stop_the_server() {
    let mut server = Server::start(&[]);
    let mut raw = Raw::connect(server.port);
    raw.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+");
    let probe = |raw: &mut Raw| -> bool {
        // "primary, icount ...": thread 1.1's extra info. Replies to the
        // fuzz that were still in flight are skipped.
        raw.send(b"qThreadExtraInfo,p1.1");
        let want = hex("primary, icount ");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match raw.reply_within(Duration::from_secs(30)) {
                Some(r) if r.starts_with(&want) => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    };
    assert!(probe(&mut raw));
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..400 {
        let packet = fuzz_packet(&mut rng);
        match rng.below(8) {
            // Broken framing: bad checksum, truncated, stray bytes, NAKs, a '$' mid-packet.
            0 => {
                let mut bad = gdb_support::frame(&packet);
                let n = bad.len();
                bad[n - 1] ^= 0x5;
                raw.send_raw(&bad);
            }
            1 => raw.send_raw(&packet),
            2 => raw.send_raw(b"-+-\x00\xff}*#"),
            3 => {
                let mut cut = gdb_support::frame(&packet);
                cut.truncate(cut.len() / 2);
                raw.send_raw(&cut);
            }
            _ => raw.send(&packet),
        }
        raw.drain(Duration::from_millis(2));
        assert!(
            probe(&mut raw) && server.alive(),
            "no answer after round {round}: {:?}",
            String::from_utf8_lossy(&packet)
        );
    }
    // An over-long packet.
    let mut long = b"m".to_vec();
    long.extend(std::iter::repeat_n(b'0', 100_000));
    raw.send(&long);
    raw.drain(Duration::from_millis(50));
    assert!(probe(&mut raw), "no answer after an over-long packet");
    // Memory requests out of range: errors or short reads, never a crash.
    raw.ask(b"Hgp1.1");
    for req in [
        "mdead00000000,10",
        "m0,ffffffffffffffff",
        "mffffffffffffffff,ffffffffffffffff",
        "m7fffffffffff,2",
        "m100000,40000000",
        "mfffffffffffff000,1000",
    ] {
        let reply = raw.ask(req.as_bytes());
        assert!(
            !reply.is_empty() && reply.len() <= 16 * 1024,
            "{req}: {} bytes",
            reply.len()
        );
        assert!(probe(&mut raw), "no answer after {req}");
    }
    assert!(raw.ask(b"mdead00000000,10").starts_with('E'));
    assert!(raw.ask(b"m7fffffffffff,2").starts_with('E'));
    assert!(server.alive());
}

#[test]
fn requests_naming_what_does_not_exist_get_errors() {
    let server = Server::start(&[]);
    let mut raw = Raw::connect(server.port);
    raw.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+");
    raw.ask(b"QStartNoAckMode");
    let cases: &[(&str, &str)] = &[
        ("Hgp9.1", "E.no process 9"),
        ("Hgp1.2", "E.no thread 2 in process 1"),
        ("Hg99", "E.no process 99"),
        ("Hg-1", "E.registers and memory belong to one thread"),
        ("Tp4.1", "E.no process 4"),
        ("vCont;s:p1.99", "E.no thread 99 in process 1"),
        ("vCont;c:p7.1", "E.no process 7"),
        (
            "M100000,ffffffff:de",
            "E.malformed packet: the length does not match the data",
        ),
        (
            "M100000,2:de",
            "E.malformed packet: the length does not match the data",
        ),
        (
            "X100000,1:",
            "E.malformed packet: the length does not match the data",
        ),
        (
            "M100000,4:00112233",
            "E.vmrr: memory of primary (inferior 1) not changed",
        ),
        (
            "X100000,1:a",
            "E.vmrr: memory of primary (inferior 1) not changed",
        ),
        (
            "P0=0100000000000000",
            "E.vmrr: registers of primary (inferior 1) not changed",
        ),
        ("G00", "E.vmrr: registers of primary (inferior 1) not changed"),
        ("p999", "E.no register 999"),
        ("c1000", "E.vmrr: cannot resume at 0x1000"),
        ("qXfer:exec-file:read:9:0,100", "E.no process '9'"),
        (
            "qXfer:features:read:other.xml:0,100",
            "E.no target description called 'other.xml'",
        ),
        ("qAttached:9", "E.no process 9"),
        ("vAttach;1", "E.primary (inferior 1) is attached already"),
        ("vAttach;9", "E.no process 9"),
        ("D;9", "E.no process 9"),
        (
            "z0,100000,1",
            "E.no such breakpoint or watchpoint at 0x100000 in primary (inferior 1)",
        ),
        ("Z2,100000,0", "E.a vmrr watchpoint covers 1 to 4096 bytes"),
        ("Z2,100000,2000", "E.a vmrr watchpoint covers 1 to 4096 bytes"),
        (
            "Z2,ffffffffffffffff,8",
            "E.a vmrr watchpoint covers 1 to 4096 bytes",
        ),
        ("vRun;", "E.vmrr serves a recording: nothing can be started"),
        ("qThreadExtraInfo,p5.1", "E.no process 5"),
    ];
    for (request, want) in cases {
        let reply = raw.ask(request.as_bytes());
        assert!(reply.starts_with(want), "{request}: {reply}");
    }
    // The empty X probe is fine, and nothing above wedged the session: a
    // step still steps.
    assert_eq!(raw.ask(b"X100000,0:"), "OK");
    assert!(raw.ask(b"vCont;s:p1.1").starts_with("T05thread:p1.1;"));
    assert!(raw.monitor("when").contains("primary (inferior 1), icount 1,"));
}

#[test]
fn a_second_client_is_refused_at_once() {
    let server = Server::start(&[]);
    let mut first = Raw::connect(server.port);
    first.ask(b"qSupported:multiprocess+");
    // A raw second client: an error naming the first, then the end.
    let mut second = Raw::connect(server.port);
    let started = Instant::now();
    second.send(b"qSupported:multiprocess+");
    let reply = second.reply_within(Duration::from_secs(10)).expect("a reply");
    assert!(reply.starts_with("E.vmrr serves one gdb at a time"), "{reply}");
    assert!(second.reply_within(Duration::from_secs(5)).is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    // The real gdb prints it and gives up at once.
    let started = Instant::now();
    let out = server.gdb_bare(&["info inferiors"]);
    assert!(
        out.contains("Remote failure reply: E.vmrr serves one gdb at a time"),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    // The first is still served; once it has gone, the next one is.
    assert!(first.monitor("when").contains("primary (inferior 1)"));
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let out = server.gdb(&["monitor when"]);
    assert!(out.contains("primary (inferior 1), icount 0"), "{out}");
}

#[test]
fn ctrl_c_interrupts_a_long_search() {
    let server = Server::start(&["--at", "end"]);
    let mut raw = Raw::connect(server.port);
    raw.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+");
    raw.ask(b"QStartNoAckMode");
    let before = raw.monitor("when");
    // A read watchpoint never hit: the execution index knows only writes,
    // so reverse-continue steps through the whole cluster, decoding every
    // instruction (seconds).
    raw.ask(b"Hgp1.1");
    assert_eq!(raw.ask(b"Z3,10,4"), "OK");
    raw.ask(b"Hc0");
    let started = Instant::now();
    raw.send(b"bc");
    std::thread::sleep(Duration::from_millis(300));
    raw.send_raw(b"\x03");
    let stop = loop {
        let r = raw.reply_within(Duration::from_secs(30)).expect("a stop");
        if !r.starts_with('O') {
            break r;
        }
    };
    let took = started.elapsed();
    // SIGINT (the search was cut short), and the cursor did not move.
    assert!(stop.starts_with("T02thread:p"), "{stop}");
    assert!(took < Duration::from_secs(10), "Ctrl-C took {took:?}");
    assert_eq!(raw.monitor("when"), before);
    // Without Ctrl-C the same search runs to the start of the trace.
    raw.send(b"bc");
    let stop = loop {
        let r = raw.reply_within(Duration::from_secs(120)).expect("a stop");
        if !r.starts_with('O') {
            break r;
        }
    };
    assert!(stop.contains("replaylog:begin"), "{stop}");
}

#[test]
fn server_side_errors_reach_gdb_with_their_reason() {
    // A copy of the trace whose page store lost its pages: gdb cannot even
    // read the registers, and says why.
    let dir = common::TempDir::new("gdb-damaged");
    let copy = dir.path().join("trace");
    common::copy_dir(trace(), &copy);
    for entry in walk(&copy.join("pages")) {
        std::fs::remove_file(entry).expect("remove a page");
    }
    let server = Server::start_on(&copy, &[]);
    let out = server.gdb(&["info registers rip"]);
    assert!(
        out.contains("Could not read registers; remote failure reply 'E.vmrr: ")
            && out.contains("memory page is missing or unreadable")
            && out.contains("The trace is damaged"),
        "{out}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn replay_refuses_a_moment_that_is_not_there() {
    let t = trace().display().to_string();
    common::vmrr(["replay", &t, "--at", "no such mark"])
        .expect_code(2)
        .expect_stderr(&["--at no such mark: no bookmark called 'no such mark'"]);
    common::vmrr(["replay", &t, "--at", "backup2:99999999"])
        .expect_code(2)
        .expect_stderr(&["is past the end of VM 'backup2'"]);
    common::vmrr(["replay", &t, "--verify", "--at", "end"]).expect_code(2);
    common::vmrr(["gdb", &t, "--vm", "nobody"])
        .expect_code(2)
        .expect_stderr(&["--vm: no VM 'nobody' in this trace"]);
}

#[test]
fn monitor_fork_runs_on_with_a_change_and_says_how_to_open_it() {
    let dir = common::TempDir::new("gdb-fork");
    let new = dir.path().join("poked");
    let server = Server::start(&[]);
    let out = server.gdb(&[
        "monitor goto 130ms",
        &format!("monitor fork {} set backup2 store[3] = 99", new.display()),
        "monitor fork",
        &format!("monitor fork {} frobnicate", dir.path().join("other").display()),
    ]);
    assert!(
        out.contains("forked ") && out.contains(" at 130.000000 ms into "),
        "{out}"
    );
    assert!(
        out.contains(&format!("open it: vmrr replay {}", new.display())),
        "{out}"
    );
    assert!(out.contains("compare: vmrr diff "), "{out}");
    assert!(out.contains("error: usage: fork NEW"), "{out}");
    assert!(out.contains("error: 'frobnicate': "), "{out}");
    drop(server);
    // The fork is a trace of its own that verifies, holds the new value at
    // its start, and differs from its parent.
    common::vmrr([OsStr::new("replay"), new.as_os_str(), OsStr::new("--verify")]).expect_code(0);
    let fork = Server::start_on(&new, &[]);
    let seen = fork.gdb(&["inferior 3", "p store[3]"]);
    assert!(seen.contains("$1 = 99"), "{seen}");
    common::vmrr([OsStr::new("diff"), trace().as_os_str(), new.as_os_str()]).expect_code(1);
}

#[test]
fn monitor_calls_and_origin_answer_from_the_recording() {
    // A copy: the answers are cached in the trace.
    let dir = common::TempDir::new("gdb-analyses");
    let copy = dir.path().join("trace");
    common::copy_dir(trace(), &copy);
    let server = Server::start_on(&copy, &[]);
    let out = server.gdb(&[
        "monitor calls kv_apply backup2",
        "echo <window>\\n",
        "monitor calls kv_apply backup2 122ms..123ms",
        "echo </window>\\n",
        "monitor goto backup2:67008",
        "monitor origin store[3]",
        "monitor calls",
        "monitor calls no_such_function",
        "monitor origin",
        "monitor origin nosuchvar",
        "monitor calls kv_apply 123ms..122ms",
    ]);
    assert!(
        out.contains("void kv_apply(uint32_t seq, uint8_t key, uint32_t val): "),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("backup2 ")).collect();
    assert!(
        rows.iter().any(|r| r.contains("seq = 5, key = 3, val = 31")),
        "{out}"
    );
    assert!(
        rows.iter().any(|r| r.contains("seq = 9, key = 3, val = 32")),
        "{out}"
    );
    // Only backup2's calls were asked for.
    assert!(!out.lines().any(|l| l.starts_with("primary ")), "{out}");
    assert!(
        out.contains("origin of store[3]: 0x10622c (store+0xc) in backup2"),
        "{out}"
    );
    assert!(out.contains("frame #49 from primary"), "{out}");
    assert!(out.contains("error: usage: calls FUNCTION"), "{out}");
    // A window: backup2's applications around the heal, #9 then the late #5.
    let window = between(&out, "<window>", "</window>");
    let rows: Vec<&str> = window.lines().filter(|l| l.starts_with("backup2 ")).collect();
    assert_eq!(rows.len(), 5, "{window}");
    assert!(
        rows[0].contains("seq = 9") && rows[1].contains("seq = 5"),
        "{window}"
    );
    assert!(out.contains("error: usage: origin EXPR"), "{out}");
    assert!(
        out.contains("error: the window 123ms..122ms ends before it starts"),
        "{out}"
    );
    assert_eq!(out.matches("error: ").count(), 5, "{out}");
}
