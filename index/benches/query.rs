//! Index benchmark: `cargo bench -p vmrr-index --bench query`.
//!
//! Builds a synthetic index of ≥ 1 000 000 events over 3 VMs in /tmp, timing
//! the batched writer against a floor (bare prepared INSERTs into the same
//! schema, same batches, same connection settings), then measures the
//! latency of `events_in_window` on random 1 ms windows (against a floor: the
//! same SQL stepped bare on the same connection), `nearest_checkpoint`,
//! `next_event_after` for a rare kind, and opening (with its integrity
//! check). Writes its section of BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use vmrr_backend::rng::SeededRng;
use vmrr_index::{
    CheckpointRow, EventFilter, EventKind, EventRow, FrameFate, FrameRow, Index, Position, VmRow,
};

const VMS: u32 = 3;
const EVENTS: usize = 1_050_000;
/// Virtual nanoseconds per instruction (100 instructions per µs).
const NS_PER_INSTR: u64 = 10;
/// One checkpoint per VM every this many virtual nanoseconds.
const CHECKPOINT_EVERY_NS: u64 = 10_000_000;
const QUERIES: usize = 200;
const WINDOW_NS: u64 = 1_000_000;

struct Trace {
    events: Vec<EventRow>,
    frames: Vec<FrameRow>,
    checkpoints: Vec<CheckpointRow>,
    end_ns: u64,
}

/// A plausible recording: per-VM event streams merged in the cluster order,
/// a frame row for each send, a checkpoint per VM every 10 ms.
fn synthesize() -> Trace {
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    let per_vm = EVENTS / VMS as usize;
    let mut events = Vec::with_capacity(EVENTS);
    let mut frames = Vec::new();
    let mut checkpoints = Vec::new();
    let mut next_frame = 1u64;
    let mut end_ns = 0;
    for vm in 0..VMS {
        let mut icount = 0u64;
        let mut idle = 0u64;
        let mut next_cp = 0u64;
        for _ in 0..per_vm {
            icount += 1 + rng.below(300);
            let r = rng.below(100);
            if r >= 95 {
                idle += rng.below(20_000);
            }
            let vtime = icount * NS_PER_INSTR + idle;
            while next_cp <= vtime {
                let cp_icount = icount.saturating_sub(1);
                checkpoints.push(CheckpointRow {
                    vm,
                    icount: cp_icount,
                    vtime_ns: next_cp.min(vtime),
                    state_hash: format!("{:016x}", rng.next_u64()),
                    manifest: format!("cp-{vm}-{cp_icount}.manifest"),
                    file_hash: None,
                });
                next_cp += CHECKPOINT_EVERY_NS;
            }
            let e = EventRow::new(vm, icount, vtime, EventKind::Console);
            let e = match r {
                0..=29 => e.with_text("console output.."),
                30..=49 => EventRow {
                    kind: EventKind::Interrupt,
                    ..e
                }
                .with_value(32),
                50..=69 => EventRow {
                    kind: EventKind::Tsc,
                    ..e
                }
                .with_value(vtime),
                70..=74 => {
                    let id = next_frame;
                    next_frame += 1;
                    let dst = (vm + 1 + rng.below(u64::from(VMS) - 1) as u32) % VMS;
                    frames.push(FrameRow {
                        id,
                        src: vm,
                        dst,
                        len: 64,
                        sent_icount: icount,
                        sent_vtime_ns: vtime,
                        arrival_ns: vtime + 50_000,
                        recv_icount: Some(icount + 5000),
                        recv_vtime_ns: Some(vtime + 50_000),
                        fate: FrameFate::Received,
                        payload: Some(vec![0x42; 64]),
                    });
                    EventRow {
                        kind: EventKind::FrameSent,
                        ..e
                    }
                    .with_value(id)
                }
                75..=79 => EventRow {
                    kind: EventKind::FrameRecv,
                    ..e
                }
                .with_value(rng.below(next_frame)),
                80..=84 => EventRow {
                    kind: EventKind::Halt,
                    ..e
                },
                85..=89 => EventRow {
                    kind: EventKind::Wake,
                    ..e
                }
                .with_value(rng.below(10_000)),
                90..=93 => EventRow {
                    kind: EventKind::Rand,
                    ..e
                }
                .with_value(rng.next_u64()),
                94 => EventRow {
                    kind: EventKind::Marker,
                    ..e
                }
                .with_text("phase")
                .with_value(rng.below(10)),
                _ => EventRow {
                    kind: EventKind::Wake,
                    ..e
                }
                .with_value(rng.below(20_000)),
            };
            end_ns = end_ns.max(vtime);
            events.push(e);
        }
    }
    events.sort_by_key(|e| (e.vtime_ns, e.vm, e.icount));
    Trace {
        events,
        frames,
        checkpoints,
        end_ns,
    }
}

