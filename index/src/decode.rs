//! What a frame's headers say: Ethernet, ARP, IPv4, ICMP, UDP and TCP,
//! decoded with `etherparse` into plain values. The `packets` table stores
//! them as columns (so SQL can ask for a flow, a flag or a sequence
//! number) and the views print them; both come from [`Decoded::of`], so
//! they always agree.
//!
//! Frames come from guests, which may be hostile or simply buggy: a
//! truncated header, a length field that lies, an unknown protocol. None of
//! these panics; what cannot be decoded is [`Proto::Malformed`] with the
//! parser's reason, and what was decoded before it (the Ethernet header)
//! is kept.

use std::fmt;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

/// The ethertypes the decoder names.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// The innermost protocol a frame was decoded to; stored as text in
/// `packets.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A TCP segment over IPv4.
    Tcp,
    /// A UDP datagram over IPv4.
    Udp,
    /// An ICMP message over IPv4.
    Icmp,
    /// An ARP packet (Ethernet/IPv4 addresses).
    Arp,
    /// IPv4 carrying another protocol, or a fragment.
    Ipv4,
    /// IPv6 (not decoded further).
    Ipv6,
    /// Ethernet with another ethertype (the guest kit's 0x88B5 frames).
    Ethernet,
    /// Headers that do not parse: too short, or a length that lies.
    Malformed,
}

impl Proto {
    /// Every protocol, in the order of the enum.
    pub const ALL: [Proto; 8] = [
        Proto::Tcp,
        Proto::Udp,
        Proto::Icmp,
        Proto::Arp,
        Proto::Ipv4,
        Proto::Ipv6,
        Proto::Ethernet,
        Proto::Malformed,
    ];

    /// The text stored in `packets.proto` (`"tcp"`, `"arp"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Arp => "arp",
            Proto::Ipv4 => "ipv4",
            Proto::Ipv6 => "ipv6",
            Proto::Ethernet => "ethernet",
            Proto::Malformed => "malformed",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TCP flag bits of `packets.tcp_flags`, as in the header's 13th byte.
pub mod tcp_flags {
    /// No more data from the sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// The acknowledgement number is valid.
    pub const ACK: u8 = 0x10;
    /// The urgent pointer is valid.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
    /// Every flag with its name, in the order Wireshark lists them.
    pub const NAMES: [(u8, &str); 8] = [
        (FIN, "FIN"),
        (SYN, "SYN"),
        (RST, "RST"),
        (PSH, "PSH"),
        (ACK, "ACK"),
        (URG, "URG"),
        (ECE, "ECE"),
        (CWR, "CWR"),
    ];
}

/// The TCP header fields of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFields {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with the ACK flag).
    pub ack: u32,
    /// Flag bits ([`tcp_flags`]).
    pub flags: u8,
    /// Advertised window (unscaled).
    pub window: u16,
}

impl TcpFields {
    /// Whether `flag` ([`tcp_flags`]) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The flags as Wireshark writes them, without spaces: `SYN,ACK`.
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = tcp_flags::NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, name)| *name)
            .collect();
        names.join(",")
    }
}

/// Everything the decoder read from one frame. Fields a frame does not
/// have are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The innermost protocol decoded.
    pub proto: Proto,
    /// Ethernet destination.
    pub eth_dst: Option<[u8; 6]>,
    /// Ethernet source.
    pub eth_src: Option<[u8; 6]>,
    /// Ethertype.
    pub ethertype: Option<u16>,
    /// IPv4 source; for ARP, the sender's protocol address.
    pub ip_src: Option<[u8; 4]>,
    /// IPv4 destination; for ARP, the target's protocol address.
    pub ip_dst: Option<[u8; 4]>,
    /// IPv4 protocol number.
    pub ip_proto: Option<u8>,
    /// TCP or UDP source port.
    pub src_port: Option<u16>,
    /// TCP or UDP destination port.
    pub dst_port: Option<u16>,
    /// TCP header fields.
    pub tcp: Option<TcpFields>,
    /// Bytes of TCP, UDP or ICMP payload (IP's own lengths, so Ethernet
    /// padding is not counted).
    pub payload_len: Option<u32>,
    /// Where that payload starts in the frame.
    pub payload_at: Option<usize>,
    /// ARP operation (1 request, 2 reply).
    pub arp_op: Option<u16>,
    /// ARP sender hardware address.
    pub arp_sender_mac: Option<[u8; 6]>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// Why decoding stopped, for [`Proto::Malformed`].
    pub malformed: Option<String>,
}

/// `b` as an array of N bytes, if it has exactly N.
fn array<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.try_into().ok()
}

