//! The packets table (schema 3): frames kept once with their decoded
//! headers, the TCP queries that follow a segment, the checksum that
//! covers every column, and the migration from schema 2.

mod common;

use common::*;
use etherparse::PacketBuilder;
use vmrr_index::{Index, PacketRow, SCHEMA_VERSION};

/// A TCP segment from 10.0.0.1:5000 to 10.0.0.2:7000 (or back, `reply`).
fn segment(reply: bool, seq: u32, ack: Option<u32>, syn: bool, data: &[u8]) -> Vec<u8> {
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sp, dp) = if reply {
        (b, a, 7000, 5000)
    } else {
        (a, b, 5000, 7000)
    };
    let mut builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, src[3]], [2, 0, 0, 0, 0, dst[3]])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 2144);
    if syn {
        builder = builder.syn();
    }
    if let Some(n) = ack {
        builder = builder.ack(n);
    }
    let mut out = Vec::new();
    builder.write(&mut out, data).expect("builds");
    out.resize(out.len().max(60), 0);
    out
}

/// A small conversation: handshake, a segment lost and sent again, its ACK.
fn conversation() -> Vec<PacketRow> {
    let frames = [
        (0, segment(false, 100, None, true, b"")),          // 0 SYN
        (1, segment(true, 900, Some(101), true, b"")),      // 1 SYN,ACK
        (0, segment(false, 101, Some(901), false, b"")),    // 2 ACK
        (0, segment(false, 101, Some(901), false, b"abc")), // 3 data (lost)
        (0, segment(false, 104, Some(901), false, b"de")),  // 4 data
        (1, segment(true, 901, Some(101), false, b"")),     // 5 dup ACK
        (0, segment(false, 101, Some(901), false, b"abc")), // 6 retransmission of 3
        (1, segment(true, 901, Some(106), false, b"")),     // 7 ACK covering 3, 4 and 6
    ];
    frames
        .iter()
        .enumerate()
        .map(|(i, (src, bytes))| PacketRow::new(i as u64, *src, 10 * i as u64, 1000 * i as u64, bytes))
        .collect()
}

fn with_packets(s: &Scratch) -> Index {
    let (mut index, _) = build_small(&s.index_path());
    for p in conversation() {
        index.add_packet(&p).expect("packet");
    }
    index.flush().expect("flush");
    index
}

#[test]
fn packets_round_trip_and_decode_into_columns() {
    let s = Scratch::new("packets");
    with_packets(&s).close().expect("close");
    let index = Index::open_read_only(s.index_path()).expect("open");
    assert!(index.verify_checksums().expect("checksums"));
    for p in conversation() {
        assert_eq!(index.packet(p.id).expect("read"), Some(p));
    }
    assert_eq!(index.packet_count().expect("count"), 8);
    assert_eq!(index.packets_in_window(2000, 5000, 10).expect("window").len(), 3);
    // SQL over the decoded columns: the handshake, by flags.
    let (_, rows) = index
        .query_read_only("SELECT id, flags FROM tcp_segments WHERE flags LIKE 'SYN%' ORDER BY id")
        .expect("sql");
    let got: Vec<String> = rows.iter().map(|r| format!("{} {}", r[0], r[1])).collect();
    assert_eq!(got, ["0 SYN", "1 SYN,ACK"]);
    let (_, rows) = index
        .query_read_only("SELECT ip_src, src_port, payload_len, proto FROM packets WHERE id = 3")
        .expect("sql");
    let got: Vec<String> = rows[0].iter().map(|v| v.to_string()).collect();
    assert_eq!(got, ["10.0.0.1", "5000", "3", "tcp"]);
    // Sequence numbers relative to each direction's SYN, as Wireshark shows them.
    let (_, rows) = index
        .query_read_only("SELECT id, rel_seq, rel_ack FROM tcp_segments WHERE id IN (0, 3, 7) ORDER BY id")
        .expect("sql");
    let got: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}", r[0], r[1], r[2]))
        .collect();
    assert_eq!(got, ["0 0 NULL", "3 1 1", "7 1 6"]);
    let seg = index.packet(7).expect("read").expect("row");
    assert_eq!(index.tcp_isns(&seg).expect("isns"), (Some(900), Some(100)));
}

