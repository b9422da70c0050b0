//! The gdb remote target, driven by the real gdb in batch mode against
//! `vmrr gdb` on a recorded kvstore-bug trace: stepping both ways, reverse
//! continue to breakpoints and watchpoints, threads as VMs, the ends of the
//! trace, monitor commands, bookmarks; and a raw client that sends malformed
//! packets, memory requests out of range and a Ctrl-C. Needs /dev/kvm and gdb.

mod common;
mod demo;
mod gdb_support;

use std::time::{Duration, Instant};

use gdb_support::{hex, symbol, trace, unhex, Raw, Server};
use vmrr_backend::rng::SeededRng;
use vmrr_debugger::session::Session;

/// VM index of backup2 (gdb thread 3), where the kvstore bug shows.
const BACKUP2: u32 = 2;

/// The lines of gdb's `info registers` output, keyed by register name.
fn registers(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let value = words.next()?;
            value
                .starts_with("0x")
                .then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// The text between two marker lines gdb echoed (`echo` commands).
fn between<'a>(output: &'a str, from: &str, to: &str) -> &'a str {
    let start = output
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in gdb output:\n{output}"));
    let rest = &output[start + from.len()..];
    let end = rest
        .find(to)
        .unwrap_or_else(|| panic!("no {to:?} after {from:?} in gdb output:\n{output}"));
    &rest[..end]
}

