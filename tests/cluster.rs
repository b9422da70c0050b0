//! The cluster is a deterministic simulation: the same run twice, with any
//! number of worker threads or random host delays, gives the same merged
//! events, the same frames and the same final states. Needs /dev/kvm.

use std::path::{Path, PathBuf};
use std::process::Command;

use vmrr_backend::{EventKind, Stop};
use vmrr_debugger::cluster::config::FaultKind;
use vmrr_debugger::cluster::{
    Cluster, ClusterConfig, ClusterEvent, ClusterOptions, ClusterStop, FrameFate, FrameRecord,
};

fn cluster_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters").join(name)
}

struct Outcome {
    stop: ClusterStop,
    events: Vec<ClusterEvent>,
    frames: Vec<FrameRecord>,
    hashes: Vec<[u8; 32]>,
    stops: Vec<Option<Stop>>,
    config: ClusterConfig,
}

fn run(name: &str, jobs: usize, host_jitter: bool) -> Outcome {
    let config = ClusterConfig::load(&cluster_file(name)).unwrap_or_else(|e| panic!("{e}"));
    let options = ClusterOptions {
        jobs,
        host_jitter,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::new(config.clone(), options).unwrap_or_else(|e| panic!("{e}"));
    let mut events = Vec::new();
    let stop = cluster
        .run(|c| {
            events.extend(c.take_events());
            true
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let n = config.vms.len();
    Outcome {
        stop,
        events,
        frames: cluster.frames().to_vec(),
        hashes: (0..n)
            .map(|i| cluster.machine(i).state_hash().expect("hash"))
            .collect(),
        stops: (0..n).map(|i| cluster.vm_stop(i).cloned()).collect(),
        config,
    }
}

fn console_of(o: &Outcome, vm: usize) -> String {
    o.events
        .iter()
        .filter(|e| e.vm == vm)
        .filter_map(|e| match e.event.kind {
            EventKind::Console(b) => Some(b as char),
            _ => None,
        })
        .collect()
}

#[test]
fn three_vms_identical_across_threads_and_host_jitter() {
    let a = run("kvstore-ok.toml", 3, false);
    let b = run("kvstore-ok.toml", 1, false);
    let c = run("kvstore-ok.toml", 3, true);
    assert_eq!(a.stop, ClusterStop::AllStopped);
    let kinds = |o: &Outcome| {
        let sent = o
            .events
            .iter()
            .filter(|e| matches!(e.event.kind, EventKind::FrameSent(_)))
            .count();
        let recv = o
            .events
            .iter()
            .filter(|e| matches!(e.event.kind, EventKind::FrameReceived(_)))
            .count();
        let irq = o
            .events
            .iter()
            .filter(|e| matches!(e.event.kind, EventKind::Interrupt(_)))
            .count();
        (sent, recv, irq)
    };
    let (sent, recv, irq) = kinds(&a);
    assert!(
        sent > 20 && recv > 20 && irq > 20,
        "the run exercises the network: {sent} sent, {recv} received, {irq} irqs"
    );
    for (other, what) in [(&b, "one worker thread"), (&c, "random host delays")] {
        assert_eq!(a.events.len(), other.events.len(), "{what}: event count");
        if let Some(i) = (0..a.events.len()).find(|&i| a.events[i] != other.events[i]) {
            panic!(
                "{what}: first differing event #{i}: {:?} vs {:?}",
                a.events[i], other.events[i]
            );
        }
        assert_eq!(a.frames, other.frames, "{what}: frames");
        assert_eq!(a.hashes, other.hashes, "{what}: final state hashes");
        assert_eq!(a.stops, other.stops, "{what}: stops");
    }
}

#[test]
fn frames_arrive_no_earlier_than_send_plus_latency() {
    let o = run("kvstore-bug.toml", 3, false);
    let mut received = 0;
    for f in &o.frames {
        if let (FrameFate::Received, Some((_, vtime_ns))) = (f.fate, f.received) {
            received += 1;
            let latency = o.config.latency_ns(f.src, f.dst);
            assert!(f.arrival_ns >= f.sent_ns + latency, "{f:?}");
            assert!(vtime_ns >= f.arrival_ns, "delivered before arrival: {f:?}");
            // Delivered at the first instruction boundary at or after arrival:
            // at most one instruction (10 ns at rate 100) late.
            assert!(vtime_ns - f.arrival_ns <= 10, "delivered late: {f:?}");
        }
    }
    assert!(received > 20);
    // Every FrameReceived event matches exactly one received frame record.
    let recv_events = o
        .events
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::FrameReceived(_)))
        .count();
    assert_eq!(
        recv_events,
        received + o.frames.iter().filter(|f| f.fate == FrameFate::Overflow).count()
    );
}

#[test]
fn partition_drops_exactly_the_frames_across_it() {
    let o = run("kvstore-bug.toml", 3, false);
    let mut cut: Option<(u64, Vec<usize>)> = None;
    let mut windows = Vec::new();
    for f in &o.config.faults {
        match &f.kind {
            FaultKind::Partition(group) => cut = Some((f.at_ns, group.clone())),
            FaultKind::Heal => {
                if let Some((from, group)) = cut.take() {
                    windows.push((from, f.at_ns, group));
                }
            }
            _ => {}
        }
    }
    assert!(!windows.is_empty(), "kvstore-bug.toml has a partition and a heal");
    let mut partitioned = 0;
    for f in &o.frames {
        let across = windows.iter().any(|(from, to, g)| {
            f.sent_ns >= *from && f.sent_ns < *to && g.contains(&f.src) != g.contains(&f.dst)
        });
        assert_eq!(across, f.fate == FrameFate::Partitioned, "{f:?}");
        partitioned += across as usize;
    }
    assert!(partitioned > 0, "the partition cut some frames");
}

#[test]
fn kvstore_bug_shows_only_with_its_schedule() {
    let bug = run("kvstore-bug.toml", 3, false);
    assert_eq!(
        bug.stops[0],
        Some(Stop::Exited(1)),
        "primary reports the bug:\n{}",
        console_of(&bug, 0)
    );
    assert!(console_of(&bug, 0).contains("STALE"), "{}", console_of(&bug, 0));
    let ok = run("kvstore-ok.toml", 3, false);
    assert!(
        ok.stops.iter().all(|s| *s == Some(Stop::Exited(0))),
        "{:?}",
        ok.stops
    );
    assert!(
        console_of(&ok, 0).contains("consistent"),
        "{}",
        console_of(&ok, 0)
    );
}

/// Markers named `name` that VM `vm` emitted, in order (their values).
fn markers_of(o: &Outcome, vm: usize, name: &str) -> Vec<u32> {
    o.events
        .iter()
        .filter(|e| e.vm == vm)
        .filter_map(|e| match &e.event.kind {
            EventKind::Marker { name: n, value } if n == name => Some(*value),
            _ => None,
        })
        .collect()
}

/// tcpkv runs lwIP's TCP in every VM (guests/tcpkv, guests/lwip-port). Its
/// stale read needs tcpkv-bug.toml's faults, which also force the TCP
/// mechanics the demo is about: duplicate ACKs and a fast retransmit on
/// one link, an RTO retransmission delivered late on the other. lwIP draws
/// its sequence numbers from rdrand, so the run also checks that those are
/// the same whatever the host threads do.
#[test]
fn tcpkv_bug_shows_only_with_its_schedule() {
    const PRIMARY: usize = 0;
    const REPLICA1: usize = 1;
    const REPLICA2: usize = 2;
    const CLIENT: usize = 3;
    let bug = run("tcpkv-bug.toml", 2, false);
    let client = console_of(&bug, CLIENT);
    assert_eq!(
        bug.stops[CLIENT],
        Some(Stop::Exited(1)),
        "client reports the bug:\n{client}"
    );
    assert!(
        client.contains("STALE READ k3 at replica2: got 31, want 32"),
        "{client}"
    );
    assert_eq!(
        markers_of(&bug, REPLICA1, "tcp-dupack").len(),
        3,
        "{}",
        console_of(&bug, REPLICA1)
    );
    assert!(
        markers_of(&bug, PRIMARY, "tcp-rexmit").len() >= 2,
        "a fast retransmit and a late one:\n{}",
        console_of(&bug, PRIMARY)
    );
    // Replica2 applies #7 twice: over the new connection, then late over the old one.
    assert_eq!(
        markers_of(&bug, REPLICA2, "apply"),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 7],
        "{}",
        console_of(&bug, REPLICA2)
    );
    assert!(bug
        .events
        .iter()
        .any(|e| matches!(e.event.kind, EventKind::RandomRead(_))));

    let again = run("tcpkv-bug.toml", 1, true);
    assert_eq!(bug.events.len(), again.events.len(), "event count");
    if let Some(i) = (0..bug.events.len()).find(|&i| bug.events[i] != again.events[i]) {
        panic!(
            "first differing event #{i}: {:?} vs {:?}",
            bug.events[i], again.events[i]
        );
    }
    assert_eq!(bug.hashes, again.hashes, "final state hashes");

    let ok = run("tcpkv-ok.toml", 2, false);
    assert!(
        ok.stops.iter().all(|s| *s == Some(Stop::Exited(0))),
        "{:?}\n{}",
        ok.stops,
        console_of(&ok, CLIENT)
    );
    assert!(
        console_of(&ok, CLIENT).contains("client: all 14 reads consistent"),
        "{}",
        console_of(&ok, CLIENT)
    );
    for vm in 0..4 {
        assert!(
            markers_of(&ok, vm, "tcp-rexmit").is_empty(),
            "no faults, no retransmissions"
        );
    }
}

