//! The application model: [`App`] owns the [`AppState`] that the screen
//! shows, turns keys into session jobs for the [`Worker`], and refreshes the
//! index-derived views (timeline, events, console, bookmarks) itself, through
//! a read-only connection of its own, so it never waits for the session.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use vmrr_debugger::cluster::config::FaultKind;
use vmrr_debugger::session::{Direction, FrameEnd, Moment, Move, Scope, Session, VmId};
use vmrr_debugger::symbols::SymbolTable;
use vmrr_index::{EventFilter, EventKind, EventRow, FrameFate, Index, Position};

use crate::format;
use crate::state::{
    AppState, BreakpointInfo, Busy, EventLine, Link, ListPane, Mark, MarkKind, MemSource, Message, Prompt,
    PromptKind, SidePane, VmInfo, KIND_PRESETS,
};
use crate::worker::{Done, Job, Request, Worker};

/// At most this many events are held by the events list; a larger trace
/// shows a window of them around the cursor.
const EVENTS_CAP: usize = 100_000;
/// At most this many events are drawn on the timeline at once.
const TIMELINE_CAP: usize = 50_000;
/// Console lines kept for the console view.
const CONSOLE_LINES: usize = 200;
/// Jobs queued behind a running one.
const QUEUE_CAP: usize = 16;
/// Keys held while a job runs (typed faster than the jobs run).
const KEY_QUEUE_CAP: usize = 64;
/// Registers are highlighted as changed only after a move of at most this
/// many instructions on the same VM: after a long jump everything differs.
const HIGHLIGHT_REACH: u64 = 64;
/// Smallest timeline window.
const MIN_SPAN: u64 = 1_000;

/// Options of the TUI.
#[derive(Debug, Default)]
pub struct Options {
    /// The gdb port, shown in the status bar when gdb is served too.
    pub gdb_port: Option<u16>,
    /// Messages from other threads (the gdb server's log), shown in the
    /// status bar: the screen belongs to the TUI, so nobody else may print.
    pub notices: Option<std::sync::mpsc::Receiver<Message>>,
}

/// One frame's row (one per destination).
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    id: u64,
    src: usize,
    dst: usize,
    sent: u64,
    recv: Option<u64>,
    arrival: u64,
    received: bool,
}

/// The application: state, session, worker.
pub struct App {
    /// What the screen shows.
    pub state: AppState,
    session: Arc<Mutex<Session>>,
    index: Index,
    worker: Worker,
    cancel: Arc<AtomicBool>,
    pending: VecDeque<Job>,
    /// Keys typed while a job was running: they apply to the state that job
    /// leaves, so they wait for it (a second `p` must see where the first went).
    held_keys: VecDeque<KeyEvent>,
    running: Option<Job>,
    mem: MemSource,
    frames: Vec<FrameInfo>,
    /// Rows of `frames` by frame id.
    frames_by_id: HashMap<u64, Vec<usize>>,
    faults: Vec<Mark>,
    symbols: Vec<Arc<SymbolTable>>,
    /// The frame event the last follow started from (to follow it again
    /// to the receiver the user picks).
    follow_from: Option<u64>,
    /// The receivers of a flooded frame the user is asked to pick from.
    choices: Vec<FrameEnd>,
    last_generation_poll: Instant,
    /// What the timeline's data was read for: (start, span, bookmarks);
    /// moving the cursor inside the window needs no new query.
    timeline_key: Option<(u64, u64, usize)>,
    notices: Option<std::sync::mpsc::Receiver<Message>>,
    quit: bool,
}

