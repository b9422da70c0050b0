//! `vmrr run IMAGE`: one VM, console to stdout, a summary line to stderr.

use super::CliError;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use vmrr_backend::{EventKind, Machine, RunLimit, Stop, VmConfig};

use super::{RunArgs, EXIT_GUEST_FAILED, EXIT_GUEST_STUCK};

/// Steps per `run` call between console flushes: small enough that output
/// appears promptly, large enough that the call overhead vanishes.
const CHUNK_STEPS: u64 = 20_000;

/// Runs one guest to completion or to `--max-steps`.
pub fn run(args: &RunArgs) -> Result<ExitCode, CliError> {
    let config = VmConfig {
        mem_bytes: args.mem,
        cmdline: args.cmdline.clone(),
        instr_per_us: args.rate,
        seed: args.seed,
        nic_mac: None,
    };
    let mut vm = Machine::new(&args.image, config).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut last_byte = b'\n';
    let stop = loop {
        let target = vm.icount().saturating_add(CHUNK_STEPS).min(args.max_steps);
        let result = vm.run(RunLimit::icount(target));
        for event in vm.take_events() {
            if let EventKind::Console(b) = event.kind {
                last_byte = b;
                // A closed stdout (e.g. `| head`) must not stop the VM's summary.
                let _ = out.write_all(&[b]);
            }
        }
        let _ = out.flush();
        match result {
            Ok(Stop::Limit) if vm.icount() < args.max_steps => continue,
            Ok(stop) => break stop,
            Err(e) => return Err(format!("{e}\n(after {} steps)", vm.icount()).into()),
        }
    };
    if last_byte != b'\n' {
        let _ = writeln!(out);
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        vm.icount() as f64 / secs
    } else {
        0.0
    };
    let hash = if args.hash {
        let h = vm.state_hash().map_err(|e| e.to_string())?;
        format!(", state {}", vmrr_backend::state::hex(&h))
    } else {
        String::new()
    };
    eprintln!(
        "vmrr: {} steps, virtual time {}, {}, {:.0} steps/s{}",
        vm.icount(),
        format_vtime(vm.vtime_ns()),
        stop,
        rate,
        hash
    );
    Ok(match stop {
        Stop::Exited(0) | Stop::Limit => ExitCode::SUCCESS,
        Stop::Exited(_) => ExitCode::from(EXIT_GUEST_FAILED),
        Stop::HaltedForever | Stop::IdleForever | Stop::TripleFault => ExitCode::from(EXIT_GUEST_STUCK),
    })
}

/// Virtual nanoseconds as seconds with 9 decimals, e.g. `0.003141592 s`.
fn format_vtime(ns: u64) -> String {
    format!("{}.{:09} s", ns / 1_000_000_000, ns % 1_000_000_000)
}