/// Writes `text` as a cluster file next to the real ones' images and runs `vmrr run` on it.
fn config_error(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("vmrr-cfg-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.toml");
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/build");
    std::fs::write(&path, text.replace("IMAGES", &images.display().to_string())).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .arg("run")
        .arg(&path)
        .output()
        .expect("run vmrr");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!("{}:", path.display())),
        "names the file: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    stderr
}

const TWO_VMS: &str = "[[vm]]\nname = \"a\"\nimage = \"IMAGES/pingpong.elf\"\n[[vm]]\nname = \"b\"\nimage = \"IMAGES/pingpong.elf\"\n";

#[test]
fn configuration_errors_name_file_line_and_field() {
    let e = config_error(&format!(
        "{TWO_VMS}[[link]]\nbetween = [\"a\", \"zz\"]\nlatency_us = 100\n"
    ));
    assert!(
        e.contains(":8: link[0].between") && e.contains("unknown VM 'zz'") && e.contains("a, b"),
        "{e}"
    );
    let e = config_error("[[vm]]\nname = \"a\"\nimage = \"IMAGES/pingpong.elf\"\n[[vm]]\nname = \"a\"\nimage = \"IMAGES/pingpong.elf\"\n");
    assert!(
        e.contains(":5: vm[1].name") && e.contains("duplicate name 'a'"),
        "{e}"
    );
    let e = config_error(&TWO_VMS.replace("name = \"b\"", "name = \"b\"\nmac = \"52:54:00:12:34:01\""));
    assert!(e.contains("vm[1].mac") && e.contains("duplicate MAC"), "{e}");
    let e = config_error(&format!("[network]\nlatency_us = 0\n{TWO_VMS}"));
    assert!(
        e.contains(":2: network.latency_us") && e.contains("below the minimum"),
        "{e}"
    );
    let e = config_error(&TWO_VMS.replace("IMAGES/pingpong.elf\"\n[[vm]]", "IMAGES/nope.elf\"\n[[vm]]"));
    assert!(e.contains(":3: vm[0].image") && e.contains("no such file"), "{e}");
    let e = config_error(&format!("{TWO_VMS}[[fault]]\nat_us = -5\nkind = \"heal\"\n"));
    assert!(
        e.contains(":8: fault[0].at_us") && e.contains("in the past"),
        "{e}"
    );
    let e = config_error(&format!(
        "{TWO_VMS}[[fault]]\nat_us = 500\nkind = \"heal\"\n[[fault]]\nat_us = 100\nkind = \"heal\"\n"
    ));
    assert!(e.contains("fault[1].at_us") && e.contains("time order"), "{e}");
    let e = config_error(&format!("{TWO_VMS}[[fault]]\nat_us = 5\nkind = \"explode\"\n"));
    assert!(
        e.contains("fault[0].kind") && e.contains("partition, heal, drop or delay"),
        "{e}"
    );
    let e = config_error(&format!("{TWO_VMS}colour = \"blue\"\n"));
    assert!(e.contains("syntax") && e.contains("colour"), "{e}");
}
