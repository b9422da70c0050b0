//! Shared by the integration tests: scratch directories and a small synthetic trace.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use vmrr_index::{CheckpointRow, EventKind, EventRow, FrameFate, FrameRow, Index, VmRow};

/// A scratch directory under the system temp dir, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vmrr-index-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn index_path(&self) -> PathBuf {
        self.path("index.sqlite")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Virtual time of `icount` on `vm` in the synthetic trace: VM 0 runs at 10
/// ns per instruction, VM 1 the same but 5 ns later, VM 2 at 20 ns.
pub fn vtime(vm: u32, icount: u64) -> u64 {
    match vm {
        0 => icount * 10,
        1 => icount * 10 + 5,
        _ => icount * 20,
    }
}

pub fn ev(vm: u32, icount: u64, kind: EventKind) -> EventRow {
    EventRow::new(vm, icount, vtime(vm, icount), kind)
}

pub fn vm_row(id: u32) -> VmRow {
    VmRow {
        id,
        name: format!("node{id}"),
        image: format!("images/node{id}.elf"),
        image_hash: format!("hash{id}"),
        mem_bytes: 64 << 20,
        cmdline: format!("id={id}"),
        instr_per_us: 100,
        mac: format!("52:54:00:00:00:0{id}"),
        final_icount: None,
        final_vtime_ns: None,
        stop: None,
    }
}

/// The events of the small synthetic trace, in the order they are added.
pub fn small_events() -> Vec<EventRow> {
    use EventKind::*;
    vec![
        ev(0, 0, Marker).with_text("boot").with_value(0),
        ev(1, 0, Marker).with_text("boot").with_value(1),
        ev(2, 0, Marker).with_text("boot").with_value(2),
        ev(0, 100, Console).with_text("hello\n"),
        ev(1, 100, Console).with_text("hi\n"),
        ev(0, 200, Interrupt).with_value(32),
        ev(0, 200, Tsc).with_value(2000),
        ev(2, 100, Interrupt).with_value(32),
        ev(0, 300, FrameSent).with_value(1),
        ev(1, 400, FrameRecv).with_value(1),
        ev(2, 200, FrameRecv).with_value(1),
        ev(1, 500, FrameSent).with_value(2),
        ev(0, 600, FrameRecv).with_value(2),
        ev(2, 300, Halt),
        ev(2, 350, Wake).with_value(1000),
        ev(1, 700, Rand).with_value(u64::MAX),
        ev(0, 800, Fault).with_text("drop next frame"),
        ev(0, 900, Checkpoint),
        ev(1, 1000, Stop).with_text("exit"),
        ev(1, 1000, Exit).with_value(3),
        ev(2, 500, Marker).with_text("done").with_value(7),
    ]
}

pub fn small_frames() -> Vec<FrameRow> {
    let frame = |id: u64, src: u32, dst: u32, sent: u64, recv: Option<u64>, fate: FrameFate| FrameRow {
        id,
        src,
        dst,
        len: 60,
        sent_icount: sent,
        sent_vtime_ns: vtime(src, sent),
        arrival_ns: vtime(src, sent) + 1000,
        recv_icount: recv,
        recv_vtime_ns: recv.map(|r| vtime(dst, r)),
        fate,
        payload: Some(vec![id as u8; 60]),
    };
    vec![
        // frame 1 is flooded from VM 0 to VMs 1 and 2
        frame(1, 0, 1, 300, Some(400), FrameFate::Received),
        frame(1, 0, 2, 300, Some(200), FrameFate::Received),
        frame(2, 1, 0, 500, Some(600), FrameFate::Received),
        // frame 3 arrives at VM 0 at the same instruction as frame 2
        frame(3, 2, 0, 150, Some(600), FrameFate::Received),
        frame(4, 2, 1, 400, None, FrameFate::Dropped),
        frame(5, 0, 2, 950, None, FrameFate::InFlight),
    ]
}

pub fn small_checkpoints() -> Vec<CheckpointRow> {
    let mut out = Vec::new();
    for vm in 0..3u32 {
        for icount in [0u64, 250, 500, 750] {
            out.push(CheckpointRow {
                vm,
                icount,
                vtime_ns: vtime(vm, icount),
                state_hash: format!("h{vm}-{icount}"),
                manifest: format!("cp-{vm}-{icount}.manifest"),
                file_hash: None,
            });
        }
    }
    out
}

/// Writes the small synthetic trace into a new index at `path`; returns the
/// events as stored (with their ids).
pub fn build_small(path: &Path) -> (Index, Vec<EventRow>) {
    let mut index = Index::create(path).expect("create");
    for id in 0..3 {
        index.set_vm(&vm_row(id)).expect("vm");
    }
    index.set_meta("cluster", "pingpong").expect("meta");
    index.set_meta("seed", "42").expect("meta");
    let mut stored = Vec::new();
    for e in small_events() {
        let id = index.add_event(&e).expect("event");
        let mut e = e;
        e.id = id;
        stored.push(e);
    }
    for f in small_frames() {
        index.add_frame(&f).expect("frame");
    }
    for c in small_checkpoints() {
        index.add_checkpoint(&c).expect("checkpoint");
    }
    index.flush().expect("flush");
    (index, stored)
}
