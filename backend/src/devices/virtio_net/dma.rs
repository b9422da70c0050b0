//! A log of the guest memory the card reads and writes, for analyses that
//! follow data through the network (where did the bytes of a received
//! frame land; which transmit buffer did a sent frame's bytes come from).
//!
//! Off unless asked for ([`VirtioNet::set_dma_log`]): recording and replay
//! never pay for it, and it is not part of the card's state, so turning it
//! on cannot change what the guest sees.

use std::sync::Arc;

use super::{VirtioNet, NET_HDR_LEN};

/// What one access of the card to guest memory carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmaKind {
    /// Bytes `[offset, offset + len)` of a received Ethernet frame, written
    /// into a receive buffer.
    RxFrame {
        /// The whole frame (shared by the accesses of one delivery).
        frame: Arc<[u8]>,
        /// Where in the frame these bytes start.
        offset: u64,
    },
    /// The `virtio_net_hdr_v1` the card writes before a received frame
    /// (constant: no offloads, one buffer).
    RxHeader,
    /// A used-ring element or the used index: the card's bookkeeping.
    UsedRing,
    /// Bytes `[offset, offset + len)` of a transmitted Ethernet frame, read
    /// from a transmit buffer.
    TxFrame {
        /// The whole frame.
        frame: Arc<[u8]>,
        /// Where in the frame these bytes start.
        offset: u64,
    },
}

/// One access of the card to guest-physical memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaAccess {
    /// The guest-physical address.
    pub gpa: u64,
    /// Bytes accessed.
    pub len: u64,
    /// What they carried.
    pub kind: DmaKind,
}

impl DmaAccess {
    /// Whether the card wrote these bytes (else it read them).
    pub fn is_write(&self) -> bool {
        !matches!(self.kind, DmaKind::TxFrame { .. })
    }
}

/// The pieces of a packet (virtio header + frame) as they lie in a chain:
/// (guest-physical address, offset in the packet, length).
pub(super) type Pieces = Vec<(u64, usize, usize)>;

impl VirtioNet {
    /// Turns the log of guest-memory accesses on or off (off: what was
    /// gathered is dropped).
    pub fn set_dma_log(&mut self, on: bool) {
        self.dma_log = on.then(Vec::new);
    }

    /// The accesses logged since the last call, in order.
    pub fn take_dma_log(&mut self) -> Vec<DmaAccess> {
        match &mut self.dma_log {
            Some(log) => std::mem::take(log),
            None => Vec::new(),
        }
    }

    /// Logs the pieces of a packet carrying `frame` (header bytes and
    /// frame bytes apart), received or transmitted.
    pub(super) fn log_packet(&mut self, pieces: &Pieces, frame: &[u8], received: bool) {
        let Some(log) = &mut self.dma_log else {
            return;
        };
        let frame: Arc<[u8]> = Arc::from(frame);
        for &(gpa, at, len) in pieces {
            let end = at + len;
            if received && at < NET_HDR_LEN {
                log.push(DmaAccess {
                    gpa,
                    len: (end.min(NET_HDR_LEN) - at) as u64,
                    kind: DmaKind::RxHeader,
                });
            }
            if end > NET_HDR_LEN {
                let from = at.max(NET_HDR_LEN);
                let offset = (from - NET_HDR_LEN) as u64;
                let frame = frame.clone();
                log.push(DmaAccess {
                    gpa: gpa + (from - at) as u64,
                    len: (end - from) as u64,
                    kind: if received {
                        DmaKind::RxFrame { frame, offset }
                    } else {
                        DmaKind::TxFrame { frame, offset }
                    },
                });
            }
        }
    }

    /// Logs the used-ring writes the next `add_used` on queue `queue` makes.
    pub(super) fn log_used(&mut self, queue: usize) {
        let Some(log) = &mut self.dma_log else {
            return;
        };
        if let Some((elem, idx)) = self.transport.next_used_slot(queue) {
            log.push(DmaAccess {
                gpa: elem,
                len: 8,
                kind: DmaKind::UsedRing,
            });
            log.push(DmaAccess {
                gpa: idx,
                len: 2,
                kind: DmaKind::UsedRing,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_driver::*;
    use super::super::{RxOutcome, RX_QUEUE, TX_QUEUE};
    use super::*;

    fn frame_bytes(log: &[DmaAccess], mem: &Driver) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
        log.iter()
            .filter_map(|a| match &a.kind {
                DmaKind::RxFrame { frame, offset } | DmaKind::TxFrame { frame, offset } => {
                    let o = *offset as usize;
                    Some((
                        a.gpa,
                        mem.read(a.gpa, a.len as usize),
                        frame[o..o + a.len as usize].to_vec(),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_byte_the_card_moves_is_logged_with_its_place_in_the_frame() {
        let mut d = Driver::ready(16);
        // Off by default: nothing is gathered.
        let (_, _) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
        assert!(d.net.take_dma_log().is_empty());

        d.net.set_dma_log(true);
        let (_, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        let f = frame(2, 98);
        assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
        let log = d.net.take_dma_log();
        // Header, frame, then the used element and index.
        let kinds: Vec<&DmaKind> = log.iter().map(|a| &a.kind).collect();
        assert!(matches!(kinds[0], DmaKind::RxHeader));
        assert!(matches!(kinds[1], DmaKind::RxFrame { offset: 0, .. }));
        assert_eq!((log[0].gpa, log[0].len), (addr, NET_HDR_LEN as u64));
        assert_eq!((log[1].gpa, log[1].len), (addr + NET_HDR_LEN as u64, 98));
        assert_eq!(log.iter().filter(|a| a.kind == DmaKind::UsedRing).count(), 2);
        for (_, in_memory, in_frame) in frame_bytes(&log, &d) {
            assert_eq!(in_memory, in_frame);
        }

        // Transmit: each piece of a frame split over descriptors.
        let g = frame(3, 300);
        d.queue_tx(&g);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![g.clone()]);
        let log = d.net.take_dma_log();
        let pieces = frame_bytes(&log, &d);
        assert!(!pieces.is_empty());
        assert!(log.iter().all(|a| a.kind == DmaKind::UsedRing || !a.is_write()));
        let total: usize = pieces.iter().map(|p| p.1.len()).sum();
        assert_eq!(total, g.len());
        for (_, in_memory, in_frame) in pieces {
            assert_eq!(in_memory, in_frame);
        }
    }
}
