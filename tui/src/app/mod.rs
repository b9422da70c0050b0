//! The application: [`App`] owns the [`AppState`] the screen shows, hands
//! session work to the [`Worker`] and takes its finished jobs back into the
//! state (this file). Keys become actions and moves in [`input`]; the
//! index-derived views (timeline, events, console, bookmarks) are read in
//! [`views`] through a read-only connection of the App's own, so the UI
//! never waits for the session.
//!
//! Where the cursor lands is the Session's business: the App submits
//! [`Move`](vmrr_debugger::session::Move)s and shows what they did; which
//! event "has happened" is the index's rule (`EventRow::happened_at`).

mod input;
mod views;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::KeyEvent;
use vmrr_debugger::dwarf::Program;
use vmrr_debugger::session::{FrameEnd, Session};

use crate::analyses::Answer;
use crate::state::{AppState, BreakpointInfo, Busy, ListPane, MemSource, Message, VmInfo};
use crate::worker::{Done, Job, Request, Worker};
use views::IndexViews;

/// Jobs queued behind a running one.
const QUEUE_CAP: usize = 16;
/// Keys held while a job runs (typed faster than the jobs run).
const KEY_QUEUE_CAP: usize = 64;
/// Registers are highlighted as changed only after a move of at most this
/// many instructions on the same VM: after a long jump everything differs.
const HIGHLIGHT_REACH: u64 = 64;

/// Options of the TUI.
#[derive(Debug, Default)]
pub struct Options {
    /// The gdb port, shown in the status bar when gdb is served too.
    pub gdb_port: Option<u16>,
    /// Messages from other threads (the gdb server's log), shown in the
    /// status bar: the screen belongs to the TUI, so nobody else may print.
    pub notices: Option<std::sync::mpsc::Receiver<Message>>,
    /// Another trace to open this one beside (a fork's parent): compared
    /// on the worker as the App starts, its divergences marked on the lanes.
    pub beside: Option<PathBuf>,
}

/// The application: state, session, worker.
pub struct App {
    /// What the screen shows.
    pub state: AppState,
    session: Arc<Mutex<Session>>,
    views: IndexViews,
    worker: Worker,
    cancel: Arc<AtomicBool>,
    pending: VecDeque<Job>,
    /// Keys typed while a job was running: they apply to the state that job
    /// leaves, so they wait for it (a second `p` must see where the first went).
    held_keys: VecDeque<KeyEvent>,
    running: Option<Job>,
    mem: MemSource,
    /// Each VM's image: symbols and DWARF (shared with the worker).
    programs: Vec<Arc<Program>>,
    /// The frame event the last follow started from (to follow it again
    /// to the receiver the user picks).
    follow_from: Option<u64>,
    /// The receivers of a flooded frame the user is asked to pick from.
    choices: Vec<FrameEnd>,
    last_generation_poll: Instant,
    notices: Option<std::sync::mpsc::Receiver<Message>>,
    /// The trace's folder, as opened (a fork's folder goes beside it).
    trace_dir: PathBuf,
    quit: bool,
}

impl App {
    /// Opens the application over a session (the cursor stays where the
    /// session has it) and starts its worker.
    pub fn new(session: Arc<Mutex<Session>>, options: Options) -> Result<App, String> {
        let (vms, trace_name, programs, views, cancel, trace_dir) = {
            let s = session.lock().unwrap_or_else(|p| p.into_inner());
            let trace = s.trace();
            let rows = trace.index().vms().map_err(|e| e.to_string())?;
            let vms: Vec<VmInfo> = s
                .vm_ids()
                .map(|vm| VmInfo {
                    name: vmrr_debugger::describe::printable(s.vm_name(vm)),
                    end_icount: s.end_icount(vm),
                    end_vtime: rows
                        .get(vm as usize)
                        .and_then(|r| r.final_vtime_ns)
                        .or_else(|| trace.checkpoints(vm as usize).last().map(|c| c.vtime_ns))
                        .unwrap_or(0),
                })
                .collect();
            // An image without symbols still disassembles, with addresses
            // only; one without DWARF has no source view.
            let programs: Vec<Arc<Program>> = (0..s.vm_count())
                .map(|vm| Arc::new(Program::for_vm(trace, vm).unwrap_or_default()))
                .collect();
            let name = trace
                .dir()
                .file_name()
                .map(|n| vmrr_debugger::describe::printable(&n.to_string_lossy()))
                .unwrap_or_else(|| "trace".into());
            let views = IndexViews::open(trace, &vms)?;
            // `.` has no name to put `-fork-1` after: name it in full.
            let dir = match trace.dir().file_name() {
                Some(_) => trace.dir().to_path_buf(),
                None => std::fs::canonicalize(trace.dir()).unwrap_or_else(|_| trace.dir().to_path_buf()),
            };
            (vms, name, programs, views, s.cancel_flag(), dir)
        };
        let end_vtime = vms.iter().map(|v| v.end_vtime).max().unwrap_or(0);
        let worker = Worker::start(session.clone(), programs.clone());
        let mut app = App {
            state: AppState {
                trace_name,
                vms,
                end_vtime,
                gdb_port: options.gdb_port,
                ..AppState::default()
            },
            session,
            views,
            worker,
            cancel,
            pending: VecDeque::new(),
            held_keys: VecDeque::new(),
            running: None,
            mem: MemSource::default(),
            programs,
            follow_from: None,
            choices: Vec::new(),
            last_generation_poll: Instant::now(),
            notices: options.notices,
            trace_dir,
            quit: false,
        };
        app.state.timeline.show_all(end_vtime);
        app.reload_events();
        app.reload_bookmarks();
        app.submit(Job::Refresh);
        if let Some(other) = options.beside {
            app.submit(Job::Compare(other));
        }
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
                        .programs
                        .get(vm)
                        .map(|p| crate::format::code_place(p, b.addr))
                        .unwrap_or_else(|| format!("{:#x}", b.addr)),
                }
            })
            .collect();
        if bookmarks_changed || self.state.bookmarks.rows.is_empty() {
            self.reload_bookmarks();
        }
        let snap = &self.state.snapshot;
        self.state
            .timeline
            .keep_in_view(snap.cursor_vtime.max(snap.vtime));
        self.reload_console();
        if self.state.events.window_misses(self.state.snapshot.vtime) {
            self.reload_events();
        }
        self.choices = done.choices;
        match done.answer {
            Some(Answer::Calls(calls)) => {
                self.state.calls = Some(calls);
                self.state.list_pane = ListPane::Calls;
            }
            Some(Answer::Origin(origin)) => {
                self.state.origin = Some(origin);
                self.state.list_pane = ListPane::Origin;
            }
            Some(Answer::Compare(compare)) => self.state.compare = Some(compare),
            None => {}
        }
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
}
