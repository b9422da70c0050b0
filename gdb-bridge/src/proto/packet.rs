//! The packets gdb sends, parsed into [`Packet`]s. Parsing knows nothing of
//! vmrr: it checks the syntax (hex numbers of at most 64 bits, lengths that
//! match their data, thread ids) and leaves every question of what exists
//! to the target.

use super::framing::unescape;
use super::hex;
use super::thread_id::ThreadId;
use super::vcont::{self, Action};

/// Why a packet could not be parsed: a phrase for the error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed packet: {0}")]
pub struct Malformed(pub &'static str);

/// Which thread an `H` packet sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadOp {
    /// `Hg`: registers, memory and breakpoints apply to it.
    General,
    /// `Hc`: `c`, `s`, `bc` and `bs` resume it.
    Continue,
}

/// What a `Z`/`z` packet sets or clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// `Z0`: a software breakpoint.
    Software,
    /// `Z1`: a hardware breakpoint.
    Hardware,
    /// `Z2`: a write watchpoint.
    Write,
    /// `Z3`: a read watchpoint.
    Read,
    /// `Z4`: an access watchpoint.
    Access,
}

/// A breakpoint or watchpoint of a `Z`/`z` packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Which kind.
    pub kind: PointKind,
    /// Its address.
    pub addr: u64,
    /// Bytes watched, or the breakpoint's kind (instruction length).
    pub size: u64,
}

/// A packet from gdb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `qSupported[:features]`: the features gdb offers.
    Supported(Vec<String>),
    /// `QStartNoAckMode`.
    NoAckMode,
    /// `vMustReplyEmpty`: must get the empty reply.
    MustReplyEmpty,
    /// `!`: extended mode.
    ExtendedMode,
    /// `?`: why the target stopped.
    StopReason,
    /// `Hg`/`Hc`.
    SetThread(ThreadOp, ThreadId),
    /// `T`: is this thread alive?
    ThreadAlive(ThreadId),
    /// `qC`: the current thread.
    CurrentThread,
    /// `qfThreadInfo`.
    FirstThreads,
    /// `qsThreadInfo`.
    NextThreads,
    /// `qThreadExtraInfo,ID`.
    ThreadExtraInfo(ThreadId),
    /// `qAttached[:PID]`.
    Attached(Option<u64>),
    /// `qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH`.
    XferRead {
        /// The object (`features`, `exec-file`, `threads`, …).
        object: String,
        /// The annex (a file name, a pid, or empty).
        annex: String,
        /// Where to start.
        offset: u64,
        /// Most bytes wanted.
        length: u64,
    },
    /// `g`.
    ReadRegisters,
    /// `G…`.
    WriteRegisters,
    /// `p N`.
    ReadRegister(u64),
    /// `P N=V`.
    WriteRegister(u64),
    /// `m ADDR,LEN`.
    ReadMemory {
        /// First address.
        addr: u64,
        /// Bytes wanted.
        len: u64,
    },
    /// `M ADDR,LEN:HEX` or `X ADDR,LEN:BIN` (the data is decoded).
    WriteMemory {
        /// First address.
        addr: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `Z`.
    InsertPoint(Point),
    /// `z`.
    RemovePoint(Point),
    /// `vCont?`.
    VContQuery,
    /// `vCont;…`.
    VCont(Vec<Action>),
    /// `c`/`C`: continue the `Hc` thread (all of them in all-stop); with an
    /// address, resume there.
    Continue {
        /// Where to resume (a change of the program counter).
        addr: Option<u64>,
        /// A signal to deliver.
        signal: Option<u8>,
    },
    /// `s`/`S`: step the `Hc` thread.
    Step {
        /// Where to resume.
        addr: Option<u64>,
        /// A signal to deliver.
        signal: Option<u8>,
    },
    /// `bc`.
    ReverseContinue,
    /// `bs`.
    ReverseStep,
    /// `D` or `D;PID`.
    Detach(Option<u64>),
    /// `vKill;PID`.
    Kill(u64),
    /// `k`: kill everything (no reply is expected).
    KillAll,
    /// `vAttach;PID`.
    Attach(u64),
    /// `vRun;…`.
    Run,
    /// `qRcmd,HEX`: a `monitor` command.
    Monitor(Vec<u8>),
    /// `qSymbol…`: gdb offers to look symbols up.
    Symbol,
    /// Anything else: answered with the empty reply ("not supported").
    Unsupported,
}

