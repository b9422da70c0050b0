//! The gdb target's speed, through the real gdb: the latency of
//! `reverse-stepi` at positions spread over a long single-VM trace, and
//! `reverse-continue` over the whole trace (a breakpoint never hit) against
//! plain forward replay of the same span in the same run.
//!
//! Run with `cargo bench --bench gdb` (needs gdb with Python and /dev/kvm;
//! about four minutes here: recording the 5M steps takes about 50 s, and
//! each forward replay of them as long). It rewrites its section of
//! BENCHMARKS.md. `VMRR_BENCH_GDB_TRACE=DIR` reuses a trace recorded with
//! `vmrr record guests/build/compute.elf --cmdline iters=240000 -o DIR`.

mod report;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use vmrr_debugger::trace::Trace;

/// `compute` rounds: 22 instructions each, so about 5.3 million steps.
const ITERS: u64 = 240_000;
const MIN_STEPS: u64 = 5_000_000;
/// Positions where `reverse-stepi` is timed, spread over the trace.
const POSITIONS: usize = 8;
/// `reverse-stepi`s timed at each position.
const STEPS_PER_POSITION: usize = 20;
const TARGET_STEP_MS: f64 = 50.0;
const TARGET_RATIO: f64 = 0.6;
/// An address the compute guest never executes.
const NEVER_HIT: &str = "*0x10";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("gdb benchmark: {msg}");
    std::process::exit(1)
}

/// The measurements, run inside gdb (Python times each command).
const SCRIPT: &str = r#"
import gdb, os, time

def timed(cmd):
    t = time.perf_counter()
    gdb.execute(cmd, to_string=True)
    return time.perf_counter() - t

positions = [int(p) for p in os.environ["VMRR_BENCH_POSITIONS"].split(",")]
steps = int(os.environ["VMRR_BENCH_STEPS"])
for p in positions:
    gdb.execute("monitor goto %d" % p, to_string=True)
    for i in range(steps):
        print("RSTEP %d %d %.6f" % (p, i, timed("reverse-stepi")))
gdb.execute("monitor goto end", to_string=True)
gdb.execute("break " + os.environ["VMRR_BENCH_NEVER_HIT"], to_string=True)
print("RCONT %.6f" % timed("reverse-continue"))
print("AT-START " + gdb.execute("monitor when", to_string=True).strip())
"#;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn vmrr() -> &'static str {
    env!("CARGO_BIN_EXE_vmrr")
}

