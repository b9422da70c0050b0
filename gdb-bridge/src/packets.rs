//! What vmrr does with the bytes gdb sends before gdbstub sees them:
//! framing, a few guards, and noting which thread gdb means.
//!
//! gdbstub treats a bad checksum, a NAK, a stray byte between packets, an
//! over-long packet or an address wider than 64 bits as fatal errors that
//! end the session. A debugger serving a recording must shrug those off, so
//! the server frames packets itself ([`Framer`]), answers the malformed ones
//! itself ([`guard`]) and only hands gdbstub well-formed packets. Whatever
//! still trips gdbstub is caught one level up (the server rebuilds the stub).
//!
//! gdb also never tells a remote target which thread the user selected when
//! it resumes "any thread" (`Hc0` is sent once and then cached by gdb), so
//! [`ClientView`] keeps what gdb last said with `Hc` and `Hg`.

use gdbstub::common::Tid;

/// Size of gdbstub's packet buffer, announced to gdb as `PacketSize`.
pub const PACKET_SIZE: usize = 16 * 1024;

/// Longest packet body that fits the buffer with `$`, `#` and the checksum.
const MAX_BODY: usize = PACKET_SIZE - 4;

/// Most bytes one `m` request may ask for: the hex reply (two characters a
/// byte) must fit gdb's packet size, and anything longer is answered short,
/// which the protocol allows.
pub const MAX_READ: u64 = (PACKET_SIZE as u64 - 16) / 2;

