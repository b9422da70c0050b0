//! Memory: `m` reads the `Hg` thread's VM at the cursor through its own
//! page tables; `M` and `X` are refused.
//!
//! gdb 13 shows a failed memory write only as "Cannot access memory at
//! address …", whatever the reply says, so the reason also goes to the
//! notices that vmrr's gdb settings print before the next prompt (and to
//! the server's log). gdb probes `X` with an empty write once: that is
//! answered `OK` (nothing is changed), so that gdb keeps using `X` and
//! every real write reaches the refusal.

use crate::areas::registers::WHY_NO_WRITES;
use crate::proto::hex;
use crate::proto::reply::{errno, error};
use crate::state::{lock, Target};

/// `EFAULT`: what gdb gets for memory it cannot access (gdb 13 recognises
/// a failed `m` only in the `Enn` form).
const EFAULT: u8 = 14;

/// Most bytes one `m` reply holds: its hex (two characters a byte) must fit
/// gdb's packet size; a longer request is answered short, which the
/// protocol allows.
pub(crate) const MAX_READ: u64 = (crate::proto::framing::PACKET_SIZE as u64 - 16) / 2;

/// Whether `addr` is a canonical 48-bit x86-64 address.
fn canonical(addr: u64) -> bool {
    let top = (addr as i64) >> 47;
    top == 0 || top == -1
}

impl Target {
    /// `m ADDR,LEN`.
    pub(crate) fn read_memory(&mut self, addr: u64, len: u64) -> String {
        let len = len.min(MAX_READ);
        if len == 0 {
            return String::new();
        }
        // A read may not wrap around the top of the address space, nor
        // leave the canonical half it starts in.
        let len = len.min((u64::MAX - addr).saturating_add(1));
        if !canonical(addr) {
            return errno(EFAULT);
        }
        let vm = self.general;
        let mut buf = vec![0u8; len as usize];
        let session = self.session.clone();
        let mut s = lock(&session);
        let n = match s.machine(vm) {
            Ok(m) => m.read_virt(addr, &mut buf),
            Err(e) => {
                // Not a bad address but a trace that cannot be replayed
                // here: gdb only says "Cannot access memory", so say why.
                drop(s);
                self.notice(format!("vmrr: reading the memory of {}: {e}", self.label(vm)));
                return errno(EFAULT);
            }
        };
        match n {
            0 => errno(EFAULT),
            n => hex::encode(&buf[..n]),
        }
    }

    /// `M`/`X`: refused (an empty write is gdb's probe for `X`).
    pub(crate) fn write_memory(&mut self, addr: u64, data: &[u8]) -> String {
        if data.is_empty() {
            return "OK".into();
        }
        let message = format!(
            "vmrr: memory of {} not changed ({} bytes at {addr:#x}; nor can call run): {WHY_NO_WRITES}.",
            self.label(self.general),
            data.len()
        );
        self.notice(message.clone());
        error(&message)
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_addresses() {
        assert!(canonical(0x10_0000));
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(!canonical(0x0000_8000_0000_0000));
        assert!(!canonical(u64::MAX - (1 << 50)));
    }
}
