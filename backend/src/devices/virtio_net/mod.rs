//! A virtio network card (virtio 1.x §5.1) on the virtio-MMIO transport.
//!
//! The smallest device a spec-following driver accepts: features
//! `VIRTIO_F_VERSION_1` and `VIRTIO_NET_F_MAC`, one receive queue (0) and
//! one transmit queue (1), configuration space holding only the MAC. No
//! checksum or segmentation offload, no mergeable buffers, no event index.
//! Every frame in either direction is preceded by the 12-byte
//! `virtio_net_hdr_v1`.
//!
//! The card has no host-side backend: the engine takes the frames the guest
//! sent with [`VirtioNet::take_tx`] and hands in frames for the guest with
//! [`VirtioNet::receive`]; the cluster's switch sits in between. Frames the
//! guest has no buffer for yet wait in a bounded backlog, as on a wire that
//! buffers a little. All state is in [`VirtioNet`] and can be captured with
//! [`VirtioNet::state`].

mod dma;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{virtio_net_hdr_v1, VIRTIO_NET_F_MAC};
use virtio_queue::DescriptorChain;
use vm_memory::Bytes;

use super::virtio_mmio::{MmioEvent, MmioTransport, MmioTransportState, VirtioDevice};
use crate::memory::GuestRam;
use dma::Pieces;
pub use dma::{DmaAccess, DmaKind};

/// Guest-physical address of the card's register page.
pub const VIRTIO_NET_MMIO_BASE: u64 = 0xd000_0000;
/// Size of the register page (one 4 KiB page).
pub const VIRTIO_NET_MMIO_SIZE: u64 = 0x1000;
/// The card's interrupt line on the PIC.
pub const VIRTIO_NET_IRQ: u8 = 5;

/// Receive queue index.
pub const RX_QUEUE: u16 = 0;
/// Transmit queue index.
pub const TX_QUEUE: u16 = 1;
/// Number of virtqueues.
const NUM_QUEUES: usize = 2;

/// Size of `virtio_net_hdr_v1`, which precedes every frame in a buffer.
pub const NET_HDR_LEN: usize = std::mem::size_of::<virtio_net_hdr_v1>();
const _: () = assert!(NET_HDR_LEN == 12);
/// Offset of `num_buffers` in the header.
const NUM_BUFFERS_OFFSET: usize = std::mem::offset_of!(virtio_net_hdr_v1, num_buffers);
/// Largest Ethernet frame (without FCS) either way: 1500 bytes of payload + 14 of header.
pub const MAX_FRAME_LEN: usize = 1514;
/// Smallest frame either way: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;
/// Frames kept for the guest while it has no receive buffer; more are dropped.
pub const RX_BACKLOG_MAX: usize = 256;
/// Transmitted frames kept until [`VirtioNet::take_tx`]; more are dropped.
/// The engine takes them after every MMIO write, so this only bounds memory
/// if it does not.
pub const TX_PENDING_MAX: usize = 4096;

/// What became of a frame handed to [`VirtioNet::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RxOutcome {
    /// Written into a receive buffer and returned to the driver.
    Delivered,
    /// Kept in the backlog until the driver offers receive buffers.
    Queued,
    /// Lost: not a valid frame size, backlog full, or the driver's buffer was unusable.
    Dropped,
}

/// Counters of what the card did, for the debugger and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounters {
    /// Frames the guest transmitted (handed to `take_tx`).
    pub tx_frames: u64,
    /// Transmitted chains dropped because the frame exceeds [`MAX_FRAME_LEN`].
    pub tx_oversize: u64,
    /// Transmitted chains dropped as malformed: shorter than header plus
    /// [`MIN_FRAME_LEN`], a device-writable descriptor, or memory outside RAM.
    pub tx_malformed: u64,
    /// Transmitted frames dropped because [`TX_PENDING_MAX`] were pending.
    pub tx_overflow: u64,
    /// Frames written into a receive buffer.
    pub rx_delivered: u64,
    /// Frames refused by `receive` for their size.
    pub rx_invalid: u64,
    /// Frames dropped because the backlog was full.
    pub rx_backlog_full: u64,
    /// Frames dropped because the driver's receive buffer was too small,
    /// device-readable, or outside RAM (the buffer is returned empty).
    pub rx_bad_buffer: u64,
}

/// The device-specific half the transport consults: type, features, MAC.
#[derive(Debug, Clone, Copy)]
struct NetConfig {
    mac: [u8; 6],
}

