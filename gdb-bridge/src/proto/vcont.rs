//! `vCont` actions: `c`, `Csig`, `s`, `Ssig`, `t` and `rSTART,END`, each for
//! the thread after a `:` or, without one, for every thread no action
//! before it named.

use super::hex;
use super::packet::Malformed;
use super::thread_id::ThreadId;

/// What to do with a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// Run until something stops it.
    Continue,
    /// One instruction.
    Step,
    /// Stop (non-stop mode).
    Stop,
    /// Step while the program counter stays in `[start, end)`.
    Range {
        /// First address of the range.
        start: u64,
        /// Just past its end.
        end: u64,
    },
}

/// One action of a `vCont` packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// What.
    pub kind: ActionKind,
    /// A signal to deliver with it (`C`, `S`).
    pub signal: Option<u8>,
    /// For which thread (`None`: every thread not named before).
    pub thread: Option<ThreadId>,
}

fn signal(text: &str) -> Result<u8, Malformed> {
    hex::number(text.as_bytes())
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(Malformed("a vCont signal is not a hex byte"))
}

/// Parses the actions after `vCont;`.
pub fn parse(text: &str) -> Result<Vec<Action>, Malformed> {
    let mut actions = Vec::new();
    for part in text.split(';') {
        let (what, thread) = match part.split_once(':') {
            Some((what, t)) => (
                what,
                Some(ThreadId::parse(t.as_bytes()).ok_or(Malformed("a vCont thread id is not valid"))?),
            ),
            None => (part, None),
        };
        let (kind, signal) = match what.split_at_checked(1) {
            Some(("c", "")) => (ActionKind::Continue, None),
            Some(("s", "")) => (ActionKind::Step, None),
            Some(("t", "")) => (ActionKind::Stop, None),
            Some(("C", sig)) => (ActionKind::Continue, Some(signal(sig)?)),
            Some(("S", sig)) => (ActionKind::Step, Some(signal(sig)?)),
            Some(("r", range)) => {
                let (start, end) = range
                    .split_once(',')
                    .and_then(|(s, e)| Some((hex::number(s.as_bytes())?, hex::number(e.as_bytes())?)))
                    .ok_or(Malformed("a vCont range is not START,END in hex"))?;
                (ActionKind::Range { start, end }, None)
            }
            _ => return Err(Malformed("unknown vCont action")),
        };
        actions.push(Action { kind, signal, thread });
    }
    if actions.is_empty() {
        return Err(Malformed("vCont without actions"));
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::super::thread_id::Id;
    use super::*;

    #[test]
    fn actions() {
        let p1 = ThreadId {
            pid: Some(Id::Num(1)),
            tid: Id::Num(1),
        };
        assert_eq!(
            parse("r401015,40101d:p1.1;c"),
            Ok(vec![
                Action {
                    kind: ActionKind::Range {
                        start: 0x401015,
                        end: 0x40101d
                    },
                    signal: None,
                    thread: Some(p1)
                },
                Action {
                    kind: ActionKind::Continue,
                    signal: None,
                    thread: None
                }
            ])
        );
        assert_eq!(
            parse("S05:p1.1"),
            Ok(vec![Action {
                kind: ActionKind::Step,
                signal: Some(5),
                thread: Some(p1)
            }])
        );
        assert!(parse("x").is_err());
        assert!(parse("").is_err());
        assert!(parse("c:zz").is_err());
        assert!(parse("r1:p1.1").is_err());
        assert!(parse("C").is_err());
        assert!(parse("C100").is_err());
    }
}