/// Where `part`, a slice of `frame`, starts in it.
fn offset(frame: &[u8], part: &[u8]) -> Option<usize> {
    (part.as_ptr() as usize)
        .checked_sub(frame.as_ptr() as usize)
        .filter(|&at| at <= frame.len())
}

impl Decoded {
    /// Nothing decoded yet.
    fn empty(proto: Proto) -> Decoded {
        Decoded {
            proto,
            eth_dst: None,
            eth_src: None,
            ethertype: None,
            ip_src: None,
            ip_dst: None,
            ip_proto: None,
            src_port: None,
            dst_port: None,
            tcp: None,
            payload_len: None,
            payload_at: None,
            arp_op: None,
            arp_sender_mac: None,
            icmp: None,
            malformed: None,
        }
    }

    /// Decodes `frame`, an Ethernet II frame as a NIC sent it. Never
    /// panics: what does not parse is [`Proto::Malformed`].
    pub fn of(frame: &[u8]) -> Decoded {
        let mut d = Decoded::empty(Proto::Ethernet);
        // The Ethernet header alone, so that a frame whose upper headers are
        // broken still names its ends.
        if let (Some(dst), Some(src), Some(t)) = (
            frame.get(0..6).and_then(array),
            frame.get(6..12).and_then(array),
            frame.get(12..14).and_then(array::<2>),
        ) {
            d.eth_dst = Some(dst);
            d.eth_src = Some(src);
            d.ethertype = Some(u16::from_be_bytes(t));
        }
        let sliced = match SlicedPacket::from_ethernet(frame) {
            Ok(s) => s,
            Err(e) => {
                d.proto = Proto::Malformed;
                d.malformed = Some(e.to_string());
                return d;
            }
        };
        match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                d.proto = Proto::Ipv4;
                d.ip_src = Some(h.source());
                d.ip_dst = Some(h.destination());
                d.ip_proto = Some(h.protocol().0);
            }
            Some(NetSlice::Ipv6(_)) => d.proto = Proto::Ipv6,
            Some(NetSlice::Arp(arp)) => {
                d.proto = Proto::Arp;
                d.arp_op = Some(arp.operation().0);
                d.arp_sender_mac = array(arp.sender_hw_addr());
                d.ip_src = array(arp.sender_protocol_addr());
                d.ip_dst = array(arp.target_protocol_addr());
            }
            None => {
                // IPv4 or ARP that etherparse did not slice (an ARP for
                // another protocol, say): say so rather than "Ethernet".
                if matches!(d.ethertype, Some(ETHERTYPE_IPV4 | ETHERTYPE_ARP | ETHERTYPE_IPV6)) {
                    d.proto = Proto::Malformed;
                    d.malformed = Some("the network header could not be decoded".into());
                }
                return d;
            }
        }
        match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                d.proto = Proto::Tcp;
                d.src_port = Some(tcp.source_port());
                d.dst_port = Some(tcp.destination_port());
                let flags = tcp_flags::NAMES
                    .iter()
                    .zip([
                        tcp.fin(),
                        tcp.syn(),
                        tcp.rst(),
                        tcp.psh(),
                        tcp.ack(),
                        tcp.urg(),
                        tcp.ece(),
                        tcp.cwr(),
                    ])
                    .filter(|(_, on)| *on)
                    .fold(0u8, |bits, ((bit, _), _)| bits | bit);
                d.tcp = Some(TcpFields {
                    seq: tcp.sequence_number(),
                    ack: tcp.acknowledgment_number(),
                    flags,
                    window: tcp.window_size(),
                });
                d.payload_len = Some(tcp.payload().len() as u32);
                d.payload_at = offset(frame, tcp.payload());
            }
            Some(TransportSlice::Udp(udp)) => {
                d.proto = Proto::Udp;
                d.src_port = Some(udp.source_port());
                d.dst_port = Some(udp.destination_port());
                d.payload_len = Some(udp.payload().len() as u32);
                d.payload_at = offset(frame, udp.payload());
            }
            Some(TransportSlice::Icmpv4(icmp)) => {
                d.proto = Proto::Icmp;
                d.icmp = Some((icmp.type_u8(), icmp.code_u8()));
                d.payload_len = Some(icmp.payload().len() as u32);
                d.payload_at = offset(frame, icmp.payload());
            }
            Some(_) | None => {}
        }
        d
    }

    /// Whether this is a TCP segment that occupies sequence space (data,
    /// SYN or FIN): one a retransmission can repeat and an ACK can cover.
    pub fn tcp_occupies_sequence(&self) -> bool {
        match self.tcp {
            Some(t) => self.payload_len.unwrap_or(0) > 0 || t.has(tcp_flags::SYN) || t.has(tcp_flags::FIN),
            None => false,
        }
    }

    /// For such a segment, the sequence number just past it (the
    /// acknowledgement that covers it), modulo 2^32.
    pub fn tcp_end_seq(&self) -> Option<u32> {
        let t = self.tcp?;
        let mut len = self.payload_len.unwrap_or(0);
        if t.has(tcp_flags::SYN) {
            len = len.wrapping_add(1);
        }
        if t.has(tcp_flags::FIN) {
            len = len.wrapping_add(1);
        }
        Some(t.seq.wrapping_add(len))
    }
}

