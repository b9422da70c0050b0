//! Decoding a frame's bytes for the payload pane: the Ethernet header,
//! the guest kit's frames (ethertype 0x88B5, a 2-byte length, the payload)
//! and, inside them, the kvstore demo's `struct msg` where the shape fits;
//! TCP/IP and ARP through the index's decoder (`vmrr_index::decode`), with
//! a TCP or UDP payload's printable text. Anything else is shown as hex
//! only.

use vmrr_index::decode::{ip_text, Decoded, Proto};

/// One decoded field: a name and its value, both printable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// What it is (`dst`, `type`, `seq`).
    pub name: &'static str,
    /// Its value as text.
    pub value: String,
}

fn field(name: &'static str, value: impl Into<String>) -> Field {
    Field {
        name,
        value: value.into(),
    }
}

fn mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The guest kit's ethertype (guests/kit/net.c).
const KIT_ETHERTYPE: u16 = 0x88b5;
/// kvstore's message types (guests/kvstore/kvstore.c), from 1.
const KV_TYPES: [&str; 10] = [
    "JOIN", "HELLO", "WRITE", "ACK", "RESEND", "READ", "VALUE", "NOTREADY", "DONE", "DONE_ACK",
];

/// The fields of a frame that can be read: what the guest program says
/// first (a kvstore message), then the Ethernet header.
pub fn decode(frame: &[u8]) -> Vec<Field> {
    decode_with(frame, (None, None))
}

/// [`decode`], with a TCP segment's sequence and acknowledgement numbers
/// relative to `isns` (its connection's initial sequence numbers, this
/// direction's and the other's) where they are known, as the events list
/// shows them.
pub fn decode_with(frame: &[u8], isns: (Option<u32>, Option<u32>)) -> Vec<Field> {
    let mut fields = decode_link(frame, isns);
    let app = fields
        .iter()
        .position(|f| f.name == "kvstore")
        .unwrap_or(fields.len());
    fields.rotate_left(app);
    fields
}

fn decode_link(frame: &[u8], isns: (Option<u32>, Option<u32>)) -> Vec<Field> {
    let mut out = Vec::new();
    let (Some(dst), Some(src), Some(ethertype)) = (frame.get(0..6), frame.get(6..12), u16_be(frame, 12))
    else {
        return out;
    };
    out.push(field("dst", mac(dst)));
    out.push(field("src", mac(src)));
    let kind = match ethertype {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86dd => "IPv6",
        KIT_ETHERTYPE => "vmrr kit",
        _ => "",
    };
    out.push(field(
        "type",
        format!("{ethertype:#06x} {kind}").trim_end().to_string(),
    ));
    if ethertype != KIT_ETHERTYPE {
        let mut ip = decode_ip(frame, isns);
        // What the program says first: the protocol's fields, then Ethernet.
        ip.append(&mut out);
        return ip;
    }
    let Some(len) = u16_be(frame, 14) else {
        return out;
    };
    out.push(field("length", len.to_string()));
    let body = frame.get(16..16 + len as usize).unwrap_or(&[]);
    // kvstore: one 16-byte struct msg { u8 type, key; u16; u32 seq, val, aux }.
    if body.len() == 16 {
        if let Some(name) = body
            .first()
            .and_then(|&t| KV_TYPES.get((t as usize).wrapping_sub(1)))
        {
            let (seq, val, aux) = (u32_le(body, 4), u32_le(body, 8), u32_le(body, 12));
            out.push(field("kvstore", *name));
            out.push(field("key", format!("k{}", body[1])));
            if let Some(v) = seq {
                out.push(field("seq", format!("#{v}")));
            }
            if let Some(v) = val {
                out.push(field("val", v.to_string()));
            }
            if let Some(v) = aux {
                out.push(field("aux", v.to_string()));
            }
        }
    }
    out
}

/// Most characters of a TCP or UDP payload shown as text.
const DATA_SHOWN: usize = 64;