fn scratch() -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/vmrr-index-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create /tmp scratch dir");
    dir
}

/// The batched writer: every row through `add_*`, a flush at the end.
fn write_index(path: &Path, trace: &Trace) -> Duration {
    let start = Instant::now();
    let mut index = Index::create(path).expect("create index");
    for vm in 0..VMS {
        index
            .set_vm(&VmRow {
                id: vm,
                name: format!("node{vm}"),
                instr_per_us: 100,
                mem_bytes: 64 << 20,
                ..VmRow::default()
            })
            .expect("vm");
    }
    let mut frames = trace.frames.iter().peekable();
    let mut cps = trace.checkpoints.iter().peekable();
    for e in &trace.events {
        index.add_event(e).expect("event");
        while let Some(f) = frames.next_if(|f| f.sent_vtime_ns <= e.vtime_ns) {
            index.add_frame(f).expect("frame");
        }
        while let Some(c) = cps.next_if(|c| c.vtime_ns <= e.vtime_ns) {
            index.add_checkpoint(c).expect("checkpoint");
        }
    }
    for f in frames {
        index.add_frame(f).expect("frame");
    }
    for c in cps {
        index.add_checkpoint(c).expect("checkpoint");
    }
    index.flush().expect("flush");
    let elapsed = start.elapsed();
    index.close().expect("close");
    elapsed
}

