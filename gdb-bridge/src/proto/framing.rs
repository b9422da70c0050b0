//! Framing of gdb's remote protocol: `$body#xx` packets with a modulo-256
//! checksum, the interrupt byte, acknowledgements, and the escaping of
//! binary data.
//!
//! A debugger serving a recording must shrug off a bad checksum, a NAK, a
//! stray byte between packets or an over-long packet, so the [`Framer`]
//! turns each of them into a [`Frame`] the server can answer, and never
//! into an error that ends the connection.

/// Longest packet body accepted, and the `PacketSize` announced to gdb.
pub const PACKET_SIZE: usize = 16 * 1024;

/// One unit of what gdb sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A packet with a matching checksum: its body, between `$` and `#`,
    /// still escaped (binary packets are unescaped by the parser).
    Packet(Vec<u8>),
    /// A packet whose checksum did not match or was not hex.
    Corrupt,
    /// A packet longer than [`PACKET_SIZE`].
    TooLong,
    /// The interrupt byte (gdb's Ctrl-C).
    Interrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between packets: acks (`+`/`-`) and noise are dropped here.
    Between,
    Body,
    Checksum1,
    Checksum2,
}

/// Splits the byte stream from gdb into [`Frame`]s.
#[derive(Debug)]
pub struct Framer {
    state: State,
    body: Vec<u8>,
    sum: u8,
    too_long: bool,
    first_digit: u8,
}

impl Default for Framer {
    fn default() -> Self {
        Framer {
            state: State::Between,
            body: Vec::new(),
            sum: 0,
            too_long: false,
            first_digit: 0,
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Framer {
    /// Takes one byte; returns a frame when one is complete.
    pub fn push(&mut self, b: u8) -> Option<Frame> {
        match self.state {
            State::Between => {
                match b {
                    b'$' => self.start(),
                    0x03 => return Some(Frame::Interrupt),
                    // Acks, NAKs (TCP does not corrupt our replies, so there is
                    // nothing to resend) and noise.
                    _ => {}
                }
                None
            }
            State::Body => {
                match b {
                    // A '$' cannot occur inside a packet (it is escaped):
                    // the previous one was cut short, start over.
                    b'$' => self.start(),
                    b'#' => self.state = State::Checksum1,
                    _ => {
                        self.sum = self.sum.wrapping_add(b);
                        if self.body.len() < PACKET_SIZE {
                            self.body.push(b);
                        } else {
                            self.too_long = true;
                        }
                    }
                }
                None
            }
            // A '$' is never a checksum digit: a packet cut short after its
            // '#'. Resynchronise on the new one.
            State::Checksum1 | State::Checksum2 if b == b'$' => {
                self.start();
                None
            }
            State::Checksum1 => {
                self.first_digit = b;
                self.state = State::Checksum2;
                None
            }
            State::Checksum2 => {
                self.state = State::Between;
                let sent = hex_digit(self.first_digit)
                    .zip(hex_digit(b))
                    .map(|(h, l)| h << 4 | l);
                Some(if self.too_long {
                    self.body.clear();
                    Frame::TooLong
                } else if sent == Some(self.sum) {
                    Frame::Packet(std::mem::take(&mut self.body))
                } else {
                    Frame::Corrupt
                })
            }
        }
    }

    fn start(&mut self) {
        self.state = State::Body;
        self.body.clear();
        self.sum = 0;
        self.too_long = false;
    }
}

/// `$body#xx` with the checksum filled in. `body` must already be escaped
/// where it may hold `$`, `#`, `}` or `*` (see [`escape`]).
pub fn encode(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// Escapes binary data for a reply: `$`, `#`, `}` and `*` (which would read
/// as a run-length marker) become `}` followed by the byte xor 0x20.
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    out
}

/// Undoes [`escape`] on binary data gdb sent (`X` packets). `None` if the
/// data ends in the middle of an escape.
pub fn unescape(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut bytes = data.iter();
    while let Some(&b) = bytes.next() {
        if b == b'}' {
            out.push(bytes.next()? ^ 0x20);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut f = Framer::default();
        bytes.iter().filter_map(|b| f.push(*b)).collect()
    }

    #[test]
    fn framing() {
        assert_eq!(frames(b"+$g#67"), vec![Frame::Packet(b"g".to_vec())]);
        assert_eq!(frames(b"$g#00"), vec![Frame::Corrupt]);
        assert_eq!(frames(b"$g#zz"), vec![Frame::Corrupt]);
        assert_eq!(
            frames(b"junk\x03-$?#3f"),
            vec![Frame::Interrupt, Frame::Packet(b"?".to_vec())]
        );
        // A '$' inside a body restarts the packet.
        assert_eq!(frames(b"$m0$g#67"), vec![Frame::Packet(b"g".to_vec())]);
        assert_eq!(frames(b"$m0#$g#67"), vec![Frame::Packet(b"g".to_vec())]);
        assert_eq!(frames(b"$m0#0$g#67"), vec![Frame::Packet(b"g".to_vec())]);
        let mut long = b"$".to_vec();
        long.extend(std::iter::repeat_n(b'a', PACKET_SIZE * 2));
        long.extend_from_slice(b"#00$g#67");
        assert_eq!(frames(&long), vec![Frame::TooLong, Frame::Packet(b"g".to_vec())]);
        assert_eq!(encode(b"g"), b"$g#67".to_vec());
    }

    #[test]
    fn escaping_round_trips() {
        let data = b"a$b#c}d*e\x00\xff";
        let escaped = escape(data);
        assert!(!escaped.iter().any(|b| matches!(b, b'$' | b'#' | b'*')));
        assert_eq!(unescape(&escaped).as_deref(), Some(&data[..]));
        assert_eq!(unescape(b"ab}"), None);
        assert_eq!(unescape(b"}]"), Some(b"}".to_vec()));
    }
}
