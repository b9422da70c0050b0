//! Intel 8254 programmable interval timer running on virtual time.
//!
//! Channel 0 drives IRQ 0; channel 1 (DRAM refresh on the PC) and channel 2
//! (speaker, gated by port 0x61 bit 0, its output readable as port 0x61 bit
//! 5) are modelled so that guests that program or read them, such as a TSC
//! calibration loop, see consistent values.
//!
//! Time is the guest's virtual time in nanoseconds, passed in by the caller;
//! there is no host clock here. The counter clock runs at [`PIT_HZ`] and is
//! aligned with the moment counting (re)starts: a channel that started at
//! `t0` has seen `floor((t - t0) * PIT_HZ / 1e9)` input clocks at time `t`.
//! An output edge due after `n` clocks therefore happens at the first
//! nanosecond at which that many clocks have elapsed,
//! `t0 + ceil(n * 1e9 / PIT_HZ)`. For the periodic modes (2 and 3) with count
//! `C`, edge `k` (k = 1, 2, ...) is at `n = k * C`; mode 0 fires once at
//! `n = C` (OUT rises at terminal count); mode 4 fires once at `n = C + 1`
//! (the strobe is low for one clock at terminal count and the edge-triggered
//! PIC sees its rising end). All arithmetic is integer, widened to u128.
//!
//! Deliberate simplifications:
//! * A count takes effect at the write that completes it (no extra load
//!   clock), and writing a count always restarts counting, even in modes 2
//!   and 3 where the real part would finish the current period first.
//! * Mode 3 counter reads are exact for even counts and approximate for odd
//!   ones; the IRQ timing is exact for both.
//! * Channel 0 and 1 gates are tied high, so modes 1 and 5 (hardware
//!   triggered) never start on them.

mod channel;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use channel::PitChannel;
use channel::{clocks_between, Access};

/// Input clock of the 8254 in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// The I/O ports handled by [`Pit`], for the port-I/O router: the three
/// counters, the control register, and the PC's system control port B
/// (0x61, which carries channel 2's gate and output).
pub const PORTS: [u16; 5] = [0x40, 0x41, 0x42, 0x43, 0x61];

const CONTROL_PORT: u16 = 0x43;
const PORT_B: u16 = 0x61;
/// Port 0x61 bits the guest can write: gate 2, speaker data, and the two
/// parity/IO-check enables, stored and read back as written.
const PORT_B_WRITABLE: u8 = 0x0f;
const PORT_B_GATE2: u8 = 0x01;
const PORT_B_REFRESH: u8 = 0x10;
const PORT_B_OUT2: u8 = 0x20;
/// Input clocks per refresh request (the PC BIOS programs channel 1 with
/// 18); port 0x61 bit 4 toggles at that rate and some code spins on it.
const REFRESH_CLOCKS: u64 = 18;

/// Snapshot of the timer; restoring it with [`Pit::from_state`] reproduces
/// the exact future behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitState {
    /// Counters 0, 1 and 2.
    pub channels: [PitChannel; 3],
    /// Writable bits of port 0x61 (bit 0 is channel 2's gate).
    pub port_b: u8,
    /// IRQ0 edges of channel 0's current run already reported by `take_irqs`.
    pub irqs_reported: u64,
    /// Unreported IRQ0 edges of earlier runs, kept when channel 0 was
    /// reprogrammed before the engine collected them.
    pub banked_irqs: u64,
    /// Time of the earliest banked edge (meaningful when `banked_irqs > 0`).
    pub banked_first_ns: u64,
}

