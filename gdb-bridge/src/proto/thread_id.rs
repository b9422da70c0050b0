//! Thread ids: `pPID.TID` with the multiprocess extensions, a bare `TID`
//! without; `-1` means all and `0` any, in either place.

use super::hex;

/// A process or thread number as gdb writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    /// `-1`: all of them.
    All,
    /// `0`: any one.
    Any,
    /// This one (never 0).
    Num(u64),
}

impl Id {
    fn parse(text: &[u8]) -> Option<Id> {
        match text {
            b"-1" => Some(Id::All),
            _ => match hex::number(text)? {
                0 => Some(Id::Any),
                n => Some(Id::Num(n)),
            },
        }
    }
}

/// A thread id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadId {
    /// The process, in the multiprocess form (`None`: the bare form).
    pub pid: Option<Id>,
    /// The thread (`pP` alone means all threads of P).
    pub tid: Id,
}

impl ThreadId {
    /// Parses `pP.T`, `pP` or `T`.
    pub fn parse(text: &[u8]) -> Option<ThreadId> {
        match text.strip_prefix(b"p") {
            Some(rest) => {
                let (pid, tid) = match rest.iter().position(|b| *b == b'.') {
                    Some(dot) => (&rest[..dot], Id::parse(&rest[dot + 1..])?),
                    None => (rest, Id::All),
                };
                Some(ThreadId {
                    pid: Some(Id::parse(pid)?),
                    tid,
                })
            }
            None => Some(ThreadId {
                pid: None,
                tid: Id::parse(text)?,
            }),
        }
    }
}

/// How a thread of process `pid` is written: `pP.T` with the multiprocess
/// extensions, else the bare thread number `pid` (one thread per process).
pub fn format(multiprocess: bool, pid: u64, tid: u64) -> String {
    if multiprocess {
        format!("p{pid:x}.{tid:x}")
    } else {
        format!("{pid:x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form() {
        let t = |pid, tid| Some(ThreadId { pid, tid });
        assert_eq!(ThreadId::parse(b"p1.2"), t(Some(Id::Num(1)), Id::Num(2)));
        assert_eq!(ThreadId::parse(b"p1.-1"), t(Some(Id::Num(1)), Id::All));
        assert_eq!(ThreadId::parse(b"p-1.-1"), t(Some(Id::All), Id::All));
        assert_eq!(ThreadId::parse(b"p0.0"), t(Some(Id::Any), Id::Any));
        assert_eq!(ThreadId::parse(b"pa"), t(Some(Id::Num(10)), Id::All));
        assert_eq!(ThreadId::parse(b"-1"), t(None, Id::All));
        assert_eq!(ThreadId::parse(b"0"), t(None, Id::Any));
        assert_eq!(ThreadId::parse(b"1f"), t(None, Id::Num(31)));
        assert_eq!(ThreadId::parse(b"p1."), None);
        assert_eq!(ThreadId::parse(b"zz"), None);
        assert_eq!(ThreadId::parse(b""), None);
        assert_eq!(ThreadId::parse(b"p1.2.3"), None);
        assert_eq!(format(true, 3, 1), "p3.1");
        assert_eq!(format(false, 3, 1), "3");
    }
}
