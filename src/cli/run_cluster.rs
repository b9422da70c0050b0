//! `vmrr run cluster.toml`: every VM's console, merged in virtual-time order
//! and prefixed with the VM's name and time, then a summary per VM.

use super::CliError;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use vmrr_backend::{EventKind, Stop};
use vmrr_debugger::cluster::{Cluster, ClusterConfig, ClusterOptions, ClusterStop, FrameFate};

use super::{RunArgs, EXIT_GUEST_FAILED, EXIT_GUEST_STUCK};

/// Gathers console bytes into lines, each stamped with the virtual time of
/// its newline (so lines complete in stamp order across windows).
struct LineAssembler {
    partial: Vec<Vec<u8>>,
}

impl LineAssembler {
    fn feed(&mut self, vm: usize, byte: u8, vtime_ns: u64, out: &mut Vec<(u64, usize, String)>) {
        if byte == b'\n' {
            let text = String::from_utf8_lossy(&std::mem::take(&mut self.partial[vm])).into_owned();
            out.push((vtime_ns, vm, text));
        } else if byte != b'\r' {
            self.partial[vm].push(byte);
        }
    }
}

fn format_ms(ns: u64) -> String {
    format!("{:>4}.{:06} ms", ns / 1_000_000, ns % 1_000_000)
}

/// Runs the cluster described by `path`.
pub fn run(path: &Path, args: &RunArgs) -> Result<ExitCode, CliError> {
    let config = ClusterConfig::load(path).map_err(|e| e.to_string())?;
    let names: Vec<String> = config.vms.iter().map(|v| v.name.clone()).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let options = ClusterOptions {
        jobs: args.jobs.unwrap_or(ClusterOptions::default().jobs),
        max_steps: args.max_steps,
        max_vtime_ns: args.max_vtime_ns.unwrap_or(u64::MAX),
        host_jitter: args.host_jitter,
    };
    let mut cluster = Cluster::new(config, options).map_err(|e| e.to_string())?;
    let mut lines = LineAssembler {
        partial: vec![Vec::new(); names.len()],
    };
    let started = Instant::now();
    let stdout = std::io::stdout();
    let stop = cluster.run(|c| {
        let mut ready = Vec::new();
        for e in c.take_events() {
            if let EventKind::Console(b) = e.event.kind {
                lines.feed(e.vm, b, e.event.vtime_ns, &mut ready);
            }
        }
        ready.sort_by_key(|(t, vm, _)| (*t, *vm));
        let mut out = stdout.lock();
        for (t, vm, text) in ready {
            let _ = writeln!(out, "[{}] {:<width$} | {}", format_ms(t), names[vm], text);
        }
        let _ = out.flush();
        true
    });
    let stop = stop.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();

    let mut total_steps = 0;
    let mut worst = ExitCode::SUCCESS;
    for (i, name) in names.iter().enumerate() {
        let vm = cluster.machine(i);
        total_steps += vm.icount();
        let why = match cluster.vm_stop(i) {
            Some(Stop::Limit) => "step limit reached".to_string(),
            Some(stop) => stop.to_string(),
            None => "still running".to_string(),
        };
        match cluster.vm_stop(i) {
            Some(Stop::Exited(0)) | Some(Stop::Limit) | None => {}
            Some(Stop::Exited(_)) => worst = ExitCode::from(EXIT_GUEST_FAILED),
            Some(_) => worst = ExitCode::from(EXIT_GUEST_STUCK),
        }
        eprintln!(
            "vmrr: {name:<width$}: {} steps, virtual time {}, {why}",
            vm.icount(),
            format_ms(vm.vtime_ns()).trim_start()
        );
    }
    let frames = cluster.frames();
    let delivered = frames.iter().filter(|f| f.fate == FrameFate::Received).count();
    let lost = frames
        .iter()
        .filter(|f| !matches!(f.fate, FrameFate::Received | FrameFate::InFlight))
        .count();
    let how = match &stop {
        ClusterStop::AllStopped => "every VM stopped".to_string(),
        ClusterStop::TimeLimit => "virtual-time limit reached".to_string(),
        ClusterStop::Deadlock(vms) => {
            let waiting: Vec<&str> = vms.iter().map(|&i| names[i].as_str()).collect();
            worst = ExitCode::from(EXIT_GUEST_STUCK);
            format!(
                "deadlock: {} wait forever (halted, no timer, no frame in flight)",
                waiting.join(", ")
            )
        }
        ClusterStop::Interrupted => "interrupted".to_string(),
    };
    eprintln!(
        "vmrr: cluster: {how}; {} frames delivered, {} lost; {} steps in {:.2} s ({:.0} steps/s)",
        delivered,
        lost,
        total_steps,
        secs,
        total_steps as f64 / secs.max(1e-9)
    );
    Ok(worst)
}
