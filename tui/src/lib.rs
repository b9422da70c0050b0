//! vmrr's terminal UI: a ratatui application over a time-travel
//! [`Session`](vmrr_debugger::session::Session).
//!
//! The structure follows ratatui's examples: [`app::App`] holds the model
//! (dispatch in `app/mod.rs`, keys in `app/input.rs`, index-derived views
//! in `app/views.rs`), one key table ([`keys::KEYMAP`]) drives both the key
//! handling and the help overlay, [`state::AppState`] is plain data whose
//! parts (the lists, the timeline) own their movement, [`render::render`]
//! draws a state and nothing else, and every view is one widget in
//! [`widgets`]. Where the cursor lands is the Session's decision: keys
//! become `Move`s. Session operations run on a worker thread ([`worker`]), so
//! the screen keeps drawing (with progress) during a long search, and the
//! same session can be driven by gdb at the same time: the app notices the
//! session's generation change and redraws.

#![warn(missing_docs)]

pub mod analyses;
pub mod app;
pub mod format;
pub mod keys;
pub mod payload;
pub mod render;
pub mod snapshot;
pub mod state;
pub mod widgets;
pub mod worker;

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use app::{App, Options};
/// The ratatui this crate draws with (for tests that use its `TestBackend`).
pub use ratatui;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
pub use render::render;
use vmrr_debugger::session::Session;

/// How often the loop wakes without input, to pick up progress and gdb's moves.
const TICK: Duration = Duration::from_millis(30);

/// Runs the TUI on the terminal until the user quits.
pub fn run(session: Arc<Mutex<Session>>, options: Options) -> Result<(), String> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err("vmrr tui needs a terminal (stdin and stdout must be a tty)".into());
    }
    let mut app = App::new(session, options)?;
    // try_init restores the terminal on panic too.
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    let result = event_loop(&mut terminal, &mut app);
    let restored = ratatui::try_restore();
    result?;
    restored.map_err(|e| format!("cannot restore the terminal: {e}"))
}

fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App) -> Result<(), String> {
    let io = |e: std::io::Error| format!("terminal: {e}");
    let mut dirty = true;
    loop {
        if app.tick() {
            dirty = true;
        }
        if dirty {
            terminal.draw(|f| render(&app.state, f)).map_err(io)?;
            dirty = false;
        }
        if app.should_quit() {
            return Ok(());
        }
        if event::poll(TICK).map_err(io)? {
            // Take every pending input before drawing again.
            loop {
                match event::read().map_err(io)? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => app.on_key(key),
                    Event::Resize(..) => {}
                    _ => {}
                }
                dirty = true;
                if app.should_quit() || !event::poll(Duration::ZERO).map_err(io)? {
                    break;
                }
            }
        }
    }
}
