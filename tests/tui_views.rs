//! Snapshot tests of the TUI's main views: the real App over a recorded
//! kvstore-bug trace, drawn into ratatui's TestBackend. The snapshots hold
//! no wall-clock time and no temporary path (the trace folder's name only).
//! Needs /dev/kvm (to record and replay the trace).

mod demo;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vmrr_debugger::session::Session;
use vmrr_tui::ratatui::backend::TestBackend;
use vmrr_tui::ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vmrr_tui::ratatui::Terminal;
use vmrr_tui::{render, App, Options};

/// The kvstore-bug trace, recorded once per test binary.
fn trace() -> &'static Path {
    demo::kvstore_bug_trace()
}

/// A copy of the trace for a test that writes bookmarks (so the others do not see them).
fn private_trace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-tui-views-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let copy = dir.join("kv-trace");
    let ok = Command::new("cp")
        .arg("-r")
        .arg(trace())
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(ok.success());
    copy
}

fn app_on(dir: &Path) -> App {
    let session = Session::open(dir).expect("open trace");
    let mut app = App::new(Arc::new(Mutex::new(session)), Options::default()).expect("app");
    assert!(app.wait_idle(Duration::from_secs(60)));
    app
}

fn press(app: &mut App, code: KeyCode) {
    let mods = match code {
        KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
        _ => KeyModifiers::NONE,
    };
    app.on_key(KeyEvent::new(code, mods));
    assert!(app.wait_idle(Duration::from_secs(60)), "a job did not finish");
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| render(&app.state, f)).expect("draw");
    t
}

/// From the start to the symptom: `/stale` Enter.
fn to_stale_read(app: &mut App) {
    typed(app, "/stale");
    press(app, KeyCode::Enter);
    press(app, KeyCode::Esc);
}

#[test]
fn start_of_the_trace() {
    let app = app_on(trace());
    insta::assert_snapshot!("start_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn stale_read_at_80x24() {
    let mut app = app_on(trace());
    to_stale_read(&mut app);
    let t = draw(&app, 80, 24);
    insta::assert_snapshot!("stale_read_80x24", t.backend());
}

#[test]
fn follow_the_reply_back_to_backup2() {
    let mut app = app_on(trace());
    to_stale_read(&mut app);
    press(&mut app, KeyCode::Char('k')); // frames
    press(&mut app, KeyCode::Char('p')); // the VALUE reply received by primary
    press(&mut app, KeyCode::Char('f')); // back to its send in backup2
    assert_eq!(app.state.snapshot.focus, 2, "focus moved to backup2");
    insta::assert_snapshot!("followed_to_backup2_120x40", draw(&app, 120, 40).backend());
}

#[test]
fn step_back_highlights_changed_registers_and_wide_layout() {
    let mut app = app_on(trace());
    press(&mut app, KeyCode::Char('g'));
    typed(&mut app, "backup2:38745");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Left);
    assert_eq!(app.state.snapshot.icount, 38743);
    assert!(app.state.prev_regs.is_some());
    // Wide: the memory view sits beside the disassembly.
    insta::assert_snapshot!("step_back_160x40", draw(&app, 160, 40).backend());
}

#[test]
fn help_overlay_and_tiny_terminal() {
    let mut app = app_on(trace());
    press(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help_80x24", draw(&app, 80, 24).backend());
    insta::assert_snapshot!("too_small_30x10", draw(&app, 30, 10).backend());
}

#[test]
fn bookmarks_breakpoints_and_zoom() {
    let dir = private_trace("bookmarks");
    let mut app = app_on(&dir);
    to_stale_read(&mut app);
    press(&mut app, KeyCode::Char('m'));
    typed(&mut app, "stale read");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('b'));
    typed(&mut app, "kv_apply");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.state.breakpoints.len(), 1);
    press(&mut app, KeyCode::Char('B'));
    for _ in 0..5 {
        press(&mut app, KeyCode::Char('+'));
    }
    assert_eq!(app.state.bookmarks.rows.len(), 1);
    insta::assert_snapshot!("bookmarks_zoomed_120x40", draw(&app, 120, 40).backend());
}