#[test]
fn reverse_stepi_returns_to_the_same_registers() {
    let server = Server::start(&["--vm", "backup2"]);
    let out = server.gdb(&[
        "monitor goto backup2:30000",
        "maintenance flush register-cache",
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
    assert!(out.contains("backup2 (thread 3), icount 30000"), "{out}");
}

#[test]
fn reverse_continue_stops_at_the_previous_breakpoint_hit() {
    let server = Server::start(&["--vm", "backup2"]);
    let apply = symbol("kv_apply");
    let out = server.gdb(&[
        "set scheduler-locking on",
        "monitor goto end",
        "maintenance flush register-cache",
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
    assert!(out.contains("Breakpoint 1, kv_apply"), "{out}");
    for part in [first, second] {
        assert!(
            part.contains(&format!("= {apply:#x}")),
            "not at kv_apply {apply:#x}: {part}\n{out}"
        );
        assert!(part.contains("backup2 (thread 3)"), "{part}\n{out}");
    }
    assert!(icount(second) < icount(first), "{out}");
    // reverse-finish: back to the call in the caller.
    let caller = between(&out, "<caller>", "</caller>");
    assert!(
        caller.contains("call") && caller.contains("kv_apply"),
        "{caller}\n{out}"
    );
    assert!(out.contains("in on_write"), "{out}");
}

#[test]
fn watch_and_reverse_continue_find_the_stale_write() {
    let server = Server::start(&[]);
    // The natural session: select backup2, go to its end, watch, go back.
    let out = server.gdb(&[
        "thread 3",
        "monitor goto end",
        "maintenance flush register-cache",
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
fn threads_are_vms_with_their_own_registers_and_memory() {
    let server = Server::start(&[]);
    let out = server.gdb(&[
        "monitor goto backup2:30000",
        "maintenance flush register-cache",
        "info threads",
        "thread 1",
        "echo <t1>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t1>\\n",
        "thread 2",
        "echo <t2>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t2>\\n",
        "thread 3",
        "echo <t3>\\n",
        "info registers rip rsp rbp rax rbx rcx rdx",
        "p me",
        "echo </t3>\\n",
        "x/4x 0xdead00000000",
        "x/4x 0xffffffffffffff00",
        "p *(int *)0x7fffffffffff",
        "p me",
    ]);
    for (tid, name) in [(1, "primary"), (2, "backup1"), (3, "backup2")] {
        assert!(out.contains(&format!("Thread 1.{tid} ({name}, icount")), "{out}");
    }
    // Each thread shows its own VM, as the session sees it at the same cursor.
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
                "thread {} {name} should be {value:#x}: {part}\n{out}",
                vm + 1
            );
        }
        // `me` is the node id: each VM's own memory.
        assert!(
            part.contains(&format!("= {vm}\n")),
            "thread {} reads me = {vm}: {part}",
            vm + 1
        );
    }
    // Unmapped and non-canonical addresses are errors, and the session goes on.
    assert!(
        out.contains("Cannot access memory at address 0xdead00000000"),
        "{out}"
    );
    assert!(
        out.contains("Cannot access memory at address 0xffffffffffffff00"),
        "{out}"
    );
    assert!(
        out.contains("Cannot access memory at address 0x7fffffffffff"),
        "{out}"
    );
    // ... and the run ended normally (gdb detached at the end).
    assert!(out.contains("[Inferior 1 (process 1) detached]"), "{out}");
}

#[test]
fn reverse_stepi_steps_the_thread_selected_in_gdb() {
    // No scheduler locking: gdb resumes "any thread" and never says which
    // one is selected; vmrr follows `thread N` and the stops.
    let server = Server::start(&["--vm", "backup2"]);
    let out = server.gdb(&[
        "monitor goto backup2:30000",
        "maintenance flush register-cache",
        "info threads",
        "thread 2",
        "echo <a>\\n",
        "monitor when",
        "reverse-stepi",
        "monitor when",
        "echo </a>\\n",
        "info threads",
        "thread 1",
        "echo <b>\\n",
        "monitor when",
        "reverse-stepi",
        "monitor when",
        "echo </b>\\n",
    ]);
    let icounts = |part: &str, name: &str| -> Vec<u64> {
        part.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split("icount ").nth(1)?.split(',').next()?.parse().ok())
            .collect()
    };
    let a = between(&out, "<a>", "</a>");
    let b = between(&out, "<b>", "</b>");
    let (in_a, in_b) = (icounts(a, "backup1 (thread 2)"), icounts(b, "primary (thread 1)"));
    assert!(
        in_a.len() == 2 && in_a[1] + 1 == in_a[0],
        "thread 2 stepped back once: {a}\n{out}"
    );
    assert!(
        in_b.len() == 2 && in_b[1] + 1 == in_b[0],
        "thread 1 stepped back once: {b}\n{out}"
    );
    assert!(!out.contains("received signal"), "{out}");
}

#[test]
fn the_ends_of_the_trace_say_no_more_history() {
    let server = Server::start(&["--vm", "backup2"]);
    let out = server.gdb(&[
        "monitor goto backup2:3",
        "maintenance flush register-cache",
        "reverse-stepi 3",
        "echo <start>\\n",
        "reverse-stepi",
        "monitor when",
        "reverse-continue",
        "echo </start>\\n",
        "monitor goto end",
        "maintenance flush register-cache",
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
    assert!(start.contains("backup2 (thread 3), icount 0, "), "{out}");
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
fn memory_writes_change_only_the_materialised_copy() {
    let server = Server::start(&["--vm", "backup2"]);
    let out = server.gdb(&[
        "monitor goto backup2:60000",
        "maintenance flush register-cache",
        "p store[3]",
        "set var store[3] = 77",
        "p store[3]",
        "stepi",
        "reverse-stepi",
        "p store[3]",
    ]);
    assert!(
        out.contains("$1 = 31") && out.contains("$2 = 77") && out.contains("$3 = 31"),
        "{out}"
    );
}

#[test]
fn monitor_commands() {
    let server = Server::start(&[]);
    let mark = format!("gdb-mark-{}", std::process::id());
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
        &format!("monitor bookmark goto {mark}"),
        "monitor goto 122.1ms",
        "monitor events 2 frame_recv backup2",
        "monitor follow",
        "monitor goto nonsense",
        "monitor frobnicate",
    ]);
    assert!(out.contains("vmrr monitor commands"), "{out}");
    assert!(out.contains("* thread 1  primary"), "{out}");
    assert!(out.contains("focus: backup1 (in gdb: thread 2)"), "{out}");
    assert!(out.contains("backup1 (thread 2), icount 0,"), "{out}");
    assert!(out.contains("backup1 (thread 2), icount 1234,"), "{out}");
    // 12.5 ms of virtual time: backup1 stands at its first boundary at or after it.
    assert!(out.contains("cluster cursor at 12.500000 ms"), "{out}");
    assert!(out.contains("backup2 (thread 3), icount 36000,"), "{out}");
    assert!(out.contains("marker"), "{out}");
    assert!(
        out.contains(&format!("bookmark '{mark}': backup2 (thread 3), icount 36000")),
        "{out}"
    );
    // `bookmark list`: name, position, note.
    assert!(
        out.lines()
            .any(|l| l.starts_with(&mark) && l.contains("icount 36000") && l.ends_with("the late write")),
        "{out}"
    );
    assert!(out.contains("frame_recv"), "{out}");
    assert!(out.contains("error: no bookmark called 'nonsense'"), "{out}");
    assert!(out.contains("error: unknown command 'frobnicate'"), "{out}");
    // No frame at that cursor: follow says so.
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
    // The received frame's send is on the primary (thread 1).
    assert!(out2.contains("primary (thread 1)"), "{out2}");

    // The bookmark is in the trace's index for everyone.
    let sql = common::vmrr([
        "sql",
        &trace().display().to_string(),
        "SELECT name FROM bookmarks",
    ]);
    sql.expect_code(0).expect_stdout(&[&mark]);
}

#[test]
fn startup_prints_the_attach_command() {
    let server = Server::start(&["--vm", "backup2"]);
    let image = trace().join("images/backup2.elf");
    assert!(
        server.banner.contains(&format!(
            "gdb {} -ex 'target remote :{}'",
            image.display(),
            server.port
        )),
        "{}",
        server.banner
    );
    assert!(server.banner.contains("thread 3 = backup2"), "{}", server.banner);
    // gdb starts on the focus VM, and numbers threads like vmrr.
    let out = server.gdb(&["info threads"]);
    assert!(out.contains("* 3    Thread 1.3 (backup2"), "{out}");

    // The script in the attach command: gdb sees a `monitor goto` at once,
    // and steps name their thread (scheduler-locking step).
    let script = trace().join("vmrr.gdb");
    assert!(
        server.banner.contains(&format!("-x {}", script.display())),
        "{}",
        server.banner
    );
    let out = server.gdb(&[
        &format!("source {}", script.display()),
        "monitor goto backup2:30000",
        "p/x $pc",
        "thread 2",
        "stepi",
        "reverse-stepi",
        "reverse-stepi",
        "monitor when",
    ]);
    let mut s = Session::open(trace()).expect("open");
    s.goto(BACKUP2, 30_000).expect("goto");
    let pc = s.machine(BACKUP2).expect("machine").regs().rip;
    assert!(
        out.contains(&format!("$1 = {pc:#x}")),
        "pc {pc:#x} after monitor goto:\n{out}"
    );
    let backup1 = s.position(1).expect("position").icount;
    assert!(
        out.contains(&format!("backup1 (thread 2), icount {},", backup1 - 1)),
        "one step forward and two back from {backup1}:\n{out}"
    );
}

/// One of `items`, chosen by the fuzz's generator.
fn pick<'a>(rng: &mut SeededRng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// Packets a client might send by mistake or malice (never a resume: that
/// would run the target, which is tested elsewhere).
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
    match rng.below(14) {
        0 => {
            let n = rng.below(64);
            (0..n).map(|_| rng.below(256) as u8).collect()
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
        5 => format!(
            "H{}{}",
            pick(rng, &["g", "c", "x", ""]),
            pick(rng, &["0", "-1", "p1.2", "p1.-1", "99", "p0.0", "zz", ""])
        )
        .into_bytes(),
        6 => pick(
            rng,
            &[
                "g",
                "G00",
                "p10",
                "P10=00",
                "?",
                "qC",
                "qfThreadInfo",
                "T0",
                "T99",
                "Tp1.2",
                "vCont?",
                "vMustReplyEmpty",
            ],
        )
        .as_bytes()
        .to_vec(),
        7 => format!("qXfer:features:read:target.xml:{},{}", num(rng), num(rng)).into_bytes(),
        8 => format!(
            "qXfer:{}:read::{},{}",
            pick(rng, &["memory-map", "threads", "auxv", "x"]),
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
                    &hex("bookmark goto nowhere")
                ]
            )
        )
        .into_bytes(),
        10 => format!("qThreadExtraInfo,{}", num(rng)).into_bytes(),
        11 => format!(
            "qSupported:{}",
            pick(rng, &["multiprocess+", "xmlRegisters=i386", "=", ";;;"])
        )
        .into_bytes(),
        12 => pick(
            rng,
            &[
                "vCont;x",
                "vCont;s",
                "vCont;r0,1:1",
                "vFile:open:zz",
                "qTStatus",
                "QTinit",
                "qAttached:zz",
                "qOffsets",
                "!",
                "A",
                "",
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
        // "primary, icount ...": thread 1's extra info (the fuzz may write
        // memory and move the cursor, not rename VMs). Replies to the fuzz
        // that were still in flight are skipped.
        raw.send(b"qThreadExtraInfo,1");
        let want = hex("primary, icount ");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match raw.reply_within(Duration::from_secs(20)) {
                Some(r) if r.starts_with(&want) => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    };
    assert!(probe(&mut raw));
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
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
        // Whatever came back, the next valid packet is answered.
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
    for req in [
        "mdead00000000,10",
        "m0,ffffffffffffffff",
        "mffffffffffffffff,ffffffffffffffff",
        "m7fffffffffff,2",
        "m100000,40000000",
        "mfffffffffffff000,1000",
        "Mdead00000000,4:00000000",
        "M100000,4:00",
    ] {
        // An error, or as many bytes as fit one reply (run-length encoded).
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
fn ctrl_c_interrupts_a_long_search() {
    let server = Server::start(&[]);
    let mut raw = Raw::connect(server.port);
    raw.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+");
    raw.ask(b"QStartNoAckMode");
    let monitor = |raw: &mut Raw, cmd: &str| -> String {
        raw.send(format!("qRcmd,{}", hex(cmd)).as_bytes());
        let mut text = String::new();
        loop {
            let reply = raw.reply_within(Duration::from_secs(30)).expect("monitor reply");
            match reply.strip_prefix('O') {
                Some(h) if reply != "OK" => text += &unhex(h),
                _ => return text,
            }
        }
    };
    monitor(&mut raw, "goto end");
    let before = monitor(&mut raw, "when");
    // A watchpoint never hit: reverse-continue steps through the whole
    // cluster, checking memory after every instruction (seconds).
    assert_eq!(raw.ask(b"Z2,10,4"), "OK");
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
    // SIGINT (the search was cut short: it would end with replaylog:begin),
    // and the cursor did not move.
    assert!(stop.starts_with("T02"), "{stop}");
    assert!(took < Duration::from_secs(10), "Ctrl-C took {took:?}");
    assert_eq!(monitor(&mut raw, "when"), before);
    // Without Ctrl-C the same search runs to the start of the trace.
    raw.send(b"bc");
    let stop = loop {
        let r = raw.reply_within(Duration::from_secs(60)).expect("a stop");
        if !r.starts_with('O') {
            break r;
        }
    };
    assert!(stop.contains("replaylog:begin"), "{stop}");
}
