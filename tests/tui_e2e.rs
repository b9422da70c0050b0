//! The TUI in a real terminal: `vmrr tui TRACE` runs inside tmux, keys are
//! sent as a person would type them, and the assertions read the screen.
//! Needs /dev/kvm and tmux.

mod demo;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn vmrr() -> &'static str {
    env!("CARGO_BIN_EXE_vmrr")
}

/// A kvstore-bug trace recorded once for this test binary.
fn trace() -> &'static Path {
    demo::kvstore_bug_trace()
}

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let t = Tmux {
            socket: format!("vmrr-e2e-{}-{name}", std::process::id()),
        };
        let o = t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(o.status.success(), "tmux: {}", String::from_utf8_lossy(&o.stderr));
        // Esc must reach the application at once, not wait to become Alt-<next key>.
        t.run(&["set", "-s", "escape-time", "0"]);
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux")
    }

    /// Types keys one by one (tmux key names: Enter, Escape, Left...).
    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "main", k]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Types text literally.
    fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", "main", "-l", text]);
        std::thread::sleep(Duration::from_millis(60));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-t", "main", "-p"]).stdout).into_owned()
    }

    /// The screen with its colours (SGR escapes), to tell highlighted rows.
    fn screen_with_colours(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-t", "main", "-p", "-e"]).stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "main"]).status.success()
    }

    /// Waits until the screen shows `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_for_or(text, "")
    }

    /// [`Tmux::wait_for`] that also prints `context` if the text never shows.
    fn wait_for_or(&self, text: &str, context: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}; it shows:\n{screen}\n{context}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// The walkthrough of guests/README.md, key for key: from the STALE READ on
/// primary back to backup2's stale reply, to the late `apply 5`, to the
/// primary's resend of #5, to backup2's RESEND request; bookmarked.
#[test]
fn walkthrough_from_the_stale_read_to_the_late_write() {
    let trace = trace();
    let t = Tmux::start("walk", 120, 40, &format!("{} tui {}", vmrr(), trace.display()));
    let screen = t.wait_for("Timeline");
    for lane in ["primary", "backup1", "backup2"] {
        assert!(screen.contains(lane), "no lane {lane}:\n{screen}");
    }
    // 1. The symptom: search the events for "stale", go there.
    t.keys(&["/"]);
    t.text("stale");
    t.keys(&["Enter"]);
    let screen = t.wait_for("primary @ 79176");
    assert!(screen.contains("read-stale = 3"), "{screen}");
    assert!(
        screen.contains("Source kit/x86.h:19 outl (inlined in marker)"),
        "the source of marker(), through the inlined outl():\n{screen}"
    );
    // 2. Frames only, the previous one (backup2's reply), back to its send.
    t.keys(&["Escape", "k", "p", "f"]);
    let screen = t.wait_for("frame #61: its send, backup2 @ 50311");
    assert!(screen.contains("Locals backup2"), "{screen}");
    assert!(
        screen.contains("read k3 -> 31"),
        "backup2 served the stale value:\n{screen}"
    );
    // One instruction back and forth again.
    t.keys(&["Left"]);
    t.wait_for("backup2 @ 50310 ");
    t.keys(&["Right"]);
    t.wait_for("backup2 @ 50311 ");
    // 3. backup2's markers: apply 5 came after apply 9.
    t.keys(&["k", "v", "v", "v", "/"]);
    t.text("apply = 5");
    t.keys(&["Enter"]);
    let screen = t.wait_for("backup2 @ 38745 ");
    assert!(screen.contains("v:backup2 k:markers"), "{screen}");
    assert!(screen.contains("apply #9 k3=32"), "{screen}");
    // 4. The frame received just before: the primary's resend of #5.
    t.keys(&["Escape", "K", "p", "f"]);
    t.wait_for("frame #49: its send, primary @ 65461");
    // 5. What the primary received before resending: backup2's RESEND request.
    t.keys(&["v", "p", "p", "f"]);
    let screen = t.wait_for("frame #47: its send, backup2 @ 36832");
    assert!(screen.contains("ask for"), "{screen}");
    // 6. Bookmark it, and quit.
    t.keys(&["m"]);
    t.text("late #5");
    t.keys(&["Enter"]);
    t.wait_for("bookmark 'late #5' at backup2 @ 36832");
    t.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!t.alive(), "q did not quit");
    let o = Command::new(vmrr())
        .arg("sql")
        .arg(trace)
        .arg("SELECT name, vm, icount FROM bookmarks")
        .output()
        .expect("vmrr sql");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("late #5\t2\t36832"), "{out}");
}