/// The selected row of the events list, as drawn (detail text).
fn selected_detail(app: &App) -> String {
    let ev = &app.state.events;
    ev.selected
        .and_then(|s| ev.visible.get(s))
        .and_then(|&i| ev.lines.get(i))
        .map(|l| l.detail.clone())
        .unwrap_or_default()
}

fn message(app: &App) -> String {
    app.state
        .message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

/// Issue 9: `L` from backup2:24456 runs backup2's next instruction (a halted
/// VM is ordered by when it wakes, not "now"), and `H` undoes it.
#[test]
fn cluster_step_from_backup2_and_back() {
    let mut app = app_on(trace());
    press(&mut app, KeyCode::Char('g'));
    typed(&mut app, "backup2:24456");
    press(&mut app, KeyCode::Enter);
    assert_eq!((app.state.snapshot.focus, app.state.snapshot.icount), (2, 24456));
    let before = app.state.snapshot.cursor;
    press(&mut app, KeyCode::Char('L'));
    assert_eq!(
        (app.state.snapshot.focus, app.state.snapshot.icount),
        (2, 24457),
        "{}",
        message(&app)
    );
    press(&mut app, KeyCode::Char('H'));
    assert_eq!((app.state.snapshot.focus, app.state.snapshot.icount), (2, 24456));
    assert_eq!(app.state.snapshot.cursor, before, "H undoes L");
}

/// Goes to the send of frame `id` through the search, as a person would.
fn to_send_of(app: &mut App, id: u64) {
    typed(app, &format!("/frame #{id} →"));
    press(app, KeyCode::Enter);
    press(app, KeyCode::Esc);
}

/// Issue 9: a broadcast frame names every receiver, `f` asks which one,
/// and each choice lands on that receiver's receipt.
#[test]
fn broadcast_frame_asks_which_receiver() {
    let mut app = app_on(trace());
    for (choice, vm) in [('1', 1usize), ('2', 2usize)] {
        to_send_of(&mut app, 0);
        assert_eq!(selected_detail(&app), "frame #0 → backup1, backup2");
        press(&mut app, KeyCode::Char('f'));
        let asked = message(&app);
        assert!(asked.contains("1 backup1, 2 backup2"), "{asked}");
        insta::assert_snapshot!(
            format!("broadcast_choice_{choice}_80x24"),
            draw(&app, 80, 24).backend()
        );
        press(&mut app, KeyCode::Char(choice));
        assert_eq!(app.state.snapshot.focus, vm, "{}", message(&app));
        let on = app
            .state
            .events
            .selected_event()
            .cloned()
            .expect("a selected event");
        assert_eq!(
            (on.vm as usize, on.value),
            (vm, Some(0)),
            "the receipt is selected"
        );
        assert_eq!(Some(on.id), app.state.snapshot.cursor_event);
    }
}

/// Issue 9: after following a frame the list highlights the event the
/// status line names (it highlighted the one before it).
#[test]
fn followed_frame_is_the_selected_event() {
    let mut app = app_on(trace());
    to_send_of(&mut app, 49);
    press(&mut app, KeyCode::Char('f'));
    let said = message(&app);
    assert!(said.starts_with("frame #49: its receipt"), "{said}");
    let on = app
        .state
        .events
        .selected_event()
        .cloned()
        .expect("a selected event");
    assert_eq!(on.value, Some(49), "{said}");
    assert_eq!(Some(on.id), app.state.snapshot.cursor_event);
    // And back to the send: the send is selected.
    press(&mut app, KeyCode::Char('f'));
    let on = app
        .state
        .events
        .selected_event()
        .cloned()
        .expect("a selected event");
    assert_eq!((on.value, on.kind), (Some(49), vmrr_index::EventKind::FrameSent));
}

/// The line of the stale write in kv_apply (`store[key] = val;`).
fn stale_write_line() -> usize {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/kvstore/kvstore.c"))
        .expect("kvstore.c");
    src.lines()
        .position(|l| l.trim() == "store[key] = val;")
        .expect("the store line")
        + 1
}

/// From backup2's `apply = 5` back to the write of #5: `b kvstore.c:N`, `C`.
fn to_stale_write(app: &mut App) {
    press(app, KeyCode::Char('g'));
    typed(app, "backup2:38745");
    press(app, KeyCode::Enter);
    press(app, KeyCode::Char('b'));
    typed(app, &format!("kvstore.c:{}", stale_write_line()));
    press(app, KeyCode::Enter);
    press(app, KeyCode::Char('C'));
}

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

/// Issue 14: the source pane at the stale write, its line marked, and the
/// locals with val = 31; at every size.
#[test]
fn source_and_locals_at_the_stale_write() {
    let mut app = app_on(trace());
    to_stale_write(&mut app);
    let msg = message(&app);
    assert!(msg.starts_with("breakpoint at kvstore.c:"), "{msg}");
    let src = app.state.snapshot.source.clone().expect("a source view");
    assert_eq!(src.current as usize, stale_write_line());
    let top = app.state.snapshot.stack.first().cloned().expect("a stack");
    let val = top.vars.iter().find(|v| v.name == "val").expect("val");
    assert_eq!(val.value, "31");
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("source_{w}x{h}"), draw(&app, w, h).backend());
    }
    // Mixed, then disassembly (with the registers beside it when narrow).
    press(&mut app, KeyCode::Char('s'));
    insta::assert_snapshot!("mixed_120x40", draw(&app, 120, 40).backend());
    press(&mut app, KeyCode::Char('s'));
    insta::assert_snapshot!("disassembly_80x24", draw(&app, 80, 24).backend());
}

