//! How events read, the same in every view: `vmrr events`, gdb's
//! `monitor events`, the TUI's events list. A frame that carries TCP/IP
//! reads as Wireshark's Info column does:
//! `TCP 10.0.0.1:60521 → 10.0.0.3:7001 [PSH,ACK] seq=… ack=… len=9`.

use vmrr_index::decode::{ip_text, mac_text, tcp_flags, Decoded, Proto};
use vmrr_index::{EventKind, EventRow, Index, IndexError, PacketRow, VmId};

use crate::vtime::format_ms;

/// The short name of an event kind in lists (`sent`, `recv`, `irq`, …).
pub fn kind_label(k: EventKind) -> &'static str {
    match k {
        EventKind::Console => "console",
        EventKind::FrameSent => "sent",
        EventKind::FrameRecv => "recv",
        EventKind::Interrupt => "irq",
        EventKind::Marker => "marker",
        EventKind::Halt => "halt",
        EventKind::Wake => "wake",
        EventKind::Tsc => "tsc",
        EventKind::Rand => "rand",
        EventKind::Fault => "fault",
        EventKind::Checkpoint => "checkpt",
        EventKind::Stop => "stop",
        EventKind::Exit => "exit",
    }
}

/// Text made printable on one line: newlines as `⏎`, other control
/// characters (a guest's or a hostile name's) as `·`, so nothing reaches
/// the terminal raw.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => '·',
            c => c,
        })
        .collect()
}

/// A duration for people: `20 ms`, `1.50 ms`, `500 µs`, `800 ns`.
pub fn span(ns: u64) -> String {
    if ns >= 1_000_000 && ns.is_multiple_of(1_000_000) {
        format!("{} ms", ns / 1_000_000)
    } else if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// What a view knows about an event beyond its row. For a frame event:
/// the VMs at its other end (every receiver of a flooded frame, the sender
/// of a receipt) and the frame as it was sent (`packets`), whose headers
/// the line shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// The other ends of a frame event.
    pub peers: Vec<VmId>,
    /// The frame's row in `packets`, if the trace keeps it.
    pub packet: Option<PacketRow>,
    /// For a TCP segment, the initial sequence numbers of its direction and
    /// of the other (`Index::tcp_isns`): sequence and acknowledgement
    /// numbers are shown relative to them, as Wireshark does.
    pub isns: (Option<u32>, Option<u32>),
}

impl EventContext {
    /// What the index knows about `e`: its peers and its packet, for a
    /// frame event; nothing for the others.
    pub fn of(index: &Index, e: &EventRow) -> Result<EventContext, IndexError> {
        if !matches!(e.kind, EventKind::FrameSent | EventKind::FrameRecv) {
            return Ok(EventContext::default());
        }
        let packet = match e.value {
            Some(id) => index.packet(id)?,
            None => None,
        };
        let isns = match &packet {
            Some(p) => index.tcp_isns(p)?,
            None => (None, None),
        };
        Ok(EventContext {
            peers: index.frame_peers(e)?,
            packet,
            isns,
        })
    }
}

