//! The TCP demo (clusters/tcpkv-bug.toml: lwIP in four VMs) as frames:
//! recorded twice it gives the same trace; it replays and verifies; its
//! frames are kept and decoded, so SQL finds the handshake, the segment the
//! fault schedule lost, its retransmission and the ACK that covers it; the
//! Session follows a segment to both; `vmrr pcap` writes a capture that
//! tshark reads with the index's frame count, virtual times and the
//! retransmissions the guests themselves reported. Needs /dev/kvm and
//! tshark (scripts/install-deps.sh installs it).

mod demo;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vmrr_debugger::session::{Move, Outcome, SegmentLink, Session};
use vmrr_index::{EventFilter, EventKind, Index, PacketRow};

fn vmrr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .args(args)
        .output()
        .expect("run vmrr")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn trace() -> &'static Path {
    demo::tcpkv_bug_trace()
}

fn trace_str() -> &'static str {
    trace().to_str().expect("utf-8 path")
}

fn index() -> Index {
    Index::open_read_only(trace().join("index.sqlite")).expect("open index")
}

/// Rows of a read-only query, each as tab-separated text.
fn sql(index: &Index, query: &str) -> Vec<String> {
    let (_, rows) = index.query_read_only(query).expect(query);
    rows.iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\t"))
        .collect()
}

/// The values of the `tcp-rexmit` markers: the relative sequence numbers
/// of the segments the guests' TCP sent again (lwip-port/tcpwatch.c).
fn rexmit_markers(index: &Index) -> Vec<u64> {
    let filter = EventFilter::all().with_kinds(vec![EventKind::Marker]);
    index
        .events_in_window(0, u64::MAX, &filter, usize::MAX)
        .expect("markers")
        .into_iter()
        .filter(|e| e.text.as_deref() == Some("tcp-rexmit"))
        .filter_map(|e| e.value)
        .collect()
}

