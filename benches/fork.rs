//! Forking the kvstore-bug demo: the time to build the cut at the middle of
//! the trace (and at moments spread over it), against the floor of seeking
//! every VM to its icount at the cut in the same run; a whole fork against
//! recording the whole trace; and the disk bytes a fork adds beyond its
//! own new pages. Run with `cargo bench --bench fork`; it rewrites its
//! section of BENCHMARKS.md.

mod report;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vmrr_debugger::cluster::ClusterConfig;
use vmrr_debugger::fork::{fork, Change, ForkOptions, ForkSummary};
use vmrr_debugger::session::Moment;
use vmrr_debugger::trace::record::{record, RecordOptions};
use vmrr_debugger::trace::Trace;
use vmrr_debugger::vtime::format_ms;

const ROUNDS: usize = 3;
const SPREAD: usize = 10;

fn fail(msg: String) -> ! {
    eprintln!("fork benchmark: {msg}");
    std::process::exit(1)
}

fn do_fork(parent: &Path, at_ns: u64, changes: &[&str], out: &Path) -> (ForkSummary, f64) {
    let _ = std::fs::remove_dir_all(out);
    let changes: Vec<Change> = changes
        .iter()
        .map(|c| Change::parse(c).unwrap_or_else(|e| fail(e.to_string())))
        .collect();
    let started = Instant::now();
    let summary = fork(
        parent,
        &Moment::Time(at_ns),
        &changes,
        out,
        &ForkOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_or_else(|e| fail(e.to_string()));
    (summary, started.elapsed().as_secs_f64())
}

/// The floor: seeking each VM of `parent` to where the fork's cut put it.
fn seek_floor(parent: &Path, summary: &ForkSummary) -> f64 {
    let trace = Trace::open(parent, false).unwrap_or_else(|e| fail(e.to_string()));
    let started = Instant::now();
    for (vm, cut) in summary.cut.iter().enumerate() {
        let m = trace.seek(vm, cut.icount).unwrap_or_else(|e| fail(e.to_string()));
        std::hint::black_box(m.icount());
    }
    started.elapsed().as_secs_f64()
}

/// Bytes of the files below `dir`: (shared with another folder by hard
/// link, the folder's own page files, its other own files).
fn disk(dir: &Path) -> (u64, u64, u64) {
    let (mut shared, mut pages, mut other) = (0, 0, 0);
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() > 1 {
                shared += m.len();
            } else if e.path().starts_with(dir.join("pages")) {
                pages += m.len();
            } else {
                other += m.len();
            }
        }
    }
    (shared, pages, other)
}

fn kb(b: u64) -> String {
    format!("{:.1} KB", b as f64 / 1e3)
}