/// Issue 10: `o` steps over the source line (the call of `marker` on the
/// next line runs through), `u` finishes `kv_apply` back in its caller.
#[test]
fn step_over_and_finish_keys() {
    let mut app = app_on(trace());
    to_stale_write(&mut app);
    let line = |app: &App| app.state.snapshot.source.as_ref().map(|s| s.current as usize);
    let function = |app: &App| app.state.snapshot.stack.first().map(|f| f.name.clone());
    assert_eq!(line(&app), Some(stale_write_line()));
    // -O2 interleaves the prologue's line with the store's: `o` walks the
    // rows line by line until the marker's call.
    let icount = |app: &App| app.state.snapshot.icount;
    let mut presses = 0;
    while line(&app) != Some(stale_write_line() + 1) {
        let before = line(&app);
        press(&mut app, KeyCode::Char('o'));
        assert_ne!(line(&app), before, "o stayed on the line: {}", message(&app));
        assert_eq!(function(&app).as_deref(), Some("kv_apply"), "{}", message(&app));
        presses += 1;
        assert!(presses < 6, "never reached the marker's line: {:?}", line(&app));
    }
    // Over the call of marker: it runs through (many instructions), and the
    // VM is still in kv_apply, on a later line.
    let at = icount(&app);
    press(&mut app, KeyCode::Char('o'));
    assert_eq!(function(&app).as_deref(), Some("kv_apply"), "{}", message(&app));
    assert!(
        line(&app).is_some_and(|l| l > stale_write_line() + 1),
        "{:?}",
        line(&app)
    );
    assert!(
        icount(&app) > at + 20,
        "marker did not run through: {at} -> {}",
        icount(&app)
    );
    press(&mut app, KeyCode::Char('u'));
    let caller = function(&app);
    assert!(
        caller.as_deref().is_some_and(|f| f != "kv_apply" && f != "?"),
        "{caller:?}: {}",
        message(&app)
    );
}

/// Issue 14: the payload of the resent WRITE #5 (frame #49), decoded.
#[test]
fn payload_of_the_resent_write() {
    let mut app = app_on(trace());
    to_send_of(&mut app, 49);
    press(&mut app, KeyCode::Char('t'));
    let p = app.state.payload.clone().expect("a payload");
    assert_eq!(p.frame, 49);
    assert!(!p.bytes.is_empty(), "{p:?}");
    let hint = vmrr_tui::widgets::status::hint(&app.state);
    assert!(hint.starts_with("f: follow frame #49 to backup2"), "{hint}");
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("payload_{w}x{h}"), draw(&app, w, h).backend());
    }
}

/// Issue 14: the partition as a band on backup2's lane, the legend naming
/// it, interrupts shown on request.
#[test]
fn legend_and_partition_band() {
    let mut app = app_on(trace());
    press(&mut app, KeyCode::Char('g'));
    typed(&mut app, "100ms");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('+'));
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("legend_{w}x{h}"), draw(&app, w, h).backend());
    }
    press(&mut app, KeyCode::Char('i'));
    assert!(app.state.timeline.show_interrupts);
    insta::assert_snapshot!("legend_irq_120x40", draw(&app, 120, 40).backend());
}