/// `ADDR,LEN` as two hex numbers.
fn addr_len(text: &[u8]) -> Result<(u64, u64), Malformed> {
    let comma = text
        .iter()
        .position(|b| *b == b',')
        .ok_or(Malformed("no ',' between address and length"))?;
    let addr = hex::number(&text[..comma]).ok_or(Malformed("the address is not a 64-bit hex number"))?;
    let len = hex::number(&text[comma + 1..]).ok_or(Malformed("the length is not a 64-bit hex number"))?;
    Ok((addr, len))
}

/// `M`/`X ADDR,LEN:DATA` with the data decoded; its length must match.
fn write_memory(body: &[u8], binary: bool) -> Result<Packet, Malformed> {
    let colon = body
        .iter()
        .position(|b| *b == b':')
        .ok_or(Malformed("no ':' before the data"))?;
    let (addr, len) = addr_len(&body[..colon])?;
    let raw = &body[colon + 1..];
    let data = if binary {
        unescape(raw).ok_or(Malformed("the data ends inside an escape"))?
    } else {
        hex::decode(raw).ok_or(Malformed("the data is not hex"))?
    };
    if data.len() as u64 != len {
        return Err(Malformed("the length does not match the data"));
    }
    Ok(Packet::WriteMemory { addr, data })
}

/// `TYPE,ADDR,KIND[;…]`.
fn point(body: &[u8]) -> Result<Point, Malformed> {
    let body = body.split(|b| *b == b';').next().unwrap_or_default();
    let mut fields = body.split(|b| *b == b',');
    let kind = match fields.next() {
        Some(b"0") => PointKind::Software,
        Some(b"1") => PointKind::Hardware,
        Some(b"2") => PointKind::Write,
        Some(b"3") => PointKind::Read,
        Some(b"4") => PointKind::Access,
        _ => return Err(Malformed("unknown breakpoint type")),
    };
    let addr = fields
        .next()
        .and_then(hex::number)
        .ok_or(Malformed("the address is not a 64-bit hex number"))?;
    let size = fields
        .next()
        .and_then(hex::number)
        .ok_or(Malformed("the kind or length is not a hex number"))?;
    if fields.next().is_some() {
        return Err(Malformed("too many fields"));
    }
    Ok(Point { kind, addr, size })
}

/// `[SIG][;ADDR]` after `c`, `C`, `s` or `S`.
fn resume_args(rest: &[u8], with_signal: bool) -> Result<(Option<u64>, Option<u8>), Malformed> {
    let (signal, addr) = if with_signal {
        let mut parts = rest.splitn(2, |b| *b == b';');
        let sig = parts
            .next()
            .and_then(hex::number)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or(Malformed("the signal is not a hex byte"))?;
        (Some(sig), parts.next())
    } else {
        (None, (!rest.is_empty()).then_some(rest))
    };
    let addr = match addr {
        Some(a) => Some(hex::number(a).ok_or(Malformed("the address is not a 64-bit hex number"))?),
        None => None,
    };
    Ok((addr, signal))
}

/// `qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH`.
fn xfer(rest: &str) -> Result<Packet, Malformed> {
    let mut parts = rest.splitn(4, ':');
    let object = parts.next().unwrap_or_default();
    if parts.next() != Some("read") {
        return Ok(Packet::Unsupported);
    }
    let annex = parts.next().ok_or(Malformed("no annex"))?;
    let range = parts.next().ok_or(Malformed("no offset and length"))?;
    let (offset, length) = addr_len(range.as_bytes())?;
    Ok(Packet::XferRead {
        object: object.to_string(),
        annex: annex.to_string(),
        offset,
        length,
    })
}

fn thread(text: &[u8]) -> Result<ThreadId, Malformed> {
    ThreadId::parse(text).ok_or(Malformed("not a thread id"))
}

fn pid(text: &[u8]) -> Result<u64, Malformed> {
    hex::number(text).ok_or(Malformed("not a process id"))
}