fn main() {
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/kvstore-bug.toml");
    let config = ClusterConfig::load(&cluster).unwrap_or_else(|e| fail(e.to_string()));
    let base = std::env::temp_dir().join("vmrr-bench-fork");
    let _ = std::fs::remove_dir_all(&base);
    let parent = base.join("kv");
    let started = Instant::now();
    record(
        &config,
        &parent,
        &RecordOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_or_else(|e| fail(e.to_string()));
    let record_secs = started.elapsed().as_secs_f64();
    let trace = Trace::open(&parent, false).unwrap_or_else(|e| fail(e.to_string()));
    let end = (0..3)
        .map(|vm| trace.checkpoints(vm).last().map_or(0, |c| c.vtime_ns))
        .max()
        .unwrap_or(0);
    drop(trace);
    let middle = end / 2;
    let out = base.join("fork");

    // The middle, a few rounds.
    let (mut cut, mut floor, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for round in 0..ROUNDS {
        let (summary, secs) = do_fork(&parent, middle, &[], &out);
        let f = seek_floor(&parent, &summary);
        println!(
            "round {}: cut {:.3} s, floor {f:.3} s, whole fork {secs:.3} s",
            round + 1,
            summary.cut_secs
        );
        cut.push(summary.cut_secs);
        floor.push(f);
        whole.push(secs);
        last = Some(summary);
    }
    let (cut, floor, whole) = (
        report::median(&cut),
        report::median(&floor),
        report::median(&whole),
    );
    let Some(summary) = last else {
        fail("no round".into())
    };
    let (shared, own_pages, other) = disk(&out);
    let index = std::fs::metadata(out.join("index.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);
    let parent_bytes = {
        let (s, p, o) = disk(&parent);
        s + p + o
    };

    // Moments spread over the trace.
    let mut spread = Vec::new();
    for i in 0..SPREAD {
        let at = end * (2 * i as u64 + 1) / (2 * SPREAD as u64);
        let (s, _) = do_fork(&parent, at, &[], &out);
        spread.push(s.cut_secs / seek_floor(&parent, &s));
    }
    spread.sort_by(|a, b| a.total_cmp(b));
    let (p50, p95) = (spread[SPREAD / 2], spread[(SPREAD * 95 / 100).min(SPREAD - 1)]);

    // A fork that changes something: the stale read's frame dropped.
    let changed = base.join("changed");
    let _ = do_fork(
        &parent,
        122_200_000,
        &["drop next frame from primary to backup2"],
        &changed,
    );
    let (c_shared, c_pages, c_other) = disk(&changed);

    println!(
        "cut at the middle {cut:.3} s (floor {floor:.3} s, ratio {:.2}); spread p50 {p50:.2} p95 {p95:.2}; adds {} beyond {} of own pages",
        cut / floor,
        kb(other),
        kb(own_pages)
    );
    let body = format!(
        "## Fork\n\n\
         `cargo bench --bench fork` — the kvstore-bug demo recorded once ({rec:.2} s, {pb} on disk), \
         forked without a change at its middle ({mid}, {ROUNDS} rounds, medians) and at {SPREAD} moments \
         spread over it. The floor is seeking each VM of the parent to its icount at the cut, in the same \
         run: what `goto` costs there. Host: {host}.\n\n\
         | measure | figure |\n|---|---|\n\
         | build the cut at the middle (barrier at {barrier}, then live to the cut, first checkpoints) | **{cut:.2} s** = {r:.2} × the floor ({floor:.2} s) |\n\
         | build the cut, {SPREAD} moments: ratio to the floor, p50 / p95 | {p50:.2} / {p95:.2} |\n\
         | fork at the middle to the end ÷ recording the whole trace | {w:.2} ({whole:.2} s / {rec:.2} s) |\n\
         | disk the fork adds beyond its own new pages (index {ix}, checkpoint files, cluster.toml) | **{other}** |\n\
         | its own new pages | {own} |\n\
         | shared with the parent by hard link (pages and images) | {shared} |\n\
         | a fork dropping the late resend at 122.2 ms: beyond its pages / own pages / shared | {co} / {cp} / {cs} |\n\n\
         The cut is rebuilt from the last window barrier a checkpoint names at or before it: each VM \
         replays from its checkpoint to that barrier (in parallel), then the cluster runs live to the \
         cut. Its cost is that of replaying to the barrier plus running the windows after it, so it \
         tracks the floor and grows with the time since the barrier (the demo's VMs idle most of the \
         time, so their checkpoints are many milliseconds apart).\n",
        host = report::host_line(),
        rec = record_secs,
        pb = kb(parent_bytes),
        mid = format_ms(middle),
        barrier = format_ms(summary.base_ns),
        r = cut / floor,
        w = whole / record_secs,
        ix = kb(index),
        other = kb(other),
        own = kb(own_pages),
        shared = kb(shared),
        co = kb(c_other),
        cp = kb(c_pages),
        cs = kb(c_shared),
    );
    if let Err(e) = report::write_section("fork", &body) {
        fail(format!("cannot write BENCHMARKS.md: {e}"));
    }
    let _ = std::fs::remove_dir_all(&base);
}
