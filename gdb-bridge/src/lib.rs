//! The gdb remote target of vmrr: gdb attaches to a recording and sees the
//! cluster as it sees several programs.
//!
//! * **A VM is an inferior** (gdb's process `N` is VM `N`, counted from 1)
//!   with one thread, `N.1`. Each has its own address space and its own
//!   symbol file: gdb reads the path of the VM's image (the copy inside the
//!   trace) with `qXfer:exec-file:read` and loads it by itself.
//! * **All-stop as gdb expects it**: a continue moves the whole cluster in
//!   the cluster order, and every breakpoint or watchpoint hit is reported,
//!   those of several VMs at the same virtual time one after another;
//!   `reverse-continue` likewise backwards. Thread-scoped breakpoints
//!   (`break f thread 2.1`) stop only there.
//! * **No silent writes**: memory and register writes (and so `call`,
//!   `return`, `jump`) are refused with the reason and what to do instead.
//! * `monitor` commands take the moments and names of the rest of vmrr.
//!
//! vmrr speaks the remote protocol itself (`proto`: framing, packets,
//! replies; `areas`: one file per area of the protocol over the
//! connection's `state`), because a cluster needs the multiprocess
//! extensions, which gdbstub 0.7 does not offer (it reports one fixed
//! process). Everything that moves is a call of
//! [`vmrr_debugger::session::Session`], shared with other views (the TUI)
//! behind a mutex held only while a request is answered.
//!
//! What gdb needs besides `target extended-remote`: `set schedule-multiple
//! on` (a continue resumes every inferior) and the settings of
//! [`GDB_SCRIPT`]; [`gdb_command`] gives the whole command line.

#![warn(missing_docs)]

mod arch;
mod areas;
mod dispatch;
mod proto;
mod run;
mod server;
mod state;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use vmrr_debugger::session::Session;

pub use areas::HELP as MONITOR_HELP;

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

/// Serves the gdb remote protocol on `listener` over the shared `session`,
/// one gdb at a time (a second one is refused at once, with a message).
/// Blocks; returns only if the listener fails.
pub fn serve(session: Arc<Mutex<Session>>, listener: TcpListener) -> Result<(), GdbError> {
    serve_with(session, listener, &ServeOptions::default())
}

/// [`serve`] with options (a logger).
pub fn serve_with(
    session: Arc<Mutex<Session>>,
    listener: TcpListener,
    options: &ServeOptions,
) -> Result<(), GdbError> {
    server::serve(session, listener, options)
}

/// Serves one already accepted gdb connection until gdb detaches or goes
/// away. Breakpoints and watchpoints it set leave the session when it ends.
pub fn serve_connection(
    session: Arc<Mutex<Session>>,
    stream: TcpStream,
    options: &ServeOptions,
) -> Result<(), GdbError> {
    server::serve_connection(session, stream, options.log.clone())
}

/// gdb settings for a vmrr server, to load after `target extended-remote`
/// (gdb must also `set schedule-multiple on`; [`gdb_command`] does both):
///
/// * `set scheduler-locking step`: steps name their VM (gdb's `bs` carries
///   no thread otherwise), while continues still move the whole cluster;
/// * `unset tdesc filename` in each inferior but the first: gdb 13 reads
///   the target description only for the inferior it connected with, and
///   would read the others' registers in the ELF's default layout;
/// * before each prompt and after each `monitor` command, `monitor sync`:
///   gdb drops its cached registers when the cursor moved outside its own
///   resumes (a `monitor goto`, the TUI), selects the VM a `monitor` move
///   went to, and prints the notices no reply could carry (gdb 13 says only
///   "Cannot access memory" for a refused memory write);
/// * one resume with inferior 1 selected, which the server answers without
///   moving: without it gdb 13 hangs in the first `continue` whose stop is
///   in inferior 1 while another inferior is selected;
/// * the session's focus VM is then selected.
pub const GDB_SCRIPT: &str = r#"# vmrr: gdb settings for a vmrr recording (load after `target extended-remote`).
# Steps name the selected VM; continues still move the whole cluster.
set scheduler-locking step
python
import gdb

_vmrr_busy = False

def _vmrr_sync(*_):
    """Asks the server what gdb must redo: drop cached registers, select a VM, print notices."""
    global _vmrr_busy
    if _vmrr_busy:
        return
    _vmrr_busy = True
    try:
        out = gdb.execute("monitor sync", to_string=True)
    except gdb.error:
        return
    finally:
        _vmrr_busy = False
    for line in out.splitlines():
        if line == "flush":
            gdb.execute("maintenance flush register-cache")
        elif line.startswith("select "):
            gdb.execute("inferior " + line[len("select "):])
        elif line == "frame":
            gdb.execute("frame")
        elif line:
            print(line)

gdb.events.before_prompt.connect(_vmrr_sync)
end
# gdb reads the target description (vmrr's registers) only for inferior 1;
# the other inferiors would take the ELF's default layout. Read it for each
# (switching quietly: their frames cannot be shown before).
python
for _inf in gdb.inferiors():
    if _inf.num != 1 and _inf.pid != 0 and _inf.threads():
        _inf.threads()[0].switch()
        gdb.execute("unset tdesc filename", to_string=True)
if gdb.inferiors()[0].threads():
    gdb.inferiors()[0].threads()[0].switch()
end
# A monitor command may move the cursor: drop gdb's cached registers and frames.
define hookpost-monitor
  python _vmrr_sync()
end
# gdb 13 hangs in the first continue that stops in inferior 1 while another
# inferior is selected, unless inferior 1 resumed once: the server answers
# this step without moving. Then select the VM the server stands at.
python
_vmrr_busy = True
try:
    gdb.execute("set suppress-cli-notifications on")
    gdb.execute("monitor null-resume", to_string=True)
    gdb.execute("stepi", to_string=True)
finally:
    gdb.execute("set suppress-cli-notifications off")
    _vmrr_busy = False
_vmrr_sync()
end
"#;

/// The arguments that start gdb on a server at `port` of this machine,
/// with every setting vmrr needs, loading `script` (a file holding
/// [`GDB_SCRIPT`]).
pub fn gdb_args(port: u16, script: &Path) -> Vec<String> {
    [
        "-q",
        "-ex",
        "set sysroot /",
        "-ex",
        "set remotetimeout 60",
        "-ex",
        "set schedule-multiple on",
        "-ex",
        &format!("target extended-remote 127.0.0.1:{port}"),
        "-x",
        &script.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`gdb_args`] as a command line for a shell.
pub fn gdb_command(port: u16, script: &Path) -> String {
    let quote = |s: &str| {
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    let mut line = String::from("gdb");
    for arg in gdb_args(port, script) {
        line.push(' ');
        line.push_str(&quote(&arg));
    }
    line
}

/// The command that attaches gdb to a server on `port`, loading `script`
/// (a file holding [`GDB_SCRIPT`]) if given. `image` is not needed any
/// more (gdb loads every VM's image by itself) and is kept for callers of
/// the first version.
pub fn attach_command(_image: &Path, port: u16, script: Option<&Path>) -> String {
    match script {
        Some(script) => gdb_command(port, script),
        None => format!(
            "gdb -q -ex 'set sysroot /' -ex 'set schedule-multiple on' -ex 'target extended-remote 127.0.0.1:{port}' \
             -ex 'set scheduler-locking step'"
        ),
    }
}
