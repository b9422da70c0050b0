//! Motion that does not grow with distance: continue and reverse-continue to
//! breakpoints near (within a slice), mid (about 5 M steps) and far (about
//! 20 M steps), a watchpoint's last write 15 M steps back, `finish` out of a
//! call of a million instructions and `next` over one of 100 000, on a
//! single-VM trace of about 21 M steps (`guests/motion`) and on the kvstore
//! demo; against the floor of the same run: replaying one checkpoint slice
//! from its checkpoint, the least an exact stop at an unknown place costs.
//! Also record ÷ plain run with the execution index on, and index bytes per
//! million steps.
//!
//! Run with `cargo bench --bench motion` (about 6 minutes here, most of it
//! recording the trace once: it is kept in `target/bench-traces/motion` and
//! reused while the guest image is the same). It rewrites its section of
//! BENCHMARKS.md.

mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use vmrr_debugger::session::{
    Breakpoint, Direction, Returned, Scope, Session, StopReason, WatchKind, Watchpoint,
};
use vmrr_debugger::symbols::SymbolTable;
use vmrr_debugger::trace::Trace;

/// Rounds of the motion guest: about 21 million steps.
const ROUNDS: u64 = 170;
/// Rounds for the record ÷ run comparison (about 2 million steps).
const RATIO_ROUNDS: u64 = 16;
/// Times each motion is measured.
const REPS: usize = 7;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("motion benchmark: {msg}");
    std::process::exit(1)
}

fn vmrr() -> &'static str {
    env!("CARGO_BIN_EXE_vmrr")
}