/// Issue 9 in a real terminal: `L` from backup2:24456 steps backup2 (not
/// primary), `H` comes back; a broadcast frame asks which receiver; after a
/// follow the status line and the highlighted event agree.
#[test]
fn cluster_step_broadcast_follow_and_highlight() {
    let t = Tmux::start("moves", 120, 40, &format!("{} tui {}", vmrr(), trace().display()));
    t.wait_for("Timeline");
    t.keys(&["g"]);
    t.text("backup2:24456");
    t.keys(&["Enter"]);
    t.wait_for("backup2 @ 24456 ");
    t.keys(&["L"]);
    let screen = t.wait_for("cluster step: backup2 @ 24457");
    assert!(!screen.contains("primary @ 32504"), "{screen}");
    t.keys(&["H"]);
    t.wait_for("cluster step: backup2 @ 24456");
    // The broadcast frame #0: both receivers named, `f` asks, `2` picks backup2.
    t.keys(&["/"]);
    t.text("frame #0 →");
    t.keys(&["Enter", "Escape"]);
    let screen = t.wait_for("primary @ 11813 ");
    assert!(screen.contains("frame #0 → backup1, backup2"), "{screen}");
    t.keys(&["f"]);
    t.wait_for("press 1 backup1, 2 backup2");
    t.keys(&["2"]);
    let screen = t.wait_for("frame #0: its receipt, backup2");
    assert!(screen.contains("Locals backup2"), "{screen}");
    // The highlighted row is the receipt the status line names: the
    // selected row's colours are the only ones with a blue background.
    let lines = t.screen_with_colours();
    let selected: Vec<&str> = lines.lines().filter(|l| l.contains("48;2;52;60;110")).collect();
    assert!(
        selected
            .iter()
            .any(|l| l.contains("backup2") && l.contains("frame #0")),
        "the selected row is not backup2's receipt of frame #0:\n{}",
        selected.join("\n")
    );
    t.keys(&["q"]);
}

/// Issue 14 in a real terminal, at 80×24: a breakpoint at the stale
/// write's `file:line`, reverse-continue, and the source pane shows that
/// line with the local holding 31.
#[test]
fn breakpoint_at_file_line_and_reverse_continue_show_the_stale_write() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/kvstore/kvstore.c"))
        .expect("kvstore.c");
    let line = src
        .lines()
        .position(|l| l.trim() == "store[key] = val;")
        .expect("the store line")
        + 1;
    let t = Tmux::start("source", 80, 24, &format!("{} tui {}", vmrr(), trace().display()));
    t.wait_for("Timeline");
    t.keys(&["g"]);
    t.text("backup2:38745");
    t.keys(&["Enter"]);
    t.wait_for("backup2 @ 38745 ");
    t.keys(&["b"]);
    t.text(&format!("kvstore.c:{line}"));
    t.keys(&["Enter"]);
    t.wait_for("1 bp");
    t.keys(&["C"]);
    let screen = t.wait_for(&format!("Source kvstore/kvstore.c:{line}"));
    let marked = screen
        .lines()
        .find(|l| l.contains(&format!("▶{line} ")))
        .unwrap_or_else(|| panic!("line {line} is not marked:\n{screen}"));
    assert!(marked.contains("store[key] = val;"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains("val = 31")),
        "the local holding 31:\n{screen}"
    );
    t.keys(&["q"]);
}

/// Issue 13 in a real terminal: `a` `kv_apply` lists every call in every
/// VM with its arguments, backup2's late write #5 (`seq = 5, key = 3, val
/// = 31`, guests/README.md) among them, and Enter goes to its entry.
#[test]
fn calls_view_lists_kv_apply_and_goes_to_the_late_write() {
    let t = Tmux::start("calls", 120, 40, &format!("{} tui {}", vmrr(), trace().display()));
    t.wait_for("Timeline");
    t.keys(&["a"]);
    t.text("kv_apply");
    t.keys(&["Enter"]);
    let screen = t.wait_for("kv_apply: 20 calls in every VM");
    assert!(
        screen.contains("void kv_apply(uint32_t seq, uint8_t key, uint32_t val)"),
        "{screen}"
    );
    // The 14th call in the cluster order is backup2's late #5, after its #9.
    for _ in 0..13 {
        t.keys(&["Down"]);
    }
    let screen = t.wait_for("14/20");
    let row = screen
        .lines()
        .find(|l| l.contains("backup2") && l.contains("38701"))
        .unwrap_or_else(|| panic!("no row of backup2's call at 38701:\n{screen}"));
    assert!(row.contains("seq = 5, key = 3, val = 31"), "{row}");
    let selected: Vec<String> = t
        .screen_with_colours()
        .lines()
        .filter(|l| l.contains("48;2;52;60;110"))
        .map(String::from)
        .collect();
    assert!(
        selected.iter().any(|l| l.contains("38701")),
        "the selected row is not the call at 38701:\n{}",
        selected.join("\n")
    );
    t.keys(&["Enter"]);
    let screen = t.wait_for("backup2 @ 38701 ");
    assert!(screen.contains("Locals backup2"), "{screen}");
    assert!(screen.contains("kv_apply"), "{screen}");
    t.keys(&["q"]);
}

