//! The debug-exit port (QEMU `isa-debug-exit` compatible) and the marker port.
//!
//! * `outl(0xf4, v)`: the guest asks to stop with value `v`. QEMU with
//!   `-device isa-debug-exit,iobase=0xf4,iosize=0x04` exits with status
//!   `(v << 1) | 1`; vmrr reports `v` itself.
//! * `outb(0xf9, c)`: appends a byte to the pending marker name (at most 64).
//! * `outl(0xf8, v)`: emits marker (name, v) and clears the name. QEMU has
//!   nothing at these ports, so the same image runs there unchanged.

use serde::{Deserialize, Serialize};

/// Port of the debug-exit device.
pub const EXIT_PORT: u16 = 0xf4;
/// Port that emits a marker with a 32-bit value.
pub const MARKER_VALUE_PORT: u16 = 0xf8;
/// Port that takes the marker name byte by byte.
pub const MARKER_NAME_PORT: u16 = 0xf9;
/// Longest marker name kept; longer names are cut.
pub const MAX_MARKER_NAME: usize = 64;

/// What a write to these ports asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebugAction {
    /// Nothing visible.
    None,
    /// Stop the VM with this value.
    Exit(u32),
    /// Record a marker.
    Marker(String, u32),
}

/// State of the marker port: the name being written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugPort {
    name: Vec<u8>,
}

impl DebugPort {
    /// Whether `port` belongs to this device.
    pub fn claims(port: u16) -> bool {
        (EXIT_PORT..EXIT_PORT + 4).contains(&port) || port == MARKER_VALUE_PORT || port == MARKER_NAME_PORT
    }

    /// Handles a write of `data` (1, 2 or 4 little-endian bytes) to `port`.
    pub fn write(&mut self, port: u16, data: &[u8]) -> DebugAction {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        let value = u32::from_le_bytes(v);
        match port {
            EXIT_PORT => DebugAction::Exit(value),
            MARKER_NAME_PORT => {
                if self.name.len() < MAX_MARKER_NAME {
                    self.name.push(data.first().copied().unwrap_or(0));
                }
                DebugAction::None
            }
            MARKER_VALUE_PORT => {
                let name = String::from_utf8_lossy(&std::mem::take(&mut self.name)).into_owned();
                DebugAction::Marker(name, value)
            }
            _ => DebugAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_collect_a_name_then_emit() {
        let mut p = DebugPort::default();
        for c in b"tick" {
            assert_eq!(p.write(MARKER_NAME_PORT, &[*c]), DebugAction::None);
        }
        assert_eq!(
            p.write(MARKER_VALUE_PORT, &7u32.to_le_bytes()),
            DebugAction::Marker("tick".into(), 7)
        );
        assert_eq!(
            p.write(MARKER_VALUE_PORT, &[1]),
            DebugAction::Marker(String::new(), 1)
        );
        assert_eq!(p.write(EXIT_PORT, &3u32.to_le_bytes()), DebugAction::Exit(3));
        for _ in 0..100 {
            p.write(MARKER_NAME_PORT, b"x");
        }
        match p.write(MARKER_VALUE_PORT, &[0]) {
            DebugAction::Marker(n, _) => assert_eq!(n.len(), MAX_MARKER_NAME),
            other => panic!("{other:?}"),
        }
    }
}
