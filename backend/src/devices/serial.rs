//! COM1: vm-superio's 16550 with its interrupt routed to the userspace PIC.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vm_superio::serial::SerialState;
use vm_superio::{Serial, Trigger};

/// First I/O port of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// COM1's interrupt line on the PIC.
pub const COM1_IRQ: u8 = 4;

/// Remembers that the UART asked for an interrupt; the bus raises the PIC line.
#[derive(Debug, Clone, Default)]
pub struct IrqFlag(Arc<AtomicBool>);

impl IrqFlag {
    /// True once if the UART triggered since the last call.
    fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Trigger for IrqFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Collects the bytes the guest transmits, to be turned into events.
#[derive(Debug, Default)]
pub struct TxBuffer(Vec<u8>);

impl Write for TxBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The 16550 UART of COM1.
pub struct Com1 {
    uart: Serial<IrqFlag, vm_superio::serial::NoEvents, TxBuffer>,
}

/// A serialisable copy of the UART registers (vm-superio's own state type is not serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Com1State {
    regs: [u8; 9],
    in_buffer: Vec<u8>,
}

impl Default for Com1 {
    fn default() -> Self {
        Com1 {
            uart: Serial::new(IrqFlag::default(), TxBuffer::default()),
        }
    }
}

impl Com1 {
    /// Handles a guest write at `offset` (0..8); returns whether the UART wants an interrupt.
    pub fn write(&mut self, offset: u8, value: u8) -> bool {
        // The only error is the trigger's, which is infallible here.
        let _ = self.uart.write(offset, value);
        self.uart.interrupt_evt().take()
    }

    /// Handles a guest read at `offset`; returns the value and whether an interrupt is wanted.
    pub fn read(&mut self, offset: u8) -> (u8, bool) {
        let v = self.uart.read(offset);
        (v, self.uart.interrupt_evt().take())
    }

    /// Takes the bytes transmitted since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.uart.writer_mut().0)
    }

    /// Snapshot of the registers and receive FIFO.
    pub fn state(&self) -> Com1State {
        let s = self.uart.state();
        Com1State {
            regs: [
                s.baud_divisor_low,
                s.baud_divisor_high,
                s.interrupt_enable,
                s.interrupt_identification,
                s.line_control,
                s.line_status,
                s.modem_control,
                s.modem_status,
                s.scratch,
            ],
            in_buffer: s.in_buffer,
        }
    }

    /// Rebuilds the UART from a snapshot.
    pub fn from_state(state: &Com1State) -> Com1 {
        let r = state.regs;
        let s = SerialState {
            baud_divisor_low: r[0],
            baud_divisor_high: r[1],
            interrupt_enable: r[2],
            interrupt_identification: r[3],
            line_control: r[4],
            line_status: r[5],
            modem_control: r[6],
            modem_status: r[7],
            scratch: r[8],
            in_buffer: state.in_buffer.clone(),
        };
        match Serial::from_state(
            &s,
            IrqFlag::default(),
            vm_superio::serial::NoEvents,
            TxBuffer::default(),
        ) {
            Ok(uart) => Com1 { uart },
            // Only an oversized FIFO is rejected; fall back to a fresh UART
            // rather than fail a restore of an otherwise valid state.
            Err(_) => Com1::default(),
        }
    }
}
