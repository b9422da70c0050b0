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

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{virtio_net_hdr_v1, VIRTIO_NET_F_MAC};
use virtio_queue::DescriptorChain;
use vm_memory::Bytes;

use super::virtio_mmio::{MmioEvent, MmioTransport, MmioTransportState, VirtioDevice};
use crate::memory::GuestRam;

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
        let result = write_rx_chain(mem, chain, frame);
        let len = match &result {
            // At most 12 + 1514 bytes: fits a u32.
            Ok(()) => (NET_HDR_LEN + frame.len()) as u32,
            Err(BadRxBuffer) => 0,
        };
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
            match read_tx_chain(mem, chain) {
                Ok(frame) if self.tx_pending.len() < TX_PENDING_MAX => {
                    self.counters.tx_frames += 1;
                    self.tx_pending.push(frame);
                }
                Ok(_) => self.counters.tx_overflow += 1,
                Err(TxDrop::Oversize) => self.counters.tx_oversize += 1,
                Err(TxDrop::Malformed) => self.counters.tx_malformed += 1,
            }
            // The device writes nothing into transmit buffers: length 0.
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
fn read_tx_chain(mem: &GuestRam, chain: DescriptorChain<&GuestRam>) -> Result<Vec<u8>, TxDrop> {
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
        rest = &rest[n..];
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(BadRxBuffer)
    }
}

#[cfg(test)]
mod tests {
    //! A tiny in-test driver that follows the spec's initialisation sequence
    //! (§3.1.1, §4.2.3) through the MMIO registers only, and lays out split
    //! virtqueues in a real `GuestMemoryMmap`.