fn tshark(args: &[&str]) -> String {
    let o = Command::new("tshark")
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .expect("tshark runs (scripts/install-deps.sh installs it)");
    assert!(o.status.success(), "tshark {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-tcp-frames-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// What must be the same in two recordings of one cluster: every event,
/// frame, packet and checkpoint state, and the checksums over them. Not
/// the checkpoint files' own hashes (so not `checksum.checkpoints`, which
/// covers them): the vCPU's saved XSAVE area holds the host FPU's
/// XSTATE_BV bits, which are not the guest's and may differ between runs;
/// the state hashes, which are the guest's, must not.
fn contents(dir: &Path) -> Vec<String> {
    let index = Index::open_read_only(dir.join("index.sqlite")).expect("open");
    let mut out = Vec::new();
    for q in [
        "SELECT id, vm, icount, vtime_ns, kind, value, hex(payload), text FROM events ORDER BY id",
        "SELECT * FROM frames ORDER BY id, dst",
        "SELECT id, src, sent_icount, sent_vtime_ns, len, hex(bytes) FROM packets ORDER BY id",
        "SELECT vm, icount, vtime_ns, state_hash FROM checkpoints ORDER BY vm, icount",
        "SELECT key, value FROM meta WHERE key LIKE 'checksum.%' AND key <> 'checksum.checkpoints' ORDER BY key",
    ] {
        out.push(format!("-- {q}"));
        out.extend(sql(&index, q));
    }
    out
}

#[test]
fn recording_twice_gives_the_same_trace() {
    let again = demo::record_demo("tcpkv-bug.toml", "tcpkv-again");
    let (a, b) = (contents(trace()), contents(&again));
    assert!(a.len() > 5_000, "a real trace: {} rows", a.len());
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!("first difference, row {i}: {:?} vs {:?}", a.get(i), b.get(i));
    }
    let _ = std::fs::remove_dir_all(&again);
}

#[test]
fn the_recording_replays_and_verifies() {
    let o = vmrr(&["replay", trace_str(), "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn every_frame_is_kept_once_and_decoded() {
    let index = index();
    let sent = index
        .count_events(&EventFilter::all().with_kinds(vec![EventKind::FrameSent]))
        .expect("count");
    assert_eq!(index.packet_count().expect("count"), sent, "one packet per send");
    let ids = sql(&index, "SELECT count(DISTINCT id) FROM frames");
    let lost = sql(
        &index,
        "SELECT count(*) FROM packets WHERE id IN (SELECT id FROM frames WHERE fate <> 'received')",
    );
    assert!(
        lost[0].parse::<u64>().expect("n") >= 6,
        "the faults lost frames: {lost:?} of {ids:?}"
    );
    // lwIP speaks ARP and TCP, nothing else, and every frame parses.
    assert_eq!(
        sql(&index, "SELECT DISTINCT proto FROM packets ORDER BY proto"),
        ["arp", "tcp"]
    );
    // The events list reads like Wireshark, sequence numbers relative.
    let o = vmrr(&["events", trace_str(), "--kind", "frame_sent", "--vm", "primary"]);
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(
        listed.contains("TCP 10.0.0.1:60520 → 10.0.0.2:7001 [SYN] seq=0 len=0 (#"),
        "{listed}"
    );
    assert!(listed.contains("[FIN,ACK] seq=64 ack=25"), "{listed}");
    assert!(listed.contains("ARP who has 10.0.0.2? tell 10.0.0.1"), "{listed}");
}

/// The first later segment of the same flow with the same sequence number,
/// for each segment with data, SYN or FIN: (original, retransmission).
const RETRANSMISSIONS: &str = "SELECT a.id, min(b.id), a.rel_seq FROM tcp_segments a JOIN tcp_segments b \
     ON b.ip_src = a.ip_src AND b.src_port = a.src_port AND b.ip_dst = a.ip_dst AND b.dst_port = a.dst_port \
     AND b.seq = a.seq AND b.id > a.id AND (b.len > 0 OR b.flags LIKE '%SYN%' OR b.flags LIKE '%FIN%') \
     WHERE a.len > 0 OR a.flags LIKE '%SYN%' OR a.flags LIKE '%FIN%' GROUP BY a.id ORDER BY a.id";

#[test]
fn sql_finds_the_handshake_the_retransmission_and_its_ack() {
    let index = index();
    // The primary's first replication connection to replica1, opened.
    let handshake = sql(
        &index,
        "SELECT flags, rel_seq, ifnull(rel_ack, '-') FROM tcp_segments \
         WHERE (src_port = 60520 OR dst_port = 60520) ORDER BY id LIMIT 3",
    );
    assert_eq!(handshake, ["SYN\t0\t-", "SYN,ACK\t0\t1", "ACK\t1\t1"]);
    // Segments sent again: exactly those the guests' TCP reported.
    let pairs = sql(&index, RETRANSMISSIONS);
    let seqs: BTreeSet<u64> = pairs
        .iter()
        .map(|r| {
            r.rsplit('\t')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("rel_seq")
        })
        .collect();
    let markers: BTreeSet<u64> = rexmit_markers(&index).into_iter().collect();
    assert_eq!(seqs, markers, "{pairs:?}");
    assert_eq!(markers, BTreeSet::from([19, 55, 64]));
    // The one the first fault lost: #3 (9 bytes at seq 19) to replica1. Its
    // first copy was dropped, its retransmission received, and the ACK
    // that covers it comes back from replica1, after the retransmission.
    let lost = sql(
        &index,
        "SELECT t.id FROM tcp_segments t JOIN frames f ON f.id = t.id \
         WHERE t.src_port = 60520 AND t.rel_seq = 19 AND t.len = 9 AND f.fate = 'dropped'",
    );
    assert_eq!(lost.len(), 1, "{lost:?}");
    let ack = sql(
        &index,
        &format!(
            "SELECT id, rel_ack FROM tcp_segments WHERE dst_port = 60520 AND id > {} AND rel_ack >= 28 \
             ORDER BY id LIMIT 1",
            lost[0]
        ),
    );
    let original: u64 = lost[0].parse().expect("id");
    let rexmit = index
        .tcp_retransmission(&index.packet(original).expect("read").expect("row"))
        .expect("query")
        .expect("sent again");
    let covering = index
        .tcp_ack_of(&index.packet(original).expect("read").expect("row"))
        .expect("query")
        .expect("acknowledged");
    assert_eq!(ack[0].split('\t').next(), Some(covering.id.to_string().as_str()));
    assert!(
        pairs.contains(&format!("{original}\t{}\t19", rexmit.id)),
        "{pairs:?}"
    );
    assert!(covering.id > rexmit.id, "acknowledged after the retransmission");
    assert_eq!(
        sql(
            &index,
            &format!("SELECT fate FROM frames WHERE id = {}", rexmit.id)
        ),
        ["received"]
    );
}

#[test]
fn the_session_follows_a_segment_to_its_retransmission_and_its_ack() {
    let index = index();
    let lost: u64 = sql(
        &index,
        "SELECT t.id FROM tcp_segments t JOIN frames f ON f.id = t.id \
         WHERE t.src_port = 60520 AND t.rel_seq = 19 AND t.len = 9 AND f.fate = 'dropped'",
    )[0]
    .parse()
    .expect("id");
    let packet: PacketRow = index.packet(lost).expect("read").expect("row");
    let send_event = index
        .frame_event(packet.src, packet.sent_icount, EventKind::FrameSent, lost)
        .expect("query")
        .expect("its send")
        .id;
    let mut s = Session::open(trace()).expect("open");
    let frame_of = |s: &Session, outcome: &Outcome| match outcome {
        Outcome::Moved { event: Some(id), .. } => s
            .trace()
            .index()
            .event(*id)
            .expect("event")
            .map(|e| (e.kind, e.value, e.vm, e.icount)),
        other => panic!("{other:?}"),
    };
    let rexmit = index.tcp_retransmission(&packet).expect("query").expect("row");
    let moved = s
        .perform(
            &Move::FollowSegment {
                event: Some(send_event),
                to: SegmentLink::Retransmission,
            },
            &|_| {},
        )
        .expect("follows");
    assert_eq!(
        frame_of(&s, &moved),
        Some((
            EventKind::FrameSent,
            Some(rexmit.id),
            rexmit.src,
            rexmit.sent_icount
        ))
    );
    assert_eq!(
        s.position(rexmit.src).expect("pos").icount,
        rexmit.sent_icount + 1
    );
    // From the retransmission (the event the cursor now stands on): its ACK.
    let ack = index.tcp_ack_of(&packet).expect("query").expect("row");
    let moved = s
        .perform(
            &Move::FollowSegment {
                event: None,
                to: SegmentLink::Ack,
            },
            &|_| {},
        )
        .expect("follows");
    assert_eq!(
        frame_of(&s, &moved),
        Some((EventKind::FrameSent, Some(ack.id), ack.src, ack.sent_icount))
    );
    // A pure ACK (replica1's duplicate ACKs) has nothing to follow; the
    // error says why.
    let dupack: u64 = sql(
        &index,
        "SELECT id FROM tcp_segments WHERE dst_port = 60520 AND flags = 'ACK' AND len = 0 LIMIT 1",
    )[0]
    .parse()
    .expect("id");
    let dup = index.packet(dupack).expect("read").expect("row");
    let dup_event = index
        .frame_event(dup.src, dup.sent_icount, EventKind::FrameSent, dupack)
        .expect("query")
        .expect("its send")
        .id;
    let err = s
        .perform(
            &Move::FollowSegment {
                event: Some(dup_event),
                to: SegmentLink::Retransmission,
            },
            &|_| {},
        )
        .expect_err("a pure ACK");
    assert!(err.to_string().contains("carries no data, SYN or FIN"), "{err}");
}

/// One line per frame: epoch time, interface, comment, relative seq.
fn capture_lines(file: &Path, filter: Option<&str>) -> Vec<String> {
    let file = file.to_str().expect("utf-8");
    let mut args = vec!["-r", file, "-T", "fields", "-E", "separator=|"];
    if let Some(f) = filter {
        args.extend(["-Y", f]);
    }
    args.extend([
        "-e",
        "frame.time_epoch",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.comment",
        "-e",
        "tcp.seq",
    ]);
    tshark(&args).lines().map(str::to_string).collect()
}

/// `S.NNNNNNNNN` seconds as nanoseconds, exactly.
fn epoch_ns(text: &str) -> u64 {
    let (s, frac) = text.split_once('.').expect("seconds.fraction");
    let frac = format!("{frac:0<9}");
    s.parse::<u64>().expect("s") * 1_000_000_000 + frac[..9].parse::<u64>().expect("ns")
}

#[test]
fn tshark_reads_the_capture() {
    let index = index();
    let dir = scratch("pcap");
    let file = dir.join("tcpkv.pcapng");
    let o = vmrr(&["pcap", trace_str(), "-o", file.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let packets = index.packets_in_window(0, u64::MAX, usize::MAX).expect("packets");
    let lines = capture_lines(&file, None);
    // Every frame, in send order, at its virtual time, on its sender's link.
    assert_eq!(lines.len(), packets.len(), "frame count");
    let names = index.vms().expect("vms");
    for (line, p) in lines.iter().zip(&packets) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(epoch_ns(f[0]), p.sent_vtime_ns, "frame #{}: {line}", p.id);
        assert_eq!(f[1], names[p.src as usize].name, "frame #{}", p.id);
    }
    // The frames the faults ate say so.
    let commented = lines.iter().filter(|l| l.contains("lost on the way to")).count();
    let lost = sql(
        &index,
        "SELECT count(DISTINCT id) FROM frames WHERE fate <> 'received'",
    );
    assert_eq!(commented.to_string(), lost[0]);
    // TCP stream analysis finds the retransmissions the guests reported.
    let rexmits = capture_lines(&file, Some("tcp.analysis.retransmission"));
    let seqs: BTreeSet<u64> = rexmits
        .iter()
        .filter_map(|l| l.rsplit('|').next().and_then(|s| s.parse().ok()))
        .collect();
    assert_eq!(seqs, rexmit_markers(&index).into_iter().collect(), "{rexmits:?}");
    assert_eq!(rexmits.len(), 3, "{rexmits:?}");

    // To standard output, one VM, a window of time: what the options say.
    let out = Command::new(env!("CARGO_BIN_EXE_vmrr"))
        .args([
            "pcap",
            trace_str(),
            "-o",
            "-",
            "--vm",
            "replica2",
            "--from",
            "2.7s",
            "--to",
            "end",
        ])
        .output()
        .expect("run vmrr");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let piped = dir.join("piped.pcapng");
    std::fs::write(&piped, &out.stdout).expect("write");
    let want = sql(
        &index,
        "SELECT count(*) FROM packets p WHERE sent_vtime_ns >= 2700000000 \
         AND (src = 2 OR EXISTS (SELECT 1 FROM frames f WHERE f.id = p.id AND f.dst = 2))",
    );
    assert_eq!(capture_lines(&piped, None).len().to_string(), want[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pcap_refuses_what_it_cannot_do() {
    let o = vmrr(&["pcap", trace_str(), "--vm", "nobody", "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no VM 'nobody'"),
        "{}",
        text(&o)
    );
    let o = vmrr(&["pcap", trace_str(), "--from", "#999999999", "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no event #999999999"),
        "{}",
        text(&o)
    );
    let o = vmrr(&["pcap", "/nonexistent-trace", "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