/// The headers of an IP or ARP frame in one line, as Wireshark's Info
/// column reads (without the window, to keep lists narrow): `TCP
/// 10.0.0.1:5000 → 10.0.0.2:7000 [PSH,ACK] seq=1 ack=9 len=9`, `ARP who
/// has 10.0.0.2? tell 10.0.0.1`, `UDP …`, `ICMP … echo request`;
/// `malformed frame: why` for headers that do not parse. `None` for other
/// Ethernet frames (the guest kit's own), which have no such line. TCP
/// numbers are relative to `isns` (this direction's and the other's
/// initial sequence numbers) where they are known, raw otherwise.
pub fn frame_summary(d: &Decoded, isns: (Option<u32>, Option<u32>)) -> Option<String> {
    let ip = |a: &Option<[u8; 4]>| a.as_ref().map_or_else(|| "?".to_string(), ip_text);
    let port = |p: Option<u16>| p.map_or_else(|| "?".to_string(), |p| p.to_string());
    let (src, dst) = (ip(&d.ip_src), ip(&d.ip_dst));
    let len = d.payload_len.unwrap_or(0);
    Some(match d.proto {
        Proto::Tcp => {
            let t = d.tcp?;
            let mut text = format!(
                "TCP {src}:{} → {dst}:{} [{}] seq={}",
                port(d.src_port),
                port(d.dst_port),
                t.flag_names(),
                t.seq.wrapping_sub(isns.0.unwrap_or(0))
            );
            if t.has(tcp_flags::ACK) {
                text += &format!(" ack={}", t.ack.wrapping_sub(isns.1.unwrap_or(0)));
            }
            text + &format!(" len={len}")
        }
        Proto::Udp => format!(
            "UDP {src}:{} → {dst}:{} len={len}",
            port(d.src_port),
            port(d.dst_port)
        ),
        Proto::Icmp => {
            let (ty, code) = d.icmp.unwrap_or((255, 255));
            let what = match (ty, code) {
                (8, 0) => "echo request".to_string(),
                (0, 0) => "echo reply".to_string(),
                (3, c) => format!("destination unreachable code={c}"),
                (t, c) => format!("type={t} code={c}"),
            };
            format!("ICMP {src} → {dst} {what} len={len}")
        }
        Proto::Arp => match d.arp_op {
            Some(1) => format!("ARP who has {dst}? tell {src}"),
            Some(2) => format!(
                "ARP {src} is at {}",
                d.arp_sender_mac
                    .as_ref()
                    .map_or_else(|| "?".to_string(), mac_text)
            ),
            op => format!("ARP op={} {src} → {dst}", op.unwrap_or(0)),
        },
        Proto::Ipv4 => format!("IPv4 {src} → {dst} proto={}", d.ip_proto.unwrap_or(0)),
        Proto::Ipv6 => "IPv6".to_string(),
        Proto::Ethernet => return None,
        Proto::Malformed => format!(
            "malformed frame: {}",
            printable(d.malformed.as_deref().unwrap_or("headers do not parse"))
        ),
    })
}

/// What an event is about, in a few words: `read-stale = 3`,
/// `frame #49 → backup2`, `frame #0 → backup1, backup2`, `idle 1 ms`.
/// `name` names a VM; `peers` are the other ends of a frame event when the
/// caller knows them (every receiver of a flooded frame). A receipt's
/// headers are read from its own bytes; [`event_detail_with`] shows a
/// send's too.
pub fn event_detail(e: &EventRow, name: &dyn Fn(VmId) -> String, peers: &[VmId]) -> String {
    let ctx = EventContext {
        peers: peers.to_vec(),
        ..EventContext::default()
    };
    event_detail_with(e, name, &ctx)
}

/// A receipt's frame from its own bytes (the replay input it carries).
fn receipt_packet(e: &EventRow) -> Option<PacketRow> {
    match (e.kind, &e.payload) {
        (EventKind::FrameRecv, Some(bytes)) => Some(PacketRow::new(e.value.unwrap_or(0), 0, 0, 0, bytes)),
        _ => None,
    }
}

