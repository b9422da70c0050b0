//! The legacy devices of one VM and the port-I/O bus that reaches them.
//!
//! Each device keeps its state in one struct; the bus only routes ports and
//! turns device requests into PIC lines and engine actions.

pub mod debug_port;
pub mod pic;
pub mod pit;
pub mod serial;
pub mod virtio_mmio;
pub mod virtio_net;

use serde::{Deserialize, Serialize};

use debug_port::{DebugAction, DebugPort};
use pic::{Pic, PicState};
use pit::{Pit, PitState};
use serial::{Com1, Com1State, COM1_BASE, COM1_IRQ};
use virtio_net::{VirtioNet, VirtioNetState, VIRTIO_NET_IRQ, VIRTIO_NET_MMIO_BASE, VIRTIO_NET_MMIO_SIZE};

use crate::memory::GuestRam;

/// PIT channel 0 drives PIC line 0.
pub const PIT_IRQ: u8 = 0;

/// All devices of one VM.
#[derive(Default)]
pub struct Devices {
    /// COM1 console.
    pub com1: Com1,
    /// The 8259 pair.
    pub pic: Pic,
    /// The 8254 timer.
    pub pit: Pit,
    /// Exit and marker ports.
    pub debug: DebugPort,
    /// The virtio-net NIC, for cluster members.
    pub net: Option<VirtioNet>,
}

/// Snapshot of every device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesState {
    /// COM1 registers.
    pub com1: Com1State,
    /// PIC registers.
    pub pic: PicState,
    /// PIT counters.
    pub pit: PitState,
    /// Marker name in progress.
    pub debug: DebugPort,
    /// The NIC, if any.
    pub net: Option<VirtioNetState>,
}

impl Devices {
    /// A guest `out`: routes the bytes to the device at `port`.
    pub fn port_write(&mut self, port: u16, data: &[u8], now_ns: u64) -> DebugAction {
        let byte = data.first().copied().unwrap_or(0);
        match port {
            COM1_BASE..=0x3ff if self.com1.write((port - COM1_BASE) as u8, byte) => {
                self.pic.raise_irq(COM1_IRQ);
            }
            COM1_BASE..=0x3ff => {}
            0x20 | 0x21 | 0xa0 | 0xa1 => self.pic.port_write(port, byte),
            0x40..=0x43 | 0x61 => self.pit.port_write(port, byte, now_ns),
            p if DebugPort::claims(p) => return self.debug.write(p, data),
            _ => {}
        }
        DebugAction::None
    }

    /// A guest `in`: fills `data` from the device at `port` (all ones where nothing answers).
    pub fn port_read(&mut self, port: u16, data: &mut [u8], now_ns: u64) {
        let value = match port {
            COM1_BASE..=0x3ff => {
                let (v, irq) = self.com1.read((port - COM1_BASE) as u8);
                if irq {
                    self.pic.raise_irq(COM1_IRQ);
                }
                v
            }
            0x20 | 0x21 | 0xa0 | 0xa1 => self.pic.port_read(port),
            0x40..=0x43 | 0x61 => self.pit.port_read(port, now_ns),
            _ => 0xff,
        };
        data.fill(0xff);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    /// Snapshot of every device.
    pub fn state(&self) -> DevicesState {
        DevicesState {
            com1: self.com1.state(),
            pic: self.pic.state(),
            pit: self.pit.state(),
            debug: self.debug.clone(),
            net: self.net.as_ref().map(VirtioNet::state),
        }
    }

    /// Rebuilds every device from a snapshot.
    pub fn from_state(state: &DevicesState) -> Devices {
        Devices {
            com1: Com1::from_state(&state.com1),
            pic: Pic::from_state(&state.pic),
            pit: Pit::from_state(&state.pit),
            debug: state.debug.clone(),
            net: state.net.as_ref().map(VirtioNet::from_state),
        }
    }

    /// A guest MMIO read at physical `addr` (all ones where nothing answers).
    pub fn mmio_read(&mut self, addr: u64, data: &mut [u8]) {
        match &mut self.net {
            Some(net)
                if (VIRTIO_NET_MMIO_BASE..VIRTIO_NET_MMIO_BASE + VIRTIO_NET_MMIO_SIZE).contains(&addr) =>
            {
                net.mmio_read(addr - VIRTIO_NET_MMIO_BASE, data)
            }
            _ => data.fill(0xff),
        }
    }

    /// A guest MMIO write at physical `addr`; the NIC may read rings in `ram`.
    pub fn mmio_write(&mut self, ram: &GuestRam, addr: u64, data: &[u8]) {
        if let Some(net) = &mut self.net {
            if (VIRTIO_NET_MMIO_BASE..VIRTIO_NET_MMIO_BASE + VIRTIO_NET_MMIO_SIZE).contains(&addr) {
                net.mmio_write(ram, addr - VIRTIO_NET_MMIO_BASE, data);
            }
        }
        self.route_net_irq();
    }

    /// Raises the NIC's PIC line if it signalled an interrupt edge.
    pub fn route_net_irq(&mut self) {
        if self.net.as_mut().is_some_and(|n| n.take_irq()) {
            self.pic.raise_irq(VIRTIO_NET_IRQ);
        }
    }
}