/// A free TCP port on localhost (another process could take it before the
/// TUI binds it; unlikely on a test machine).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn reverse_stepi_in_gdb_moves_the_tui_cursor() {
    let port = free_port();
    let t = Tmux::start(
        "gdb",
        120,
        40,
        &format!("{} tui {} --gdb-port {port}", vmrr(), trace().display()),
    );
    t.wait_for("Timeline");
    // The status bar names the gdb port once the server is listening, a
    // moment after the first frame: wait for it rather than race it.
    let screen = t.wait_for(&format!("gdb :{port}"));
    assert!(screen.contains(&format!("gdb :{port}")), "{screen}");
    // VMs are gdb inferiors: gdb attaches as the TUI's hint says, with
    // vmrr's gdb settings (gdb_bridge::GDB_SCRIPT), and selects backup2's
    // thread, 3.1.
    let settings = std::env::temp_dir().join(format!("vmrr-tui-e2e-{}.gdb", std::process::id()));
    std::fs::write(&settings, vmrr_gdb_bridge::GDB_SCRIPT).expect("write gdb settings");
    let o = Command::new("gdb")
        .args(["-q", "-batch", "-nx"])
        .args(["-ex", "set pagination off"])
        // The machine is busy with the other tests: give replies time.
        .args(["-ex", "set remotetimeout 60"])
        .args(["-ex", "set sysroot /", "-ex", "set schedule-multiple on"])
        .args(["-ex", &format!("target extended-remote 127.0.0.1:{port}")])
        .arg("-x")
        .arg(&settings)
        .args(["-ex", "thread 3.1", "-ex", "stepi 5", "-ex", "reverse-stepi"])
        .output()
        .expect("gdb");
    let gdb_said = format!(
        "gdb's output:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_file(&settings);
    assert!(o.status.success(), "{gdb_said}");
    // gdb stepped backup2 five instructions and one back: the TUI follows.
    let screen = t.wait_for_or("backup2 @ 4 ", &gdb_said);
    assert!(screen.contains("Registers backup2 @ 4"), "{screen}");
    t.keys(&["q"]);
}

#[test]
fn bad_trace_is_a_message_not_a_crash() {
    let o = Command::new(vmrr())
        .args(["tui", "/nonexistent/trace"])
        .output()
        .expect("vmrr tui");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a trace directory"), "{err}");
}

/// Issue 16: `vmrr tui FORK --beside` in a real terminal: the legend names
/// `≠`, and `D` on backup2 goes to where it first differs, both sides said;
/// a trace that is no fork has no parent to open beside.
#[test]
fn fork_beside_its_parent_and_d_goes_to_the_divergence() {
    let dir = std::env::temp_dir().join(format!("vmrr-e2e-{}-beside", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fork = dir.join("kv-drop");
    let o = Command::new(vmrr())
        .arg("fork")
        .arg(trace())
        .args(["--at", "122.165321ms", "drop frame 49", "-o"])
        .arg(&fork)
        .output()
        .expect("vmrr fork");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let command = format!("{} tui {} --beside", vmrr(), fork.display());
    let t = Tmux::start("beside", 120, 40, &command);
    t.wait_for("≠ differs");
    t.keys(&["3", "D"]);
    let screen = t.wait_for("backup2 differs (event) at icount 38308");
    assert!(screen.contains("Locals backup2 @ 38308"), "{screen}");
    t.keys(&["q"]);
    let o = Command::new(vmrr())
        .arg("tui")
        .arg(trace())
        .arg("--beside")
        .output()
        .expect("vmrr tui");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not a fork"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