fn record(dir: &Path) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let started = Instant::now();
    let out = Command::new(vmrr())
        .arg("record")
        .arg(vmrr_guests::image("compute"))
        .args(["--cmdline", &format!("iters={ITERS}"), "-o"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run vmrr record: {e}")));
    if !out.status.success() {
        fail(format!(
            "vmrr record failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let trace = Trace::open(dir, false).unwrap_or_else(|e| fail(e));
    (secs, trace.end_icount(0))
}

/// Plain forward replay of the whole trace on one thread: restore the first
/// checkpoint and run to the end.
fn forward_replay(dir: &Path, end: u64) -> f64 {
    let trace = Trace::open(dir, false).unwrap_or_else(|e| fail(e));
    let started = Instant::now();
    let (mut m, mut next) = trace.machine_at_checkpoint(0, 0).unwrap_or_else(|e| fail(e));
    trace
        .run_to(0, &mut m, &mut next, end, usize::MAX)
        .unwrap_or_else(|e| fail(e));
    let secs = started.elapsed().as_secs_f64();
    if m.icount() != end {
        fail(format!("forward replay stopped at {} of {end}", m.icount()));
    }
    secs
}

/// Starts `vmrr gdb` on `dir`; returns it, its port and its gdb settings.
fn start_server(dir: &Path) -> (Server, u16, PathBuf) {
    let mut child = Command::new(vmrr())
        .arg("gdb")
        .arg(dir)
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(format!("cannot start vmrr gdb: {e}")));
    let stdout = child.stdout.take();
    let mut server = Server(child);
    // `fail` exits at once, without running destructors: stop the server first.
    let mut bail = |msg: String| -> ! {
        let _ = server.0.kill();
        let _ = server.0.wait();
        fail(msg)
    };
    let stdout = stdout.unwrap_or_else(|| bail("no stdout".into()));
    let mut banner = String::new();
    let mut reader = BufReader::new(stdout);
    // The port is on the first line, the attach command on the third.
    for _ in 0..3 {
        let _ = reader.read_line(&mut banner);
    }
    let port = banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| bail(format!("no port in {banner:?}")));
    let settings = banner
        .split(" -x ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .unwrap_or_else(|| bail(format!("no settings in {banner:?}")));
    (server, port, settings)
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn main() {
    // VMRR_BENCH_GDB_TRACE names a trace recorded earlier (kept afterwards),
    // to re-run the measurements without recording again.
    let kept = std::env::var_os("VMRR_BENCH_GDB_TRACE").map(PathBuf::from);
    let dir: PathBuf = kept
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("vmrr-bench-gdb"));
    let (record_secs, end) = match &kept {
        Some(dir) => (
            0.0,
            Trace::open(dir, false).unwrap_or_else(|e| fail(e)).end_icount(0),
        ),
        None => record(&dir),
    };
    if end < MIN_STEPS {
        fail(format!("the trace has only {end} steps"));
    }
    println!("recorded {end} steps in {record_secs:.1} s");
    // The floor is measured before and after the gdb session (the host's
    // speed drifts by several percent over minutes) and averaged.
    let forward_before = forward_replay(&dir, end);
    println!("forward replay of the whole trace: {forward_before:.2} s");

    let script = std::env::temp_dir().join(format!("vmrr-bench-gdb-{}.py", std::process::id()));
    std::fs::write(&script, SCRIPT).unwrap_or_else(|e| fail(e));
    let (server, port, settings) = start_server(&dir);
    // Increasing positions: each `monitor goto` replays forward from the last.
    let positions: Vec<String> = (0..POSITIONS)
        .map(|i| ((2 * i as u64 + 1) * end / (2 * POSITIONS as u64)).to_string())
        .collect();
    let started = Instant::now();
    // As `vmrr replay` starts gdb: every VM's symbols from the trace,
    // vmrr's settings.
    let child = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "set pagination off"])
        .args(["-ex", "set sysroot /", "-ex", "set schedule-multiple on", "-ex"])
        .arg(format!("target extended-remote 127.0.0.1:{port}"))
        .arg("-x")
        .arg(&settings)
        .arg("-x")
        .arg(&script)
        .env("VMRR_BENCH_POSITIONS", positions.join(","))
        .env("VMRR_BENCH_STEPS", STEPS_PER_POSITION.to_string())
        .env("VMRR_BENCH_NEVER_HIT", NEVER_HIT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            // `fail` exits without running destructors: stop the server first.
            drop(server);
            fail(format!("cannot run gdb: {e}"))
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let _ = child.wait();
    drop(server);
    let _ = std::fs::remove_file(&script);
    println!("gdb session: {:.1} s", started.elapsed().as_secs_f64());
    let forward_after = forward_replay(&dir, end);
    println!("forward replay of the whole trace, again: {forward_after:.2} s");
    let forward = (forward_before + forward_after) / 2.0;

    let value = |tag: &str| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(tag)?.trim().parse().ok())
            .unwrap_or_else(|| fail(format!("no {tag} in gdb's output:\n{out}\n{err}")))
    };
    let mut steps: Vec<(usize, f64)> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("RSTEP ")?.split_whitespace();
            let (_, i, t) = (w.next()?, w.next()?, w.next()?);
            Some((i.parse().ok()?, t.parse::<f64>().ok()? * 1e3))
        })
        .collect();
    if steps.len() != POSITIONS * STEPS_PER_POSITION {
        fail(format!(
            "expected {} reverse-stepi timings:\n{out}\n{err}",
            POSITIONS * STEPS_PER_POSITION
        ));
    }
    let reverse = value("RCONT");
    let at_start = out
        .lines()
        .find(|l| l.starts_with("AT-START"))
        .unwrap_or_default();
    if !at_start.contains("icount 0,") {
        fail(format!(
            "reverse-continue did not reach the start: {at_start}\n{out}\n{err}"
        ));
    }
    let mut all: Vec<f64> = steps.iter().map(|s| s.1).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    let mut first: Vec<f64> = steps.iter().filter(|s| s.0 == 0).map(|s| s.1).collect();
    first.sort_by(|a, b| a.total_cmp(b));
    steps.retain(|s| s.0 > 0);
    let mut rest: Vec<f64> = steps.iter().map(|s| s.1).collect();
    rest.sort_by(|a, b| a.total_cmp(b));
    let median = report::median(&all);
    let ratio = reverse / forward;
    println!(
        "reverse-stepi median {median:.1} ms (first at a place {:.1} ms); reverse-continue {reverse:.2} s / forward replay {forward:.2} s = {ratio:.3}",
        report::median(&first)
    );

    let verdict = |ok: bool| if ok { "meets" } else { "**misses**" };
    let step_ok = median <= TARGET_STEP_MS;
    let ratio_ok = ratio <= TARGET_RATIO;
    let mut notes = String::new();
    if !step_ok {
        notes += &format!(
            "\n\n`reverse-stepi` misses its target: the median is {median:.1} ms (first step at a new place {:.1} ms, \
             later steps {:.1} ms).",
            report::median(&first),
            report::median(&rest)
        );
    }
    if !ratio_ok {
        notes += &format!(
            "\n\nReverse-continue misses its target: {reverse:.2} s against {forward:.2} s of forward replay \
             on {jobs} cores, where an even split of the replay alone would give {even:.2}.",
            jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            even = 1.0 / std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64,
        );
    }
    let body = format!(
        "## gdb: reverse-stepi and reverse-continue through the real gdb\n\n\
         `cargo bench --bench gdb` — a single-VM trace of the `compute` guest (iters={ITERS}, {end} steps{recorded}), served by `vmrr gdb` and driven by gdb {gdb} in batch mode; \
         gdb's Python times each command. Host: {host}.\n\n\
         | measure | figure | target |\n|---|---|---|\n\
         | `reverse-stepi`, {POSITIONS} positions × {STEPS_PER_POSITION} steps (after `monitor goto`) | \
         **median {median:.1} ms**, p90 {p90:.1} ms, max {max:.1} ms | median ≤ {TARGET_STEP_MS:.0} ms ({v1}) |\n\
         | … the first step at each position (replays its checkpoint slice once) | median {fm:.1} ms | |\n\
         | … the following steps | median {rm:.1} ms | |\n\
         | `reverse-continue` from the end, breakpoint never hit (whole trace) | {reverse:.2} s | |\n\
         | forward replay of the same span, one thread (floor; before and after the gdb session) | \
         {forward:.2} s ({forward_before:.2} s, {forward_after:.2} s) | |\n\
         | **reverse-continue ÷ forward replay** | **{ratio:.3}** | ≤ {TARGET_RATIO} ({v2}) |{notes}\n\n\
         The first `reverse-stepi` at a place replays its checkpoint slice once to lay dense snapshots \
         (`monitor goto` has usually laid them already); the next ones restore the nearest snapshot. \
         Reverse-continue asks the execution index which slices ran the breakpoint's address and \
         replays only those ({jobs} at a time, newest first); a breakpoint never hit has no such slice, \
         so the whole trace is searched without replaying any of it (without the index, on this \
         trace, it took 26.8 s).\n",
        gdb = gdb_version(),
        recorded = if record_secs > 0.0 {
            format!(", recorded in {record_secs:.0} s")
        } else {
            String::new()
        },
        host = report::host_line(),
        p90 = percentile(&all, 90),
        max = all.last().copied().unwrap_or(0.0),
        v1 = verdict(step_ok),
        fm = report::median(&first),
        rm = report::median(&rest),
        v2 = verdict(ratio_ok),
        jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    );
    if let Err(e) = report::write_section("gdb", &body) {
        fail(format!("cannot write BENCHMARKS.md: {e}"));
    }
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn gdb_version() -> String {
    Command::new("gdb")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().last().map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}
