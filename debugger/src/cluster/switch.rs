//! The virtual L2 switch: learns which VM owns a MAC from the frames it
//! sends, forwards to that VM, floods broadcasts and unknown destinations.
//! Deterministic because frames reach it in a fixed order (by send time).

use std::collections::BTreeMap;

/// Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// MAC table of the one switch of a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switch {
    table: BTreeMap<[u8; 6], usize>,
}

/// Destination and source MAC of an Ethernet frame, if it is long enough to have them.
pub fn macs(frame: &[u8]) -> Option<([u8; 6], [u8; 6])> {
    if frame.len() < 14 {
        return None;
    }
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    Some((dst, src))
}

impl Switch {
    /// A switch with an empty MAC table.
    pub fn new() -> Self {
        Switch::default()
    }

    /// Learns the sender of `frame` (arriving on port `from`) and returns the
    /// ports it goes to, in port order. Runt frames go nowhere.
    pub fn forward(&mut self, frame: &[u8], from: usize, ports: usize) -> Vec<usize> {
        let Some((dst, src)) = macs(frame) else {
            return Vec::new();
        };
        // Only unicast source addresses are learnt: a multicast source is bogus.
        if src[0] & 1 == 0 {
            self.table.insert(src, from);
        }
        match self.table.get(&dst) {
            Some(&port) if dst[0] & 1 == 0 => {
                if port == from {
                    Vec::new()
                } else {
                    vec![port]
                }
            }
            _ => (0..ports).filter(|&p| p != from).collect(),
        }
    }

    /// A switch that has already learnt `table` (a fork rebuilds the table
    /// a recording had at its cut).
    pub fn with_table(table: BTreeMap<[u8; 6], usize>) -> Self {
        Switch { table }
    }

    /// The learnt table, for views and snapshots.
    pub fn table(&self) -> &BTreeMap<[u8; 6], usize> {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5, 1, 2, 3]);
        f
    }

    #[test]
    fn floods_unknown_then_learns() {
        let a = [0x52, 0, 0, 0, 0, 1];
        let b = [0x52, 0, 0, 0, 0, 2];
        let mut sw = Switch::new();
        assert_eq!(
            sw.forward(&frame(b, a), 0, 3),
            vec![1, 2],
            "unknown destination floods"
        );
        assert_eq!(sw.forward(&frame(a, b), 1, 3), vec![0], "a was learnt");
        assert_eq!(sw.forward(&frame(b, a), 0, 3), vec![1], "b was learnt");
        assert_eq!(sw.forward(&frame(BROADCAST, a), 0, 3), vec![1, 2]);
        assert_eq!(
            sw.forward(&frame(a, a), 0, 3),
            Vec::<usize>::new(),
            "never back to the sender"
        );
        assert!(sw.forward(&[1, 2, 3], 0, 3).is_empty());
    }
}
