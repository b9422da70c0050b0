//! The virtio-over-MMIO transport, modern interface only (virtio 1.x §4.2,
//! register layout version 2), for split virtqueues.
//!
//! [`MmioTransport`] owns everything the spec puts in the transport: the
//! device status, feature negotiation, the interrupt status register and
//! the virtqueues (`virtio_queue::Queue`). The device-specific part (device
//! type, offered features, configuration space) comes from a small
//! [`VirtioDevice`] implementation passed into each access, so the transport
//! holds no reference to its device and is snapshot-able on its own.
//!
//! A register write that asks the device to do something returns an
//! [`MmioEvent`] for the device to act on (a queue notification, the driver
//! going live, a reset); the transport never calls back into the device.
//!
//! Every value the guest controls is checked. A driver that breaks the
//! protocol (bad queue size, misaligned or out-of-RAM rings, an impossible
//! available index) puts the device into `DEVICE_NEEDS_RESET` (§2.1.2), and
//! the device stops using its queues until the driver resets it. Nothing the
//! guest writes can panic the VMM.

mod persist;

pub use persist::{MmioTransportState, VirtqueueState};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH, VIRTIO_MMIO_QUEUE_USED_LOW,
    VIRTIO_MMIO_SHM_BASE_HIGH, VIRTIO_MMIO_SHM_BASE_LOW, VIRTIO_MMIO_SHM_LEN_HIGH, VIRTIO_MMIO_SHM_LEN_LOW,
    VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION,
};
use virtio_bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestRam;

/// "virt" in little-endian: the value of the MagicValue register.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// The register layout version: 2 is the modern (non-legacy) interface.
pub const MMIO_VERSION: u32 = 2;
/// The VendorID register: "vmrr" in little-endian, vmrr's own.
pub const MMIO_VENDOR_ID: u32 = 0x7272_6d76;
/// Largest queue size offered in QueueNumMax.
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Offset of the device-specific configuration space in the register page.
pub const CONFIG_SPACE_OFFSET: u64 = VIRTIO_MMIO_CONFIG as u64;

/// The device-specific part of a virtio device, as the transport sees it.
pub trait VirtioDevice {
    /// The virtio device type (§5): 1 for a network card.
    fn device_type(&self) -> u32;

    /// The feature bits the device offers (transport bits included).
    fn device_features(&self) -> u64;

    /// Whether the device can work with the features the driver accepted;
    /// called when the driver sets FEATURES_OK, which is refused on `false`.
    ///
    /// The transport has already checked that `driver_features` is a subset
    /// of [`VirtioDevice::device_features`]. The default requires
    /// `VIRTIO_F_VERSION_1`, since this transport has no legacy interface.
    fn accept_features(&self, driver_features: u64) -> bool {
        driver_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    /// Reads `data.len()` bytes of configuration space at `offset`
    /// (relative to the start of configuration space; any width).
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// A driver write to configuration space. The default ignores it.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
}

/// What a register write asks of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioEvent {
    /// Nothing for the device to do.
    None,
    /// The driver notified queue `n` (QueueNotify), and the device is live.
    Notify(u16),
    /// The driver set DRIVER_OK: buffers made available before it may now be used.
    DriverOk,
    /// The driver wrote 0 to Status: the transport has reset itself; the
    /// device resets its own driver-visible state.
    Reset,
}

/// Why a queue operation failed; every case puts the device into
/// `DEVICE_NEEDS_RESET` (the caller does that with [`MmioTransport::fail`]).
#[derive(Debug)]
pub enum QueueError {
    /// The queue index does not exist.
    NoSuchQueue,
    /// virtio-queue refused the ring contents (available index out of
    /// range, head index out of range, unreachable ring memory).
    Ring(virtio_queue::Error),
}

/// The registers and queues of the transport.
#[derive(Debug)]
pub struct MmioTransport {
    /// Device status (§2.1): the driver's progress bits plus NEEDS_RESET.
    status: u32,
    /// Which 32-bit half of the device features DeviceFeatures shows.
    device_features_sel: u32,
    /// Which 32-bit half of the driver features DriverFeatures sets.
    driver_features_sel: u32,
    /// The features the driver accepted so far.
    driver_features: u64,
    /// Which queue the Queue* registers address.
    queue_sel: u32,
    /// InterruptStatus: bit 0 used buffers, bit 1 configuration change.
    interrupt_status: u32,
    /// A new interrupt was signalled and the engine has not taken it yet.
    irq_pending: bool,
    /// The virtqueues, indexed by queue number.
    queues: Vec<Queue>,
}

