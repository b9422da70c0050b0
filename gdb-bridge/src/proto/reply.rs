//! Replies to gdb: stop replies, errors with text, console output, and
//! pieces of `qXfer` objects.

use super::framing::escape;
use super::hex;
use super::thread_id;

/// `SIGINT`: a stop gdb asked for with Ctrl-C.
pub const SIGINT: u8 = 2;
/// `SIGTRAP`: a step, a breakpoint, a watchpoint.
pub const SIGTRAP: u8 = 5;

/// Which watchpoint fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchReason {
    /// `watch`: a write.
    Write,
    /// `rwatch`: a read.
    Read,
    /// `awatch`: a read or a write.
    Access,
}

/// Why a thread stopped, as the stop reply says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing more than the signal (a step, an interrupt).
    Signal,
    /// A software breakpoint (`swbreak`).
    SwBreak,
    /// A hardware breakpoint (`hwbreak`).
    HwBreak,
    /// A watchpoint at this address.
    Watch(WatchReason, u64),
    /// The start of the recording (`replaylog:begin`).
    HistoryBegin,
    /// Its end (`replaylog:end`).
    HistoryEnd,
}

/// A stop reply (`T` packet) naming the thread of process `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReply {
    /// The signal number.
    pub signal: u8,
    /// The process.
    pub pid: u64,
    /// The thread within it.
    pub tid: u64,
    /// Why.
    pub reason: Reason,
}

impl StopReply {
    /// `T05thread:p1.1;swbreak:;` and so on.
    pub fn format(&self, multiprocess: bool) -> String {
        let mut out = format!(
            "T{:02x}thread:{};",
            self.signal,
            thread_id::format(multiprocess, self.pid, self.tid)
        );
        match self.reason {
            Reason::Signal => {}
            Reason::SwBreak => out.push_str("swbreak:;"),
            Reason::HwBreak => out.push_str("hwbreak:;"),
            Reason::Watch(kind, addr) => {
                let name = match kind {
                    WatchReason::Write => "watch",
                    WatchReason::Read => "rwatch",
                    WatchReason::Access => "awatch",
                };
                out.push_str(&format!("{name}:{addr:x};"));
            }
            Reason::HistoryBegin => out.push_str("replaylog:begin;"),
            Reason::HistoryEnd => out.push_str("replaylog:end;"),
        }
        out
    }
}

/// An error reply with a message: `E.text`. gdb 13 shows the text where it
/// prints a failure reply (register writes, `vAttach`, `qSupported`,
/// `Z1`); the characters the framing reserves are replaced.
pub fn error(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '$' | '#' | '}' | '*' => ' ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("E.{clean}")
}

/// A numbered error reply, for the packets whose replies gdb 13 only
/// recognises as errors in the `Enn` form (`m`).
pub fn errno(n: u8) -> String {
    format!("E{n:02x}")
}

/// Console output (`O` packet), shown by gdb while it waits for a stop or
/// for a `monitor` command's reply.
pub fn console(text: &str) -> String {
    format!("O{}", hex::encode(text.as_bytes()))
}

/// The part of `data` a `qXfer` read asks for: `m` and the bytes if more
/// follow, `l` and the bytes for the last part (escaped).
pub fn xfer(data: &[u8], offset: u64, length: u64) -> Vec<u8> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    let end = start.saturating_add(len).min(data.len());
    let mut out = vec![if end < data.len() { b'm' } else { b'l' }];
    out.extend(escape(&data[start..end]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_replies() {
        let stop = |reason| StopReply {
            signal: SIGTRAP,
            pid: 2,
            tid: 1,
            reason,
        };
        assert_eq!(stop(Reason::Signal).format(true), "T05thread:p2.1;");
        assert_eq!(stop(Reason::SwBreak).format(true), "T05thread:p2.1;swbreak:;");
        assert_eq!(
            stop(Reason::Watch(WatchReason::Read, 0x403000)).format(true),
            "T05thread:p2.1;rwatch:403000;"
        );
        assert_eq!(
            stop(Reason::HistoryBegin).format(false),
            "T05thread:2;replaylog:begin;"
        );
    }

    #[test]
    fn errors_console_and_xfer() {
        assert_eq!(error("no $ # here"), "E.no     here");
        assert_eq!(errno(14), "E0e");
        assert_eq!(console("hi\n"), "O68690a");
        assert_eq!(xfer(b"abcdef", 0, 4), b"mabcd".to_vec());
        assert_eq!(xfer(b"abcdef", 4, 4), b"lef".to_vec());
        assert_eq!(xfer(b"abcdef", 9, 4), b"l".to_vec());
        assert_eq!(xfer(b"a#", 0, u64::MAX), b"la}\x03".to_vec());
    }
}