impl VirtioDevice for NetConfig {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn device_features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC)
    }

    /// `struct virtio_net_config` begins with `mac[6]`; the fields after it
    /// only exist with features this card does not offer, so read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            let at = offset.checked_add(i as u64).and_then(|a| usize::try_from(a).ok());
            *byte = at.and_then(|a| self.mac.get(a)).copied().unwrap_or(0);
        }
    }

    // Writes are ignored (the default): in the modern interface the MAC is
    // read-only (§5.1.4.2).
}

/// Why a transmit chain was dropped.
enum TxDrop {
    Oversize,
    Malformed,
}

/// Why a receive buffer could not take a frame.
struct BadRxBuffer;

/// The virtio-net card of one VM.
pub struct VirtioNet {
    transport: MmioTransport,
    config: NetConfig,
    /// Frames transmitted since the last `take_tx`, oldest first.
    tx_pending: Vec<Vec<u8>>,
    /// Frames waiting for a receive buffer, oldest first.
    backlog: VecDeque<Vec<u8>>,
    counters: NetCounters,
    /// The log of guest-memory accesses, when an analysis asked for it
    /// (not part of the card's state).
    dma_log: Option<Vec<DmaAccess>>,
}

/// Serialisable copy of the whole card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtioNetState {
    /// The card's MAC address.
    pub mac: [u8; 6],
    /// Transport registers and virtqueues.
    pub transport: MmioTransportState,
    /// Transmitted frames not yet taken.
    pub tx_pending: Vec<Vec<u8>>,
    /// Frames waiting for receive buffers, oldest first.
    pub backlog: Vec<Vec<u8>>,
    /// Counters.
    pub counters: NetCounters,
}

impl VirtioNet {
    /// A card with MAC `mac`, in the reset state.
    pub fn new(mac: [u8; 6]) -> Self {
        VirtioNet {
            transport: MmioTransport::new(NUM_QUEUES),
            config: NetConfig { mac },
            tx_pending: Vec::new(),
            backlog: VecDeque::new(),
            counters: NetCounters::default(),
            dma_log: None,
        }
    }

    /// The `virtio_mmio.device=4K@0xd0000000:5` token for the guest command
    /// line (the Linux syntax, which vmrr's guest kit parses too).
    pub fn cmdline_token() -> String {
        format!(
            "virtio_mmio.device={}K@{:#x}:{}",
            VIRTIO_NET_MMIO_SIZE / 1024,
            VIRTIO_NET_MMIO_BASE,
            VIRTIO_NET_IRQ
        )
    }