/// The calls view's row of the call entered at `(vm, icount)`, if listed.
fn call_row(app: &App, vm: usize, icount: u64) -> Option<usize> {
    let calls = app.state.calls.as_ref()?;
    calls
        .rows
        .iter()
        .position(|c| c.vm == vm && c.entry.icount == icount)
}

/// Issue 13: `a` `kv_apply` lists every call in every VM, backup2's late
/// write #5 among them; it is marked on the timeline, and Enter goes to its
/// entry.
#[test]
fn calls_of_kv_apply_and_enter_goes_to_one() {
    // The answer is cached in the trace: a copy of its own.
    let dir = private_trace("calls");
    let mut app = app_on(&dir);
    press(&mut app, KeyCode::Char('a'));
    typed(&mut app, "kv_apply");
    press(&mut app, KeyCode::Enter);
    let msg = message(&app);
    assert!(msg.starts_with("kv_apply: 20 calls in every VM"), "{msg}");
    assert_eq!(app.state.list_pane, vmrr_tui::state::ListPane::Calls);
    let calls = app.state.calls.clone().expect("calls");
    assert_eq!(
        calls.signature,
        "void kv_apply(uint32_t seq, uint8_t key, uint32_t val)"
    );
    // guests/README.md: backup2 applies #9 (val 32), then the late #5 (val 31).
    let late = call_row(&app, 2, 38701).expect("backup2's late kv_apply");
    assert_eq!(calls.rows[late].args, "seq = 5, key = 3, val = 31");
    assert_eq!(calls.rows[late - 1].args, "seq = 9, key = 3, val = 32");
    assert_eq!(calls.rows[late].value, "void");
    let marks = app.state.timeline.marks.iter();
    let call_marks = marks
        .filter(|m| m.kind == vmrr_tui::state::MarkKind::Call)
        .count();
    assert_eq!(call_marks, 20, "every call is marked on the timeline");
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("calls_{w}x{h}"), draw(&app, w, h).backend());
    }
    for _ in 0..late {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Enter);
    let snap = &app.state.snapshot;
    assert_eq!((snap.focus, snap.icount), (2, 38701), "{}", message(&app));
    let top = snap.stack.first().map(|s| s.name.clone()).unwrap_or_default();
    assert_eq!(top, "kv_apply", "the cursor stands at the call's entry");
    // Esc goes back to the events; `a` offers the same function again.
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.state.list_pane, vmrr_tui::state::ListPane::Events);
    press(&mut app, KeyCode::Char('a'));
    assert_eq!(
        app.state.prompt.as_ref().map(|p| p.input.as_str()),
        Some("kv_apply")
    );
    // A VM and a window: backup2 around the heal, #9 then the late #5..#8.
    typed(&mut app, " backup2 122ms..123ms");
    press(&mut app, KeyCode::Enter);
    let msg = message(&app);
    assert!(
        msg.starts_with("kv_apply: 5 calls in backup2 122ms..123ms"),
        "{msg}"
    );
    let calls = app.state.calls.clone().expect("calls");
    assert!(calls.rows.iter().all(|r| r.vm == 2), "{:?}", calls.rows);
    assert_eq!(calls.rows[0].args, "seq = 9, key = 3, val = 32");
    assert_eq!(calls.rows[1].args, "seq = 5, key = 3, val = 31");
}