impl App {
    /// Opens the application over a session (the cursor stays where the
    /// session has it) and starts its worker.
    pub fn new(session: Arc<Mutex<Session>>, options: Options) -> Result<App, String> {
        let (vms, index_path, trace_name, symbols, faults, cancel) = {
            let s = session.lock().unwrap_or_else(|p| p.into_inner());
            let trace = s.trace();
            let rows = trace.index().vms().map_err(|e| e.to_string())?;
            let vms: Vec<VmInfo> = (0..s.vm_count())
                .map(|vm| VmInfo {
                    name: s.vm_name(vm as VmId).to_string(),
                    end_icount: s.end_icount(vm as VmId),
                    end_vtime: rows
                        .get(vm)
                        .and_then(|r| r.final_vtime_ns)
                        .or_else(|| trace.checkpoints(vm).last().map(|c| c.vtime_ns))
                        .unwrap_or(0),
                })
                .collect();
            // An image without symbols still disassembles, with addresses only.
            let symbols: Vec<Arc<SymbolTable>> = (0..s.vm_count())
                .map(|vm| Arc::new(SymbolTable::for_vm(trace, vm).unwrap_or_default()))
                .collect();
            let mut faults = Vec::new();
            for f in &trace.config().faults {
                let lanes: Vec<usize> = match &f.kind {
                    FaultKind::Partition(list) => list.clone(),
                    FaultKind::Heal => (0..vms.len()).collect(),
                    FaultKind::Drop { between, .. } | FaultKind::Delay { between, .. } => {
                        vec![between.0, between.1]
                    }
                };
                faults.extend(lanes.into_iter().map(|vm| Mark {
                    vm,
                    vtime: f.at_ns,
                    kind: MarkKind::Fault,
                }));
            }
            let name = trace
                .dir()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "trace".into());
            (
                vms,
                trace.dir().join(vmrr_debugger::trace::INDEX_FILE),
                name,
                symbols,
                faults,
                s.cancel_flag(),
            )
        };
        let index = Index::open_read_only(&index_path).map_err(|e| e.to_string())?;
        let frames = load_frames(&index)?;
        let end_vtime = vms.iter().map(|v| v.end_vtime).max().unwrap_or(0);
        let worker = Worker::start(session.clone(), symbols.clone());
        let mut app = App {
            state: AppState {
                trace_name,
                vms,
                end_vtime,
                gdb_port: options.gdb_port,
                ..AppState::default()
            },
            session,
            index,
            worker,
            cancel,
            pending: VecDeque::new(),
            held_keys: VecDeque::new(),
            running: None,
            mem: MemSource::default(),
            frames_by_id: frames_by_id(&frames),
            frames,
            faults,
            symbols,
            follow_from: None,
            choices: Vec::new(),
            last_generation_poll: Instant::now(),
            timeline_key: None,
            notices: options.notices,
            quit: false,
        };
        app.state.timeline.start = 0;
        app.state.timeline.span = end_vtime.max(MIN_SPAN);
        app.reload_events();
        app.reload_bookmarks();
        app.submit(Job::Refresh);
        Ok(app)
    }

    /// Whether the user asked to quit.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether a job is running or queued, or keys wait for one.
    pub fn is_busy(&self) -> bool {
        self.running.is_some() || !self.pending.is_empty() || !self.held_keys.is_empty()
    }

    fn submit(&mut self, job: Job) {
        if self.running.is_none() {
            let req = Request {
                job: job.clone(),
                mem: self.mem.clone(),
            };
            if self.worker.submit(req) {
                self.running = Some(job);
            } else {
                self.error("the session worker has stopped; quit and start again".into());
            }
        } else if self.pending.len() < QUEUE_CAP {
            self.pending.push_back(job);
        }
        self.update_busy();
    }

    fn update_busy(&mut self) {
        self.state.busy = match &self.running {
            Some(job) if *job != Job::Refresh => Some(Busy {
                label: job.label().to_string(),
                progress: if job.has_progress() {
                    Some(self.worker.progress().unwrap_or(0.0))
                } else {
                    None
                },
                queued: self.pending.len() + self.held_keys.len(),
            }),
            _ => None,
        };
    }

    fn info(&mut self, text: String) {
        self.state.message = (!text.is_empty()).then_some(Message { text, error: false });
    }

    fn error(&mut self, text: String) {
        self.state.message = Some(Message { text, error: true });
    }

    /// Takes finished jobs, progress and gdb's moves into the state; true if
    /// anything visible changed.
    pub fn tick(&mut self) -> bool {
        let mut changed = false;
        loop {
            match self.worker.try_done() {
                Ok(Some(done)) => {
                    self.apply(done);
                    changed = true;
                }
                Ok(None) => break,
                Err(_gone) => {
                    if self.running.take().is_some() {
                        self.error("the session worker stopped unexpectedly".into());
                        changed = true;
                    }
                    break;
                }
            }
        }
        if let (Some(job), Some(busy)) = (&self.running, &mut self.state.busy) {
            if job.has_progress() {
                let p = self.worker.progress();
                if p.is_some() && p != busy.progress {
                    busy.progress = p;
                    changed = true;
                }
            }
        }
        while let Some(m) = self.notices.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.state.message = Some(m);
            changed = true;
        }
        // gdb (or anything else sharing the session) may have moved the cursor.
        if !self.is_busy() && self.last_generation_poll.elapsed() >= Duration::from_millis(50) {
            self.last_generation_poll = Instant::now();
            let generation = self.session.try_lock().ok().map(|s| s.generation());
            if generation.is_some_and(|g| g != self.state.snapshot.generation) {
                self.submit(Job::Refresh);
            }
        }
        changed
    }

    /// Blocks until every queued job is done (tests and benchmarks), at most `timeout`.
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_busy() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.worker.wait_done(left.min(Duration::from_millis(100))) {
                Some(done) => self.apply(done),
                None => {
                    self.tick();
                }
            }
        }
        true
    }

    /// Takes a finished job into the state and starts the next queued one.
    fn apply(&mut self, done: Done) {
        self.running = None;
        let old = &self.state.snapshot;
        let moved = old.focus != done.snapshot.focus || old.icount != done.snapshot.icount;
        if moved {
            let near = old.focus == done.snapshot.focus
                && old.icount.abs_diff(done.snapshot.icount) <= HIGHLIGHT_REACH;
            self.state.prev_regs = near.then_some(old.regs).flatten();
        }
        let bookmarks_changed = matches!(
            done.job,
            Job::AddBookmark(_) | Job::RenameBookmark { .. } | Job::DeleteBookmark(_)
        );
        match done.outcome {
            Ok(text) if !text.is_empty() => self.info(text),
            Ok(_) => {
                if moved {
                    self.state.message = None;
                }
            }
            Err(text) => self.error(text),
        }
        self.state.snapshot = done.snapshot;
        self.state.breakpoints = done
            .breakpoints
            .iter()
            .map(|b| {
                let vm = b.vm.map(|v| v as usize).unwrap_or(self.state.snapshot.focus);
                BreakpointInfo {
                    vm,
                    addr: b.addr,
                    label: self
                        .symbols
                        .get(vm)
                        .and_then(|t| t.describe(b.addr))
                        .unwrap_or_else(|| format!("{:#x}", b.addr)),
                }
            })
            .collect();
        if bookmarks_changed || self.state.bookmarks.rows.is_empty() {
            self.reload_bookmarks();
        }
        self.follow_cursor_in_timeline();
        self.reload_console();
        if self.events_window_misses_cursor() {
            self.reload_events();
        }
        self.choices = done.choices;
        self.select_event_at_cursor();
        self.reload_timeline();
        if let Some(job) = self.pending.pop_front() {
            self.submit(job);
        }
        // Replay the keys typed meanwhile, until one starts a job again.
        while self.running.is_none() {
            let Some(key) = self.held_keys.pop_front() else {
                break;
            };
            self.handle_key(key);
        }
        self.update_busy();
    }

    // ----- index-derived views -----

    fn reload_bookmarks(&mut self) {
        match self.index.bookmarks() {
            Ok(mut rows) => {
                rows.sort_by_key(|b| (b.vtime_ns, b.vm, b.icount, b.id));
                let keep = self
                    .state
                    .bookmarks
                    .selected
                    .and_then(|i| self.state.bookmarks.rows.get(i))
                    .map(|b| b.id);
                self.state.bookmarks.selected = match keep.and_then(|id| rows.iter().position(|b| b.id == id))
                {
                    Some(i) => Some(i),
                    None if rows.is_empty() => None,
                    None => Some(rows.len() - 1),
                };
                self.state.bookmarks.rows = rows;
            }
            Err(e) => self.error(e.to_string()),
        }
    }

    fn event_filter(&self) -> EventFilter {
        let mut f = EventFilter::all().with_kinds(KIND_PRESETS[self.state.events.preset].kinds.to_vec());
        if let Some(vm) = self.state.events.vm_filter {
            f = f.with_vms(vec![vm as u32]);
        }
        f
    }

    /// The other ends of a frame event: every receiver of a send, the
    /// sender of a receipt (from the frames read at start).
    fn peers_of(&self, e: &EventRow) -> Vec<VmId> {
        let Some(rows) = e.value.and_then(|id| self.frames_by_id.get(&id)) else {
            return Vec::new();
        };
        let rows = rows.iter().filter_map(|&i| self.frames.get(i));
        match e.kind {
            EventKind::FrameSent => rows
                .filter(|f| f.src == e.vm as usize)
                .map(|f| f.dst as VmId)
                .collect(),
            EventKind::FrameRecv => rows
                .filter(|f| f.dst == e.vm as usize)
                .map(|f| f.src as VmId)
                .take(1)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Loads the events list for the current filters.
    fn reload_events(&mut self) {
        let filter = self.event_filter();
        let total = self.index.count_events(&filter).unwrap_or(0);
        // A very large trace: a window starting a little before the cursor.
        let (from, truncated) = if total as usize > EVENTS_CAP {
            let t = self.state.snapshot.vtime;
            (t.saturating_sub(self.state.timeline.span), true)
        } else {
            (0, false)
        };
        let rows = match self.index.events_in_window(from, u64::MAX, &filter, EVENTS_CAP) {
            Ok(rows) => rows,
            Err(e) => {
                self.error(e.to_string());
                Vec::new()
            }
        };
        let names: Vec<String> = self.state.vms.iter().map(|v| v.name.clone()).collect();
        let lines: Vec<EventLine> = rows
            .into_iter()
            .map(|event| {
                let name = |vm: VmId| names.get(vm as usize).cloned().unwrap_or_else(|| "?".into());
                let detail = format::event_detail(&event, &name, &self.peers_of(&event));
                let haystack = format!(
                    "{} {} {} {} {} {}",
                    format::vtime(event.vtime_ns),
                    names.get(event.vm as usize).map(String::as_str).unwrap_or("?"),
                    event.icount,
                    format::kind(event.kind),
                    event.kind.as_str(),
                    detail
                )
                .to_lowercase();
                EventLine {
                    event,
                    detail,
                    haystack,
                }
            })
            .collect();
        self.state.events.lines = lines;
        self.state.events.truncated = truncated;
        self.apply_search();
    }

    fn events_window_misses_cursor(&self) -> bool {
        let ev = &self.state.events;
        ev.truncated
            && match (ev.lines.first(), ev.lines.last()) {
                (Some(a), Some(b)) => {
                    let t = self.state.snapshot.vtime;
                    t < a.event.vtime_ns || t > b.event.vtime_ns
                }
                _ => true,
            }
    }

    /// Recomputes which events match the search.
    fn apply_search(&mut self) {
        let needle = self.state.events.search.to_lowercase();
        let ev = &mut self.state.events;
        ev.visible = ev
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| needle.is_empty() || l.haystack.contains(&needle))
            .map(|(i, _)| i)
            .collect();
        ev.selected = None;
    }

    /// Whether `e` has happened when the focus VM stands where the snapshot says.
    fn happened(&self, e: &EventRow) -> bool {
        happened(e, &self.state.snapshot)
    }

    /// Selects the event the cursor stands on, else the last event of the
    /// list that has happened at the cursor.
    fn select_event_at_cursor(&mut self) {
        if let Some(id) = self.state.snapshot.cursor_event {
            if self.select_event_id(id) {
                return;
            }
        }
        let ev = &self.state.events;
        let n = ev
            .visible
            .partition_point(|&i| ev.lines.get(i).is_some_and(|l| self.happened(&l.event)));
        self.state.events.selected = if self.state.events.visible.is_empty() {
            None
        } else {
            Some(n.saturating_sub(1))
        };
        self.update_selected_frame();
    }

    /// After the list changed (filter, search): the same event if it is
    /// still listed, else the one at the cursor.
    fn reselect(&mut self, previous: Option<u64>) {
        match previous {
            Some(id) if self.select_event_id(id) => {}
            _ => self.select_event_at_cursor(),
        }
    }

    fn selected_id(&self) -> Option<u64> {
        self.state.events.selected_event().map(|e| e.id)
    }

    fn select_event_id(&mut self, id: u64) -> bool {
        let ev = &self.state.events;
        let found = ev
            .visible
            .iter()
            .position(|&i| ev.lines.get(i).is_some_and(|l| l.event.id == id));
        if found.is_some() {
            self.state.events.selected = found;
            self.update_selected_frame();
        }
        found.is_some()
    }

    fn update_selected_frame(&mut self) {
        self.state.timeline.selected_frame = self
            .state
            .events
            .selected_event()
            .filter(|e| matches!(e.kind, EventKind::FrameSent | EventKind::FrameRecv))
            .and_then(|e| e.value);
    }

    /// The focus VM's console output before the cursor.
    fn reload_console(&mut self) {
        let snap = &self.state.snapshot;
        let vm = snap.focus as u32;
        let filter = EventFilter::all()
            .with_vms(vec![vm])
            .with_kinds(vec![EventKind::Console]);
        let mut pos = Position::at(vm, snap.icount, snap.vtime);
        let mut chunks = Vec::new();
        let mut newlines = 0;
        // Walk back event by event (each an indexed seek) until enough lines.
        while newlines <= CONSOLE_LINES {
            match self.index.prev_event_before(Some(vm), pos, &filter) {
                Ok(Some(e)) => {
                    pos = e.position();
                    let text = match (&e.text, &e.payload) {
                        (Some(t), _) => t.clone(),
                        (None, Some(p)) => String::from_utf8_lossy(p).into_owned(),
                        _ => String::new(),
                    };
                    newlines += text.matches('\n').count();
                    chunks.push(text);
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(e.to_string());
                    break;
                }
            }
        }
        let text: String = chunks.into_iter().rev().collect();
        self.state.console_partial = !text.is_empty() && !text.ends_with('\n');
        let mut lines: Vec<String> = text
            .split('\n')
            .map(|l| l.chars().filter(|c| !c.is_control()).collect())
            .collect();
        if !self.state.console_partial {
            lines.pop();
        }
        let skip = lines.len().saturating_sub(CONSOLE_LINES);
        self.state.console = lines.split_off(skip);
    }

    /// Keeps the cursor inside the timeline's window.
    fn follow_cursor_in_timeline(&mut self) {
        let t = self.state.snapshot.cursor_vtime.max(self.state.snapshot.vtime);
        let tl = &mut self.state.timeline;
        if t < tl.start || t >= tl.start.saturating_add(tl.span) {
            tl.start = t.saturating_sub(tl.span / 2);
        }
    }

    /// Reads the marks and frames of the timeline's window (unless they are
    /// those of the same window already).
    fn reload_timeline(&mut self) {
        let (start, span) = (self.state.timeline.start, self.state.timeline.span);
        let key = (start, span, self.state.bookmarks.rows.len());
        if self.timeline_key == Some(key) {
            return;
        }
        self.timeline_key = Some(key);
        let end = start.saturating_add(span);
        let kinds = vec![
            EventKind::Interrupt,
            EventKind::Console,
            EventKind::FrameRecv,
            EventKind::FrameSent,
            EventKind::Marker,
            EventKind::Exit,
            EventKind::Stop,
            EventKind::Fault,
        ];
        let filter = EventFilter::all().with_kinds(kinds);
        let mut marks: Vec<Mark> = match self.index.events_in_window(start, end, &filter, TIMELINE_CAP) {
            Ok(rows) => rows
                .iter()
                .filter_map(|e| {
                    MarkKind::of(e.kind).map(|kind| Mark {
                        vm: e.vm as usize,
                        vtime: e.vtime_ns,
                        kind,
                    })
                })
                .collect(),
            Err(e) => {
                self.error(e.to_string());
                Vec::new()
            }
        };
        marks.extend(self.faults.iter().filter(|m| m.vtime >= start && m.vtime < end));
        marks.extend(
            self.state
                .bookmarks
                .rows
                .iter()
                .filter(|b| b.vtime_ns >= start && b.vtime_ns < end)
                .map(|b| Mark {
                    vm: b.vm as usize,
                    vtime: b.vtime_ns,
                    kind: MarkKind::Bookmark,
                }),
        );
        self.state.timeline.marks = marks;
        self.state.timeline.links = self
            .frames
            .iter()
            .filter(|f| f.sent < end && f.recv.unwrap_or(f.arrival) >= start)
            .map(|f| Link {
                id: f.id,
                src: f.src,
                dst: f.dst,
                sent: f.sent,
                recv: f.recv.unwrap_or(f.arrival),
                lost: !f.received,
            })
            .collect();
    }

    fn zoom(&mut self, factor_num: u64, factor_den: u64) {
        let tl = &mut self.state.timeline;
        let center = self.state.snapshot.cursor_vtime.max(self.state.snapshot.vtime);
        let max_span = self.state.end_vtime.max(MIN_SPAN) * 2;
        let span = (tl.span.saturating_mul(factor_num) / factor_den).clamp(MIN_SPAN, max_span);
        // Keep the cursor at the same place on screen.
        let frac = if tl.span == 0 {
            0.5
        } else {
            center.saturating_sub(tl.start) as f64 / tl.span as f64
        };
        let frac = frac.clamp(0.0, 1.0);
        tl.start = center.saturating_sub((span as f64 * frac) as u64);
        tl.span = span;
        self.reload_timeline();
    }

    fn scroll(&mut self, forward: bool) {
        let tl = &mut self.state.timeline;
        let step = (tl.span / 4).max(1);
        tl.start = if forward {
            tl.start.saturating_add(step).min(self.state.end_vtime)
        } else {
            tl.start.saturating_sub(step)
        };
        self.reload_timeline();
    }

    // ----- keys -----

    /// Handles one key press. While a job runs, keys wait for it (except
    /// Esc, which cancels it, and quitting).
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
            return;
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        let plain_q = key.code == KeyCode::Char('q') && self.state.prompt.is_none();
        if ctrl_c || (plain_q && self.held_keys.is_empty()) {
            // A running search must not keep the program alive.
            self.cancel.store(true, Ordering::Relaxed);
            self.quit = true;
            return;
        }
        if self.running.is_some() || !self.held_keys.is_empty() {
            // Esc cancels a search at once; after a short job it is just the next key.
            let long = self.running.as_ref().is_some_and(Job::has_progress);
            if key.code == KeyCode::Esc && long && self.state.prompt.is_none() {
                self.held_keys.clear();
                self.escape();
            } else if self.held_keys.len() < KEY_QUEUE_CAP {
                self.held_keys.push_back(key);
                self.update_busy();
            }
            return;
        }
        self.handle_key(key);
    }

    fn handle_key(&mut self, key: KeyEvent) {
        if self.state.prompt.is_some() {
            self.on_prompt_key(key);
            return;
        }
        if !self.choices.is_empty() {
            let choices = std::mem::take(&mut self.choices);
            if let KeyCode::Char(d @ '1'..='9') = key.code {
                if let Some(end) = choices.get((d as u8 - b'1') as usize) {
                    self.submit(Job::Move(Move::Follow {
                        event: self.follow_from,
                        to: Some(end.vm),
                    }));
                    return;
                }
            }
            self.state.message = None;
            if key.code == KeyCode::Esc {
                return;
            }
        }
        if self.state.show_help {
            // Any key closes the help; q still quits.
            self.state.show_help = false;
            if key.code == KeyCode::Char('q') {
                self.quit = true;
            }
            return;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return;
        }
        let focus = self.state.snapshot.focus;
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        match key.code {
            KeyCode::Char('q') => {
                self.cancel.store(true, Ordering::Relaxed);
                self.quit = true;
            }
            KeyCode::Char('?') | KeyCode::F(1) => self.state.show_help = true,
            KeyCode::Esc => self.escape(),
            KeyCode::Left if shift => self.submit(Job::Move(Move::StepCluster(Direction::Backward))),
            KeyCode::Right if shift => self.submit(Job::Move(Move::StepCluster(Direction::Forward))),
            KeyCode::Left | KeyCode::Char('h') => self.submit(Job::Move(Move::Step {
                vm: focus as VmId,
                dir: Direction::Backward,
            })),
            KeyCode::Right | KeyCode::Char('l') => self.submit(Job::Move(Move::Step {
                vm: focus as VmId,
                dir: Direction::Forward,
            })),
            KeyCode::Char('H') => self.submit(Job::Move(Move::StepCluster(Direction::Backward))),
            KeyCode::Char('L') => self.submit(Job::Move(Move::StepCluster(Direction::Forward))),
            KeyCode::Char('n') => self.next_event(true),
            KeyCode::Char('p') => self.next_event(false),
            KeyCode::Char('f') => {
                let event = match self.state.list_pane {
                    ListPane::Events => self
                        .state
                        .events
                        .selected_event()
                        .filter(|e| matches!(e.kind, EventKind::FrameSent | EventKind::FrameRecv))
                        .map(|e| e.id),
                    ListPane::Bookmarks => None,
                };
                self.follow_from = event;
                self.submit(Job::Move(Move::Follow { event, to: None }));
            }
            KeyCode::Char('c') => self.submit(Job::Move(Move::Continue {
                scope: Scope::Vm(focus as VmId),
                dir: Direction::Forward,
            })),
            KeyCode::Char('C') => self.submit(Job::Move(Move::Continue {
                scope: Scope::Vm(focus as VmId),
                dir: Direction::Backward,
            })),
            KeyCode::Char('b') => self.open_prompt(PromptKind::Breakpoint),
            KeyCode::Char('g') => self.open_prompt(PromptKind::Goto),
            KeyCode::Char('m') => self.open_prompt(PromptKind::AddBookmark),
            KeyCode::Char('M') => self.open_prompt(PromptKind::Memory),
            KeyCode::Char('/') => {
                self.state.list_pane = ListPane::Events;
                self.state.events.search.clear();
                self.open_prompt(PromptKind::Search)
            }
            KeyCode::Char('B') | KeyCode::Char('\'') => {
                self.state.list_pane = match self.state.list_pane {
                    ListPane::Events => ListPane::Bookmarks,
                    ListPane::Bookmarks => ListPane::Events,
                }
            }
            KeyCode::Char('t') => {
                self.state.side_pane = match self.state.side_pane {
                    SidePane::Console => SidePane::Memory,
                    SidePane::Memory => SidePane::Console,
                }
            }
            KeyCode::Char('r') if self.state.list_pane == ListPane::Bookmarks => {
                if let Some(b) = self.selected_bookmark() {
                    self.open_prompt(PromptKind::RenameBookmark(b));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete if self.state.list_pane == ListPane::Bookmarks => {
                if let Some(b) = self.selected_bookmark() {
                    self.submit(Job::DeleteBookmark(b));
                }
            }
            KeyCode::Enter => match self.state.list_pane {
                ListPane::Events => {
                    if let Some(e) = self.state.events.selected_event() {
                        self.submit(Job::Move(Move::GotoEvent(e.id)));
                    }
                }
                ListPane::Bookmarks => {
                    if let Some(b) = self.selected_bookmark() {
                        self.submit(Job::Move(Move::Goto(Moment::Bookmark(b))));
                    }
                }
            },
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(i64::MIN / 2),
            KeyCode::End => self.move_selection(i64::MAX / 2),
            KeyCode::Tab => self.switch_focus(1),
            KeyCode::BackTab => self.switch_focus(-1),
            KeyCode::Char(d @ '1'..='9') => {
                let vm = (d as u8 - b'1') as usize;
                if vm < self.state.vms.len() {
                    self.submit(Job::SetFocus(vm as VmId));
                }
            }
            KeyCode::Char('+') | KeyCode::Char('=') => self.zoom(1, 2),
            KeyCode::Char('-') | KeyCode::Char('_') => self.zoom(2, 1),
            KeyCode::Char('z') => {
                self.state.timeline.start = 0;
                self.state.timeline.span = self.state.end_vtime.max(MIN_SPAN);
                self.reload_timeline();
            }
            KeyCode::Char('<') | KeyCode::Char(',') => self.scroll(false),
            KeyCode::Char('>') | KeyCode::Char('.') => self.scroll(true),
            KeyCode::Char('v') => {
                let n = self.state.vms.len();
                self.state.events.vm_filter = match self.state.events.vm_filter {
                    None if n > 0 => Some(0),
                    Some(v) if v + 1 < n => Some(v + 1),
                    _ => None,
                };
                let keep = self.selected_id();
                self.reload_events();
                self.reselect(keep);
            }
            KeyCode::Char(c @ ('k' | 'K')) => {
                let n = KIND_PRESETS.len();
                let step = if c == 'k' { 1 } else { n - 1 };
                self.state.events.preset = (self.state.events.preset + step) % n;
                let keep = self.selected_id();
                self.reload_events();
                self.reselect(keep);
            }
            _ => {}
        }
    }

    fn escape(&mut self) {
        if self.running.is_some() {
            self.cancel.store(true, Ordering::Relaxed);
            self.pending.clear();
            self.held_keys.clear();
            self.info("cancelling…".into());
        } else if !self.state.events.search.is_empty() {
            let keep = self.selected_id();
            self.state.events.search.clear();
            self.apply_search();
            self.reselect(keep);
        } else {
            self.state.message = None;
        }
    }

    fn selected_bookmark(&self) -> Option<String> {
        let b = &self.state.bookmarks;
        b.selected.and_then(|i| b.rows.get(i)).map(|r| r.name.clone())
    }

    fn switch_focus(&mut self, delta: i64) {
        let n = self.state.vms.len() as i64;
        if n == 0 {
            return;
        }
        let vm = (self.state.snapshot.focus as i64 + delta).rem_euclid(n) as VmId;
        self.submit(Job::SetFocus(vm));
    }

    fn move_selection(&mut self, delta: i64) {
        match self.state.list_pane {
            ListPane::Events => {
                let len = self.state.events.visible.len();
                if len == 0 {
                    return;
                }
                let cur = self.state.events.selected.unwrap_or(0) as i64;
                self.state.events.selected =
                    Some((cur.saturating_add(delta)).clamp(0, len as i64 - 1) as usize);
                self.update_selected_frame();
            }
            ListPane::Bookmarks => {
                let len = self.state.bookmarks.rows.len();
                if len == 0 {
                    return;
                }
                let cur = self.state.bookmarks.selected.unwrap_or(0) as i64;
                self.state.bookmarks.selected =
                    Some((cur.saturating_add(delta)).clamp(0, len as i64 - 1) as usize);
            }
        }
    }

    /// n / p: the next (previous) event of the list. Without a search the
    /// session finds it from the cursor, with the list's filter; with one,
    /// the list's next (previous) matching line from the selection.
    fn next_event(&mut self, forward: bool) {
        let dir = if forward {
            Direction::Forward
        } else {
            Direction::Backward
        };
        if self.state.events.search.is_empty() {
            self.submit(Job::Move(Move::Event {
                dir,
                filter: self.event_filter(),
            }));
            return;
        }
        let ev = &self.state.events;
        let target = match ev.selected {
            Some(i) if forward => ev.visible.get(i + 1),
            Some(i) => i.checked_sub(1).and_then(|j| ev.visible.get(j)),
            None => ev.visible.first(),
        };
        match target.and_then(|&i| ev.lines.get(i)).map(|l| l.event.id) {
            Some(id) => self.submit(Job::Move(Move::GotoEvent(id))),
            None => self.info(format!(
                "no {} event in this list",
                if forward { "later" } else { "earlier" }
            )),
        }
    }

    fn open_prompt(&mut self, kind: PromptKind) {
        self.state.prompt = Some(Prompt {
            kind,
            input: String::new(),
        });
    }

    fn on_prompt_key(&mut self, key: KeyEvent) {
        let Some(prompt) = self.state.prompt.as_mut() else {
            return;
        };
        let is_search = prompt.kind == PromptKind::Search;
        match key.code {
            KeyCode::Esc => {
                self.state.prompt = None;
                if is_search {
                    self.state.events.search.clear();
                    self.apply_search();
                    self.select_event_at_cursor();
                }
            }
            KeyCode::Enter => {
                if let Some(p) = self.state.prompt.take() {
                    self.submit_prompt(p);
                }
            }
            KeyCode::Backspace => {
                prompt.input.pop();
                if is_search {
                    self.search_changed();
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                if prompt.input.chars().count() < 200 {
                    prompt.input.push(c);
                }
                if is_search {
                    self.search_changed();
                }
            }
            _ => {}
        }
    }

    /// Incremental search: narrow the list and select the first match at or after the cursor.
    fn search_changed(&mut self) {
        let text = self
            .state
            .prompt
            .as_ref()
            .map(|p| p.input.clone())
            .unwrap_or_default();
        self.state.events.search = text;
        self.apply_search();
        let ev = &self.state.events;
        let split = ev
            .visible
            .partition_point(|&i| ev.lines.get(i).is_some_and(|l| self.happened(&l.event)));
        self.state.events.selected = if ev.visible.is_empty() {
            None
        } else {
            Some(split.min(ev.visible.len() - 1))
        };
        self.update_selected_frame();
    }

    fn submit_prompt(&mut self, p: Prompt) {
        let input = p.input.trim().to_string();
        let focus = self.state.snapshot.focus;
        match p.kind {
            PromptKind::Search => {
                self.state.events.search = p.input;
                match self.state.events.selected_event().map(|e| e.id) {
                    Some(id) => self.submit(Job::Move(Move::GotoEvent(id))),
                    None => self.error(format!("no event matches '{}'", self.state.events.search)),
                }
            }
            PromptKind::Goto => match Moment::parse(&input) {
                Ok(moment) => self.submit(Job::Move(Move::Goto(moment))),
                Err(e) => self.error(e.to_string()),
            },
            PromptKind::Breakpoint => {
                let table = self.symbols.get(focus).cloned().unwrap_or_default();
                match table.parse_location(&input) {
                    Ok(addr) => self.submit(Job::ToggleBreakpoint {
                        vm: focus as VmId,
                        addr,
                        label: input,
                    }),
                    Err(e) => self.error(e),
                }
            }
            PromptKind::AddBookmark => {
                if input.is_empty() {
                    self.error("a bookmark needs a name".into());
                } else {
                    self.submit(Job::AddBookmark(input));
                }
            }
            PromptKind::RenameBookmark(old) => {
                if input.is_empty() {
                    self.error("a bookmark needs a name".into());
                } else {
                    self.submit(Job::RenameBookmark { old, new: input });
                }
            }
            PromptKind::Memory => {
                let reg = crate::state::REG_NAMES
                    .iter()
                    .find(|r| **r == input.to_lowercase());
                let table = self.symbols.get(focus).cloned().unwrap_or_default();
                let source = match reg {
                    Some(r) => Ok(MemSource::Register(r)),
                    None => table
                        .parse_location(&input)
                        .map(|a| MemSource::Fixed(a, input.clone())),
                };
                match source {
                    Ok(s) => {
                        self.mem = s;
                        self.state.side_pane = SidePane::Memory;
                        self.submit(Job::Refresh);
                    }
                    Err(e) => self.error(e),
                }
            }
        }
    }
}

/// Whether event `e` has happened at the snapshot's cursor (the rule is
/// the index's: `EventRow::happened_at`).
pub fn happened(e: &EventRow, s: &crate::state::Snapshot) -> bool {
    e.happened_at(s.cursor)
}

/// Every frame row (one per destination), read once: links of the timeline and peers in the list.
fn load_frames(index: &Index) -> Result<Vec<FrameInfo>, String> {
    let rows = index.frame_edges(2_000_000).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|f| FrameInfo {
            id: f.id,
            src: f.src as usize,
            dst: f.dst as usize,
            sent: f.sent_vtime_ns,
            recv: f.recv_vtime_ns,
            arrival: f.arrival_ns,
            received: f.fate == FrameFate::Received,
        })
        .collect())
}

/// Positions in `frames` of each frame id's rows.
fn frames_by_id(frames: &[FrameInfo]) -> HashMap<u64, Vec<usize>> {
    let mut map: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in frames.iter().enumerate() {
        map.entry(f.id).or_default().push(i);
    }
    map
}