/// [`event_detail`] with what the index knows about the event: a frame
/// event with its packet (or a receipt, from its own bytes) reads `TCP
/// 10.0.0.1:5000 → 10.0.0.2:7000 [PSH,ACK] seq=… ack=… len=9 (#49 →
/// backup2)`.
pub fn event_detail_with(e: &EventRow, name: &dyn Fn(VmId) -> String, ctx: &EventContext) -> String {
    let peers = &ctx.peers;
    let frame = |arrow: &str| {
        let id = e.value.unwrap_or(0);
        let names: Vec<String> = peers.iter().map(|&p| name(p)).collect();
        let packet = ctx.packet.clone().or_else(|| receipt_packet(e));
        let summary = packet.as_ref().and_then(|p| {
            let mut text = frame_summary(&p.decoded(), ctx.isns)?;
            if p.is_cut() {
                text += &format!(" [{} of {} bytes kept]", p.bytes.len(), p.len);
            }
            Some(text)
        });
        match (summary, names.is_empty()) {
            (None, true) => format!("frame #{id}"),
            (None, false) => format!("frame #{id} {arrow} {}", names.join(", ")),
            (Some(s), true) => format!("{s} (#{id})"),
            (Some(s), false) => format!("{s} (#{id} {arrow} {})", names.join(", ")),
        }
    };
    match e.kind {
        EventKind::Console => {
            let text = match (&e.text, &e.payload) {
                (Some(t), _) => t.clone(),
                (None, Some(p)) => String::from_utf8_lossy(p).into_owned(),
                _ => String::new(),
            };
            printable(text.trim_end_matches('\n'))
        }
        EventKind::Marker => format!(
            "{} = {}",
            printable(e.text.as_deref().unwrap_or("?")),
            e.value.map(|v| v as i64).unwrap_or(0)
        ),
        EventKind::FrameSent => frame("→"),
        EventKind::FrameRecv => frame("←"),
        EventKind::Interrupt => format!("vector {:#04x}", e.value.unwrap_or(0)),
        EventKind::Wake => format!("idle {}", span(e.value.unwrap_or(0))),
        EventKind::Exit => format!("exit value {}", e.value.unwrap_or(0)),
        EventKind::Tsc | EventKind::Rand => format!("{:#x}", e.value.unwrap_or(0)),
        _ => e
            .text
            .as_deref()
            .map(printable)
            .or_else(|| e.value.map(|v| v.to_string()))
            .unwrap_or_default(),
    }
}

/// One event on one line, for terminals and gdb's console, with the kind
/// as it is stored and typed in filters:
/// `#123      122.219691 ms  backup2       24456  marker      read-stale = 3`.
/// `width` is the width of the VM name column.
pub fn event_line(e: &EventRow, name: &dyn Fn(VmId) -> String, peers: &[VmId], width: usize) -> String {
    let ctx = EventContext {
        peers: peers.to_vec(),
        ..EventContext::default()
    };
    event_line_with(e, name, &ctx, width)
}

