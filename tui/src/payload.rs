//! Decoding a frame's bytes for the payload pane: the Ethernet header,
//! the guest kit's frames (ethertype 0x88B5, a 2-byte length, the payload)
//! and, inside them, the kvstore demo's `struct msg` where the shape fits.
//! Anything else is shown as hex only.

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
    let mut fields = decode_link(frame);
    let app = fields
        .iter()
        .position(|f| f.name == "kvstore")
        .unwrap_or(fields.len());
    fields.rotate_left(app);
    fields
}

fn decode_link(frame: &[u8]) -> Vec<Field> {
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
        return out;
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
}