    use super::*;
    use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
    };
    use virtio_bindings::virtio_mmio::*;
    use virtio_bindings::virtio_ring::{
        VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    };
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    const MEM_SIZE: usize = 4 << 20;
    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const FEATURES: u64 = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC);
    /// Where each queue's rings go.
    const RING_BASE: [u64; 2] = [0x1_0000, 0x2_0000];
    /// Each descriptor slot of each queue owns a 2 KiB buffer here.
    const BUF_BASE: [u64; 2] = [0x10_0000, 0x20_0000];
    const BUF_SLOT: u64 = 0x800;

    fn ram() -> GuestRam {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
    }

    /// The driver's view of one split virtqueue.
    #[derive(Clone)]
    struct Vq {
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
        /// Next descriptor slot to hand out (round robin).
        next_desc: u16,
        /// Our copy of avail->idx.
        avail_idx: u16,
        /// Used entries consumed so far.
        last_used: u16,
    }

    impl Vq {
        fn new(base: u64, size: u16) -> Vq {
            let n = u64::from(size);
            let avail = base + 16 * n;
            let used = (avail + 6 + 2 * n + 3) & !3;
            Vq {
                size,
                desc: base,
                avail,
                used,
                next_desc: 0,
                avail_idx: 0,
                last_used: 0,
            }
        }
    }

    /// One descriptor to put in a chain.
    #[derive(Clone, Copy)]
    struct Buf {
        addr: u64,
        len: u32,
        writable: bool,
    }

    struct Driver {
        mem: GuestRam,
        net: VirtioNet,
        q: [Vq; 2],
    }

    fn frame(seq: u32, len: usize) -> Vec<u8> {
        let mut f = Vec::with_capacity(len);
        f.extend_from_slice(&MAC);
        f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x88, 0xb5]);
        let mut x = seq.wrapping_mul(2_654_435_761).wrapping_add(1);
        while f.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f.push(x as u8);
        }
        f.truncate(len);
        f
    }

    fn header_then(frame: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; NET_HDR_LEN];
        p.extend_from_slice(frame);
        p
    }

    impl Driver {
        fn new(qsize: u16) -> Driver {
            Driver {
                mem: ram(),
                net: VirtioNet::new(MAC),
                q: [Vq::new(RING_BASE[0], qsize), Vq::new(RING_BASE[1], qsize)],
            }
        }

        fn r32(&mut self, off: u32) -> u32 {
            let mut b = [0u8; 4];
            self.net.mmio_read(u64::from(off), &mut b);
            u32::from_le_bytes(b)
        }

        fn w32(&mut self, off: u32, v: u32) {
            self.net.mmio_write(&self.mem, u64::from(off), &v.to_le_bytes());
        }

        fn status(&mut self) -> u32 {
            self.r32(VIRTIO_MMIO_STATUS)
        }

        fn add_status(&mut self, bits: u32) {
            let s = self.status();
            self.w32(VIRTIO_MMIO_STATUS, s | bits);
        }

        fn device_features(&mut self) -> u64 {
            self.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
            let lo = self.r32(VIRTIO_MMIO_DEVICE_FEATURES);
            self.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
            let hi = self.r32(VIRTIO_MMIO_DEVICE_FEATURES);
            (u64::from(hi) << 32) | u64::from(lo)
        }

        fn write_features(&mut self, f: u64) {
            self.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
            self.w32(VIRTIO_MMIO_DRIVER_FEATURES, f as u32);
            self.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
            self.w32(VIRTIO_MMIO_DRIVER_FEATURES, (f >> 32) as u32);
        }

        /// Steps 1-6 of §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK.
        /// Returns whether the device kept FEATURES_OK.
        fn negotiate(&mut self, features: u64) -> bool {
            assert_eq!(self.r32(VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
            assert_eq!(self.r32(VIRTIO_MMIO_VERSION), 2);
            assert_eq!(self.r32(VIRTIO_MMIO_DEVICE_ID), 1);
            self.w32(VIRTIO_MMIO_STATUS, 0);
            assert_eq!(self.status(), 0);
            self.add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
            self.add_status(VIRTIO_CONFIG_S_DRIVER);
            assert_eq!(self.device_features(), FEATURES);
            self.write_features(features);
            self.add_status(VIRTIO_CONFIG_S_FEATURES_OK);
            self.status() & VIRTIO_CONFIG_S_FEATURES_OK != 0
        }

        /// Step 7 for one queue (§4.2.3.2).
        fn setup_queue(&mut self, index: u16) {
            let vq = &self.q[usize::from(index)];
            // Start from zeroed rings, as a driver allocating them would.
            let ring_bytes = vec![0u8; (vq.used - vq.desc + 6 + 8 * u64::from(vq.size)) as usize];
            self.mem.write_slice(&ring_bytes, GuestAddress(vq.desc)).unwrap();
            self.setup_queue_keeping_memory(index);
        }

        /// Step 7 for one queue, leaving whatever is in the ring memory.
        fn setup_queue_keeping_memory(&mut self, index: u16) {
            let vq = self.q[usize::from(index)].clone();
            self.w32(VIRTIO_MMIO_QUEUE_SEL, u32::from(index));
            assert_eq!(self.r32(VIRTIO_MMIO_QUEUE_READY), 0);
            assert_eq!(self.r32(VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
            self.w32(VIRTIO_MMIO_QUEUE_NUM, u32::from(vq.size));
            self.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, vq.desc as u32);
            self.w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, (vq.desc >> 32) as u32);
            self.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, vq.avail as u32);
            self.w32(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (vq.avail >> 32) as u32);
            self.w32(VIRTIO_MMIO_QUEUE_USED_LOW, vq.used as u32);
            self.w32(VIRTIO_MMIO_QUEUE_USED_HIGH, (vq.used >> 32) as u32);
            self.w32(VIRTIO_MMIO_QUEUE_READY, 1);
            assert_eq!(self.r32(VIRTIO_MMIO_QUEUE_READY), 1);
        }

        /// The whole initialisation sequence.
        fn init(&mut self) {
            assert!(self.negotiate(FEATURES));
            self.setup_queue(RX_QUEUE);
            self.setup_queue(TX_QUEUE);
            self.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
            assert_eq!(
                self.status(),
                VIRTIO_CONFIG_S_ACKNOWLEDGE
                    | VIRTIO_CONFIG_S_DRIVER
                    | VIRTIO_CONFIG_S_FEATURES_OK
                    | VIRTIO_CONFIG_S_DRIVER_OK
            );
            assert!(self.net.driver_ready());
        }

        fn ready(qsize: u16) -> Driver {
            let mut d = Driver::new(qsize);
            d.init();
            d
        }

        /// Writes a chain into the descriptor table and makes it available.
        fn add_chain(&mut self, q: u16, bufs: &[Buf]) -> u16 {
            let vq = &mut self.q[usize::from(q)];
            let head = vq.next_desc;
            for (i, b) in bufs.iter().enumerate() {
                let slot = (head + i as u16) % vq.size;
                let last = i + 1 == bufs.len();
                let mut flags = 0u16;
                if !last {
                    flags |= VRING_DESC_F_NEXT as u16;
                }
                if b.writable {
                    flags |= VRING_DESC_F_WRITE as u16;
                }
                let next = (slot + 1) % vq.size;
                let at = vq.desc + 16 * u64::from(slot);
                self.mem.write_obj(b.addr.to_le(), GuestAddress(at)).unwrap();
                self.mem.write_obj(b.len.to_le(), GuestAddress(at + 8)).unwrap();
                self.mem.write_obj(flags.to_le(), GuestAddress(at + 12)).unwrap();
                self.mem.write_obj(next.to_le(), GuestAddress(at + 14)).unwrap();
            }
            vq.next_desc = (head + bufs.len() as u16) % vq.size;
            let entry = vq.avail + 4 + 2 * u64::from(vq.avail_idx % vq.size);
            self.mem.write_obj(head.to_le(), GuestAddress(entry)).unwrap();
            vq.avail_idx = vq.avail_idx.wrapping_add(1);
            self.mem
                .write_obj(vq.avail_idx.to_le(), GuestAddress(vq.avail + 2))
                .unwrap();
            head
        }

        fn slot_buf(&self, q: u16, slot: u16) -> u64 {
            BUF_BASE[usize::from(q)] + BUF_SLOT * u64::from(slot)
        }

        fn notify(&mut self, q: u16) {
            self.w32(VIRTIO_MMIO_QUEUE_NOTIFY, u32::from(q));
        }

        /// Posts one receive buffer of `len` bytes (no notification).
        fn post_rx(&mut self, len: u32) -> (u16, u64) {
            let addr = self.slot_buf(RX_QUEUE, self.q[0].next_desc);
            let head = self.add_chain(
                RX_QUEUE,
                &[Buf {
                    addr,
                    len,
                    writable: true,
                }],
            );
            (head, addr)
        }

        /// Queues a frame for transmission in one descriptor (no notification).
        fn queue_tx(&mut self, frame: &[u8]) -> u16 {
            let addr = self.slot_buf(TX_QUEUE, self.q[1].next_desc);
            let packet = header_then(frame);
            self.mem.write_slice(&packet, GuestAddress(addr)).unwrap();
            self.add_chain(
                TX_QUEUE,
                &[Buf {
                    addr,
                    len: packet.len() as u32,
                    writable: false,
                }],
            )
        }

        /// New used-ring entries of queue `q` since the last call.
        fn used(&mut self, q: u16) -> Vec<(u32, u32)> {
            let vq = &mut self.q[usize::from(q)];
            let idx = u16::from_le(self.mem.read_obj::<u16>(GuestAddress(vq.used + 2)).unwrap());
            let mut out = Vec::new();
            while vq.last_used != idx {
                let at = vq.used + 4 + 8 * u64::from(vq.last_used % vq.size);
                let id = u32::from_le(self.mem.read_obj::<u32>(GuestAddress(at)).unwrap());
                let len = u32::from_le(self.mem.read_obj::<u32>(GuestAddress(at + 4)).unwrap());
                out.push((id, len));
                vq.last_used = vq.last_used.wrapping_add(1);
            }
            out
        }

        fn read(&self, addr: u64, len: usize) -> Vec<u8> {
            let mut v = vec![0u8; len];
            self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
            v
        }

        fn ack(&mut self) -> u32 {
            let s = self.r32(VIRTIO_MMIO_INTERRUPT_STATUS);
            self.w32(VIRTIO_MMIO_INTERRUPT_ACK, s);
            s
        }
    }

    fn expected_rx(frame: &[u8]) -> Vec<u8> {
        let mut hdr = [0u8; NET_HDR_LEN];
        hdr[10] = 1; // num_buffers = 1, little-endian
        let mut v = hdr.to_vec();
        v.extend_from_slice(frame);
        v
    }

    #[test]
    fn identification_and_features() {
        let mut d = Driver::new(16);
        assert_eq!(d.r32(VIRTIO_MMIO_MAGIC_VALUE), u32::from_le_bytes(*b"virt"));
        assert_eq!(d.r32(VIRTIO_MMIO_VERSION), 2);
        assert_eq!(d.r32(VIRTIO_MMIO_DEVICE_ID), 1);
        assert_ne!(d.r32(VIRTIO_MMIO_VENDOR_ID), 0);
        let f = d.device_features();
        assert_eq!(f, (1 << 32) | (1 << 5));
        d.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
        assert_eq!(d.r32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
        // Queues 0 and 1 exist, queue 2 does not.
        for (q, max) in [(0, 256), (1, 256), (2, 0), (0xffff_ffff, 0)] {
            d.w32(VIRTIO_MMIO_QUEUE_SEL, q);
            assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_NUM_MAX), max);
        }
        assert_eq!(d.r32(VIRTIO_MMIO_CONFIG_GENERATION), 0);
        assert_eq!(d.r32(VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
        assert_eq!(d.r32(VIRTIO_MMIO_SHM_LEN_HIGH), u32::MAX);
        assert_eq!(VirtioNet::cmdline_token(), "virtio_mmio.device=4K@0xd0000000:5");
    }

    #[test]
    fn config_space_holds_the_mac() {
        let mut d = Driver::new(16);
        // Byte by byte, as virtio_cread_bytes does.
        let mac: Vec<u8> = (0..6)
            .map(|i| {
                let mut b = [0u8; 1];
                d.net.mmio_read(0x100 + i, &mut b);
                b[0]
            })
            .collect();
        assert_eq!(mac, MAC);
        // Wider reads, and what lies past the MAC.
        let mut w = [0xaau8; 8];
        d.net.mmio_read(0x100, &mut w);
        assert_eq!(w, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0]);
        let mut w = [0xaau8; 4];
        d.net.mmio_read(0x104, &mut w);
        assert_eq!(w, [0x34, 0x56, 0, 0]);
        d.net.mmio_read(0xffc, &mut w);
        assert_eq!(w, [0; 4]);
        // The MAC is read-only in the modern interface.
        d.net.mmio_write(&d.mem, 0x100, &[1, 2, 3, 4]);
        let mut b = [0u8; 6];
        d.net.mmio_read(0x100, &mut b);
        assert_eq!(b, MAC);
        assert_eq!(d.net.mac(), MAC);
    }

    #[test]
    fn init_sequence_reaches_driver_ok() {
        let d = Driver::ready(16);
        assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    #[test]
    fn features_ok_requires_version_1() {
        let mut d = Driver::new(16);
        assert!(!d.negotiate(1 << VIRTIO_NET_F_MAC));
        assert_eq!(d.status(), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
        // A feature the device does not offer (EVENT_IDX) is refused too.
        assert!(!d.negotiate(FEATURES | (1 << 29)));
        // VERSION_1 alone is enough: MAC is optional for the driver.
        assert!(d.negotiate(1 << VIRTIO_F_VERSION_1));
        // A retry after a refusal works without a reset as well.
        let mut d = Driver::new(16);
        assert!(!d.negotiate(0));
        d.write_features(FEATURES);
        d.add_status(VIRTIO_CONFIG_S_FEATURES_OK);
        assert_ne!(d.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        // Once FEATURES_OK is set, feature writes are ignored.
        d.write_features(0);
        assert_eq!(d.net.transport.driver_features(), FEATURES);
        // The driver may give up: FAILED is kept and the device stays idle.
        d.add_status(VIRTIO_CONFIG_S_FAILED);
        assert!(!d.net.driver_ready());
    }

    #[test]
    fn driver_ok_without_features_ok_needs_reset() {
        let mut d = Driver::new(16);
        d.add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
        d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
        assert_eq!(d.status() & VIRTIO_CONFIG_S_DRIVER_OK, 0);
        assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        assert!(!d.net.driver_ready());
        // Reset recovers.
        d.init();
    }

    #[test]
    fn status_bits_cannot_be_cleared_without_reset() {
        let mut d = Driver::ready(16);
        let before = d.status();
        d.w32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        assert_eq!(d.status(), before);
        // Nor can the driver set NEEDS_RESET itself.
        d.w32(VIRTIO_MMIO_STATUS, before | VIRTIO_CONFIG_S_NEEDS_RESET);
        assert_eq!(d.status(), before);
    }

    #[test]
    fn odd_register_accesses_are_harmless() {
        let mut d = Driver::ready(16);
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
        let state = d.net.state();
        // Unaligned and narrow register accesses read as zero and write nothing.
        for (off, len) in [(0u64, 1usize), (0, 2), (1, 4), (0x70, 2), (0x70, 8), (0x72, 4)] {
            let mut b = vec![0xffu8; len];
            d.net.mmio_read(off, &mut b);
            assert!(b.iter().all(|&x| x == 0), "read {off:#x}/{len}");
            d.net.mmio_write(&d.mem, off, &vec![0u8; len]);
        }
        // Writes to read-only registers are ignored.
        for off in [
            0x000, 0x004, 0x008, 0x00c, 0x010, 0x034, 0x060, 0x0fc, 0x0ac, 0x0b0,
        ] {
            d.w32(off, 0);
        }
        // Reads of write-only registers are zero.
        for off in [0x014, 0x020, 0x024, 0x030, 0x038, 0x050, 0x064, 0x080, 0x0a4] {
            let _ = d.r32(off);
        }
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
        assert_eq!(d.net.state().transport, state.transport);
        assert!(!d.net.take_irq());
    }

    #[test]
    fn transmit_collects_frames_in_order() {
        let mut d = Driver::ready(16);
        let f1 = frame(1, 60);
        let f2 = frame(2, MAX_FRAME_LEN);
        let h1 = d.queue_tx(&f1);
        let h2 = d.queue_tx(&f2);
        // Nothing happens before the notification.
        assert!(d.net.take_tx().is_empty());
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![f1, f2]);
        assert!(d.net.take_tx().is_empty());
        assert_eq!(d.used(TX_QUEUE), vec![(u32::from(h1), 0), (u32::from(h2), 0)]);
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
        assert!(d.net.take_irq());
        assert!(!d.net.take_irq());
        assert_eq!(d.ack(), 1);
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert_eq!(d.net.counters().tx_frames, 2);
    }

    #[test]
    fn transmit_chain_split_across_descriptors() {
        let mut d = Driver::ready(16);
        let f = frame(7, 300);
        let packet = header_then(&f);
        // Header alone, then the frame in two unequal pieces, scattered in memory.
        let parts = [
            (0x30_0000u64, 0..12usize),
            (0x30_1000, 12..100),
            (0x30_0800, 100..packet.len()),
        ];
        let bufs: Vec<Buf> = parts
            .iter()
            .map(|(addr, r)| {
                d.mem
                    .write_slice(&packet[r.clone()], GuestAddress(*addr))
                    .unwrap();
                Buf {
                    addr: *addr,
                    len: r.len() as u32,
                    writable: false,
                }
            })
            .collect();
        let head = d.add_chain(TX_QUEUE, &bufs);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![f]);
        assert_eq!(d.used(TX_QUEUE), vec![(u32::from(head), 0)]);
    }

    #[test]
    fn bad_transmit_chains_are_dropped_and_returned() {
        let mut d = Driver::ready(16);
        // Too big: 1515-byte frame.
        let big = header_then(&frame(1, MAX_FRAME_LEN + 1));
        d.mem.write_slice(&big, GuestAddress(0x30_0000)).unwrap();
        let h_big = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: big.len() as u32,
                writable: false,
            }],
        );
        // Shorter than header + Ethernet header.
        let h_runt = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 20,
                writable: false,
            }],
        );
        // A device-writable descriptor in a transmit chain.
        let h_w = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 100,
                writable: true,
            }],
        );
        // Outside guest RAM.
        let h_out = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: MEM_SIZE as u64 - 50,
                len: 100,
                writable: false,
            }],
        );
        // A huge length that must not be allocated.
        let h_huge = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0,
                len: u32::MAX,
                writable: false,
            }],
        );
        // And a good one after them.
        let good = frame(2, 64);
        let h_good = d.queue_tx(&good);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![good]);
        let heads: Vec<u32> = d.used(TX_QUEUE).iter().map(|&(id, _)| id).collect();
        assert_eq!(heads, [h_big, h_runt, h_w, h_out, h_huge, h_good].map(u32::from));
        let c = d.net.counters();
        assert_eq!((c.tx_frames, c.tx_oversize, c.tx_malformed), (1, 2, 3));
        assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    #[test]
    fn receive_writes_header_and_frame() {
        let mut d = Driver::ready(16);
        let (head, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert!(!d.net.take_irq());
        let f = frame(3, 98);
        assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
        assert_eq!(
            d.used(RX_QUEUE),
            vec![(u32::from(head), (NET_HDR_LEN + 98) as u32)]
        );
        assert_eq!(d.read(addr, NET_HDR_LEN + 98), expected_rx(&f));
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
        assert!(d.net.take_irq());
        assert!(!d.net.take_irq());
        assert_eq!(d.net.counters().rx_delivered, 1);
    }

    #[test]
    fn receive_scatters_over_a_chain() {
        let mut d = Driver::ready(16);
        // Linux-style: a header-sized buffer, then data buffers.
        let bufs = [
            Buf {
                addr: 0x30_0000,
                len: 12,
                writable: true,
            },
            Buf {
                addr: 0x30_1000,
                len: 1000,
                writable: true,
            },
            Buf {
                addr: 0x30_2000,
                len: 1000,
                writable: true,
            },
        ];
        let head = d.add_chain(RX_QUEUE, &bufs);
        d.notify(RX_QUEUE);
        let f = frame(4, 1500);
        assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
        let want = expected_rx(&f);
        let mut got = d.read(0x30_0000, 12);
        got.extend(d.read(0x30_1000, 1000));
        got.extend(d.read(0x30_2000, want.len() - 1012));
        assert_eq!(got, want);
        assert_eq!(d.used(RX_QUEUE), vec![(u32::from(head), want.len() as u32)]);
    }

    #[test]
    fn receive_into_bad_buffers_drops_the_frame() {
        let mut d = Driver::ready(16);
        let (h_small, _) = d.post_rx(100);
        let h_ro = d.add_chain(
            RX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 2000,
                writable: false,
            }],
        );
        let h_out = d.add_chain(
            RX_QUEUE,
            &[Buf {
                addr: MEM_SIZE as u64 - 10,
                len: 2000,
                writable: true,
            }],
        );
        let h_wrap = d.add_chain(
            RX_QUEUE,
            &[Buf {
                addr: u64::MAX - 5,
                len: 2000,
                writable: true,
            }],
        );
        d.notify(RX_QUEUE);
        for _ in 0..4 {
            assert_eq!(d.net.receive(&d.mem, &frame(5, 200)), RxOutcome::Dropped);
        }
        // Each buffer goes back empty, with an interrupt.
        assert_eq!(
            d.used(RX_QUEUE),
            [h_small, h_ro, h_out, h_wrap].map(|h| (u32::from(h), 0)).to_vec()
        );
        assert!(d.net.take_irq());
        assert_eq!(d.net.counters().rx_bad_buffer, 4);
        // Frames of invalid size never reach the queue.
        let (h, _) = d.post_rx(2000);
        d.notify(RX_QUEUE);
        assert_eq!(
            d.net.receive(&d.mem, &frame(0, MAX_FRAME_LEN + 1)),
            RxOutcome::Dropped
        );
        assert_eq!(d.net.receive(&d.mem, &frame(0, 13)), RxOutcome::Dropped);
        assert_eq!(d.net.counters().rx_invalid, 2);
        assert_eq!(
            d.net.receive(&d.mem, &frame(0, MIN_FRAME_LEN)),
            RxOutcome::Delivered
        );
        assert_eq!(
            d.used(RX_QUEUE),
            vec![(u32::from(h), (NET_HDR_LEN + MIN_FRAME_LEN) as u32)]
        );
    }

    #[test]
    fn every_publication_is_a_new_edge() {
        let mut d = Driver::ready(16);
        for _ in 0..4 {
            d.post_rx(1526);
        }
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
        assert!(d.net.take_irq());
        // Not acknowledged yet: a new frame still makes a new edge.
        assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Delivered);
        assert!(d.net.take_irq());
        // Acknowledged, then more work: status rises again with a new edge.
        assert_eq!(d.ack(), 1);
        assert!(!d.net.take_irq());
        assert_eq!(d.net.receive(&d.mem, &frame(3, 60)), RxOutcome::Delivered);
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
        assert!(d.net.take_irq());
        // ACK of bits that are not set changes nothing.
        d.w32(VIRTIO_MMIO_INTERRUPT_ACK, 2);
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    }

    #[test]
    fn no_interrupt_flag_suppresses_interrupts() {
        let mut d = Driver::ready(16);
        let avail = d.q[0].avail;
        d.mem
            .write_obj((VRING_AVAIL_F_NO_INTERRUPT as u16).to_le(), GuestAddress(avail))
            .unwrap();
        d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
        assert!(!d.net.take_irq());
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        // The buffer is still returned; the driver finds it by polling.
        assert_eq!(d.used(RX_QUEUE).len(), 1);
        // Re-enabled: interrupts come back.
        d.mem.write_obj(0u16, GuestAddress(avail)).unwrap();
        d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Delivered);
        assert!(d.net.take_irq());
    }

    #[test]
    fn backlog_waits_for_buffers_and_keeps_order() {
        let mut d = Driver::ready(16);
        let frames: Vec<Vec<u8>> = (0..5).map(|i| frame(i, 60 + i as usize)).collect();
        for f in &frames {
            assert_eq!(d.net.receive(&d.mem, f), RxOutcome::Queued);
        }
        assert!(!d.net.take_irq());
        assert_eq!(d.net.backlog_len(), 5);
        // Three buffers: the three oldest frames go in, one interrupt.
        let posted: Vec<(u16, u64)> = (0..3).map(|_| d.post_rx(1526)).collect();
        d.notify(RX_QUEUE);
        assert!(d.net.take_irq());
        assert!(!d.net.take_irq());
        let used = d.used(RX_QUEUE);
        assert_eq!(used.len(), 3);
        for (i, ((head, addr), (id, len))) in posted.iter().zip(&used).enumerate() {
            assert_eq!(u32::from(*head), *id);
            assert_eq!(*len as usize, NET_HDR_LEN + frames[i].len());
            assert_eq!(d.read(*addr, *len as usize), expected_rx(&frames[i]));
        }
        assert_eq!(d.net.backlog_len(), 2);
        // A new frame queues behind the backlog even when a buffer is free.
        let (_, addr) = d.post_rx(1526);
        let late = frame(99, 70);
        assert_eq!(d.net.receive(&d.mem, &late), RxOutcome::Queued);
        assert_eq!(d.read(addr, NET_HDR_LEN + 63), expected_rx(&frames[3]));
        d.ack();
        let _ = d.net.take_irq();
        d.post_rx(1526);
        let (_, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.read(addr, NET_HDR_LEN + 70), expected_rx(&late));
        assert_eq!(d.net.backlog_len(), 0);
        assert_eq!(d.used(RX_QUEUE).len(), 3);
    }

    #[test]
    fn backlog_is_bounded() {
        let mut d = Driver::ready(16);
        for i in 0..RX_BACKLOG_MAX {
            assert_eq!(d.net.receive(&d.mem, &frame(i as u32, 60)), RxOutcome::Queued);
        }
        assert_eq!(d.net.receive(&d.mem, &frame(0, 60)), RxOutcome::Dropped);
        assert_eq!(d.net.counters().rx_backlog_full, 1);
        assert_eq!(d.net.backlog_len(), RX_BACKLOG_MAX);
    }

    #[test]
    fn frames_before_driver_ok_wait_for_it() {
        let mut d = Driver::new(16);
        let early = frame(1, 80);
        assert_eq!(d.net.receive(&d.mem, &early), RxOutcome::Queued);
        assert!(d.negotiate(FEATURES));
        d.setup_queue(RX_QUEUE);
        d.setup_queue(TX_QUEUE);
        // Buffers and a transmit before DRIVER_OK: the device must not touch them yet.
        let (_, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        let tx = frame(2, 64);
        d.queue_tx(&tx);
        d.notify(TX_QUEUE);
        assert!(d.used(RX_QUEUE).is_empty());
        assert!(d.net.take_tx().is_empty());
        assert!(!d.net.take_irq());
        d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
        assert_eq!(d.read(addr, NET_HDR_LEN + 80), expected_rx(&early));
        assert_eq!(d.net.take_tx(), vec![tx]);
        assert_eq!(d.used(RX_QUEUE).len(), 1);
        assert_eq!(d.used(TX_QUEUE).len(), 1);
        assert!(d.net.take_irq());
    }

    #[test]
    fn reset_forgets_the_driver() {
        let mut d = Driver::ready(16);
        d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
        d.w32(VIRTIO_MMIO_STATUS, 0);
        assert_eq!(d.status(), 0);
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert!(!d.net.take_irq());
        for q in 0..2 {
            d.w32(VIRTIO_MMIO_QUEUE_SEL, q);
            assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_READY), 0);
        }
        assert!(!d.net.driver_ready());
        // A frame now waits; notifications to dead queues do nothing.
        assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Queued);
        d.queue_tx(&frame(3, 60));
        d.notify(TX_QUEUE);
        assert!(d.net.take_tx().is_empty());
        // Re-initialise from scratch (fresh rings): everything works again.
        d.q = [Vq::new(RING_BASE[0], 32), Vq::new(RING_BASE[1], 32)];
        d.init();
        let (_, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.read(addr, NET_HDR_LEN + 60), expected_rx(&frame(2, 60)));
        let f = frame(4, 60);
        d.queue_tx(&f);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![f]);
    }

    #[test]
    fn bad_queue_setup_needs_reset() {
        type Setup = fn(&mut Driver);
        let cases: [(&str, Setup); 7] = [
            ("size not a power of two", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 3)),
            ("size above the maximum", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 512)),
            ("size zero", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 0)),
            ("misaligned descriptors", |d| {
                d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1008)
            }),
            ("misaligned used ring", |d| {
                d.w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x1002)
            }),
            ("rings outside RAM", |d| {
                d.w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
                d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
            }),
            ("available ring at 0", |d| {
                d.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0);
                d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
            }),
        ];
        for (name, setup) in cases {
            let mut d = Driver::new(16);
            assert!(d.negotiate(FEATURES));
            d.setup_queue(RX_QUEUE);
            d.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
            d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000);
            d.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x5000);
            d.w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x6000);
            setup(&mut d);
            assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0, "{name}");
            assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_READY), 0, "{name}");
            // Before DRIVER_OK, no configuration interrupt.
            assert!(!d.net.take_irq(), "{name}");
            d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
            assert!(!d.net.driver_ready(), "{name}");
            // A reset recovers.
            d.init();
        }
    }

    #[test]
    fn used_ring_header_is_initialised_by_the_device() {
        let mut d = Driver::new(16);
        assert!(d.negotiate(FEATURES));
        d.setup_queue(RX_QUEUE);
        // A driver that leaves garbage in the used ring before enabling the queue.
        let used = d.q[1].used;
        d.mem.write_obj(0xffff_ffffu32, GuestAddress(used)).unwrap();
        d.setup_queue_keeping_memory(TX_QUEUE);
        assert_eq!(d.mem.read_obj::<u32>(GuestAddress(used)).unwrap(), 0);
        d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
        let f = frame(1, 60);
        d.queue_tx(&f);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![f]);
        assert_eq!(d.used(TX_QUEUE).len(), 1);
    }

    #[test]
    fn queue_registers_are_frozen_while_ready() {
        let mut d = Driver::ready(16);
        let before = d.net.state();
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
        d.w32(VIRTIO_MMIO_QUEUE_NUM, 8);
        d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
        d.w32(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 5);
        d.w32(VIRTIO_MMIO_QUEUE_NUM, 8);
        d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
        d.w32(VIRTIO_MMIO_QUEUE_NOTIFY, 5);
        let after = d.net.state();
        assert_eq!(after.transport.queues, before.transport.queues);
        assert_eq!(after.transport.status, before.transport.status);
        // Disabling a queue is allowed; the device then leaves it alone.
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
        d.w32(VIRTIO_MMIO_QUEUE_READY, 0);
        d.queue_tx(&frame(1, 60));
        d.notify(TX_QUEUE);
        assert!(d.net.take_tx().is_empty());
    }

    #[test]
    fn corrupt_rings_need_reset_after_driver_ok() {
        // Available index jumping more than the queue size ahead.
        let mut d = Driver::ready(16);
        d.mem
            .write_obj(100u16.to_le(), GuestAddress(d.q[1].avail + 2))
            .unwrap();
        d.notify(TX_QUEUE);
        assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
        // The driver is told through a configuration-change interrupt.
        assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 2);
        assert!(d.net.take_irq());
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Queued);
        d.init();

        // A head index beyond the queue.
        let mut d = Driver::ready(16);
        d.post_rx(1526);
        let entry = d.q[0].avail + 4;
        d.mem.write_obj(40u16.to_le(), GuestAddress(entry)).unwrap();
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Queued);
        assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    #[test]
    fn descriptor_loops_terminate() {
        let mut d = Driver::ready(16);
        // TX: a descriptor whose next is itself, with a small length.
        let at = d.q[1].desc;
        let head = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 8,
                writable: false,
            }],
        );
        let desc = at + 16 * u64::from(head);
        d.mem
            .write_obj((VRING_DESC_F_NEXT as u16).to_le(), GuestAddress(desc + 12))
            .unwrap();
        d.mem.write_obj(head.to_le(), GuestAddress(desc + 14)).unwrap();
        d.notify(TX_QUEUE);
        // The chain ends after `size` (16) descriptors: 128 bytes, 12 of
        // them header, each descriptor reading the same 8 bytes.
        let out = d.net.take_tx();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 16 * 8 - NET_HDR_LEN);
        assert_eq!(d.used(TX_QUEUE).len(), 1);
        // RX: a loop of tiny writable descriptors cannot hold a frame.
        let at = d.q[0].desc;
        let head = d.add_chain(
            RX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 4,
                writable: true,
            }],
        );
        let desc = at + 16 * u64::from(head);
        d.mem
            .write_obj(
                ((VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16).to_le(),
                GuestAddress(desc + 12),
            )
            .unwrap();
        d.mem.write_obj(head.to_le(), GuestAddress(desc + 14)).unwrap();
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Dropped);
        assert_eq!(d.used(RX_QUEUE), vec![(u32::from(head), 0)]);
        // Indirect descriptors were not negotiated; one pointing at garbage is survived.
        let head = d.add_chain(
            TX_QUEUE,
            &[Buf {
                addr: 0x30_0000,
                len: 0xfff0,
                writable: false,
            }],
        );
        let desc = d.q[1].desc + 16 * u64::from(head);
        d.mem
            .write_obj((VRING_DESC_F_INDIRECT as u16).to_le(), GuestAddress(desc + 12))
            .unwrap();
        d.notify(TX_QUEUE);
        let _ = d.net.take_tx();
        assert_eq!(d.used(TX_QUEUE).len(), 1);
    }

    #[test]
    fn indices_wrap_around() {
        // More than 65536 frames each way through 4-entry queues.
        let mut d = Driver::ready(4);
        for i in 0..70_000u32 {
            let f = frame(i, 60 + (i % 64) as usize);
            let (head, addr) = d.post_rx(1526);
            d.notify(RX_QUEUE);
            assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
            assert_eq!(
                d.used(RX_QUEUE),
                vec![(u32::from(head), (NET_HDR_LEN + f.len()) as u32)]
            );
            assert_eq!(d.read(addr, NET_HDR_LEN + f.len()), expected_rx(&f));
            let h = d.queue_tx(&f);
            d.notify(TX_QUEUE);
            assert_eq!(d.net.take_tx(), vec![f]);
            assert_eq!(d.used(TX_QUEUE), vec![(u32::from(h), 0)]);
            d.ack();
            let _ = d.net.take_irq();
        }
        assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    }

    /// Copies guest RAM into a fresh, independent `GuestMemoryMmap`.
    fn clone_ram(mem: &GuestRam) -> GuestRam {
        let mut bytes = vec![0u8; MEM_SIZE];
        mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
        let copy = ram();
        copy.write_slice(&bytes, GuestAddress(0)).unwrap();
        copy
    }

    fn ram_bytes(mem: &GuestRam) -> Vec<u8> {
        let mut bytes = vec![0u8; MEM_SIZE];
        mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
        bytes
    }

    /// A deterministic xorshift64 generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A mixed workload of well-formed traffic; returns what was observed.
    fn workload(d: &mut Driver, rng: &mut Rng, steps: usize) -> Vec<String> {
        let mut log = Vec::new();
        for i in 0..steps {
            match rng.below(6) {
                0 => {
                    d.post_rx(1526);
                    d.notify(RX_QUEUE);
                }
                1 | 2 => {
                    let f = frame(i as u32, 14 + rng.below(1501) as usize);
                    log.push(format!("rx {:?}", d.net.receive(&d.mem, &f)));
                }
                3 => {
                    let f = frame(i as u32 + 7, 14 + rng.below(1501) as usize);
                    d.queue_tx(&f);
                    d.notify(TX_QUEUE);
                }
                4 => log.push(format!("used {:?} {:?}", d.used(RX_QUEUE), d.used(TX_QUEUE))),
                _ => log.push(format!("ack {}", d.ack())),
            }
            log.push(format!("irq {} tx {:?}", d.net.take_irq(), d.net.take_tx()));
        }
        log
    }

    #[test]
    fn state_round_trip_behaves_identically() {
        let mut a = Driver::ready(8);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        workload(&mut a, &mut rng, 300);
        // Leave something in every part of the state.
        for i in 0..3 {
            a.net.receive(&a.mem, &frame(1000 + i, 100));
        }
        a.queue_tx(&frame(2000, 80));
        a.notify(TX_QUEUE);
        a.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
        let state = a.net.state();
        assert!(!state.backlog.is_empty());
        assert!(!state.tx_pending.is_empty());

        // Through JSON too, as a checkpoint on disk would go.
        let json = serde_json::to_string(&state).unwrap();
        let decoded: VirtioNetState = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded, state);

        let mut b = Driver {
            mem: clone_ram(&a.mem),
            net: VirtioNet::from_state(&decoded),
            q: a.q.clone(),
        };
        assert_eq!(b.net.state(), state);
        let mut rng_b = Rng(rng.0);
        let log_a = workload(&mut a, &mut rng, 2000);
        let log_b = workload(&mut b, &mut rng_b, 2000);
        assert_eq!(log_a, log_b);
        assert_eq!(a.net.state(), b.net.state());
        assert!(ram_bytes(&a.mem) == ram_bytes(&b.mem));
        assert!(a.net.counters().rx_delivered > 100);
    }

    #[test]
    fn restored_backlog_is_sanitised() {
        let mut d = Driver::ready(16);
        for _ in 0..8 {
            d.post_rx(1526);
        }
        let mut s = d.net.state();
        s.backlog = vec![
            vec![],
            frame(1, 60),
            vec![0; 5000],
            frame(2, MAX_FRAME_LEN),
            vec![1; 3],
        ];
        d.net = VirtioNet::from_state(&s);
        assert_eq!(d.net.backlog_len(), 2);
        d.notify(RX_QUEUE);
        let lens: Vec<u32> = d.used(RX_QUEUE).iter().map(|&(_, len)| len).collect();
        assert_eq!(lens, [72, 1526]);
    }

    /// Registers a fuzzer pokes, plus some random offsets.
    const REGS: [u32; 24] = [
        VIRTIO_MMIO_DEVICE_FEATURES_SEL,
        VIRTIO_MMIO_DRIVER_FEATURES,
        VIRTIO_MMIO_DRIVER_FEATURES_SEL,
        VIRTIO_MMIO_QUEUE_SEL,
        VIRTIO_MMIO_QUEUE_NUM,
        VIRTIO_MMIO_QUEUE_READY,
        VIRTIO_MMIO_QUEUE_NOTIFY,
        VIRTIO_MMIO_QUEUE_NOTIFY,
        VIRTIO_MMIO_QUEUE_NOTIFY,
        VIRTIO_MMIO_INTERRUPT_ACK,
        VIRTIO_MMIO_STATUS,
        VIRTIO_MMIO_STATUS,
        VIRTIO_MMIO_QUEUE_DESC_LOW,
        VIRTIO_MMIO_QUEUE_DESC_HIGH,
        VIRTIO_MMIO_QUEUE_AVAIL_LOW,
        VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
        VIRTIO_MMIO_QUEUE_USED_LOW,
        VIRTIO_MMIO_QUEUE_USED_HIGH,
        VIRTIO_MMIO_CONFIG,
        VIRTIO_MMIO_CONFIG + 4,
        VIRTIO_MMIO_GUEST_PAGE_SIZE,
        VIRTIO_MMIO_QUEUE_PFN,
        VIRTIO_MMIO_SHM_SEL,
        VIRTIO_MMIO_CONFIG_GENERATION,
    ];

    /// Random register traffic, ring and descriptor corruption, traffic and
    /// snapshots, from a fixed seed. Returns a digest of everything seen.
    fn fuzz(seed: u64, steps: usize) -> (VirtioNetState, Vec<u8>, Vec<String>) {
        let mut rng = Rng(seed);
        let mut d = Driver::ready(if seed & 1 == 0 { 16 } else { 256 });
        let mut log = Vec::new();
        for i in 0..steps {
            match rng.below(16) {
                0 | 1 => {
                    let reg = REGS[rng.below(REGS.len() as u64) as usize];
                    // Small values hit the interesting cases more often.
                    let value = match rng.below(4) {
                        0 => rng.next() as u32,
                        1 => 1 << rng.below(32),
                        _ => rng.below(8) as u32,
                    };
                    d.w32(reg, value);
                }
                2 => {
                    let off = rng.below(0x1010);
                    let len = [1usize, 2, 3, 4, 8][rng.below(5) as usize];
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    d.net.mmio_write(&d.mem, off, &bytes);
                    let mut back = vec![0u8; len];
                    d.net.mmio_read(off, &mut back);
                    log.push(format!("read {off:#x} {back:?}"));
                }
                3 => {
                    // Scribble over a ring: descriptor table, available or used ring.
                    let q = rng.below(2) as usize;
                    let vq = &d.q[q];
                    let span = vq.used + 6 + 8 * u64::from(vq.size) - vq.desc;
                    let at = vq.desc + rng.below(span);
                    let v = rng.next();
                    let _ = match rng.below(3) {
                        0 => d.mem.write_obj(v as u8, GuestAddress(at)),
                        1 => d.mem.write_obj(v as u16, GuestAddress(at)),
                        _ => d.mem.write_obj(v, GuestAddress(at)),
                    };
                }
                4 => {
                    // A chain of random descriptors.
                    let q = rng.below(2) as u16;
                    let n = 1 + rng.below(4) as usize;
                    let bufs: Vec<Buf> = (0..n)
                        .map(|_| Buf {
                            addr: match rng.below(3) {
                                0 => rng.next(),
                                1 => rng.below(MEM_SIZE as u64 + 0x1000),
                                _ => u64::MAX - rng.below(4096),
                            },
                            len: match rng.below(3) {
                                0 => rng.next() as u32,
                                _ => rng.below(2048) as u32,
                            },
                            writable: rng.below(2) == 0,
                        })
                        .collect();
                    let head = d.add_chain(q, &bufs);
                    // Sometimes corrupt flags/next of the head.
                    if rng.below(2) == 0 {
                        let at = d.q[usize::from(q)].desc + 16 * u64::from(head) + 12;
                        let _ = d.mem.write_obj(rng.next() as u32, GuestAddress(at));
                    }
                    d.notify(q);
                }
                5 | 6 => {
                    d.post_rx(rng.below(2000) as u32);
                    d.notify(RX_QUEUE);
                }
                7 | 8 => {
                    let f = frame(i as u32, rng.below(1600) as usize);
                    log.push(format!("rx {:?}", d.net.receive(&d.mem, &f)));
                }
                9 | 10 => {
                    let f = frame(i as u32, rng.below(1600) as usize);
                    d.queue_tx(&f);
                    d.notify(TX_QUEUE);
                }
                11 => {
                    // A driver that restarts, sometimes with odd queue sizes.
                    let size = [4u16, 16, 256][rng.below(3) as usize];
                    d.q = [Vq::new(RING_BASE[0], size), Vq::new(RING_BASE[1], size)];
                    if d.negotiate(FEATURES) {
                        d.setup_queue(RX_QUEUE);
                        d.setup_queue(TX_QUEUE);
                        d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
                    }
                }
                12 => {
                    let state = d.net.state();
                    d.net = VirtioNet::from_state(&state);
                    assert_eq!(d.net.state(), state);
                }
                13 => log.push(format!("ack {}", d.ack())),
                _ => log.push(format!("used {:?} {:?}", d.used(RX_QUEUE), d.used(TX_QUEUE))),
            }
            let irq = d.net.take_irq();
            let tx = d.net.take_tx();
            log.push(format!("irq {irq} tx {}", tx.len()));
            // Markers so the test can check the fuzz reached both kinds of state.
            if d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
                log.push("needs reset".into());
            } else if d.net.driver_ready() {
                log.push("live".into());
            }
        }
        (d.net.state(), ram_bytes(&d.mem), log)
    }

    #[test]
    fn fuzz_never_panics_and_is_deterministic() {
        for seed in [1u64, 2, 0xdead_beef, 0x1234_5678_9abc_def1] {
            let first = fuzz(seed, 20_000);
            let second = fuzz(seed, 20_000);
            assert!(first == second, "seed {seed:#x} is not deterministic");
            // The fuzz must exercise both the working device and its error state.
            let count = |m: &str| first.2.iter().filter(|l| *l == m).count();
            assert!(count("needs reset") > 0, "seed {seed:#x}");
            assert!(count("live") > 10_000, "seed {seed:#x}");
            let c = &first.0.counters;
            assert!(c.tx_frames > 0 && c.tx_malformed > 0 && c.rx_delivered > 0 && c.rx_bad_buffer > 0);
        }
    }

    #[test]
    fn fuzz_from_random_state_never_panics() {
        // Snapshots a guest can never produce (e.g. a hand-edited checkpoint).
        let mut rng = Rng(42);
        let mem = ram();
        for _ in 0..2000 {
            let mut s = Driver::ready(16).net.state();
            for q in &mut s.transport.queues {
                q.max_size = rng.next() as u16;
                q.size = rng.next() as u16;
                q.desc_table = rng.next();
                q.avail_ring = rng.next() & !1;
                q.used_ring = rng.next();
                q.next_avail = rng.next() as u16;
                q.next_used = rng.next() as u16;
            }
            s.transport.queue_sel = rng.next() as u32;
            s.backlog = (0..rng.below(300))
                .map(|i| frame(i as u32, rng.below(3000) as usize))
                .collect();
            s.tx_pending = vec![vec![0; rng.below(3000) as usize]];
            let mut net = VirtioNet::from_state(&s);
            assert!(net.backlog_len() <= RX_BACKLOG_MAX);
            net.mmio_write(&mem, 0x50, &0u32.to_le_bytes());
            net.mmio_write(&mem, 0x50, &1u32.to_le_bytes());
            let _ = net.receive(&mem, &frame(1, 60));
            let mut b = [0u8; 4];
            net.mmio_read(0x34, &mut b);
        }
    }
}