/// One unit of what gdb sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A packet with a matching checksum: its body, between `$` and `#`.
    Packet(Vec<u8>),
    /// A packet whose checksum did not match or was not hex.
    Corrupt,
    /// A packet too long for the stub's buffer.
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
                        if self.body.len() < MAX_BODY {
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

/// `$body#xx` with the checksum filled in.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(b'$');
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// What to do with a well-formed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Hand this body (possibly rewritten) to gdbstub.
    Pass(Vec<u8>),
    /// Answer with this reply instead.
    Reply(&'static str),
}

/// A hexadecimal number of at most 64 bits (leading zeros allowed).
fn parse_hex_u64(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    if s.is_empty() {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Replaces field `field` (split on `,`, `:` or `;` after the first `skip`
/// bytes) by `value` in hex, keeping the rest byte for byte.
fn rewrite_hex_field(body: &[u8], skip: usize, field: usize, value: u64) -> Option<Vec<u8>> {
    let rest = body.get(skip..)?;
    let mut start = 0;
    let mut n = 0;
    for (i, b) in rest.iter().enumerate() {
        if matches!(b, b',' | b':' | b';') {
            if n == field {
                return Some([&body[..skip + start], format!("{value:x}").as_bytes(), &rest[i..]].concat());
            }
            n += 1;
            start = i + 1;
        }
    }
    (n == field).then(|| [&body[..skip + start], format!("{value:x}").as_bytes()].concat())
}

/// The `field`-th separated field after `skip` bytes.
fn field(body: &[u8], skip: usize, field: usize) -> Option<&[u8]> {
    body.get(skip..)?
        .split(|b| matches!(b, b',' | b':' | b';'))
        .nth(field)
}

/// Checks a packet gdbstub would choke on and normalises what it can.
pub fn guard(body: &[u8]) -> Guard {
    const BAD: Guard = Guard::Reply("E01");
    match body.first() {
        // m addr,len: an address of at most 64 bits, and a length that fits one reply.
        Some(b'm') => {
            let (Some(addr), Some(len)) = (
                field(body, 1, 0).and_then(parse_hex_u64),
                field(body, 1, 1).and_then(parse_hex_u64),
            ) else {
                return BAD;
            };
            Guard::Pass(format!("m{addr:x},{:x}", len.min(MAX_READ)).into_bytes())
        }
        // M addr,len:data and X addr,len:data: normalise the address.
        Some(b'M') | Some(b'X') => {
            let Some(addr) = field(body, 1, 0).and_then(parse_hex_u64) else {
                return BAD;
            };
            rewrite_hex_field(body, 1, 0, addr)
                .map(Guard::Pass)
                .unwrap_or(BAD)
        }
        // Z/z type,addr,kind: same.
        Some(b'Z') | Some(b'z') => {
            let Some(addr) = field(body, 1, 1).and_then(parse_hex_u64) else {
                return BAD;
            };
            rewrite_hex_field(body, 1, 1, addr)
                .map(Guard::Pass)
                .unwrap_or(BAD)
        }
        // Registers of a recording cannot be changed.
        Some(b'G') | Some(b'P') => BAD,
        Some(b'H') => match (body.get(1), parse_thread(body.get(2..).unwrap_or_default())) {
            // "All threads" makes no sense for registers and memory, and makes
            // gdbstub refuse a later `bs`: treat a continue-thread of "all" as "any".
            (Some(b'c'), Some(ThreadRef::All)) => Guard::Pass(b"Hc0".to_vec()),
            (Some(b'g'), Some(ThreadRef::All)) => BAD,
            (Some(b'c' | b'g'), Some(_)) => Guard::Pass(body.to_vec()),
            _ => BAD,
        },
        _ => Guard::Pass(body.to_vec()),
    }
}

/// A thread as gdb names it in `H` packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadRef {
    /// `0`: any thread.
    Any,
    /// `-1`: all threads.
    All,
    /// One thread.
    Id(Tid),
}

/// Parses `tid`, `-1`, `0` or the multiprocess form `p<pid>.<tid>`.
pub fn parse_thread(s: &[u8]) -> Option<ThreadRef> {
    let s = std::str::from_utf8(s).ok()?;
    let tid = match s.strip_prefix('p') {
        Some(rest) => rest.split_once('.').map(|(_, t)| t)?,
        None => s,
    };
    match tid {
        "-1" => Some(ThreadRef::All),
        "0" => Some(ThreadRef::Any),
        t => usize::from_str_radix(t, 16)
            .ok()
            .and_then(Tid::new)
            .map(ThreadRef::Id),
    }
}

/// What gdb has told the stub about threads, as far as vmrr needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientView {
    /// The thread of the last `Hc` (which thread `bs`/`bc` resume).
    pub continue_thread: ThreadRef,
    /// Whether gdb switched to no-ack mode (we then send no `+`).
    pub no_ack: bool,
}

impl Default for ClientView {
    fn default() -> Self {
        ClientView {
            continue_thread: ThreadRef::Any,
            no_ack: false,
        }
    }
}

/// What a packet says that vmrr must remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// Nothing.
    Nothing,
    /// gdb will read registers and memory of this thread (`Hg`). gdb also
    /// sends this while it walks every thread (`info threads`), so it does
    /// not say which thread the user selected.
    General(Tid),
    /// The user selected this thread (`thread N` asks whether the thread is
    /// alive with `T` before switching; `info threads` does not).
    Selected(Tid),
}

impl ClientView {
    /// Updates the view from a packet about to be handed to gdbstub.
    pub fn note(&mut self, body: &[u8]) -> Noted {
        if let Some(rest) = body.strip_prefix(b"Hc") {
            if let Some(t) = parse_thread(rest) {
                self.continue_thread = t;
            }
        } else if let Some(rest) = body.strip_prefix(b"Hg") {
            if let Some(ThreadRef::Id(tid)) = parse_thread(rest) {
                return Noted::General(tid);
            }
        } else if let Some(rest) = body.strip_prefix(b"T") {
            if let Some(ThreadRef::Id(tid)) = parse_thread(rest) {
                return Noted::Selected(tid);
            }
        } else if body == b"QStartNoAckMode" {
            self.no_ack = true;
        }
        Noted::Nothing
    }
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
    fn guards() {
        assert_eq!(guard(b"m0010,4"), Guard::Pass(b"m10,4".to_vec()));
        assert_eq!(
            guard(b"mffffffffffffffff,ffffffffffffffff"),
            Guard::Pass(format!("mffffffffffffffff,{MAX_READ:x}").into_bytes())
        );
        assert_eq!(guard(b"m1122334455667788990,4"), Guard::Reply("E01"));
        assert_eq!(guard(b"m,"), Guard::Reply("E01"));
        assert_eq!(guard(b"M00ff,2:abcd"), Guard::Pass(b"Mff,2:abcd".to_vec()));
        assert_eq!(guard(b"Z0,0000401000,1"), Guard::Pass(b"Z0,401000,1".to_vec()));
        assert_eq!(guard(b"Z0,401000"), Guard::Pass(b"Z0,401000".to_vec()));
        assert_eq!(guard(b"Z0"), Guard::Reply("E01"));
        assert_eq!(guard(b"Hc-1"), Guard::Pass(b"Hc0".to_vec()));
        assert_eq!(guard(b"Hg-1"), Guard::Reply("E01"));
        assert_eq!(guard(b"Hgp1.2"), Guard::Pass(b"Hgp1.2".to_vec()));
        assert_eq!(guard(b"Hx"), Guard::Reply("E01"));
        assert_eq!(guard(b"G00"), Guard::Reply("E01"));
    }

    #[test]
    fn client_view() {
        let mut v = ClientView::default();
        assert_eq!(v.note(b"Hcp1.3"), Noted::Nothing);
        assert_eq!(v.continue_thread, ThreadRef::Id(Tid::new(3).expect("3")));
        assert_eq!(v.note(b"Hc0"), Noted::Nothing);
        assert_eq!(v.continue_thread, ThreadRef::Any);
        assert_eq!(v.note(b"Hgp1.2"), Noted::General(Tid::new(2).expect("2")));
        assert_eq!(v.note(b"Tp1.3"), Noted::Selected(Tid::new(3).expect("3")));
        v.note(b"QStartNoAckMode");
        assert!(v.no_ack);
    }
}