/// [`event_line`] with what the index knows about the event (see
/// [`event_detail_with`]).
pub fn event_line_with(
    e: &EventRow,
    name: &dyn Fn(VmId) -> String,
    ctx: &EventContext,
    width: usize,
) -> String {
    format!(
        "#{:<7} {:>17}  {:<width$}  {:>10}  {:<10}  {}",
        e.id,
        format_ms(e.vtime_ns),
        printable(&name(e.vm)),
        e.icount,
        e.kind.as_str(),
        event_detail_with(e, name, ctx)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_the_same_everywhere() {
        let names = |vm: VmId| ["primary", "backup1", "backup2"][vm as usize].to_string();
        let e = EventRow::new(2, 24_456, 122_219_691, EventKind::Marker)
            .with_text("read-stale")
            .with_value(3);
        assert_eq!(event_detail(&e, &names, &[]), "read-stale = 3");
        let mut sent = EventRow::new(0, 10, 1000, EventKind::FrameSent).with_value(49);
        sent.id = 7;
        assert_eq!(event_detail(&sent, &names, &[2]), "frame #49 → backup2");
        assert_eq!(
            event_detail(&sent, &names, &[1, 2]),
            "frame #49 → backup1, backup2"
        );
        let line = event_line(&sent, &names, &[2], 8);
        assert!(line.starts_with("#7 "), "{line}");
        assert!(
            line.contains("0.001000 ms  primary") && line.ends_with("frame #49 → backup2"),
            "{line}"
        );
        let hostile = EventRow::new(0, 1, 1, EventKind::Console).with_text("a\u{1b}[2Jb\n");
        assert_eq!(event_detail(&hostile, &names, &[]), "a·[2Jb");
        assert_eq!(span(1_500_000), "1.50 ms");
    }

    /// A TCP segment from 10.0.0.1:60521 to 10.0.0.3:7001 with `data`.
    fn segment(data: &[u8]) -> Vec<u8> {
        let mut f = vec![
            0x52, 0x54, 0, 0x12, 0x34, 3, 0x52, 0x54, 0, 0x12, 0x34, 1, 0x08, 0x00,
        ];
        let total = 20 + 20 + data.len() as u16;
        f.extend([0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 6, 0, 0]);
        f.extend([10, 0, 0, 1, 10, 0, 0, 3]);
        f.extend(60521u16.to_be_bytes());
        f.extend(7001u16.to_be_bytes());
        f.extend(1055u32.to_be_bytes());
        f.extend(19u32.to_be_bytes());
        f.extend([0x50, 0x18]); // data offset 5, PSH+ACK
        f.extend(2144u16.to_be_bytes());
        f.extend([0, 0, 0, 0]);
        f.extend(data);
        f.resize(f.len().max(60), 0);
        f
    }

    #[test]
    fn tcp_frames_read_like_wireshark() {
        let names = |vm: VmId| ["primary", "replica1", "replica2"][vm as usize].to_string();
        let sent = EventRow::new(0, 10, 1000, EventKind::FrameSent).with_value(12);
        let mut ctx = EventContext {
            peers: vec![2],
            packet: Some(PacketRow::new(12, 0, 10, 1000, &segment(b"W 7 3 31\n"))),
            isns: (None, None),
        };
        assert_eq!(
            event_detail_with(&sent, &names, &ctx),
            "TCP 10.0.0.1:60521 → 10.0.0.3:7001 [PSH,ACK] seq=1055 ack=19 len=9 (#12 → replica2)"
        );
        // Relative to the connection's SYNs where they are known.
        ctx.isns = (Some(1000), Some(10));
        assert!(
            event_detail_with(&sent, &names, &ctx).contains("[PSH,ACK] seq=55 ack=9 len=9 "),
            "{}",
            event_detail_with(&sent, &names, &ctx)
        );
        // A receipt reads its own bytes, even without the packets table.
        let recv = EventRow::new(2, 50, 1050, EventKind::FrameRecv)
            .with_value(12)
            .with_payload(segment(b""));
        assert_eq!(
            event_detail(&recv, &names, &[0]),
            "TCP 10.0.0.1:60521 → 10.0.0.3:7001 [PSH,ACK] seq=1055 ack=19 len=0 (#12 ← primary)"
        );
        // Hostile bytes: a line saying so, never a panic.
        let mut bad = segment(b"");
        bad[16] = 0xff;
        let recv = recv.with_payload(bad);
        assert!(
            event_detail(&recv, &names, &[]).starts_with("malformed frame: "),
            "{}",
            event_detail(&recv, &names, &[])
        );
        // The kit's own frames keep their short form.
        let kit = EventRow::new(2, 50, 1050, EventKind::FrameRecv)
            .with_value(3)
            .with_payload(vec![0u8; 60]);
        assert_eq!(event_detail(&kit, &names, &[0]), "frame #3 ← primary");
    }

    #[test]
    fn arp_udp_and_icmp_lines() {
        let mut d = Decoded::of(&[]);
        d.proto = Proto::Arp;
        d.arp_op = Some(1);
        d.ip_src = Some([10, 0, 0, 1]);
        d.ip_dst = Some([10, 0, 0, 2]);
        assert_eq!(
            frame_summary(&d, (None, None)).as_deref(),
            Some("ARP who has 10.0.0.2? tell 10.0.0.1")
        );
        d.arp_op = Some(2);
        d.arp_sender_mac = Some([0x52, 0x54, 0, 0x12, 0x34, 1]);
        assert_eq!(
            frame_summary(&d, (None, None)).as_deref(),
            Some("ARP 10.0.0.1 is at 52:54:00:12:34:01")
        );
        d.proto = Proto::Udp;
        d.src_port = Some(68);
        d.dst_port = Some(67);
        d.payload_len = Some(3);
        assert_eq!(
            frame_summary(&d, (None, None)).as_deref(),
            Some("UDP 10.0.0.1:68 → 10.0.0.2:67 len=3")
        );
        d.proto = Proto::Icmp;
        d.icmp = Some((8, 0));
        assert_eq!(
            frame_summary(&d, (None, None)).as_deref(),
            Some("ICMP 10.0.0.1 → 10.0.0.2 echo request len=3")
        );
    }
}
