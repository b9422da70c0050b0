//! TUI latency: time from a key press to the redrawn frame, for step-back
//! (in the source view with its locals and call stack, and in the mixed
//! view), follow-frame, the payload pane, the code-view toggle and the
//! timeline's zoom, on the kvstore-bug demo trace. Drives the real App
//! (its worker thread included) and draws into ratatui's TestBackend at
//! 120×40, so it measures the session operation, the index queries of the
//! views and the rendering, but not the terminal's own output. Run with
//! `cargo bench --bench tui`; it rewrites its section of BENCHMARKS.md.

mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmrr_debugger::cluster::ClusterConfig;
use vmrr_debugger::session::Session;
use vmrr_debugger::trace::record::{record, RecordOptions};
use vmrr_index::{EventFilter, EventKind, Index};
use vmrr_tui::ratatui::backend::TestBackend;
use vmrr_tui::ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vmrr_tui::ratatui::Terminal;
use vmrr_tui::{render, App, Options};

/// Step-backs timed (from three places in the trace).
const STEPS: usize = 300;
/// Frames followed (each there and back).
const FOLLOWS: usize = 40;

fn fail(msg: String) -> ! {
    eprintln!("tui benchmark: {msg}");
    std::process::exit(1)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

struct Bench {
    app: App,
    term: Terminal<TestBackend>,
}

impl Bench {
    fn key(&mut self, code: KeyCode) {
        self.app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    /// Presses a key, waits for its job, draws: the latency a person sees, in ms.
    fn timed(&mut self, code: KeyCode) -> f64 {
        let t = Instant::now();
        self.key(code);
        if !self.app.wait_idle(Duration::from_secs(60)) {
            fail("a job did not finish in 60 s".into());
        }
        self.term
            .draw(|f| render(&self.app.state, f))
            .unwrap_or_else(|e| fail(e.to_string()));
        t.elapsed().as_secs_f64() * 1e3
    }

    fn go(&mut self, target: &str) {
        self.key(KeyCode::Char('g'));
        for c in target.chars() {
            self.key(KeyCode::Char(c));
        }
        self.timed(KeyCode::Enter);
    }
}

fn main() {
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/kvstore-bug.toml");
    let config = ClusterConfig::load(&cluster).unwrap_or_else(|e| fail(e.to_string()));
    let dir: PathBuf = std::env::temp_dir().join("vmrr-bench-tui-trace");
    let _ = std::fs::remove_dir_all(&dir);
    record(
        &config,
        &dir,
        &RecordOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_or_else(|e| fail(e.to_string()));
    let session = Session::open(&dir).unwrap_or_else(|e| fail(e.to_string()));
    let app = App::new(Arc::new(Mutex::new(session)), Options::default()).unwrap_or_else(|e| fail(e));
    let term = Terminal::new(TestBackend::new(120, 40)).unwrap_or_else(|e| fail(e.to_string()));
    let mut b = Bench { app, term };
    b.app.wait_idle(Duration::from_secs(60));

    // Floor: drawing the same state again, no session work.
    let mut draw = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        b.term
            .draw(|f| render(&b.app.state, f))
            .unwrap_or_else(|e| fail(e.to_string()));
        draw.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // Step back, from three places: the first step into a checkpoint slice
    // replays it once (dense snapshots), the rest are near the cursor.
    let mut step = Vec::new();
    let mut first_steps = Vec::new();
    for place in ["backup2:38745", "primary:79176", "backup1:45748"] {
        b.go(place);
        for i in 0..STEPS / 3 {
            let ms = b.timed(KeyCode::Left);
            if i == 0 {
                first_steps.push(ms);
            }
            step.push(ms);
        }
    }

    // Follow frames: select a received frame (list filtered to frames),
    // follow it back to its send, then forward to its receipt again.
    let index = Index::open_read_only(dir.join("index.sqlite")).unwrap_or_else(|e| fail(e.to_string()));
    let recvs = index
        .events_in_window(
            0,
            u64::MAX,
            &EventFilter::all().with_kinds(vec![EventKind::FrameRecv]),
            usize::MAX,
        )
        .unwrap_or_else(|e| fail(e.to_string()));
    b.key(KeyCode::Char('k')); // kinds: frames
    let mut follow = Vec::new();
    let every = (recvs.len() / FOLLOWS).max(1);
    for e in recvs.iter().step_by(every).take(FOLLOWS) {
        b.go(&format!("#{}", e.id));
        let before = b.app.state.snapshot.focus;
        follow.push(b.timed(KeyCode::Char('f')));
        if b.app.state.snapshot.focus == before {
            fail(format!("following event {} did not change VM", e.id));
        }
        follow.push(b.timed(KeyCode::Char('f')));
    }

    // The new panes. Mixed view: source lines with their instructions.
    b.go("backup2:38745");
    let mut toggle = vec![b.timed(KeyCode::Char('s'))];
    let mut mixed = Vec::new();
    for _ in 0..STEPS / 6 {
        mixed.push(b.timed(KeyCode::Left));
    }
    toggle.push(b.timed(KeyCode::Char('s')));
    toggle.push(b.timed(KeyCode::Char('s')));
    // Payload pane: move the selection through frame events.
    b.timed(KeyCode::Char('t'));
    let mut payload = Vec::new();
    for i in 0..FOLLOWS * 2 {
        payload.push(b.timed(if i < FOLLOWS { KeyCode::Up } else { KeyCode::Down }));
    }
    // Timeline zoom: each level reads its window's marks from the index.
    let mut zoom = Vec::new();
    for i in 0..20 {
        zoom.push(b.timed(KeyCode::Char(if i < 10 { '+' } else { '-' })));
    }

    let row = |name: &str, v: &[f64]| {
        format!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} |",
            v.len(),
            report::median(v),
            percentile(v, 0.95),
            v.iter().cloned().fold(0.0, f64::max)
        )
    };
    let worst_p95 = [&step, &follow, &mixed, &payload, &zoom, &toggle]
        .iter()
        .map(|v| percentile(v, 0.95))
        .fold(0.0, f64::max);
    let body = format!(
        "## TUI: key press to redrawn frame\n\n\
         `cargo bench --bench tui` — the App with its worker thread, drawn into ratatui's TestBackend at \
         120×40, on the kvstore-bug trace; times in ms. Host: {host}.\n\n\
         | what | samples | median | p95 | max |\n|---|---|---|---|---|\n\
         {draw}\n{step}\n{first}\n{follow}\n{mixed}\n{toggle}\n{payload}\n{zoom}\n\n\
         **Worst p95 {worst:.1} ms** (target ≤ 100 ms: {verdict}). The first step back into a checkpoint \
         slice replays that slice once to lay dense snapshots; following a frame moves to another VM, \
         whose position is replayed from its nearest snapshot. Every step rebuilds the source view, \
         unwinds the stack with `.debug_frame` and evaluates each scope's variables from DWARF.",
        host = report::host_line(),
        draw = row("floor: redraw only, no session work", &draw),
        step = row("step back (←), focus VM, source + locals + stack", &step),
        first = row("… of which the first step at a new place", &first_steps),
        follow = row("follow frame (f), receipt ⇄ send", &follow),
        mixed = row("step back (←) in the mixed view", &mixed),
        toggle = row("code view toggle (s)", &toggle),
        payload = row("select a frame event (↑ ↓), payload pane", &payload),
        zoom = row("timeline zoom (+ -)", &zoom),
        worst = worst_p95,
        verdict = if worst_p95 <= 100.0 { "meets" } else { "misses" },
    );
    println!("{body}");
    if let Err(e) = report::write_section("tui", &body) {
        fail(format!("cannot write BENCHMARKS.md: {e}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