/// The 8254 device. All of its state is the [`PitState`] it wraps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pit {
    state: PitState,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// A timer in its power-on state: no counter programmed, no interrupts.
    pub fn new() -> Self {
        Pit {
            state: PitState {
                channels: [
                    PitChannel::power_on(),
                    PitChannel::power_on(),
                    PitChannel::power_on(),
                ],
                port_b: 0,
                irqs_reported: 0,
                banked_irqs: 0,
                banked_first_ns: 0,
            },
        }
    }

    /// Handle an OUT at virtual time `now_ns` to 0x40..0x42 (counter data),
    /// 0x43 (control word, counter latch, read-back) or 0x61 (channel 2
    /// gate). Other ports are ignored.
    pub fn port_write(&mut self, port: u16, value: u8, now_ns: u64) {
        match port {
            0x40..=0x42 => self.write_counter(usize::from(port - 0x40), value, now_ns),
            CONTROL_PORT => self.write_control(value, now_ns),
            PORT_B => self.write_port_b(value, now_ns),
            _ => {}
        }
    }

    /// Handle an IN at virtual time `now_ns` from 0x40..0x42 (counter or
    /// latched value/status) or 0x61 (gate 2, refresh toggle, OUT 2). The
    /// write-only control port and unknown ports read as 0xff.
    pub fn port_read(&mut self, port: u16, now_ns: u64) -> u8 {
        match port {
            0x40..=0x42 => self.state.channels[usize::from(port - 0x40)].read(now_ns),
            PORT_B => {
                let refresh = (clocks_between(0, now_ns) / REFRESH_CLOCKS) & 1 != 0;
                let out2 = self.state.channels[2].out(now_ns);
                (self.state.port_b & PORT_B_WRITABLE)
                    | if refresh { PORT_B_REFRESH } else { 0 }
                    | if out2 { PORT_B_OUT2 } else { 0 }
            }
            _ => 0xff,
        }
    }

    /// Virtual time (ns) of the next IRQ0 edge that has not yet been
    /// reported by [`Pit::take_irqs`], or `None` if channel 0 is not producing
    /// interrupts (not programmed, or its one-shot already fired). May be
    /// earlier than the current time if edges are waiting to be taken.
    pub fn next_irq_ns(&self) -> Option<u64> {
        let s = &self.state;
        let banked = (s.banked_irqs > 0).then_some(s.banked_first_ns);
        let upcoming = s.channels[0].edge_ns(s.irqs_reported.saturating_add(1));
        match (banked, upcoming) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Number of IRQ0 edges at times `<= now_ns` not yet reported; marks
    /// them reported. An edge at time `T` (as given by `next_irq_ns`) is
    /// reported by `take_irqs(T)` and not by `take_irqs(T - 1)`.
    pub fn take_irqs(&mut self, now_ns: u64) -> u64 {
        let s = &mut self.state;
        let mut count = 0;
        if s.banked_irqs > 0 && now_ns >= s.banked_first_ns {
            count = s.banked_irqs;
            s.banked_irqs = 0;
        }
        let total = s.channels[0].edges_by(now_ns);
        if total > s.irqs_reported {
            count = count.saturating_add(total - s.irqs_reported);
            s.irqs_reported = total;
        }
        count
    }

    /// Snapshot of the timer.
    pub fn state(&self) -> PitState {
        self.state.clone()
    }

    /// Rebuild a timer from a snapshot taken by [`Pit::state`].
    pub fn from_state(state: &PitState) -> Self {
        Pit { state: state.clone() }
    }

    /// Gate input of counter `index`: only channel 2's is wired to anything.
    fn gate(&self, index: usize) -> bool {
        index != 2 || self.state.port_b & PORT_B_GATE2 != 0
    }

    /// Channel 0's run is about to change at `now`: edges of the old run
    /// that already happened but were not taken are kept so they are still
    /// delivered, and the per-run count restarts.
    fn end_irq_run(&mut self, index: usize, now: u64) {
        if index != 0 {
            return;
        }
        let s = &mut self.state;
        let total = s.channels[0].edges_by(now);
        if total > s.irqs_reported {
            if let Some(first) = s.channels[0].edge_ns(s.irqs_reported.saturating_add(1)) {
                s.banked_first_ns = if s.banked_irqs > 0 {
                    s.banked_first_ns.min(first)
                } else {
                    first
                };
                s.banked_irqs = s.banked_irqs.saturating_add(total - s.irqs_reported);
            }
        }
        s.irqs_reported = 0;
    }

    fn write_counter(&mut self, index: usize, value: u8, now: u64) {
        let gate = self.gate(index);
        let channel = &self.state.channels[index];
        let raw = match channel.access() {
            Access::Low => u16::from(value),
            Access::High => u16::from(value) << 8,
            Access::LowHigh => match channel.write_low {
                Some(low) => u16::from_le_bytes([low, value]),
                None => {
                    // First byte: mode 0 stops counting (OUT low) until the
                    // count is complete; other modes are unaffected.
                    if channel.mode() == 0 {
                        self.end_irq_run(index, now);
                        let channel = &mut self.state.channels[index];
                        channel.freeze(now);
                        channel.expired = false;
                        channel.armed = false;
                    }
                    let channel = &mut self.state.channels[index];
                    channel.write_low = Some(value);
                    channel.null_count = true;
                    return;
                }
            },
        };
        if channel.count_write_changes_run() {
            self.end_irq_run(index, now);
        }
        let channel = &mut self.state.channels[index];
        channel.write_low = None;
        channel.load(raw, now, gate);
    }

    fn write_control(&mut self, value: u8, now: u64) {
        let select = value >> 6;
        if select == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches
            // status, bits 1..3 select counters 0..2.
            for (index, channel) in self.state.channels.iter_mut().enumerate() {
                if value & (2 << index) == 0 {
                    continue;
                }
                if value & 0x10 == 0 {
                    channel.latch_status(now);
                }
                if value & 0x20 == 0 {
                    channel.latch_count(now);
                }
            }
            return;
        }
        let index = usize::from(select);
        if value & 0x30 == 0 {
            self.state.channels[index].latch_count(now);
        } else {
            self.end_irq_run(index, now);
            self.state.channels[index].program(value, now);
        }
    }

    fn write_port_b(&mut self, value: u8, now: u64) {
        let was_high = self.gate(2);
        self.state.port_b = value & PORT_B_WRITABLE;
        let is_high = self.gate(2);
        let channel = &mut self.state.channels[2];
        match (was_high, is_high) {
            (true, false) => channel.gate_fell(now),
            (false, true) => channel.gate_rose(now),
            _ => {}
        }
    }
}