/// A MAC address as text: `52:54:00:12:34:01`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An IPv4 address as text: `10.0.0.1`.
pub fn ip_text(ip: &[u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(5000, 7000, 1000, 2144)
            .psh()
            .ack(77);
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("builds");
        out
    }

    #[test]
    fn a_tcp_segment_decodes_every_field() {
        let mut f = tcp_frame(b"W 7 3 31\n");
        f.resize(f.len().max(60), 0); // Ethernet padding is not payload
        let d = Decoded::of(&f);
        assert_eq!(d.proto, Proto::Tcp);
        assert_eq!(d.ip_src, Some([10, 0, 0, 1]));
        assert_eq!((d.src_port, d.dst_port), (Some(5000), Some(7000)));
        let t = d.tcp.expect("tcp");
        assert_eq!((t.seq, t.ack, t.window), (1000, 77, 2144));
        assert_eq!(t.flag_names(), "PSH,ACK");
        assert_eq!(d.payload_len, Some(9));
        assert_eq!(d.payload_at.map(|at| &f[at..at + 9]), Some(&b"W 7 3 31\n"[..]));
        assert!(d.tcp_occupies_sequence());
        assert_eq!(d.tcp_end_seq(), Some(1009));
        assert_eq!(mac_text(&d.eth_src.expect("mac")), "02:00:00:00:00:01");
    }

    #[test]
    fn udp_icmp_and_arp_decode() {
        let mut udp = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 255], 64)
            .udp(68, 67)
            .write(&mut udp, b"abc")
            .expect("builds");
        let d = Decoded::of(&udp);
        assert_eq!(
            (d.proto, d.dst_port, d.payload_len),
            (Proto::Udp, Some(67), Some(3))
        );
        let mut icmp = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 2)
            .write(&mut icmp, b"ping")
            .expect("builds");
        let d = Decoded::of(&icmp);
        assert_eq!((d.proto, d.icmp), (Proto::Icmp, Some((8, 0))));
        // A who-has for 10.0.0.2 from 10.0.0.1, as lwIP sends it.
        let mut arp = vec![0xff; 6];
        arp.extend([0x52, 0x54, 0, 0x12, 0x34, 1, 0x08, 0x06]);
        arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend([0x52, 0x54, 0, 0x12, 0x34, 1, 10, 0, 0, 1]);
        arp.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        arp.resize(60, 0);
        let d = Decoded::of(&arp);
        assert_eq!(d.proto, Proto::Arp);
        assert_eq!(
            (d.arp_op, d.ip_src, d.ip_dst),
            (Some(1), Some([10, 0, 0, 1]), Some([10, 0, 0, 2]))
        );
    }

    #[test]
    fn hostile_frames_are_malformed_never_a_panic() {
        let good = tcp_frame(b"hello");
        // Every truncation of a good frame, and every byte of it set to
        // every value that breaks a length or a version.
        for n in 0..good.len() {
            let d = Decoded::of(&good[..n]);
            if n >= 14 {
                assert_eq!(d.ethertype, Some(ETHERTYPE_IPV4), "{n}");
            }
        }
        for at in 14..good.len() {
            for v in [0u8, 1, 4, 5, 0x45, 0x4f, 0x7f, 0xff] {
                let mut f = good.clone();
                f[at] = v;
                let _ = Decoded::of(&f);
            }
        }
        // An IPv4 total length far beyond the frame.
        let mut f = good.clone();
        f[16] = 0xff;
        f[17] = 0xff;
        let d = Decoded::of(&f);
        assert_eq!(d.proto, Proto::Malformed);
        assert!(d.malformed.is_some() && d.eth_src.is_some());
        assert_eq!(Decoded::of(&good[..20]).proto, Proto::Malformed);
        assert_eq!(Decoded::of(&[]).proto, Proto::Malformed);
        // The kit's own frames are plain Ethernet.
        let mut kit = vec![0u8; 12];
        kit.extend([0x88, 0xb5, 0, 2, 1, 2]);
        assert_eq!(Decoded::of(&kit).proto, Proto::Ethernet);
    }
}
