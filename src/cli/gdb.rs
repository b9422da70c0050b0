//! `vmrr gdb`: serve a trace to gdb over the remote protocol.

use super::CliError;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use vmrr_debugger::session::Session;
use vmrr_gdb_bridge::{attach_command, serve_with, ServeOptions, GDB_SCRIPT};

/// Arguments of `vmrr gdb`.
#[derive(Debug, clap::Args)]
pub struct GdbArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// TCP port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 1234)]
    pub port: u16,
    /// Address to listen on. gdb's protocol has no authentication: keep it
    /// local unless the network is trusted.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    /// The VM to start with (the focus; its image is suggested for symbols).
    #[arg(long)]
    pub vm: Option<String>,
}

/// Where to keep the gdb script: in the trace (next to the images gdb
/// loads), else in the temporary folder if the trace is read-only.
fn write_script(trace: &Path) -> Option<PathBuf> {
    let candidates = [
        trace.join("vmrr.gdb"),
        std::env::temp_dir().join(format!("vmrr-{}.gdb", std::process::id())),
    ];
    candidates
        .into_iter()
        .find(|p| std::fs::write(p, GDB_SCRIPT).is_ok())
}

/// Serves until killed; one gdb at a time.
pub fn run(args: &GdbArgs) -> Result<ExitCode, CliError> {
    let mut session = Session::open(&args.trace).map_err(|e| e.to_string())?;
    if let Some(name) = &args.vm {
        let vm = session.vm_by_name(name).map_err(|e| e.to_string())?;
        session.set_focus(vm).map_err(|e| e.to_string())?;
    }
    let listener = TcpListener::bind((args.listen, args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.listen, args.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();

    let focus = session.focus() as usize;
    let image = session
        .trace()
        .dir()
        .join(&session.trace().config().vms[focus].image);
    let image = if image.is_file() {
        image
    } else {
        session.trace().config().vms[focus].image.clone()
    };
    let threads: Vec<String> = session
        .vm_ids()
        .map(|vm| format!("thread {} = {}", vm + 1, session.vm_name(vm)))
        .collect();
    let script = write_script(&args.trace);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "vmrr gdb: serving {} on {}:{port} ({})",
        args.trace.display(),
        args.listen,
        threads.join(", ")
    );
    let _ = writeln!(
        out,
        "attach with:\n  {}",
        attach_command(&image, port, script.as_deref())
    );
    let _ = writeln!(
        out,
        "(the script flushes gdb's registers after `monitor` commands and sets `scheduler-locking step`; \
         no `set architecture` is needed; `monitor help` lists vmrr's commands)"
    );
    let _ = out.flush();
    drop(out);

    let options = ServeOptions {
        log: Arc::new(|msg: &str| eprintln!("vmrr gdb: {msg}")),
    };
    serve_with(Arc::new(Mutex::new(session)), listener, &options).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