    /// The card's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.config.mac
    }

    /// What the card has done so far.
    pub fn counters(&self) -> &NetCounters {
        &self.counters
    }

    /// The device status register (bit 6 is DEVICE_NEEDS_RESET after a driver error).
    pub fn status(&self) -> u32 {
        self.transport.status()
    }

    /// True when the driver has finished initialisation and the card may use its queues.
    pub fn driver_ready(&self) -> bool {
        self.transport.is_live()
    }

    /// Frames waiting for receive buffers.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// A guest read at `offset` in the register page (0..0x1000).
    pub fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        self.transport.read(&self.config, offset, data);
    }

    /// A guest write at `offset` in the register page. A transmit-queue
    /// notification collects the guest's frames (see [`VirtioNet::take_tx`]);
    /// a receive-queue notification delivers backlog into the new buffers.
    pub fn mmio_write(&mut self, mem: &GuestRam, offset: u64, data: &[u8]) {
        match self.transport.write(&mut self.config, mem, offset, data) {
            MmioEvent::Notify(RX_QUEUE) => self.drain_backlog(mem),
            MmioEvent::Notify(TX_QUEUE) => self.process_tx(mem),
            // Buffers made available before DRIVER_OK could not be used until now.
            MmioEvent::DriverOk => {
                self.process_tx(mem);
                self.drain_backlog(mem);
            }
            // The backlog is the wire's, not the driver's: it survives a reset,
            // so frames sent while a guest (re)initialises its driver still arrive.
            MmioEvent::Reset | MmioEvent::Notify(_) | MmioEvent::None => {}
        }
    }

    /// Frames the guest transmitted since the last call (Ethernet frames,
    /// without the virtio header), oldest first.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.tx_pending)
    }

    /// Hands `frame` (an Ethernet frame of [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`]
    /// bytes) to the guest now: written into the next receive buffer (used
    /// ring updated, interrupt signalled), or kept in the backlog until the
    /// driver offers buffers, or dropped.
    pub fn receive(&mut self, mem: &GuestRam, frame: &[u8]) -> RxOutcome {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&frame.len()) {
            self.counters.rx_invalid += 1;
            return RxOutcome::Dropped;
        }
        if self.transport.queue_usable(RX_QUEUE.into()) {
            // Older frames first, so the guest sees frames in arrival order.
            self.drain_backlog(mem);
            if self.backlog.is_empty() {
                let outcome = self.deliver(mem, frame);
                if outcome.is_some() {
                    self.transport.signal_used(mem, RX_QUEUE.into());
                }
                match outcome {
                    Some(Ok(())) => return RxOutcome::Delivered,
                    Some(Err(BadRxBuffer)) => return RxOutcome::Dropped,
                    None => {}
                }
            }
        }
        if self.backlog.len() >= RX_BACKLOG_MAX {
            self.counters.rx_backlog_full += 1;
            return RxOutcome::Dropped;
        }
        self.backlog.push_back(frame.to_vec());
        RxOutcome::Queued
    }

    /// True once per interrupt the card signalled since the last call: the
    /// engine then raises [`VIRTIO_NET_IRQ`] on the (edge-triggered) PIC.
    /// Check it after [`VirtioNet::mmio_write`] and [`VirtioNet::receive`].
    pub fn take_irq(&mut self) -> bool {
        self.transport.take_irq()
    }

    /// Snapshot of the whole card.
    pub fn state(&self) -> VirtioNetState {
        VirtioNetState {
            mac: self.config.mac,
            transport: self.transport.state(),
            tx_pending: self.tx_pending.clone(),
            backlog: self.backlog.iter().cloned().collect(),
            counters: self.counters.clone(),
        }
    }

    /// Rebuilds a card from a snapshot.
    ///
    /// A snapshot taken by [`VirtioNet::state`] comes back exactly. Backlog
    /// entries that `receive` could never have queued (wrong size, beyond
    /// [`RX_BACKLOG_MAX`]) are left out rather than trusted.
    pub fn from_state(state: &VirtioNetState) -> Self {
        VirtioNet {
            transport: MmioTransport::from_state(&state.transport, NUM_QUEUES),
            config: NetConfig { mac: state.mac },
            tx_pending: state.tx_pending.clone(),
            backlog: state
                .backlog
                .iter()
                .filter(|f| (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&f.len()))
                .take(RX_BACKLOG_MAX)
                .cloned()
                .collect(),
            counters: state.counters.clone(),
            dma_log: None,
        }
    }

    /// Delivers backlog frames while the driver has receive buffers.
    fn drain_backlog(&mut self, mem: &GuestRam) {
        if !self.transport.queue_usable(RX_QUEUE.into()) {
            return;
        }
        let mut used = false;
        // Each round either consumes a frame or stops, so this ends.
        while let Some(frame) = self.backlog.front() {
            // Moved out before `deliver` borrows `self` mutably.
            let frame = frame.clone();
            match self.deliver(mem, &frame) {
                Some(_) => {
                    used = true;
                    self.backlog.pop_front();
                }
                None => break,
            }
        }
        if used {
            self.transport.signal_used(mem, RX_QUEUE.into());
        }
    }

    /// Writes `frame` into the next receive buffer. `None`: no buffer (or
    /// the queue just failed); `Some(Err)`: the buffer was unusable, went
    /// back empty, and the frame is lost. Does not signal the interrupt.
    fn deliver(&mut self, mem: &GuestRam, frame: &[u8]) -> Option<Result<(), BadRxBuffer>> {
        let rx = usize::from(RX_QUEUE);
        let chain = match self.transport.pop_chain(mem, rx) {
            Ok(Some(chain)) => chain,
            Ok(None) => return None,
            Err(_) => {
                self.transport.fail();
                return None;
            }
        };
        let head = chain.head_index();
        let mut pieces = Pieces::new();
        let result = write_rx_chain(mem, chain, frame, &mut pieces);
        // Logged even for an unusable buffer: what was written stays written.
        self.log_packet(&pieces, frame, true);
        let len = match &result {
            // At most 12 + 1514 bytes: fits a u32.
            Ok(()) => (NET_HDR_LEN + frame.len()) as u32,
            Err(BadRxBuffer) => 0,
        };
        self.log_used(rx);
        if self.transport.add_used(mem, rx, head, len).is_err() {
            // A head index beyond the queue: the chain cannot be returned.
            self.transport.fail();
            return None;
        }
        match result {
            Ok(()) => self.counters.rx_delivered += 1,
            Err(BadRxBuffer) => self.counters.rx_bad_buffer += 1,
        }
        Some(result)
    }

    /// Collects every frame the driver made available on the transmit queue.
    fn process_tx(&mut self, mem: &GuestRam) {
        let tx = usize::from(TX_QUEUE);
        if !self.transport.queue_usable(tx) {
            return;
        }
        let mut used = false;
        // A well-behaved driver never has more than `size` chains
        // outstanding; the bound also stops a guest whose rings overlap so
        // that our own used-ring writes keep making new chains available.
        for _ in 0..self.transport.queue_size(tx) {
            let chain = match self.transport.pop_chain(mem, tx) {
                Ok(Some(chain)) => chain,
                Ok(None) => break,
                Err(_) => {
                    self.transport.fail();
                    break;
                }
            };
            let head = chain.head_index();
            let mut pieces = Pieces::new();
            match read_tx_chain(mem, chain, &mut pieces) {
                Ok(frame) if self.tx_pending.len() < TX_PENDING_MAX => {
                    self.counters.tx_frames += 1;
                    self.log_packet(&pieces, &frame, false);
                    self.tx_pending.push(frame);
                }
                Ok(_) => self.counters.tx_overflow += 1,
                Err(TxDrop::Oversize) => self.counters.tx_oversize += 1,
                Err(TxDrop::Malformed) => self.counters.tx_malformed += 1,
            }
            // The device writes nothing into transmit buffers: length 0.
            self.log_used(tx);
            if self.transport.add_used(mem, tx, head, 0).is_err() {
                self.transport.fail();
                break;
            }
            used = true;
        }
        if used {
            self.transport.signal_used(mem, tx);
        }
    }
}

