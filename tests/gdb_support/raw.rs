//! A minimal remote-protocol client that sends whatever it is told: for
//! malformed packets, requests naming what does not exist, and a second
//! client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A raw connection to a gdb server.
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
    /// comes within `timeout` or the connection closed.
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
                Err(_) => return None,
            }
        }
    }

    /// Sends `body` and returns the first reply that is not console output.
    pub fn ask(&mut self, body: &[u8]) -> String {
        self.send(body);
        loop {
            let reply = self
                .reply_within(Duration::from_secs(30))
                .unwrap_or_else(|| panic!("no reply to {:?}", String::from_utf8_lossy(body)));
            if !(reply.starts_with('O') && reply != "OK") {
                return reply;
            }
        }
    }

    /// Runs a monitor command; returns its console text.
    pub fn monitor(&mut self, command: &str) -> String {
        self.send(format!("qRcmd,{}", hex(command)).as_bytes());
        let mut text = String::new();
        loop {
            let reply = self
                .reply_within(Duration::from_secs(30))
                .unwrap_or_else(|| panic!("no reply to monitor {command}"));
            match reply.strip_prefix('O') {
                Some(h) if reply != "OK" => text += &unhex(h),
                _ => return text,
            }
        }
    }

    /// Drops whatever replies are in flight (waiting `quiet` for more).
    pub fn drain(&mut self, quiet: Duration) {
        while self.reply_within(quiet).is_some() {}
        self.pending.clear();
    }
}