/// The floor: bare prepared INSERTs of the same rows, same schema, same
/// batch size and pragmas, no buffering or checks.
fn write_floor(path: &Path, trace: &Trace) -> Duration {
    let start = Instant::now();
    let mut conn = Connection::open(path).expect("open floor db");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("sync");
    conn.execute_batch(vmrr_index::schema::SCHEMA_V1).expect("schema");
    let batch = vmrr_index::DEFAULT_BATCH_ROWS;
    for (b, chunk) in trace.events.chunks(batch).enumerate() {
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events(id, vm, icount, vtime_ns, kind, value, payload, text) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .expect("prepare");
            for (i, e) in chunk.iter().enumerate() {
                let id = (b * batch + i + 1) as i64;
                stmt.execute(params![
                    id,
                    e.vm,
                    e.icount as i64,
                    e.vtime_ns as i64,
                    e.kind.as_str(),
                    e.value.map(|v| v as i64),
                    e.payload,
                    e.text
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    for chunk in trace.frames.chunks(batch) {
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO frames(id, src, dst, len, sent_icount, sent_vtime_ns, \
                     arrival_ns, recv_icount, recv_vtime_ns, fate, payload) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .expect("prepare");
            for f in chunk {
                stmt.execute(params![
                    f.id as i64,
                    f.src,
                    f.dst,
                    f.len,
                    f.sent_icount as i64,
                    f.sent_vtime_ns as i64,
                    f.arrival_ns as i64,
                    f.recv_icount.map(|v| v as i64),
                    f.recv_vtime_ns.map(|v| v as i64),
                    f.fate.as_str(),
                    f.payload
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let tx = conn.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO checkpoints(vm, icount, vtime_ns, state_hash, manifest) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for c in &trace.checkpoints {
            stmt.execute(params![
                c.vm,
                c.icount as i64,
                c.vtime_ns as i64,
                c.state_hash,
                c.manifest
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
    start.elapsed()
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    if samples.is_empty() {
        return 0.0;
    }
    let i = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn host_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(str::to_string)
        })
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// Replaces (or appends) this benchmark's section of BENCHMARKS.md.
fn write_section(body: &str) -> std::io::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let start = "<!-- bench:index -->";
    let end = "<!-- /bench:index -->";
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(start), existing.find(end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &existing[..s], section, &existing[e + end.len()..]),
        _ => format!("{}\n{}\n", existing.trim_end(), section),
    };
    std::fs::write(&path, updated)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too, with
    // no such flag: keep that run short and do not write BENCHMARKS.md then.
    let full = std::env::args().any(|a| a == "--bench");
    if !full {
        println!("index bench: skipped outside `cargo bench`");
        return;
    }
    let dir = scratch();
    let trace = synthesize();
    let rows = trace.events.len() + trace.frames.len() + trace.checkpoints.len() + VMS as usize;
    println!(
        "synthetic trace: {} events, {} frames, {} checkpoints over {:.2} s virtual",
        trace.events.len(),
        trace.frames.len(),
        trace.checkpoints.len(),
        trace.end_ns as f64 / 1e9
    );

    let index_path = dir.join("index.sqlite");
    let write_time = write_index(&index_path, &trace);
    let floor_time = write_floor(&dir.join("floor.sqlite"), &trace);
    let writer_rate = rows as f64 / write_time.as_secs_f64();
    let floor_rate = rows as f64 / floor_time.as_secs_f64();
    let file_mb = std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "writer: {writer_rate:.0} rows/s ({write_time:?}); floor {floor_rate:.0} rows/s; {file_mb:.1} MB"
    );

    let open_start = Instant::now();
    let index = Index::open_read_only(&index_path).expect("open");
    let open_time = open_start.elapsed();

    // windows: warm the cache once, then measure
    let mut rng = SeededRng::new(7);
    let windows: Vec<u64> = (0..QUERIES)
        .map(|_| rng.below(trace.end_ns - WINDOW_NS))
        .collect();
    let all = EventFilter::all();
    for &from in windows.iter().take(20) {
        index
            .events_in_window(from, from + WINDOW_NS, &all, 10_000)
            .expect("window");
    }
    let mut window_us = Vec::new();
    let mut window_rows = 0usize;
    for &from in &windows {
        let t = Instant::now();
        let got = index
            .events_in_window(from, from + WINDOW_NS, &all, 10_000)
            .expect("window");
        window_us.push(us(t.elapsed()));
        window_rows += got.len();
    }
    // the floor: the same SQL, stepped bare on a plain connection
    let floor_conn = Connection::open(&index_path).expect("open floor connection");
    let mut floor_us = Vec::new();
    for &from in &windows {
        let t = Instant::now();
        let mut stmt = floor_conn
            .prepare_cached(
                "SELECT id, vm, icount, vtime_ns, kind, value, payload, text FROM events \
                 WHERE vtime_ns >= ?1 AND vtime_ns < ?2 ORDER BY vtime_ns, vm, icount, id LIMIT 10000",
            )
            .expect("prepare");
        let mut rows = stmt
            .query((from as i64, (from + WINDOW_NS) as i64))
            .expect("query");
        let mut n = 0;
        while let Some(r) = rows.next().expect("step") {
            for c in 0..8 {
                std::hint::black_box(r.get_ref(c).expect("column"));
            }
            n += 1;
        }
        std::hint::black_box(n);
        floor_us.push(us(t.elapsed()));
    }
    // kind-filtered windows
    let irq = EventFilter::all().with_kinds([EventKind::Interrupt, EventKind::FrameRecv]);
    let mut kind_us = Vec::new();
    for &from in &windows {
        let t = Instant::now();
        index
            .events_in_window(from, from + WINDOW_NS, &irq, 10_000)
            .expect("window");
        kind_us.push(us(t.elapsed()));
    }
    // one VM's received frames over the whole trace (what replay loads)
    let recv = EventFilter::all()
        .with_vms([1u32])
        .with_kinds([EventKind::FrameRecv]);
    let t = Instant::now();
    let recv_rows = index
        .events_in_window(0, u64::MAX, &recv, usize::MAX)
        .expect("window")
        .len();
    let recv_ms = t.elapsed().as_secs_f64() * 1e3;
    // nearest checkpoint
    let mut cp_us = Vec::new();
    let max_icount = trace.events.iter().map(|e| e.icount).max().unwrap_or(1);
    for _ in 0..QUERIES {
        let vm = rng.below(u64::from(VMS)) as u32;
        let icount = rng.below(max_icount);
        let t = Instant::now();
        std::hint::black_box(index.nearest_checkpoint(vm, icount).expect("checkpoint"));
        cp_us.push(us(t.elapsed()));
    }
    // next marker after a random position
    let markers = EventFilter::all().with_kinds([EventKind::Marker]);
    let mut next_us = Vec::new();
    for _ in 0..QUERIES {
        let e = &trace.events[rng.below(trace.events.len() as u64) as usize];
        let t = Instant::now();
        std::hint::black_box(
            index
                .next_event_after(None, Position::at(e.vm, e.icount, e.vtime_ns), &markers)
                .expect("next"),
        );
        next_us.push(us(t.elapsed()));
    }

    let avg_rows = window_rows as f64 / QUERIES as f64;
    let (w50, w95) = (percentile(&mut window_us, 0.5), percentile(&mut window_us, 0.95));
    let (f50, f95) = (percentile(&mut floor_us, 0.5), percentile(&mut floor_us, 0.95));
    let (k50, k95) = (percentile(&mut kind_us, 0.5), percentile(&mut kind_us, 0.95));
    let (c50, c95) = (percentile(&mut cp_us, 0.5), percentile(&mut cp_us, 0.95));
    let (n50, n95) = (percentile(&mut next_us, 0.5), percentile(&mut next_us, 0.95));
    let verdict = if w95 <= 5000.0 { "meets" } else { "MISSES" };
    let body = format!(
        "## Index: batched writer and queries\n\n\
         `cargo bench -p vmrr-index --bench query` — synthetic index in /tmp: {} events over {VMS} VMs \
         ({:.1} s virtual), {} frames, {} checkpoints; {file_mb:.0} MB. Host: {}.\n\n\
         | what | figure | floor (same run) | ratio |\n|---|---|---|---|\n\
         | batched writer (`add_*` + `flush`, all rows) | {writer_rate:.0} rows/s | bare prepared INSERTs of the same rows: {floor_rate:.0} rows/s | {:.2} |\n\
         | `events_in_window`, random 1 ms windows ({avg_rows:.0} rows avg), {QUERIES} queries | p50 {w50:.0} µs, p95 {w95:.0} µs | same SQL stepped bare, columns read in place: p50 {f50:.0} µs, p95 {f95:.0} µs | {:.2} |\n\
         | same, kinds = interrupt, frame_recv | p50 {k50:.0} µs, p95 {k95:.0} µs | | |\n\
         | same, one VM's `frame_recv` over the whole trace ({recv_rows} rows) | {recv_ms:.1} ms | | |\n\
         | `nearest_checkpoint`, random (vm, icount) | p50 {c50:.1} µs, p95 {c95:.1} µs | | |\n\
         | `next_event_after`, next marker (1% of events) from a random position | p50 {n50:.1} µs, p95 {n95:.1} µs | | |\n\
         | `Index::open_read_only` (incl. `PRAGMA quick_check`) | {:.0} ms | | |\n\n\
         **Window query p95 {:.2} ms** (target ≤ 5 ms: {verdict}).",
        trace.events.len(),
        trace.end_ns as f64 / 1e9,
        trace.frames.len(),
        trace.checkpoints.len(),
        host_line(),
        writer_rate / floor_rate,
        w50 / f50.max(1e-9),
        open_time.as_secs_f64() * 1e3,
        w95 / 1e3,
    );
    println!("{body}");
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = write_section(&body) {
        eprintln!("cannot update BENCHMARKS.md: {e}");
    }
}