/// Issue 13: at backup2's end, `M` `store` then `Y` offers the memory
/// view's target; `[3]` makes it store[3], and the chain leads back to
/// the primary's write log through frame #49; Enter goes to a link.
#[test]
fn origin_of_store_3_at_backup2s_end() {
    let dir = private_trace("origin");
    let mut app = app_on(&dir);
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Char('g'));
    typed(&mut app, "end");
    press(&mut app, KeyCode::Enter);
    assert_eq!((app.state.snapshot.focus, app.state.snapshot.icount), (2, 67008));
    press(&mut app, KeyCode::Char('M'));
    typed(&mut app, "store");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('Y'));
    assert_eq!(app.state.prompt.as_ref().map(|p| p.input.as_str()), Some("store"));
    typed(&mut app, "[3]");
    press(&mut app, KeyCode::Enter);
    let msg = message(&app);
    assert!(msg.starts_with("origin of store[3]: 8 links"), "{msg}");
    let origin = app.state.origin.clone().expect("an origin chain");
    let places: Vec<&str> = origin.links.iter().map(|l| l.place.as_str()).collect();
    assert_eq!(
        places,
        [
            "backup2:38711",
            "backup2:38553",
            "backup2:38308",
            "primary:65460",
            "primary:65438",
            "primary:65363",
            "primary:65312",
            "primary:41488"
        ]
    );
    assert_eq!(origin.links[0].at, "kv_apply+0x1a (kvstore.c:369)");
    assert!(
        origin.links[2].description.contains("frame #49 from primary"),
        "{:?}",
        origin.links[2]
    );
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(format!("origin_{w}x{h}"), draw(&app, w, h).backend());
    }
    // The primary's resend of #5.
    for _ in 0..3 {
        press(&mut app, KeyCode::Down);
    }
    press(&mut app, KeyCode::Enter);
    let snap = &app.state.snapshot;
    assert_eq!((snap.focus, snap.icount), (0, 65460), "{}", message(&app));
}