impl Packet {
    /// Parses a packet body (as framed: binary data still escaped).
    pub fn parse(body: &[u8]) -> Result<Packet, Malformed> {
        let Some((&first, rest)) = body.split_first() else {
            return Ok(Packet::Unsupported);
        };
        // Text packets: anything not UTF-8 is not one gdb sends.
        let text = std::str::from_utf8(body).unwrap_or("");
        Ok(match first {
            b'?' if rest.is_empty() => Packet::StopReason,
            b'!' if rest.is_empty() => Packet::ExtendedMode,
            b'g' if rest.is_empty() => Packet::ReadRegisters,
            b'G' => Packet::WriteRegisters,
            b'p' => Packet::ReadRegister(hex::number(rest).ok_or(Malformed("not a register number"))?),
            b'P' => {
                let eq = rest
                    .iter()
                    .position(|b| *b == b'=')
                    .ok_or(Malformed("no '=' after the register number"))?;
                Packet::WriteRegister(hex::number(&rest[..eq]).ok_or(Malformed("not a register number"))?)
            }
            b'm' => {
                let (addr, len) = addr_len(rest)?;
                Packet::ReadMemory { addr, len }
            }
            b'M' => write_memory(rest, false)?,
            b'X' => write_memory(rest, true)?,
            b'Z' => Packet::InsertPoint(point(rest)?),
            b'z' => Packet::RemovePoint(point(rest)?),
            b'H' => {
                let op = match rest.first() {
                    Some(b'g') => ThreadOp::General,
                    Some(b'c') => ThreadOp::Continue,
                    _ => return Err(Malformed("H must be followed by g or c")),
                };
                Packet::SetThread(op, thread(&rest[1..])?)
            }
            b'T' => Packet::ThreadAlive(thread(rest)?),
            b'c' => {
                let (addr, signal) = resume_args(rest, false)?;
                Packet::Continue { addr, signal }
            }
            b'C' => {
                let (addr, signal) = resume_args(rest, true)?;
                Packet::Continue { addr, signal }
            }
            b's' => {
                let (addr, signal) = resume_args(rest, false)?;
                Packet::Step { addr, signal }
            }
            b'S' => {
                let (addr, signal) = resume_args(rest, true)?;
                Packet::Step { addr, signal }
            }
            b'b' if rest == b"c" => Packet::ReverseContinue,
            b'b' if rest == b"s" => Packet::ReverseStep,
            b'D' if rest.is_empty() => Packet::Detach(None),
            b'D' => Packet::Detach(Some(pid(rest
                .strip_prefix(b";")
                .ok_or(Malformed("D must be followed by ;PID"))?)?)),
            b'k' if rest.is_empty() => Packet::KillAll,
            _ => return Self::parse_named(text),
        })
    }