/// IPv4 and ARP fields, from the decoder the events list uses.
fn decode_ip(frame: &[u8], isns: (Option<u32>, Option<u32>)) -> Vec<Field> {
    let d = Decoded::of(frame);
    let mut out = Vec::new();
    let ip = |a: &Option<[u8; 4]>| a.as_ref().map(ip_text).unwrap_or_default();
    let with_port = |a: &Option<[u8; 4]>, p: Option<u16>| match p {
        Some(p) => format!("{}:{p}", ip(a)),
        None => ip(a),
    };
    match d.proto {
        Proto::Tcp | Proto::Udp | Proto::Icmp | Proto::Ipv4 => {
            out.push(field("proto", d.proto.as_str().to_uppercase()));
            out.push(field("from", with_port(&d.ip_src, d.src_port)));
            out.push(field("to", with_port(&d.ip_dst, d.dst_port)));
        }
        Proto::Arp => {
            let op = match d.arp_op {
                Some(1) => "request".to_string(),
                Some(2) => "reply".to_string(),
                op => op.unwrap_or(0).to_string(),
            };
            out.push(field("arp", op));
            out.push(field("sender", ip(&d.ip_src)));
            out.push(field("target", ip(&d.ip_dst)));
        }
        Proto::Malformed => out.push(field("malformed", d.malformed.clone().unwrap_or_default())),
        Proto::Ipv6 | Proto::Ethernet => {}
    }
    if let Some(t) = d.tcp {
        out.push(field("flags", t.flag_names()));
        out.push(field("seq", t.seq.wrapping_sub(isns.0.unwrap_or(0)).to_string()));
        out.push(field("ack", t.ack.wrapping_sub(isns.1.unwrap_or(0)).to_string()));
        out.push(field("win", t.window.to_string()));
    }
    if let (Some(len), Some(at)) = (d.payload_len, d.payload_at) {
        out.push(field("len", len.to_string()));
        let end = at.saturating_add(len as usize).min(frame.len());
        let data = frame.get(at..end).unwrap_or(&[]);
        if !data.is_empty() && matches!(d.proto, Proto::Tcp | Proto::Udp) {
            let mut text = ascii(&data[..data.len().min(DATA_SHOWN)]);
            if data.len() > DATA_SHOWN {
                text.push('…');
            }
            out.push(field("data", text));
        }
    }
    out
}

/// The printable ASCII of a run of bytes (`.` for the rest).
pub fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kvstore_write_reads_as_one() {
        let mut f = vec![
            0x52, 0x54, 0, 0x12, 0x34, 3, 0x52, 0x54, 0, 0x12, 0x34, 1, 0x88, 0xb5, 0, 16,
        ];
        f.extend([3, 3, 0, 0, 5, 0, 0, 0, 31, 0, 0, 0, 0, 0, 0, 0]);
        let fields = decode(&f);
        let text: Vec<String> = fields.iter().map(|f| format!("{}={}", f.name, f.value)).collect();
        assert_eq!(
            text,
            [
                "kvstore=WRITE",
                "key=k3",
                "seq=#5",
                "val=31",
                "aux=0",
                "dst=52:54:00:12:34:03",
                "src=52:54:00:12:34:01",
                "type=0x88b5 vmrr kit",
                "length=16",
            ]
        );
        // Short or foreign frames decode what is there and never panic.
        assert!(decode(&f[..5]).is_empty());
        assert_eq!(decode(&f[..15]).len(), 3);
        assert_eq!(ascii(b"ab\x01"), "ab.");
    }

    #[test]
    fn a_tcp_segment_reads_with_relative_numbers_and_its_text() {
        let mut f = vec![
            0x52, 0x54, 0, 0x12, 0x34, 3, 0x52, 0x54, 0, 0x12, 0x34, 1, 0x08, 0x00,
        ];
        f.extend([0x45, 0, 0, 49, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 3]);
        f.extend([
            0xec, 0x69, 0x1b, 0x59, 0, 0, 4, 0x1f, 0, 0, 0, 19, 0x50, 0x18, 8, 0x60, 0, 0, 0, 0,
        ]);
        f.extend(b"W 7 3 31\n");
        let text: Vec<String> = decode_with(&f, (Some(1000), Some(0)))
            .iter()
            .map(|f| format!("{}={}", f.name, f.value))
            .collect();
        assert_eq!(
            text[..9],
            [
                "proto=TCP",
                "from=10.0.0.1:60521",
                "to=10.0.0.3:7001",
                "flags=PSH,ACK",
                "seq=55",
                "ack=19",
                "win=2144",
                "len=9",
                "data=W 7 3 31.",
            ]
        );
        // Cut anywhere: fields that are there, never a panic.
        for n in 0..f.len() {
            let _ = decode(&f[..n]);
        }
    }
}
