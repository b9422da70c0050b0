//! `vmrr tui`: the terminal UI over a trace, optionally serving gdb on the
//! same session (a move in gdb moves the TUI's cursor, and back).

use super::CliError;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use vmrr_debugger::session::Session;
use vmrr_gdb_bridge::{attach_command, serve_with, ServeOptions, GDB_SCRIPT};
use vmrr_tui::state::Message;

/// Arguments of `vmrr tui`.
#[derive(Debug, clap::Args)]
pub struct TuiArgs {
    /// The trace folder (made by `vmrr record`).
    pub trace: PathBuf,
    /// Also serve gdb on this TCP port (localhost), on the same session:
    /// moving in gdb moves the TUI's cursor.
    #[arg(long)]
    pub gdb_port: Option<u16>,
    /// Open the trace beside another (a fork beside its parent; with no
    /// value, the parent its index names): each VM's lane marks where its
    /// run first differs (`≠`), and `D` goes there.
    #[arg(long, value_name = "OTHER", num_args = 0..=1)]
    pub beside: Option<Option<PathBuf>>,
}

/// The trace to open beside: the one given, or the fork's parent.
fn beside(args: &TuiArgs, session: &Session) -> Result<Option<PathBuf>, CliError> {
    let given = match &args.beside {
        None => return Ok(None),
        Some(given) => given.clone(),
    };
    if let Some(other) = given {
        return Ok(Some(other));
    }
    let parent = session
        .trace()
        .index()
        .meta("fork.parent")
        .map_err(|e| e.to_string())?;
    match parent {
        Some(p) => Ok(Some(PathBuf::from(p))),
        None => Err(format!(
            "{} is not a fork: name the trace to open it beside (--beside OTHER)",
            args.trace.display()
        )
        .into()),
    }
}

/// Serves gdb on `listener` from a thread. Its log and errors go to the
/// TUI's status bar: nothing else may write on the screen.
fn serve_gdb(
    session: Arc<Mutex<Session>>,
    listener: TcpListener,
    notices: Sender<Message>,
) -> Result<(), String> {
    let log_tx = notices.clone();
    let options = ServeOptions {
        log: Arc::new(move |text: &str| {
            let _ = log_tx.send(Message {
                text: text.to_string(),
                error: false,
            });
        }),
    };
    std::thread::Builder::new()
        .name("vmrr-gdb".into())
        .spawn(move || {
            if let Err(e) = serve_with(session, listener, &options) {
                let _ = notices.send(Message {
                    text: format!("gdb server stopped: {e}"),
                    error: true,
                });
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the gdb thread: {e}"))
}

/// The gdb command line that attaches to this trace (first VM's image,
/// vmrr's gdb settings saved next to it when the trace is writable).
fn gdb_hint(trace: &Path, session: &Session, port: u16) -> String {
    let image = session
        .trace()
        .config()
        .vms
        .first()
        .map(|v| {
            if v.image.is_absolute() {
                v.image.clone()
            } else {
                trace.join(&v.image)
            }
        })
        .unwrap_or_default();
    let script = trace.join("vmrr.gdb");
    let script = std::fs::write(&script, GDB_SCRIPT).is_ok().then_some(script);
    format!("gdb: {}", attach_command(&image, port, script.as_deref()))
}

/// Opens the trace and runs the TUI until the user quits.
pub fn run(args: &TuiArgs) -> Result<ExitCode, CliError> {
    let session = Session::open(&args.trace).map_err(|e| e.to_string())?;
    let beside = beside(args, &session)?;
    let (tx, rx) = channel();
    if session.is_read_only() {
        // Session::open fell back to read-only: say so before a bookmark is refused.
        let _ = tx.send(Message {
            text: "read-only trace (read-only mount or no write permission): bookmarks cannot be added"
                .into(),
            error: false,
        });
    }
    let session = if let Some(port) = args.gdb_port {
        // Bind before the screen is taken over, so a busy port is a plain error.
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen for gdb on 127.0.0.1:{port}: {e}"))?;
        let _ = tx.send(Message {
            text: gdb_hint(&args.trace, &session, port),
            error: false,
        });
        let session = Arc::new(Mutex::new(session));
        serve_gdb(session.clone(), listener, tx)?;
        session
    } else {
        Arc::new(Mutex::new(session))
    };
    vmrr_tui::run(
        session,
        vmrr_tui::Options {
            gdb_port: args.gdb_port,
            notices: Some(rx),
            beside,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