/// The trace, recorded unless a current one is kept; the recording's time.
fn trace_dir(image: &Path) -> (PathBuf, Option<f64>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-traces/motion");
    let want = vmrr_debugger::trace::file_hash(image).unwrap_or_else(|e| fail(e));
    let current = Trace::open(&dir, false)
        .ok()
        .and_then(|t| t.index().vms().ok())
        .is_some_and(|vms| vms.first().is_some_and(|v| v.image_hash == want));
    if current {
        return (dir, None);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let out = Command::new(vmrr())
        .arg("record")
        .arg(image)
        .args(["--cmdline", &format!("rounds={ROUNDS}"), "-o"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| fail(e));
    if !out.status.success() {
        fail(String::from_utf8_lossy(&out.stderr));
    }
    (dir, Some(started.elapsed().as_secs_f64()))
}

/// Seconds of `f`, which must succeed.
fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

/// p50 and p95 of samples in seconds, as milliseconds.
fn p50_p95(samples: &[f64]) -> (f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let p95 = v[((v.len() as f64 * 0.95).ceil() as usize).clamp(1, v.len()) - 1];
    (report::median(&v) * 1e3, p95 * 1e3)
}

/// One measured motion: where it starts, what it does, where it must stop.
struct Motion {
    name: &'static str,
    samples: Vec<f64>,
    distance: u64,
}

impl Motion {
    /// Says how it went at once (a later failure must not lose it).
    fn reported(self) -> Motion {
        let (p50, p95) = p50_p95(&self.samples);
        eprintln!(
            "motion benchmark: {}: {} steps, p50 {p50:.0} ms, p95 {p95:.0} ms",
            self.name, self.distance
        );
        self
    }
}

fn main() {
    let image = vmrr_guests::image("motion");
    let symbols = SymbolTable::load(&image).unwrap_or_else(|e| fail(e));
    let sym = |name: &str| {
        symbols
            .by_name(name)
            .map(|s| s.addr)
            .unwrap_or_else(|| fail(format!("no {name}")))
    };
    let (dir, recorded_in) = trace_dir(&image);
    let trace = Trace::open(&dir, false).unwrap_or_else(|e| fail(e));
    let end = trace.end_icount(0);
    eprintln!("motion benchmark: trace of {end} steps in {}", dir.display());

    // The floor: one slice replayed from its checkpoint, as a search does
    // (into a machine kept from the slice before).
    let cps = trace.checkpoints(0).to_vec();
    let mut floor = Vec::new();
    for i in 0..REPS {
        let k = cps.len() / 2 + i;
        let (t, _) = time(|| {
            let (mut m, mut next) = trace.machine_at_checkpoint(0, k).unwrap_or_else(|e| fail(e));
            trace
                .run_to(0, &mut m, &mut next, cps[k + 1].icount, usize::MAX)
                .unwrap_or_else(|e| fail(e));
            // Kept for the next restore, as searches keep theirs.
            trace.recycle(0, m);
        });
        floor.push(t);
    }
    let (floor_ms, _) = p50_p95(&floor);

    let mut s = Session::open(&dir).unwrap_or_else(|e| fail(e));
    let bp = |addr: u64| Breakpoint { addr, vm: Some(0) };
    let mut motions: Vec<Motion> = Vec::new();
    // Continue / reverse-continue to `target` from `from` (an icount), REPS times.
    let mut cont = |s: &mut Session, name: &'static str, from: u64, target: &str, dir: Direction| {
        let b = bp(sym(target));
        s.add_breakpoint(b);
        let mut samples = Vec::new();
        let mut distance = 0;
        for _ in 0..REPS {
            s.goto(0, from).unwrap_or_else(|e| fail(e));
            let (t, stop) = time(|| {
                s.continue_(Scope::Vm(0), dir, &|_| {})
                    .unwrap_or_else(|e| fail(e))
            });
            let StopReason::Hit(hit) = stop else {
                fail(format!("{name}: no hit ({stop:?})"))
            };
            distance = hit.pos.icount.abs_diff(from);
            samples.push(t);
        }
        s.remove_breakpoint(b);
        motions.push(
            Motion {
                name,
                samples,
                distance,
            }
            .reported(),
        );
    };
    // The icount of the first call of `name`, from the start.
    let first_hit = |s: &mut Session, name: &str| {
        s.goto(0, 0).unwrap_or_else(|e| fail(e));
        s.add_breakpoint(bp(sym(name)));
        let StopReason::Hit(h) = s
            .continue_(Scope::Vm(0), Direction::Forward, &|_| {})
            .unwrap_or_else(|e| fail(e))
        else {
            fail(format!("no {name}"))
        };
        s.remove_breakpoint(bp(sym(name)));
        h.pos.icount
    };
    // Positions: the first tock, and the end.
    let first_tock = first_hit(&mut s, "tock");
    // Three eighths in: between tocks, away from the long call in the middle.
    let mid_tock = end * 3 / 8 + 7_000;
    cont(
        &mut s,
        "continue, near (next tock)",
        mid_tock,
        "tock",
        Direction::Forward,
    );
    cont(
        &mut s,
        "continue, mid (quarter, from the start)",
        first_tock,
        "quarter",
        Direction::Forward,
    );
    cont(
        &mut s,
        "continue, far (at_end, from the start)",
        first_tock,
        "at_end",
        Direction::Forward,
    );
    cont(
        &mut s,
        "reverse-continue, near (previous tock)",
        mid_tock,
        "tock",
        Direction::Backward,
    );
    cont(
        &mut s,
        "reverse-continue, mid (three_quarters, from the end)",
        end,
        "three_quarters",
        Direction::Backward,
    );
    cont(
        &mut s,
        "reverse-continue, far (at_start, from the end)",
        end,
        "at_start",
        Direction::Backward,
    );

    // The last write of `rare`, from three quarters in: about 15 M steps back.
    let three = first_hit(&mut s, "three_quarters");
    let wp = Watchpoint {
        addr: sym("rare"),
        len: 8,
        kind: WatchKind::Write,
        vm: Some(0),
    };
    s.add_watchpoint(wp).unwrap_or_else(|e| fail(e));
    let mut samples = Vec::new();
    let mut distance = 0;
    for _ in 0..REPS {
        s.goto(0, three).unwrap_or_else(|e| fail(e));
        let (t, stop) = time(|| {
            s.continue_(Scope::Vm(0), Direction::Backward, &|_| {})
                .unwrap_or_else(|e| fail(e))
        });
        let StopReason::Hit(h) = stop else {
            fail("no write of rare")
        };
        distance = three - h.pos.icount;
        samples.push(t);
    }
    s.remove_watchpoint(wp);
    motions.push(
        Motion {
            name: "watch + reverse-continue to the last write (rare)",
            samples,
            distance,
        }
        .reported(),
    );

    // finish out of long_call, from its entry; next over medium_call, from the call.
    let entry_of = |s: &mut Session, f: &str| {
        s.goto(0, 0).unwrap_or_else(|e| fail(e));
        s.add_breakpoint(bp(sym(f)));
        let StopReason::Hit(h) = s
            .continue_(Scope::Vm(0), Direction::Forward, &|_| {})
            .unwrap_or_else(|e| fail(e))
        else {
            fail(format!("no {f}"))
        };
        s.remove_breakpoint(bp(sym(f)));
        h.pos.icount
    };
    let long_entry = entry_of(&mut s, "long_call");
    let medium_call_site = entry_of(&mut s, "medium_call") - 1;
    let mut finish = Vec::new();
    let mut next = Vec::new();
    let (mut finish_len, mut next_len) = (0, 0);
    for _ in 0..REPS {
        s.goto(0, long_entry).unwrap_or_else(|e| fail(e));
        let (t, r) = time(|| s.finish(0, &|_| {}).unwrap_or_else(|e| fail(e)));
        let Returned::Yes(p) = r else {
            fail(format!("finish did not return: {r:?}"))
        };
        finish_len = p.icount - long_entry;
        finish.push(t);
        s.goto(0, medium_call_site).unwrap_or_else(|e| fail(e));
        let (t, r) = time(|| s.next(0, None, &|_| {}).unwrap_or_else(|e| fail(e)));
        let Returned::Yes(p) = r else {
            fail(format!("next did not return: {r:?}"))
        };
        next_len = p.icount - medium_call_site;
        next.push(t);
    }
    motions.push(
        Motion {
            name: "finish out of long_call",
            samples: finish,
            distance: finish_len,
        }
        .reported(),
    );
    motions.push(
        Motion {
            name: "next over the call of medium_call",
            samples: next,
            distance: next_len,
        }
        .reported(),
    );

    // The kvstore demo: reverse-continue to the last kv_apply of backup2 from
    // its end, and continue to the next from the start of the trace.
    let kv = std::env::temp_dir().join("vmrr-bench-motion-kv");
    let _ = std::fs::remove_dir_all(&kv);
    let o = Command::new(vmrr())
        .arg("record")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/kvstore-bug.toml"))
        .arg("-o")
        .arg(&kv)
        .output()
        .unwrap_or_else(|e| fail(e));
    if !o.status.success() {
        fail(String::from_utf8_lossy(&o.stderr));
    }
    let kv_symbols = SymbolTable::load(&vmrr_guests::image("kvstore")).unwrap_or_else(|e| fail(e));
    let apply = kv_symbols
        .by_name("kv_apply")
        .map(|s| s.addr)
        .unwrap_or_else(|| fail("no kv_apply"));
    let mut ks = Session::open(&kv).unwrap_or_else(|e| fail(e));
    let kv_end = ks.end_icount(2);
    ks.add_breakpoint(Breakpoint {
        addr: apply,
        vm: None,
    });
    let mut kv_motion =
        |ks: &mut Session, name: &'static str, vm: u32, from: u64, scope: Scope, dir: Direction| {
            let mut samples = Vec::new();
            let mut distance = 0;
            for _ in 0..REPS {
                ks.goto(vm, from).unwrap_or_else(|e| fail(e));
                let (t, stop) = time(|| ks.continue_(scope, dir, &|_| {}).unwrap_or_else(|e| fail(e)));
                let StopReason::Hit(h) = stop else {
                    fail(format!("{name}: {stop:?}"))
                };
                distance = h.pos.icount.abs_diff(from);
                samples.push(t);
            }
            motions.push(
                Motion {
                    name,
                    samples,
                    distance,
                }
                .reported(),
            );
        };
    kv_motion(
        &mut ks,
        "kvstore: reverse-continue to backup2's last kv_apply",
        2,
        kv_end,
        Scope::Vm(2),
        Direction::Backward,
    );
    kv_motion(
        &mut ks,
        "kvstore: continue to the first kv_apply, whole cluster",
        0,
        0,
        Scope::Cluster,
        Direction::Forward,
    );

    // Record ÷ plain run, with the execution index on, in alternating rounds.
    let ratio_dir = std::env::temp_dir().join("vmrr-bench-motion-ratio");
    let args = format!("rounds={RATIO_ROUNDS}");
    let mut ratios = Vec::new();
    for _ in 0..3 {
        let (run_t, o) = time(|| {
            Command::new(vmrr())
                .arg("run")
                .arg(&image)
                .args(["--cmdline", &args])
                .output()
                .unwrap_or_else(|e| fail(e))
        });
        if !o.status.success() {
            fail(String::from_utf8_lossy(&o.stderr));
        }
        let _ = std::fs::remove_dir_all(&ratio_dir);
        let (rec_t, o) = time(|| {
            Command::new(vmrr())
                .arg("record")
                .arg(&image)
                .args(["--cmdline", &args, "-o"])
                .arg(&ratio_dir)
                .output()
                .unwrap_or_else(|e| fail(e))
        });
        if !o.status.success() {
            fail(String::from_utf8_lossy(&o.stderr));
        }
        ratios.push(rec_t / run_t);
    }
    let index_bytes: i64 = {
        let index = trace.index();
        let (_, rows) = index
            .query_read_only("SELECT sum(length(addrs) + length(words) + length(pages)) FROM exec_slices")
            .unwrap_or_else(|e| fail(e));
        match rows.first().and_then(|r| r.first()) {
            Some(vmrr_index::SqlValue::Integer(n)) => *n,
            _ => 0,
        }
    };

    let mut body = format!(
        "## Motion: continue, watch, finish and next do not grow with distance\n\n\
         `cargo bench --bench motion` on {} — single-VM trace `guests/motion` \
         (`--cmdline rounds={ROUNDS}`), {end} steps, checkpoints every {} steps{}. \
         The floor, measured in the same run: replaying one checkpoint slice from its \
         checkpoint into a machine kept from the slice before (as searches do), \
         **{floor_ms:.0} ms** (p50 of {REPS}). Each motion is timed {REPS} times \
         from the same position through the `Session` (what the TUI and the gdb bridge call).\n\n\
         | motion | distance (steps) | p50 ms | p95 ms | p50 ÷ floor |\n|---|---:|---:|---:|---:|\n",
        report::host_line(),
        cps.get(1).map(|c| c.icount).unwrap_or(0),
        match recorded_in {
            Some(t) => format!(", recorded in {t:.0} s"),
            None => String::new(),
        }
    );
    let mut by_name = std::collections::HashMap::new();
    for m in &motions {
        let (p50, p95) = p50_p95(&m.samples);
        by_name.insert(m.name, p50);
        body += &format!(
            "| {} | {} | {p50:.0} | {p95:.0} | {:.2} |\n",
            m.name,
            m.distance,
            p50 / floor_ms
        );
    }
    let ratio = |far: &str, near: &str| {
        by_name.get(far).copied().unwrap_or(0.0) / by_name.get(near).copied().unwrap_or(1.0)
    };
    body += &format!(
        "\nfar ÷ near: continue {:.2}, reverse-continue {:.2} (target ≤ 2). \
         Record ÷ plain `vmrr run` with the execution index on ({RATIO_ROUNDS} rounds, about 2 M steps, \
         3 alternating rounds): {} (median {:.3}; target ≤ 1.10). Execution index: {} bytes for {end} \
         steps, **{:.0} bytes per million steps**.\n",
        ratio(
            "continue, far (at_end, from the start)",
            "continue, near (next tock)"
        ),
        ratio(
            "reverse-continue, far (at_start, from the end)",
            "reverse-continue, near (previous tock)"
        ),
        ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", "),
        report::median(&ratios),
        index_bytes,
        index_bytes as f64 / (end as f64 / 1e6),
    );
    println!("{body}");
    report::write_section("motion", &body).unwrap_or_else(|e| fail(e));
}