/// A queue with the largest size; `Queue::new` only fails for sizes that are
/// not a power of two, which `QUEUE_SIZE_MAX` is.
fn fresh_queue() -> Queue {
    Queue::new(QUEUE_SIZE_MAX).unwrap_or_default()
}

impl MmioTransport {
    /// A transport with `num_queues` virtqueues, in the reset state.
    pub fn new(num_queues: usize) -> Self {
        MmioTransport {
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            irq_pending: false,
            queues: (0..num_queues).map(|_| fresh_queue()).collect(),
        }
    }

    /// Device reset (§2.4): everything the driver set up is forgotten.
    pub fn reset(&mut self) {
        let n = self.queues.len();
        *self = MmioTransport::new(n);
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The features the driver accepted (meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// True when the driver has set DRIVER_OK and neither side has given up:
    /// only then may the device use its queues (§3.1.1).
    pub fn is_live(&self) -> bool {
        self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0
            && self.status & (VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET) == 0
    }

    /// True when the device is live and queue `index` is enabled.
    pub fn queue_usable(&self, index: usize) -> bool {
        self.is_live() && self.queues.get(index).is_some_and(QueueT::ready)
    }

    /// Enters DEVICE_NEEDS_RESET after a driver error. If the driver is
    /// already running it is told through a configuration-change
    /// interrupt, as §2.1.2 requires.
    pub fn fail(&mut self) {
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            return;
        }
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            self.interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
            self.irq_pending = true;
        }
    }

