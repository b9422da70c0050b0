//! What analyses need from the engine besides stepping: the network card's
//! log of guest-memory accesses (to follow bytes through a frame) and
//! guest-physical reads (the card's addresses are physical).

use vm_memory::{Bytes, GuestAddress};

use super::Machine;
use crate::devices::virtio_net::DmaAccess;

impl Machine {
    /// Turns the network card's log of guest-memory accesses on or off (see
    /// [`crate::devices::virtio_net::DmaKind`]). No effect on a VM without a
    /// card. Not part of the VM's state: it changes nothing the guest sees.
    pub fn set_dma_log(&mut self, on: bool) {
        if let Some(net) = &mut self.devices.net {
            net.set_dma_log(on);
        }
    }

    /// The card's accesses to guest memory since the last call, in order.
    pub fn take_dma_log(&mut self) -> Vec<DmaAccess> {
        match &mut self.devices.net {
            Some(net) => net.take_dma_log(),
            None => Vec::new(),
        }
    }

    /// Reads guest-physical memory at `pa`; returns how many bytes were
    /// readable (0 outside RAM).
    pub fn read_phys(&self, pa: u64, buf: &mut [u8]) -> usize {
        let mut done = 0;
        // Byte runs up to the end of RAM: a read that straddles it reads what is inside.
        while done < buf.len() {
            match self.ram.read(&mut buf[done..], GuestAddress(pa + done as u64)) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        done
    }
}
