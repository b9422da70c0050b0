//! `vmrr gdb`: serve a trace to a gdb started elsewhere (an IDE, another
//! terminal); and `vmrr replay TRACE` without `--verify`: serve it and start
//! gdb on it in one command, as `rr replay` does.
//!
//! gdb's settings for vmrr go into a file of the temporary folder (one per
//! user), never into the trace: a trace may be read-only, and stays as
//! recorded.

use super::CliError;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};

use vmrr_debugger::session::{Moment, Session};
use vmrr_gdb_bridge::{gdb_args, gdb_command, serve_with, ServeOptions, GDB_SCRIPT};

use super::replay::ReplayArgs;

/// Arguments of `vmrr gdb`.
#[derive(Debug, clap::Args)]
pub struct GdbArgs {
    /// The trace folder.
    pub trace: PathBuf,
    /// Where to stand when gdb attaches: a time (12.5ms), an icount (of the
    /// --vm VM, else the first), VM:ICOUNT (backup2:4500), #EVENT, start,
    /// end (of the --vm VM, else the first), or a bookmark name (spaces
    /// allowed). Default: the start.
    #[arg(long)]
    pub at: Option<String>,
    /// TCP port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 1234)]
    pub port: u16,
    /// Address to listen on. gdb's protocol has no authentication: keep it
    /// local unless the network is trusted.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    /// The VM gdb selects first (by name or number from 1); default: the
    /// VM of the --at moment.
    #[arg(long)]
    pub vm: Option<String>,
}

/// Where gdb's settings for vmrr are written: one file per user in the
/// temporary folder (a folder only that user can enter), rewritten by every
/// run, so that the path an IDE configuration names stays valid and killed
/// servers leave nothing behind.
fn settings_file() -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot tell who runs vmrr (/proc/self): {e}"))?;
    let dir = std::env::temp_dir().join(format!("vmrr-{uid}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
    }
    // Someone else's folder (or a link to one) must not hold our settings.
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a private folder of this user: remove it and run again",
            dir.display()
        ));
    }
    let path = dir.join("gdb-settings.gdb");
    let partial = dir.join(format!("gdb-settings.{}.tmp", std::process::id()));
    std::fs::write(&partial, GDB_SCRIPT)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|e| format!("cannot write gdb's settings to {}: {e}", path.display()))?;
    Ok(path)
}

/// Opens the trace standing at `at`, with `vm` as the focus. The VM is the
/// focus before the move too, so that the moments that name no VM (`end`,
/// a bare icount) are that VM's.
fn open_at(trace: &Path, at: Option<&str>, vm: Option<&str>) -> Result<Session, CliError> {
    // A damaged trace gets its own exit status.
    let mut session = Session::open(trace).map_err(|e| CliError::of(&e))?;
    let vm = match vm {
        Some(name) => Some(session.vm_by_name(name).map_err(|e| format!("--vm: {e}"))?),
        None => None,
    };
    if let Some(vm) = vm {
        session.set_focus(vm).map_err(|e| e.to_string())?;
    }
    if let Some(at) = at {
        let moment = Moment::parse(at).map_err(|e| format!("--at: {e}"))?;
        session
            .goto_moment(&moment)
            .map_err(|e| format!("--at {at}: {e}"))?;
    }
    if let Some(vm) = vm {
        session.set_focus(vm).map_err(|e| e.to_string())?;
    }
    Ok(session)
}

/// `inferior 1 = primary, 2 = backup1, …`
fn inferiors(session: &Session) -> String {
    session
        .vm_ids()
        .map(|vm| format!("{} = {}", vm + 1, session.vm_name(vm)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the session stands, for the banner.
fn standing(session: &mut Session) -> String {
    let focus = session.focus();
    match session.position(focus) {
        Ok(p) => format!(
            "standing at {} icount {}, {}",
            session.vm_name(focus),
            p.icount,
            vmrr_debugger::vtime::format_ms(p.vtime_ns)
        ),
        Err(e) => e.to_string(),
    }
}

/// `vmrr gdb`: serves until killed; one gdb at a time.
pub fn run(args: &GdbArgs) -> Result<ExitCode, CliError> {
    let mut session = open_at(&args.trace, args.at.as_deref(), args.vm.as_deref())?;
    let listener = TcpListener::bind((args.listen, args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.listen, args.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let script = settings_file()?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "vmrr gdb: serving {} on {}:{port} (inferior {}), {}",
        args.trace.display(),
        args.listen,
        inferiors(&session),
        standing(&mut session)
    );
    let _ = writeln!(out, "attach with:\n  {}", gdb_command(port, &script));
    let _ = writeln!(
        out,
        "(every VM's symbols load by themselves; `monitor help` lists vmrr's commands; \
         an IDE runs the same commands: see README.md)"
    );
    let _ = out.flush();
    drop(out);
    let options = ServeOptions {
        log: Arc::new(|msg: &str| eprintln!("vmrr gdb: {msg}")),
    };
    serve_with(Arc::new(Mutex::new(session)), listener, &options).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `vmrr replay TRACE`: serves the trace on a free local port and runs gdb
/// on it in this terminal; ends when gdb does, with gdb's exit status.
pub fn replay(args: &ReplayArgs) -> Result<ExitCode, CliError> {
    let mut session = open_at(&args.trace, args.at.as_deref(), args.vm.as_deref())?;
    if let Some(jobs) = args.jobs {
        session.set_jobs(jobs);
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot listen on a local port: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let script = settings_file()?;
    let session = Arc::new(Mutex::new(session));
    // gdb owns the terminal: the server speaks only through gdb (console
    // packets, `monitor sync`).
    std::thread::Builder::new()
        .name("vmrr-gdb".into())
        .spawn(move || serve_with(session, listener, &ServeOptions::default()))
        .map_err(|e| format!("cannot start the gdb server: {e}"))?;
    // Ctrl-C in the terminal goes to gdb (it interrupts a search) and to
    // this process too, which must outlive gdb.
    let _ = ctrlc::set_handler(|| {});
    let gdb = std::env::var_os("VMRR_GDB").unwrap_or_else(|| "gdb".into());
    let status = Command::new(&gdb)
        .args(gdb_args(port, &script))
        .args(&args.gdb_args)
        .status()
        .map_err(|e| {
            format!(
                "cannot start {}: {e} (install gdb: scripts/install-deps.sh, or set VMRR_GDB)",
                Path::new(&gdb).display()
            )
        })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}