#[test]
fn a_segment_leads_to_its_retransmission_and_its_ack() {
    let s = Scratch::new("packets-follow");
    let index = with_packets(&s);
    let lost = index.packet(3).expect("read").expect("row");
    assert_eq!(
        index.tcp_retransmission(&lost).expect("query").map(|p| p.id),
        Some(6)
    );
    assert_eq!(index.tcp_ack_of(&lost).expect("query").map(|p| p.id), Some(7));
    // A SYN is covered by the SYN,ACK; a pure ACK has nothing to follow.
    let syn = index.packet(0).expect("read").expect("row");
    assert_eq!(index.tcp_ack_of(&syn).expect("query").map(|p| p.id), Some(1));
    let pure = index.packet(2).expect("read").expect("row");
    assert_eq!(index.tcp_retransmission(&pure).expect("query"), None);
    assert_eq!(index.tcp_ack_of(&pure).expect("query"), None);
    // The retransmission itself was not sent again; it leads back to the
    // first copy, which has none before it.
    let again = index.packet(6).expect("read").expect("row");
    assert_eq!(index.tcp_retransmission(&again).expect("query"), None);
    assert_eq!(index.tcp_original(&again).expect("query").map(|p| p.id), Some(3));
    assert_eq!(index.tcp_original(&lost).expect("query"), None);
}

#[test]
fn an_edited_packet_column_is_damage() {
    let s = Scratch::new("packets-tamper");
    with_packets(&s).close().expect("close");
    for edit in [
        "UPDATE packets SET tcp_seq = 7 WHERE id = 3",
        "UPDATE packets SET bytes = zeroblob(60) WHERE id = 3",
        "DELETE FROM packets WHERE id = 6",
    ] {
        let copy = Scratch::new("packets-tamper-copy");
        std::fs::copy(s.index_path(), copy.index_path()).expect("copy");
        rusqlite::Connection::open(copy.index_path())
            .expect("open")
            .execute_batch(edit)
            .expect("edit");
        let err = Index::open_read_only(copy.index_path())
            .expect("opens")
            .verify_checksums()
            .expect_err(edit);
        assert!(err.to_string().contains("the packets table"), "{edit}: {err}");
    }
}

#[test]
fn schema_2_migrates_with_an_empty_packets_table() {
    let s = Scratch::new("packets-migrate");
    let (index, _) = build_small(&s.index_path());
    index.close().expect("close");
    // Make it what a schema-2 recorder wrote: no packets, four checksums.
    rusqlite::Connection::open(s.index_path())
        .expect("open")
        .execute_batch(
            "DROP VIEW tcp_segments; DROP TABLE packets; DELETE FROM meta WHERE key = 'checksum.packets';
             UPDATE meta SET value = '2' WHERE key = 'schema_version'; PRAGMA user_version = 2;",
        )
        .expect("downgrade");
    assert!(
        Index::open_read_only(s.index_path()).is_err(),
        "old schemas open read-write first"
    );
    let index = Index::open(s.index_path()).expect("migrates");
    assert_eq!(index.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(index.packet_count().expect("count"), 0);
    assert!(index.verify_checksums().expect("still undamaged"));
    // `vmrr index` then keeps what the receipts carried: frames 1, 2 and
    // 3 were received (one row for flooded frame 1), 4 and 5 never were.
    let mut index = index;
    assert_eq!(
        index.fill_packets_from_receipts().expect("fill"),
        0,
        "no receipts carry bytes"
    );
    drop(index);
    rusqlite::Connection::open(s.index_path())
        .expect("open")
        .execute_batch(
            "UPDATE events SET value = 1, payload = zeroblob(60) WHERE kind = 'frame_recv' AND vm = 1;",
        )
        .expect("receipts with bytes");
    let mut index = Index::open(s.index_path()).expect("open");
    index.seal_checksums().expect("seal the edit");
    let added = index.fill_packets_from_receipts().expect("fill");
    assert!(added >= 1, "{added}");
    assert_eq!(
        index.packet(1).expect("read").map(|p| (p.src, p.len)),
        Some((0, 60))
    );
    assert!(index.verify_checksums().expect("sealed"));
    assert_eq!(index.fill_packets_from_receipts().expect("again"), 0);
}