/// Issue 16: `F` on the selected frame offers `drop frame 49` and a folder
/// beside the trace; the fork runs and the status line says where it is
/// and how to open and compare it.
#[test]
fn fork_at_the_cursor_drops_the_selected_frame() {
    let dir = private_trace("fork");
    let mut app = app_on(&dir);
    to_send_of(&mut app, 49);
    press(&mut app, KeyCode::Char('F'));
    assert_eq!(
        app.state.prompt.as_ref().map(|p| p.input.as_str()),
        Some("drop frame 49")
    );
    insta::assert_snapshot!("fork_prompt_80x24", draw(&app, 80, 24).backend());
    press(&mut app, KeyCode::Enter);
    let out = format!("{}-fork-1", dir.display());
    assert_eq!(
        app.state.prompt.as_ref().map(|p| p.input.as_str()),
        Some(out.as_str())
    );
    press(&mut app, KeyCode::Enter);
    let msg = message(&app);
    assert!(
        msg.starts_with(&format!(
            "forked at 122.165321 ms into {out}: vmrr tui {out} --beside · vmrr diff {} {out}",
            dir.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("drop frame 49: frame 49 to backup2"), "{msg}");
    // The fork is a trace of its own that differs from its parent.
    let o = Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .arg("diff")
        .arg(&dir)
        .arg(&out)
        .output()
        .expect("vmrr diff");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("49"),
        "{said}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A bad change is refused before anything runs.
    press(&mut app, KeyCode::Char('F'));
    while app.state.prompt.as_ref().is_some_and(|p| !p.input.is_empty()) {
        press(&mut app, KeyCode::Backspace);
    }
    typed(&mut app, "drop the bass");
    press(&mut app, KeyCode::Enter);
    assert!(app.state.prompt.is_none());
    assert!(
        app.state.message.as_ref().is_some_and(|m| m.error),
        "{}",
        message(&app)
    );
}

/// Issue 16: a fork opened beside its parent marks, on each lane, where
/// that VM first differs (`≠`, at `diff`'s own answer), and `D` goes there.
#[test]
fn fork_beside_its_parent_marks_where_lanes_differ() {
    let dir = private_trace("beside");
    let mut app = app_on(&dir);
    to_send_of(&mut app, 49);
    press(&mut app, KeyCode::Char('F'));
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Enter);
    let out = PathBuf::from(format!("{}-fork-1", dir.display()));
    let report = vmrr_debugger::fork::diff::diff(&dir, &out).expect("diff");
    let session = Session::open(&out).expect("open fork");
    let options = Options {
        beside: Some(dir.clone()),
        ..Options::default()
    };
    let mut app = App::new(Arc::new(Mutex::new(session)), options).expect("app");
    assert!(app.wait_idle(Duration::from_secs(120)));
    assert!(app.state.compare.is_some(), "{}", message(&app));
    let names: Vec<String> = app.state.vms.iter().map(|v| v.name.clone()).collect();
    let differing: Vec<_> = report.vms.iter().filter(|v| v.first.is_some()).collect();
    assert!(!differing.is_empty(), "{}", report.summary());
    for v in differing {
        let first = v.first.as_ref().expect("a difference");
        let vm = names.iter().position(|n| *n == v.vm).expect("the VM");
        // Focus it, then D: the Session goes to the diff's position.
        press(&mut app, KeyCode::Char(char::from(b'1' + vm as u8)));
        press(&mut app, KeyCode::Char('D'));
        // A fork keeps its parent's icounts: the Session lands on the diff's
        // VM:ICOUNT (at that icount's time in the fork, which a lost frame
        // can make later than the parent's).
        let snap = &app.state.snapshot;
        assert_eq!((snap.focus, snap.icount), (vm, first.icount), "{}", message(&app));
        assert!(snap.vtime >= first.vtime_ns, "{}", message(&app));
        let said = message(&app);
        assert!(
            said.contains(&first.what) && said.contains(&format!("icount {}", first.icount)),
            "{said}"
        );
        // `≠` on that VM's lane, in the column of the diff's time: the lane's
        // plot starts after the border and the names (7 + 2 columns).
        let t = draw(&app, 120, 40);
        let buf = t.backend().buffer();
        let row = |y: u16| {
            (0..120)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<Vec<_>>()
        };
        let lane = (0..40)
            .find(|&y| row(y).concat().starts_with(&format!("│{}", v.vm)))
            .expect("the lane");
        let tl = &app.state.timeline;
        let col = (first.vtime_ns - tl.start) as u128 * (118 - 9) / tl.span as u128;
        let mark = row(lane).iter().position(|c| c == "≠");
        assert_eq!(mark, Some(1 + 9 + col as usize), "{}", report.summary());
        // No other lane has one, but those of the other VMs that differ too.
        let marked = (0..40)
            .map(|y| row(y).concat())
            .filter(|r| names.iter().any(|n| r.starts_with(&format!("│{n}"))) && r.contains('≠'))
            .count();
        assert_eq!(marked, report.vms.iter().filter(|v| v.first.is_some()).count());
        if vm == 2 {
            insta::assert_snapshot!("beside_divergence_120x40", t.backend());
        }
    }
    // Without --beside, D says how to get one.
    let mut plain = app_on(&out);
    press(&mut plain, KeyCode::Char('D'));
    assert!(message(&plain).contains("--beside"), "{}", message(&plain));
}

/// Issue 16: on the partition's fault event, `F` offers `remove fault 1`.
#[test]
fn fork_on_a_fault_suggests_removing_it() {
    let mut app = app_on(trace());
    typed(&mut app, "/partition");
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Esc);
    let on = app.state.events.selected_event().cloned().expect("an event");
    assert_eq!(on.kind, vmrr_index::EventKind::Fault, "{}", selected_detail(&app));
    press(&mut app, KeyCode::Char('F'));
    assert_eq!(
        app.state.prompt.as_ref().map(|p| p.input.as_str()),
        Some("remove fault 1")
    );
}

/// Esc cancels an analysis under way: the calls of a trace that has none
/// cached yet, cancelled as soon as they start.
#[test]
fn esc_cancels_the_calls_under_way() {
    let dir = private_trace("cancel");
    let mut app = app_on(&dir);
    press(&mut app, KeyCode::Char('a'));
    typed(&mut app, "kv_apply");
    // Enter and Esc without waiting in between, as a hasty person types.
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert!(app.is_busy(), "the calls run on the worker");
    assert_eq!(app.state.busy.as_ref().map(|b| b.label.as_str()), Some("calls"));
    // Esc once the pass has made progress (an Esc before the worker starts
    // the job would be forgotten: the session clears its cancel flag as an
    // analysis starts).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while app
        .state
        .busy
        .as_ref()
        .is_some_and(|b| b.progress.is_none_or(|p| p <= 0.0))
    {
        assert!(std::time::Instant::now() < deadline, "no progress reported");
        app.tick();
        std::thread::sleep(Duration::from_millis(2));
    }
    app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(app.wait_idle(Duration::from_secs(60)));
    assert_eq!(message(&app), "cancelled");
    assert!(app.state.calls.is_none());
    assert_eq!(app.state.list_pane, vmrr_tui::state::ListPane::Events);
}
