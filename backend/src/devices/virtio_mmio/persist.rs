//! Snapshots of the transport: serialisable copies of its registers and
//! virtqueues, and the rebuild from one.

use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState};

use super::{fresh_queue, MmioTransport};

/// Serialisable copy of one virtqueue's state.
///
/// Mirrors `virtio_queue::QueueState`, which is not serde. The queue's
/// `num_added` counter is not part of it: it only matters with
/// `VIRTIO_F_EVENT_IDX`, which this transport's devices do not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtqueueState {
    /// QueueNumMax.
    pub max_size: u16,
    /// Next available-ring entry the device will read.
    pub next_avail: u16,
    /// Next used-ring entry the device will write.
    pub next_used: u16,
    /// Whether `VIRTIO_F_EVENT_IDX` was negotiated.
    pub event_idx_enabled: bool,
    /// QueueNum.
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Descriptor table address.
    pub desc_table: u64,
    /// Driver (available) ring address.
    pub avail_ring: u64,
    /// Device (used) ring address.
    pub used_ring: u64,
}

/// Serialisable copy of the transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmioTransportState {
    /// Device status.
    pub status: u32,
    /// DeviceFeaturesSel.
    pub device_features_sel: u32,
    /// DriverFeaturesSel.
    pub driver_features_sel: u32,
    /// Features accepted by the driver.
    pub driver_features: u64,
    /// QueueSel.
    pub queue_sel: u32,
    /// InterruptStatus.
    pub interrupt_status: u32,
    /// An interrupt edge not yet taken by the engine.
    pub irq_pending: bool,
    /// One entry per virtqueue.
    pub queues: Vec<VirtqueueState>,
}

impl MmioTransport {
    /// Snapshot of the registers and queues.
    pub fn state(&self) -> MmioTransportState {
        MmioTransportState {
            status: self.status,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            driver_features: self.driver_features,
            queue_sel: self.queue_sel,
            interrupt_status: self.interrupt_status,
            irq_pending: self.irq_pending,
            queues: self
                .queues
                .iter()
                .map(|q| {
                    let s = q.state();
                    VirtqueueState {
                        max_size: s.max_size,
                        next_avail: s.next_avail,
                        next_used: s.next_used,
                        event_idx_enabled: s.event_idx_enabled,
                        size: s.size,
                        ready: s.ready,
                        desc_table: s.desc_table,
                        avail_ring: s.avail_ring,
                        used_ring: s.used_ring,
                    }
                })
                .collect(),
        }
    }

    /// Rebuilds a transport with `num_queues` queues from a snapshot.
    ///
    /// A queue entry virtio-queue rejects (which a snapshot taken by
    /// [`MmioTransport::state`] never contains) or a missing entry becomes a
    /// fresh, disabled queue rather than an error.
    pub fn from_state(state: &MmioTransportState, num_queues: usize) -> Self {
        let queues = (0..num_queues)
            .map(|i| {
                state
                    .queues
                    .get(i)
                    .and_then(|s| {
                        Queue::try_from(QueueState {
                            max_size: s.max_size,
                            next_avail: s.next_avail,
                            next_used: s.next_used,
                            event_idx_enabled: s.event_idx_enabled,
                            size: s.size,
                            ready: s.ready,
                            desc_table: s.desc_table,
                            avail_ring: s.avail_ring,
                            used_ring: s.used_ring,
                        })
                        .ok()
                    })
                    .unwrap_or_else(fresh_queue)
            })
            .collect();
        MmioTransport {
            status: state.status,
            device_features_sel: state.device_features_sel,
            driver_features_sel: state.driver_features_sel,
            driver_features: state.driver_features,
            queue_sel: state.queue_sel,
            interrupt_status: state.interrupt_status,
            irq_pending: state.irq_pending,
            queues,
        }
    }
}
