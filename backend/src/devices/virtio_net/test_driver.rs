//! A tiny fake guest driver for the device's tests: it follows the spec's
//! initialisation sequence (§3.1.1, §4.2.3) through the MMIO registers
//! only, and lays out split virtqueues in a real `GuestMemoryMmap`.

use super::*;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
};
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::rng::SeededRng;

/// Size of the test guest's RAM.
pub(super) const MEM_SIZE: usize = 4 << 20;
pub(super) const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub(super) const FEATURES: u64 = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_NET_F_MAC);
/// Where each queue's rings go.
pub(super) const RING_BASE: [u64; 2] = [0x1_0000, 0x2_0000];
/// Each descriptor slot of each queue owns a 2 KiB buffer here.
pub(super) const BUF_BASE: [u64; 2] = [0x10_0000, 0x20_0000];
pub(super) const BUF_SLOT: u64 = 0x800;

pub(super) fn ram() -> GuestRam {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// The driver's view of one split virtqueue.
#[derive(Clone)]
pub(super) struct Vq {
    pub(super) size: u16,
    pub(super) desc: u64,
    pub(super) avail: u64,
    pub(super) used: u64,
    /// Next descriptor slot to hand out (round robin).
    pub(super) next_desc: u16,
    /// Our copy of avail->idx.
    pub(super) avail_idx: u16,
    /// Used entries consumed so far.
    pub(super) last_used: u16,
}

impl Vq {
    pub(super) fn new(base: u64, size: u16) -> Vq {
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
pub(super) struct Buf {
    pub(super) addr: u64,
    pub(super) len: u32,
    pub(super) writable: bool,
}

pub(super) struct Driver {
    pub(super) mem: GuestRam,
    pub(super) net: VirtioNet,
    pub(super) q: [Vq; 2],
}

/// Frame number `seq` of `len` bytes (cut short below the 14-byte header):
/// to the card's MAC, EtherType 0x88b5, and a payload drawn from a generator
/// seeded with `seq`, so different frames differ.
pub(super) fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x88, 0xb5]);
    let mut payload = SeededRng::new(u64::from(seq));
    while f.len() < len {
        f.push(payload.next_u64() as u8);
    }
    f.truncate(len);
    f
}

pub(super) fn header_then(frame: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; NET_HDR_LEN];
    p.extend_from_slice(frame);
    p
}

impl Driver {
    pub(super) fn new(qsize: u16) -> Driver {
        Driver {
            mem: ram(),
            net: VirtioNet::new(MAC),
            q: [Vq::new(RING_BASE[0], qsize), Vq::new(RING_BASE[1], qsize)],
        }
    }

    pub(super) fn r32(&mut self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.net.mmio_read(u64::from(off), &mut b);
        u32::from_le_bytes(b)
    }

    pub(super) fn w32(&mut self, off: u32, v: u32) {
        self.net.mmio_write(&self.mem, u64::from(off), &v.to_le_bytes());
    }

    pub(super) fn status(&mut self) -> u32 {
        self.r32(VIRTIO_MMIO_STATUS)
    }

    pub(super) fn add_status(&mut self, bits: u32) {
        let s = self.status();
        self.w32(VIRTIO_MMIO_STATUS, s | bits);
    }

    pub(super) fn device_features(&mut self) -> u64 {
        self.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let lo = self.r32(VIRTIO_MMIO_DEVICE_FEATURES);
        self.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let hi = self.r32(VIRTIO_MMIO_DEVICE_FEATURES);
        (u64::from(hi) << 32) | u64::from(lo)
    }

    pub(super) fn write_features(&mut self, f: u64) {
        self.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        self.w32(VIRTIO_MMIO_DRIVER_FEATURES, f as u32);
        self.w32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        self.w32(VIRTIO_MMIO_DRIVER_FEATURES, (f >> 32) as u32);
    }

    /// Steps 1-6 of §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK.
    /// Returns whether the device kept FEATURES_OK.
    pub(super) fn negotiate(&mut self, features: u64) -> bool {
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
    pub(super) fn setup_queue(&mut self, index: u16) {
        let vq = &self.q[usize::from(index)];
        // Start from zeroed rings, as a driver allocating them would.
        let ring_bytes = vec![0u8; (vq.used - vq.desc + 6 + 8 * u64::from(vq.size)) as usize];
        self.mem.write_slice(&ring_bytes, GuestAddress(vq.desc)).unwrap();
        self.setup_queue_keeping_memory(index);
    }

    /// Step 7 for one queue, leaving whatever is in the ring memory.
    pub(super) fn setup_queue_keeping_memory(&mut self, index: u16) {
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
    pub(super) fn init(&mut self) {
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

    pub(super) fn ready(qsize: u16) -> Driver {
        let mut d = Driver::new(qsize);
        d.init();
        d
    }

    /// Writes a chain into the descriptor table and makes it available.
    pub(super) fn add_chain(&mut self, q: u16, bufs: &[Buf]) -> u16 {
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

    pub(super) fn slot_buf(&self, q: u16, slot: u16) -> u64 {
        BUF_BASE[usize::from(q)] + BUF_SLOT * u64::from(slot)
    }

    pub(super) fn notify(&mut self, q: u16) {
        self.w32(VIRTIO_MMIO_QUEUE_NOTIFY, u32::from(q));
    }

    /// Posts one receive buffer of `len` bytes (no notification).
    pub(super) fn post_rx(&mut self, len: u32) -> (u16, u64) {
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
    pub(super) fn queue_tx(&mut self, frame: &[u8]) -> u16 {
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
    pub(super) fn used(&mut self, q: u16) -> Vec<(u32, u32)> {
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

    pub(super) fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    pub(super) fn ack(&mut self) -> u32 {
        let s = self.r32(VIRTIO_MMIO_INTERRUPT_STATUS);
        self.w32(VIRTIO_MMIO_INTERRUPT_ACK, s);
        s
    }
}

pub(super) fn expected_rx(frame: &[u8]) -> Vec<u8> {
    let mut hdr = [0u8; NET_HDR_LEN];
    hdr[10] = 1; // num_buffers = 1, little-endian
    let mut v = hdr.to_vec();
    v.extend_from_slice(frame);
    v
}