/// Reads one transmit chain: the header, then the frame, all device-readable.
///
/// A broken `next` link or an unreadable descriptor-table entry ends the
/// chain early (virtio-queue's iterator stops there); loops end after
/// `size` descriptors. The frame is bounded before anything is allocated.
fn read_tx_chain(
    mem: &GuestRam,
    chain: DescriptorChain<&GuestRam>,
    pieces: &mut Pieces,
) -> Result<Vec<u8>, TxDrop> {
    let mut packet = Vec::new();
    for desc in chain {
        if desc.is_write_only() {
            return Err(TxDrop::Malformed);
        }
        let len = desc.len() as usize;
        if packet.len() + len > NET_HDR_LEN + MAX_FRAME_LEN {
            return Err(TxDrop::Oversize);
        }
        let start = packet.len();
        packet.resize(start + len, 0);
        mem.read_slice(&mut packet[start..], desc.addr())
            .map_err(|_| TxDrop::Malformed)?;
        pieces.push((desc.addr().0, start, len));
    }
    if packet.len() < NET_HDR_LEN + MIN_FRAME_LEN {
        return Err(TxDrop::Malformed);
    }
    // The header carries offload requests; none were negotiated, so it is ignored.
    packet.drain(..NET_HDR_LEN);
    Ok(packet)
}

/// Writes header and frame across the device-writable descriptors of a
/// receive chain, which must hold all of it (no mergeable buffers).
fn write_rx_chain(
    mem: &GuestRam,
    chain: DescriptorChain<&GuestRam>,
    frame: &[u8],
    pieces: &mut Pieces,
) -> Result<(), BadRxBuffer> {
    let mut packet = [0u8; NET_HDR_LEN + MAX_FRAME_LEN];
    // A zeroed header means: no checksum work, no segmentation. num_buffers
    // is 1 because one buffer always holds the whole frame.
    packet[NUM_BUFFERS_OFFSET..NUM_BUFFERS_OFFSET + 2].copy_from_slice(&1u16.to_le_bytes());
    let total = NET_HDR_LEN + frame.len();
    // Callers only pass frames of valid size; checked anyway rather than sliced blindly.
    packet
        .get_mut(NET_HDR_LEN..total)
        .ok_or(BadRxBuffer)?
        .copy_from_slice(frame);
    let mut rest = &packet[..total];
    for desc in chain {
        if rest.is_empty() {
            break;
        }
        if !desc.is_write_only() {
            return Err(BadRxBuffer);
        }
        let n = rest.len().min(desc.len() as usize);
        mem.write_slice(&rest[..n], desc.addr())
            .map_err(|_| BadRxBuffer)?;
        pieces.push((desc.addr().0, total - rest.len(), n));
        rest = &rest[n..];
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(BadRxBuffer)
    }
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod test_driver;
#[cfg(test)]
mod tests;