    /// Packets with a name (`q…`, `Q…`, `v…`).
    fn parse_named(text: &str) -> Result<Packet, Malformed> {
        Ok(match text {
            "QStartNoAckMode" => Packet::NoAckMode,
            "vMustReplyEmpty" => Packet::MustReplyEmpty,
            "qC" => Packet::CurrentThread,
            "qfThreadInfo" => Packet::FirstThreads,
            "qsThreadInfo" => Packet::NextThreads,
            "qAttached" => Packet::Attached(None),
            "vCont?" => Packet::VContQuery,
            _ => {
                if let Some(features) = text.strip_prefix("qSupported") {
                    let features = features.strip_prefix(':').unwrap_or(features);
                    Packet::Supported(
                        features
                            .split(';')
                            .filter(|f| !f.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                } else if let Some(id) = text.strip_prefix("qThreadExtraInfo,") {
                    Packet::ThreadExtraInfo(thread(id.as_bytes())?)
                } else if let Some(p) = text.strip_prefix("qAttached:") {
                    Packet::Attached(Some(pid(p.as_bytes())?))
                } else if let Some(rest) = text.strip_prefix("qXfer:") {
                    xfer(rest)?
                } else if let Some(actions) = text.strip_prefix("vCont;") {
                    Packet::VCont(vcont::parse(actions)?)
                } else if let Some(p) = text.strip_prefix("vKill;") {
                    Packet::Kill(pid(p.as_bytes())?)
                } else if let Some(p) = text.strip_prefix("vAttach;") {
                    Packet::Attach(pid(p.as_bytes())?)
                } else if text.starts_with("vRun") {
                    Packet::Run
                } else if let Some(cmd) = text.strip_prefix("qRcmd,") {
                    Packet::Monitor(hex::decode(cmd.as_bytes()).ok_or(Malformed("the command is not hex"))?)
                } else if text.starts_with("qSymbol") {
                    Packet::Symbol
                } else {
                    Packet::Unsupported
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::thread_id::Id;
    use super::*;

    fn p(body: &[u8]) -> Result<Packet, Malformed> {
        Packet::parse(body)
    }

    #[test]
    fn memory() {
        assert_eq!(p(b"m0010,4"), Ok(Packet::ReadMemory { addr: 0x10, len: 4 }));
        assert!(p(b"m1122334455667788990,4").is_err());
        assert!(p(b"m,").is_err());
        assert!(p(b"m10").is_err());
        assert_eq!(
            p(b"M00ff,2:abcd"),
            Ok(Packet::WriteMemory {
                addr: 0xff,
                data: vec![0xab, 0xcd]
            })
        );
        // The length must match the data (M100000,ffffffff:de was answered OK once).
        assert!(p(b"M100000,ffffffff:de").is_err());
        assert!(p(b"M10,1:zz").is_err());
        assert_eq!(
            p(b"X10,2:}]a"),
            Ok(Packet::WriteMemory {
                addr: 0x10,
                data: vec![b'}', b'a']
            })
        );
        assert_eq!(
            p(b"X10,0:"),
            Ok(Packet::WriteMemory {
                addr: 0x10,
                data: vec![]
            })
        );
        assert!(p(b"X10,2:}").is_err());
    }

    #[test]
    fn points_threads_and_resumes() {
        assert_eq!(
            p(b"Z0,0000401000,1"),
            Ok(Packet::InsertPoint(Point {
                kind: PointKind::Software,
                addr: 0x401000,
                size: 1
            }))
        );
        assert_eq!(
            p(b"z2,403000,8"),
            Ok(Packet::RemovePoint(Point {
                kind: PointKind::Write,
                addr: 0x403000,
                size: 8
            }))
        );
        assert!(p(b"Z0").is_err());
        assert!(p(b"Z5,1,1").is_err());
        assert!(p(b"Z0,1,1,1").is_err());
        assert_eq!(
            p(b"Hgp2.1"),
            Ok(Packet::SetThread(
                ThreadOp::General,
                ThreadId {
                    pid: Some(Id::Num(2)),
                    tid: Id::Num(1)
                }
            ))
        );
        assert!(p(b"Hx1").is_err());
        assert!(p(b"Hg").is_err());
        assert_eq!(p(b"bc"), Ok(Packet::ReverseContinue));
        assert_eq!(p(b"bs"), Ok(Packet::ReverseStep));
        assert_eq!(
            p(b"C05"),
            Ok(Packet::Continue {
                addr: None,
                signal: Some(5)
            })
        );
        assert_eq!(
            p(b"s1000"),
            Ok(Packet::Step {
                addr: Some(0x1000),
                signal: None
            })
        );
        assert_eq!(p(b"D;3"), Ok(Packet::Detach(Some(3))));
        assert_eq!(p(b"D"), Ok(Packet::Detach(None)));
        assert!(p(b"D3").is_err());
        assert_eq!(p(b"vKill;2"), Ok(Packet::Kill(2)));
        assert_eq!(p(b"vAttach;2"), Ok(Packet::Attach(2)));
    }

    #[test]
    fn named_packets() {
        assert_eq!(
            p(b"qSupported:multiprocess+;swbreak+"),
            Ok(Packet::Supported(vec!["multiprocess+".into(), "swbreak+".into()]))
        );
        assert_eq!(p(b"qSupported"), Ok(Packet::Supported(vec![])));
        assert_eq!(
            p(b"qXfer:exec-file:read:2:0,1000"),
            Ok(Packet::XferRead {
                object: "exec-file".into(),
                annex: "2".into(),
                offset: 0,
                length: 0x1000
            })
        );
        assert_eq!(p(b"qXfer:features:write:x:0,1"), Ok(Packet::Unsupported));
        assert!(p(b"qXfer:features:read:target.xml:zz,1").is_err());
        assert_eq!(p(b"qRcmd,6869"), Ok(Packet::Monitor(b"hi".to_vec())));
        assert!(p(b"qRcmd,6").is_err());
        assert_eq!(p(b"qAttached:1"), Ok(Packet::Attached(Some(1))));
        assert_eq!(p(b"vFile:open:zz"), Ok(Packet::Unsupported));
        assert_eq!(p(b""), Ok(Packet::Unsupported));
        assert_eq!(p(b"\xff\xfe"), Ok(Packet::Unsupported));
    }
}
