//! The gdb remote target of vmrr: gdb attaches to a recording as to any
//! remote target and moves through it with `stepi`, `continue`,
//! `reverse-stepi`, `reverse-continue`, breakpoints and watchpoints.
//!
//! * Each VM is a gdb thread: thread N is VM N-1, named in `info threads`.
//! * Registers and memory are those of the VM at the session's cursor;
//!   memory is read through the VM's own page tables. Memory writes change
//!   only the materialised copy and are undone before the cursor moves.
//! * Breakpoints and watchpoints are checked by the engine, never written
//!   into guest memory.
//! * A step moves one VM; a continue searches the VMs gdb resumes (all of
//!   them by default, one with `set scheduler-locking on`). At either end of
//!   the trace gdb prints "No more reverse-execution history".
//! * `monitor` commands move by instruction count, time, event or bookmark
//!   (`monitor help`).
//!
//! Everything is a call of [`vmrr_debugger::session::Session`], shared with
//! other views (the TUI) behind a mutex that is held only while a request is
//! answered; the bridge itself holds no time-travel logic.
//!
//! What gdb needs: nothing beyond `target remote` for registers, memory,
//! breakpoints and reverse execution. Two settings make the rest exact, and
//! [`GDB_SCRIPT`] holds them: gdb caches registers until the target stops,
//! so after a `monitor` command that moves the cursor it must flush them;
//! and gdb does not tell the target which thread is selected when it
//! resumes "any thread", so `set scheduler-locking step` makes step
//! commands name it (without it, `reverse-stepi` steps the thread of the
//! last stop or of the last `thread N`, which `thread apply` can mislead).

#![warn(missing_docs)]

mod arch;
mod breakpoints;
mod monitor;
mod packets;
mod resume;
mod server;
mod target;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use vmrr_debugger::session::Session;

pub use monitor::HELP as MONITOR_HELP;

/// Where the bridge reports what the person running the server should know
/// (a refused packet, a failed move). The TUI passes its own; the default
/// is silent, so that nothing writes over a full-screen view.
pub type Logger = Arc<dyn Fn(&str) + Send + Sync>;

/// Errors that end a gdb connection or the server.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    /// The listening socket or a connection failed.
    #[error("gdb connection: {0}")]
    Io(#[from] std::io::Error),
    /// gdbstub could not be set up.
    #[error("gdb stub: {0}")]
    Stub(String),
}

/// Options of [`serve_with`].
#[derive(Clone)]
pub struct ServeOptions {
    /// Messages for the person running the server.
    pub log: Logger,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            log: Arc::new(|_| {}),
        }
    }
}

/// Serves the gdb remote protocol on `listener`, one client at a time, over
/// the shared `session`. Blocks; returns only if the listener fails. Each
/// request locks the session while it is answered, so other views can
/// redraw between gdb's requests, and every move goes through the session's
/// own methods, which bump its generation.
pub fn serve(session: Arc<Mutex<Session>>, listener: TcpListener) -> Result<(), GdbError> {
    serve_with(session, listener, &ServeOptions::default())
}

/// [`serve`] with options (a logger).
pub fn serve_with(
    session: Arc<Mutex<Session>>,
    listener: TcpListener,
    options: &ServeOptions,
) -> Result<(), GdbError> {
    for stream in listener.incoming() {
        let stream = stream?;
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        (options.log)(&format!("gdb connected from {peer}"));
        match serve_connection(session.clone(), stream, options) {
            Ok(()) => (options.log)(&format!("gdb from {peer} disconnected")),
            Err(e) => (options.log)(&format!("gdb from {peer}: {e}")),
        }
    }
    Ok(())
}

/// Serves one already accepted gdb connection until gdb detaches or goes
/// away. Breakpoints and watchpoints it set are removed from the session,
/// and memory it wrote is restored, when it ends.
pub fn serve_connection(
    session: Arc<Mutex<Session>>,
    stream: TcpStream,
    options: &ServeOptions,
) -> Result<(), GdbError> {
    server::serve_connection(session, stream, options.log.clone())
}

/// gdb commands to load with `-x` after `target remote`: flush gdb's
/// register cache after each `monitor` command (which may move the cursor),
/// and make step commands name the selected thread.
pub const GDB_SCRIPT: &str = "\
# vmrr: gdb settings for a vmrr recording (load after `target remote`).
# A monitor command may move the cursor: drop gdb's cached registers and frames.
define hookpost-monitor
  maintenance flush register-cache
end
# Steps name the selected thread (VM); continues still run the whole cluster.
set scheduler-locking step
";

/// The command that attaches gdb to a server on `port`, with symbols from
/// `image`, loading `script` (a file holding [`GDB_SCRIPT`]) if given.
pub fn attach_command(image: &Path, port: u16, script: Option<&Path>) -> String {
    let quote = |p: &Path| {
        let s = p.display().to_string();
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
        {
            s
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut cmd = format!("gdb {} -ex 'target remote :{port}'", quote(image));
    if let Some(script) = script {
        cmd += &format!(" -x {}", quote(script));
    }
    cmd
}