    /// Takes the next descriptor chain the driver made available on queue
    /// `index`, or `None` when there is none.
    ///
    /// virtio-queue's own `pop_descriptor_chain` folds a corrupt available
    /// index into `None`; going through `iter` keeps that error visible so
    /// the caller can fail the device instead of silently stalling.
    pub fn pop_chain<'m>(
        &mut self,
        mem: &'m GuestRam,
        index: usize,
    ) -> Result<Option<DescriptorChain<&'m GuestRam>>, QueueError> {
        let queue = self.queues.get_mut(index).ok_or(QueueError::NoSuchQueue)?;
        let mut iter = queue.iter(mem).map_err(QueueError::Ring)?;
        Ok(iter.next())
    }

    /// Returns the chain headed by `head` to the driver with `len` bytes written.
    pub fn add_used(&mut self, mem: &GuestRam, index: usize, head: u16, len: u32) -> Result<(), QueueError> {
        let queue = self.queues.get_mut(index).ok_or(QueueError::NoSuchQueue)?;
        queue.add_used(mem, head, len).map_err(QueueError::Ring)
    }

    /// Where the next [`MmioTransport::add_used`] on queue `index` writes:
    /// the guest-physical address of the used-ring element (8 bytes) and of
    /// the used index (2 bytes). For analyses that account for every byte
    /// the device writes; `None` for a queue that does not exist or has size 0.
    pub fn next_used_slot(&self, index: usize) -> Option<(u64, u64)> {
        let queue = self.queues.get(index)?;
        let size = u64::from(queue.size());
        if size == 0 {
            return None;
        }
        let used = queue.used_ring();
        let slot = u64::from(queue.next_used()) % size;
        Some((used + 4 + 8 * slot, used + 2))
    }

    /// The size the driver chose for queue `index` (0 if there is no such queue).
    pub fn queue_size(&self, index: usize) -> u16 {
        self.queues.get(index).map_or(0, QueueT::size)
    }

    /// Signals that used buffers were added to queue `index`: sets the
    /// used-buffer bit of InterruptStatus and requests an interrupt edge,
    /// unless the driver suppressed interrupts for that queue with
    /// `VIRTQ_AVAIL_F_NO_INTERRUPT` (§2.7.7; event index is never offered).
    ///
    /// Every call that is not suppressed produces a new edge, even when the
    /// status bit is still set: the PIC line is edge-triggered, and a driver
    /// that has read the used ring but not yet acknowledged must still be
    /// woken for buffers added after its read.
    pub fn signal_used(&mut self, mem: &GuestRam, index: usize) {
        let Some(queue) = self.queues.get(index) else {
            return;
        };
        // An unreadable flags word cannot suppress anything: interrupt.
        let flags = mem
            .read_obj::<u16>(GuestAddress(queue.avail_ring()))
            .map(u16::from_le)
            .unwrap_or(0);
        if u32::from(flags) & VRING_AVAIL_F_NO_INTERRUPT != 0 {
            return;
        }
        self.interrupt_status |= VIRTIO_MMIO_INT_VRING;
        self.irq_pending = true;
    }

    /// True once for each interrupt signalled since the last call.
    pub fn take_irq(&mut self) -> bool {
        std::mem::take(&mut self.irq_pending)
    }

    /// A guest read of `data.len()` bytes at `offset` in the register page.
    ///
    /// Registers are 32 bits wide and must be read with aligned 32-bit
    /// accesses (§4.2.2.2); anything else reads as zero. Configuration
    /// space (from 0x100) may be read at any width.
    pub fn read(&self, dev: &impl VirtioDevice, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            data.fill(0);
            dev.read_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        if data.len() != 4 || offset & 3 != 0 {
            data.fill(0);
            return;
        }
        let queue = self.selected_queue();
        // `offset` is below 0x100 here, so the cast is lossless.
        let value = match offset as u32 {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => dev.device_type(),
            VIRTIO_MMIO_VENDOR_ID => MMIO_VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => {
                Half::selected(self.device_features_sel).map_or(0, |half| half.of(dev.device_features()))
            }
            // Zero tells the driver that the selected queue does not exist.
            VIRTIO_MMIO_QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status,
            VIRTIO_MMIO_STATUS => self.status,
            // The configuration space never changes, so its generation never moves.
            VIRTIO_MMIO_CONFIG_GENERATION => 0,
            // No shared memory regions: a length of all ones means "absent" (§4.2.2).
            VIRTIO_MMIO_SHM_LEN_LOW
            | VIRTIO_MMIO_SHM_LEN_HIGH
            | VIRTIO_MMIO_SHM_BASE_LOW
            | VIRTIO_MMIO_SHM_BASE_HIGH => u32::MAX,
            // Write-only and reserved registers.
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// A guest write of `data` at `offset` in the register page.
    ///
    /// `mem` is needed to check the rings when a queue is enabled. Writes
    /// that are not aligned 32-bit accesses, writes to read-only registers,
    /// and writes the spec forbids in the current state are ignored.
    pub fn write(
        &mut self,
        dev: &mut impl VirtioDevice,
        mem: &GuestRam,
        offset: u64,
        data: &[u8],
    ) -> MmioEvent {
        if offset >= CONFIG_SPACE_OFFSET {
            dev.write_config(offset - CONFIG_SPACE_OFFSET, data);
            return MmioEvent::None;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return MmioEvent::None;
        };
        if offset & 3 != 0 {
            return MmioEvent::None;
        }
        let value = u32::from_le_bytes(bytes);
        match offset as u32 {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES => self.write_driver_features(value),
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            VIRTIO_MMIO_QUEUE_NUM => self.configure_queue(|q| q.try_set_size(value as u16), value >> 16 == 0),
            VIRTIO_MMIO_QUEUE_DESC_LOW => self.set_queue_addr(Ring::Desc, Half::Low, value),
            VIRTIO_MMIO_QUEUE_DESC_HIGH => self.set_queue_addr(Ring::Desc, Half::High, value),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => self.set_queue_addr(Ring::Avail, Half::Low, value),
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => self.set_queue_addr(Ring::Avail, Half::High, value),
            VIRTIO_MMIO_QUEUE_USED_LOW => self.set_queue_addr(Ring::Used, Half::Low, value),
            VIRTIO_MMIO_QUEUE_USED_HIGH => self.set_queue_addr(Ring::Used, Half::High, value),
            VIRTIO_MMIO_QUEUE_READY => self.write_queue_ready(mem, value),
            // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
            // Before DRIVER_OK buffers must not be used (§3.1.1): ignore it;
            // the DriverOk event makes up for it.
            VIRTIO_MMIO_QUEUE_NOTIFY if self.queue_usable(value as usize) => {
                return MmioEvent::Notify(value as u16);
            }
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt_status &= !value,
            VIRTIO_MMIO_STATUS => return self.write_status(dev, value),
            _ => {}
        }
        MmioEvent::None
    }

    /// DriverFeatures: only before FEATURES_OK, and only the two defined halves.
    fn write_driver_features(&mut self, value: u32) {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            return;
        }
        let Some(half) = Half::selected(self.driver_features_sel) else {
            return;
        };
        self.driver_features = half.replace(self.driver_features, value);
    }

    /// The Status register (§2.1, §3.1.1).
    fn write_status(&mut self, dev: &impl VirtioDevice, value: u32) -> MmioEvent {
        if value == 0 {
            self.reset();
            return MmioEvent::Reset;
        }
        let old = self.status;
        // NEEDS_RESET belongs to the device: the driver can neither set nor clear it.
        let mut new = (value & !VIRTIO_CONFIG_S_NEEDS_RESET) | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
        // Only a reset may clear status bits; a write that would is a driver bug.
        if old & !new != 0 {
            return MmioEvent::None;
        }
        let rising = new & !old;
        if rising & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            let offered = dev.device_features();
            let ok = self.driver_features & !offered == 0 && dev.accept_features(self.driver_features);
            if !ok {
                // The driver reads Status back and sees FEATURES_OK clear (§3.1.1 step 6).
                new &= !VIRTIO_CONFIG_S_FEATURES_OK;
            }
        }
        if rising & VIRTIO_CONFIG_S_DRIVER_OK != 0 && new & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            // Going live without negotiated features skips a mandatory step.
            self.status = new & !VIRTIO_CONFIG_S_DRIVER_OK;
            self.fail();
            return MmioEvent::None;
        }
        self.status = new;
        if rising & VIRTIO_CONFIG_S_DRIVER_OK != 0 && self.is_live() {
            return MmioEvent::DriverOk;
        }
        MmioEvent::None
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    /// Applies a configuration change to the selected queue. Changes to an
    /// enabled queue or to a queue that does not exist are ignored; a value
    /// the queue refuses (or `valid == false`) is a driver error.
    fn configure_queue(
        &mut self,
        apply: impl FnOnce(&mut Queue) -> Result<(), virtio_queue::Error>,
        valid: bool,
    ) {
        let Some(queue) = self.queues.get_mut(self.queue_sel as usize) else {
            return;
        };
        if queue.ready() {
            return;
        }
        if !valid || apply(queue).is_err() {
            self.fail();
        }
    }

    /// Sets one half of a ring address of the selected queue; the queue
    /// checks the alignment the spec requires (16, 2 and 4 bytes).
    fn set_queue_addr(&mut self, ring: Ring, half: Half, value: u32) {
        self.configure_queue(
            |q| {
                let current = match ring {
                    Ring::Desc => q.desc_table(),
                    Ring::Avail => q.avail_ring(),
                    Ring::Used => q.used_ring(),
                };
                let addr = GuestAddress(half.replace(current, value));
                match ring {
                    Ring::Desc => q.try_set_desc_table_address(addr),
                    Ring::Avail => q.try_set_avail_ring_address(addr),
                    Ring::Used => q.try_set_used_ring_address(addr),
                }
            },
            true,
        );
    }

    /// QueueReady: enabling checks that all three rings lie in guest RAM.
    fn write_queue_ready(&mut self, mem: &GuestRam, value: u32) {
        let Some(queue) = self.queues.get_mut(self.queue_sel as usize) else {
            return;
        };
        if value & 1 == 0 {
            queue.set_ready(false);
            return;
        }
        if queue.ready() {
            return;
        }
        queue.set_ready(true);
        // virtio-queue treats an available ring at address 0 as "not set up"
        // and would never read it; refuse it now rather than stall later.
        let ok = queue.avail_ring() != 0 && queue.is_valid(mem);
        if ok {
            // The used ring belongs to the device. Publish its header so a
            // driver that did not zero the memory sees no NO_NOTIFY flag and
            // the index the device will continue from (0 after a reset).
            let header = u32::from(queue.next_used()) << 16;
            // is_valid() just checked the used ring is in RAM, so this cannot fail;
            // if it somehow did, the driver would only see its own stale bytes.
            let _ = mem.write_obj::<u32>(header.to_le(), GuestAddress(queue.used_ring()));
        } else {
            queue.set_ready(false);
            self.fail();
        }
    }
}

/// Which 32-bit half of a 64-bit value a register transfers. The 64-bit
/// values of the transport (device and driver features, ring addresses)
/// are all reached 32 bits at a time: features through a select register,
/// ring addresses through LOW/HIGH register pairs.
#[derive(Clone, Copy)]
enum Half {
    /// Bits 0..32.
    Low,
    /// Bits 32..64.
    High,
}

impl Half {
    /// The half a features-select register picks: word 0 or 1; higher
    /// words do not exist (they read as zero and ignore writes).
    fn selected(sel: u32) -> Option<Half> {
        match sel {
            0 => Some(Half::Low),
            1 => Some(Half::High),
            _ => None,
        }
    }

    fn shift(self) -> u32 {
        match self {
            Half::Low => 0,
            Half::High => 32,
        }
    }

    /// This half of `value`.
    fn of(self, value: u64) -> u32 {
        (value >> self.shift()) as u32
    }

    /// `current` with this half replaced by `value`.
    fn replace(self, current: u64, value: u32) -> u64 {
        (current & !(0xffff_ffff << self.shift())) | (u64::from(value) << self.shift())
    }
}

/// The three rings of a split virtqueue.
#[derive(Clone, Copy)]
enum Ring {
    Desc,
    Avail,
    Used,
}
