//! Helpers of the gdb tests: a recorded kvstore-bug trace (once per test
//! binary), a `vmrr gdb` server on a free port, batch runs of the real gdb,
//! and a raw remote-protocol client for malformed packets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::VMRR;

/// The kvstore-bug trace, recorded once per test binary.
pub fn trace() -> &'static Path {
    crate::common::require_kvm();
    crate::demo::kvstore_bug_trace()
}

/// The image gdb loads symbols from: the trace's own copy.
pub fn image() -> PathBuf {
    trace().join("images/backup2.elf")
}

/// Address of `name` in the kvstore image, from its symbol table.
pub fn symbol(name: &str) -> u64 {
    crate::demo::kvstore_symbol(name)
}

/// A `vmrr gdb` server on a free port, killed when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// What it printed on start.
    pub banner: String,
}

impl Server {
    /// Starts a server over the test trace with `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(VMRR)
            .arg("gdb")
            .arg(trace())
            .args(["--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vmrr gdb");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        for _ in 0..3 {
            match lines.next() {
                Some(Ok(l)) => {
                    banner += &l;
                    banner.push('\n');
                }
                _ => break,
            }
        }
        let port = banner
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("no port in vmrr gdb's banner:\n{banner}");
        };
        Server { child, port, banner }
    }

    /// Runs gdb in batch mode against this server: `target remote`, then
    /// `commands` in order; returns everything gdb printed.
    pub fn gdb(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new("gdb");
        cmd.args(["-batch", "-nx", "-ex", "set pagination off", "-ex", "set width 0"])
            .arg("-ex")
            .arg(format!("target remote :{}", self.port));
        for c in commands {
            cmd.arg("-ex").arg(c);
        }
        cmd.arg(image());
        run_merged(&mut cmd, Duration::from_secs(60))
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with stdout and stderr into one pipe (gdb prints `monitor`
/// output on stderr, and the order matters); kills it after `timeout`.
pub fn run_merged(cmd: &mut Command, timeout: Duration) -> String {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let writer2 = writer.try_clone().expect("pipe clone");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // The parent's copies of the write end are gone with `cmd`'s: drop them
    // so that the read ends when the child exits.
    let command = format!("{cmd:?}");
    *cmd = Command::new("true");
    let collector = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let text = collector.join().unwrap_or_default();
                panic!("timed out after {timeout:?}: {command}\n{text}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    }
    collector.join().unwrap_or_default()
}

/// A minimal remote-protocol client that sends whatever it is told.
pub struct Raw {
    stream: TcpStream,
    pending: Vec<u8>,
}

/// `$body#xx`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let sum = body.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut out = vec![b'$'];
    out.extend_from_slice(body);
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

impl Raw {
    /// Connects to `port`.
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            pending: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends a packet with a correct checksum.
    pub fn send(&mut self, body: &[u8]) {
        self.send_raw(&frame(body));
    }

    /// The next reply packet's body (acks and NAKs skipped), or None if none
    /// comes within `timeout`.
    pub fn reply_within(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            // A complete `$...#xx` in what has arrived?
            if let Some(start) = self.pending.iter().position(|b| *b == b'$') {
                if let Some(hash) = self.pending[start..].iter().position(|b| *b == b'#') {
                    let end = start + hash + 3;
                    if self.pending.len() >= end {
                        let body =
                            String::from_utf8_lossy(&self.pending[start + 1..start + hash]).into_owned();
                        self.pending.drain(..end);
                        return Some(body);
                    }
                }
            } else {
                self.pending.clear();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("reading from the server: {e}"),
            }
        }
    }

    /// Sends `body` and returns the first reply that is not console output.
    pub fn ask(&mut self, body: &[u8]) -> String {
        self.send(body);
        loop {
            let reply = self
                .reply_within(Duration::from_secs(20))
                .unwrap_or_else(|| panic!("no reply to {:?}", String::from_utf8_lossy(body)));
            if !(reply.starts_with('O') && reply != "OK") {
                return reply;
            }
        }
    }

    /// Drops whatever replies are in flight (waiting `quiet` for more).
    pub fn drain(&mut self, quiet: Duration) {
        while self.reply_within(quiet).is_some() {}
        self.pending.clear();
    }
}

/// Hex of a monitor command, for `qRcmd`.
pub fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The text of `O` packets' hex.
pub fn unhex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
