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

use serde::{Deserialize, Serialize};

/// Input clock of the 8254 in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// The I/O ports handled by [`Pit`], for the port-I/O router: the three
/// counters, the control register, and the PC's system control port B
/// (0x61, which carries channel 2's gate and output).
pub const PORTS: [u16; 5] = [0x40, 0x41, 0x42, 0x43, 0x61];

const NS_PER_SEC: u128 = 1_000_000_000;
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

/// How a counter's data port transfers its 16-bit value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Low,
    High,
    LowHigh,
}

/// One 8254 counter. Fields are public for display; any combination of
/// values is handled without panicking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitChannel {
    /// Bits 5..0 of the last control word: RW1 RW0 M2 M1 M0 BCD.
    pub control: u8,
    /// Initial count as a number of clocks (1..=65536, or 1..=10000 in BCD).
    pub reload: u32,
    /// A complete count has been written since the last control word.
    pub armed: bool,
    /// The counting element is counting down from `start` since `t0_ns`.
    pub running: bool,
    /// Virtual time at which the current run started.
    pub t0_ns: u64,
    /// Counter value at `t0_ns` (0 stands for the maximum).
    pub start: u32,
    /// One-shot modes: terminal count was already reached before `t0_ns`
    /// (a run resumed after gate-low), so it cannot fire again.
    pub expired: bool,
    /// Counter value while not running.
    pub held: u32,
    /// Status "null count": a count is being written but not yet loaded.
    pub null_count: bool,
    /// Low byte of a low-then-high count write in progress.
    pub write_low: Option<u8>,
    /// Read flip-flop for unlatched low-then-high reads: the high byte is next.
    pub read_high_next: bool,
    /// Value captured by a latch command, until fully read.
    pub latched_count: Option<u16>,
    /// The next read of `latched_count` returns its high byte.
    pub latch_high_next: bool,
    /// Status byte captured by a read-back command, until read.
    pub latched_status: Option<u8>,
}

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

/// Input clocks elapsed between `t0` and `now` (zero if `now` is earlier).
fn clocks_between(t0: u64, now: u64) -> u64 {
    let ns = u128::from(now.saturating_sub(t0));
    // At most 2^64 * 2^21 / 10^9 < 2^56, so the narrowing cannot fail.
    u64::try_from(ns * u128::from(PIT_HZ) / NS_PER_SEC).unwrap_or(u64::MAX)
}

/// First nanosecond at which `clocks` input clocks have elapsed since `t0`,
/// or `None` if that is beyond the range of u64.
fn time_of_clock(t0: u64, clocks: u128) -> Option<u64> {
    let ns = clocks.checked_mul(NS_PER_SEC)?.div_ceil(u128::from(PIT_HZ));
    u64::try_from(ns).ok()?.checked_add(t0)
}

fn bcd_to_binary(raw: u16) -> u32 {
    let digit = |shift: u32| u32::from((raw >> shift) & 0xf);
    digit(12) * 1000 + digit(8) * 100 + digit(4) * 10 + digit(0)
}

fn binary_to_bcd(value: u32) -> u16 {
    // Below 10_000, so the conversion cannot fail.
    let v = u16::try_from(value % 10_000).unwrap_or(0);
    [v / 1000, (v / 100) % 10, (v / 10) % 10, v % 10]
        .iter()
        .fold(0, |acc, &digit| (acc << 4) | digit)
}

impl PitChannel {
    fn power_on() -> Self {
        PitChannel {
            control: 0x30,
            reload: 0x1_0000,
            armed: false,
            running: false,
            t0_ns: 0,
            start: 0,
            expired: false,
            held: 0,
            null_count: false,
            write_low: None,
            read_high_next: false,
            latched_count: None,
            latch_high_next: false,
            latched_status: None,
        }
    }

    /// Counting mode 0..5 (6 and 7 are aliases of 2 and 3).
    fn mode(&self) -> u8 {
        match (self.control >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        }
    }

    fn periodic(&self) -> bool {
        matches!(self.mode(), 2 | 3)
    }

    fn access(&self) -> Access {
        match (self.control >> 4) & 3 {
            1 => Access::Low,
            2 => Access::High,
            // 0 is never stored by a control word (it means "latch").
            _ => Access::LowHigh,
        }
    }

    fn bcd(&self) -> bool {
        self.control & 1 != 0
    }

    /// Number of distinct counter values: a count of 0 means this many.
    fn modulus(&self) -> u64 {
        if self.bcd() {
            10_000
        } else {
            0x1_0000
        }
    }

    /// Decode a raw count as written by the guest into a number of clocks.
    fn decode_count(&self, raw: u16) -> u32 {
        let value = if self.bcd() {
            bcd_to_binary(raw) % 10_000
        } else {
            u32::from(raw)
        };
        match value {
            0 if self.bcd() => 10_000,
            0 => 0x1_0000,
            v => v,
        }
    }

    /// Counter value at the start of the current run, with 0 meaning the
    /// maximum; never zero, so it is safe as a divisor.
    fn start_count(&self) -> u64 {
        match u64::from(self.start) {
            0 => self.modulus(),
            s => s,
        }
    }

    /// Clocks after `t0_ns` at which a one-shot mode's output edge occurs.
    fn one_shot_clock(&self) -> u64 {
        match self.mode() {
            4 | 5 => self.start_count() + 1,
            _ => self.start_count(),
        }
    }

    fn clocks(&self, now: u64) -> u64 {
        clocks_between(self.t0_ns, now)
    }

    /// Counter element value at `now`, in binary, reduced to 16 bits/4 digits.
    fn value(&self, now: u64) -> u64 {
        let m = self.modulus();
        if !self.running {
            return u64::from(self.held) % m;
        }
        let clocks = self.clocks(now);
        let c = self.start_count();
        let v = match self.mode() {
            2 => c - clocks % c,
            3 => {
                let pos = clocks % c;
                let high_half = c.div_ceil(2);
                let into_half = if pos < high_half { pos } else { pos - high_half };
                c.saturating_sub(2 * into_half)
            }
            // One-shot modes keep counting down past zero and wrap.
            _ => (c % m + m - clocks % m) % m,
        };
        v % m
    }

    /// The value as the guest reads it (BCD-encoded in BCD mode).
    fn read_value(&self, now: u64) -> u16 {
        let v = self.value(now);
        if self.bcd() {
            binary_to_bcd(u32::try_from(v).unwrap_or(0))
        } else {
            u16::try_from(v).unwrap_or(0)
        }
    }

    /// The OUT pin at `now`.
    fn out(&self, now: u64) -> bool {
        if !self.running {
            // After a control word mode 0 drives OUT low; every other mode
            // idles high. A paused mode 0 keeps the level it had.
            return self.mode() != 0 || self.expired;
        }
        let clocks = self.clocks(now);
        let c = self.start_count();
        match self.mode() {
            2 => clocks % c != c - 1,
            3 => clocks % c < c.div_ceil(2),
            4 | 5 => self.expired || clocks != self.one_shot_clock(),
            _ => self.expired || clocks >= c,
        }
    }

    fn status(&self, now: u64) -> u8 {
        (u8::from(self.out(now)) << 7) | (u8::from(self.null_count) << 6) | (self.control & 0x3f)
    }

    /// Output clock (after `t0_ns`) of IRQ edge `k` (1-based) of this run.
    fn edge_clock(&self, k: u64) -> Option<u128> {
        if !self.running || k == 0 {
            return None;
        }
        if self.periodic() {
            return Some(u128::from(k) * u128::from(self.start_count()));
        }
        if self.expired || k != 1 {
            return None;
        }
        Some(u128::from(self.one_shot_clock()))
    }

    /// Time of IRQ edge `k` (1-based) of this run.
    fn edge_ns(&self, k: u64) -> Option<u64> {
        time_of_clock(self.t0_ns, self.edge_clock(k)?)
    }

    /// Number of IRQ edges of this run at or before `now`; agrees with
    /// `edge_ns` because both compare elapsed clocks with the edge clock.
    fn edges_by(&self, now: u64) -> u64 {
        if !self.running {
            return 0;
        }
        let clocks = self.clocks(now);
        if self.periodic() {
            clocks / self.start_count()
        } else if self.expired {
            0
        } else {
            u64::from(clocks >= self.one_shot_clock())
        }
    }

    fn start_run(&mut self, now: u64, start: u32, expired: bool) {
        self.running = true;
        self.t0_ns = now;
        self.start = start;
        self.expired = expired;
    }

    /// Stop counting, keeping the counter value (and, for the one-shot
    /// modes, whether terminal count has passed).
    fn freeze(&mut self, now: u64) {
        if !self.running {
            return;
        }
        let passed = !self.periodic() && self.clocks(now) >= self.one_shot_clock();
        self.expired = self.expired || passed;
        self.held = u32::try_from(self.value(now)).unwrap_or(0);
        self.running = false;
    }

    fn latch_count(&mut self, now: u64) {
        // Further latch commands are ignored until the latch has been read.
        if self.latched_count.is_none() {
            self.latched_count = Some(self.read_value(now));
            self.latch_high_next = self.access() == Access::High;
        }
    }

    fn latch_status(&mut self, now: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status(now));
        }
    }

    /// A data-port read: latched status first, then a latched count, then
    /// the live counter.
    fn read(&mut self, now: u64) -> u8 {
        if let Some(status) = self.latched_status.take() {
            return status;
        }
        if let Some(latched) = self.latched_count {
            let [low, high] = latched.to_le_bytes();
            let byte = if self.latch_high_next { high } else { low };
            if self.access() == Access::LowHigh && !self.latch_high_next {
                self.latch_high_next = true;
            } else {
                self.latched_count = None;
                self.latch_high_next = false;
            }
            return byte;
        }
        let [low, high] = self.read_value(now).to_le_bytes();
        match self.access() {
            Access::Low => low,
            Access::High => high,
            Access::LowHigh => {
                self.read_high_next = !self.read_high_next;
                if self.read_high_next {
                    low
                } else {
                    high
                }
            }
        }
    }

    /// A control word selecting this counter: reset its control logic. The
    /// counter stops (keeping its value) until a new count is written.
    fn program(&mut self, control: u8, now: u64) {
        self.freeze(now);
        self.control = control & 0x3f;
        self.armed = false;
        self.expired = false;
        self.null_count = true;
        self.write_low = None;
        self.read_high_next = false;
        self.latched_count = None;
        self.latch_high_next = false;
        self.latched_status = None;
    }

    /// Whether loading a count (re)starts or stops this counter's run.
    fn count_write_changes_run(&self) -> bool {
        !matches!(self.mode(), 1 | 5)
    }

    /// A complete count was written: load it and, except in the gate
    /// triggered modes, start counting now (or once the gate goes high).
    fn load(&mut self, raw: u16, now: u64, gate: bool) {
        self.reload = self.decode_count(raw);
        self.armed = true;
        self.null_count = false;
        if !self.count_write_changes_run() {
            return;
        }
        if gate {
            self.start_run(now, self.reload, false);
        } else {
            self.running = false;
            self.expired = false;
            self.held = self.reload;
        }
    }

    /// Gate input went low: modes 0, 2, 3 and 4 stop counting.
    fn gate_fell(&mut self, now: u64) {
        if self.count_write_changes_run() {
            self.freeze(now);
        }
    }

    /// Gate input went high: modes 0 and 4 resume, the others (re)start
    /// from the initial count.
    fn gate_rose(&mut self, now: u64) {
        if !self.armed {
            return;
        }
        match self.mode() {
            0 | 4 => {
                if !self.running {
                    self.start_run(now, self.held, self.expired);
                }
            }
            _ => self.start_run(now, self.reload, false),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Count for a 1000 Hz tick, as Linux computes it (rounded).
    const HZ_1000_COUNT: u16 = 1193;

    fn program(pit: &mut Pit, channel: u8, mode: u8, count: u16, now: u64) {
        pit.port_write(0x43, (channel << 6) | 0x30 | (mode << 1), now);
        let [low, high] = count.to_le_bytes();
        pit.port_write(0x40 + u16::from(channel), low, now);
        pit.port_write(0x40 + u16::from(channel), high, now);
    }

    fn latched_count(pit: &mut Pit, channel: u8, now: u64) -> u16 {
        pit.port_write(0x43, channel << 6, now);
        let port = 0x40 + u16::from(channel);
        let low = pit.port_read(port, now);
        let high = pit.port_read(port, now);
        u16::from_le_bytes([low, high])
    }

    /// Reference formula from the module doc, written independently.
    fn periodic_edge(t0: u64, count: u64, k: u64) -> u64 {
        let n = u128::from(k) * u128::from(count) * 1_000_000_000;
        t0 + u64::try_from(n.div_ceil(1_193_182)).unwrap()
    }

    #[test]
    fn power_on_has_no_irqs() {
        let mut pit = Pit::new();
        assert_eq!(pit.next_irq_ns(), None);
        assert_eq!(pit.take_irqs(u64::MAX), 0);
    }

    #[test]
    fn rate_generator_1000hz_exact_edges() {
        let t0 = 5_000;
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, HZ_1000_COUNT, t0);
        // Hand-computed: ceil(k * 1193e9 / 1193182).
        assert_eq!(pit.next_irq_ns(), Some(t0 + 999_848));
        let expected = [(1, 999_848), (2, 1_999_695), (3, 2_999_543), (10, 9_998_475)];
        for (k, ns) in expected {
            assert_eq!(periodic_edge(t0, 1193, k), t0 + ns);
        }
        for k in 1..=20_000u64 {
            let edge = periodic_edge(t0, 1193, k);
            assert_eq!(pit.next_irq_ns(), Some(edge), "edge {k}");
            assert_eq!(pit.take_irqs(edge - 1), 0, "edge {k} early");
            assert_eq!(pit.take_irqs(edge), 1, "edge {k}");
            assert_eq!(pit.take_irqs(edge), 0);
        }
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(t0, 1193, 20_001)));
        assert_eq!(periodic_edge(0, 1193, 100_000), 99_984_746_669);
    }

    #[test]
    fn bulk_take_counts_all_edges() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, HZ_1000_COUNT, 0);
        // 1 s holds floor(1193182 / 1193) = 1000 periods.
        assert_eq!(pit.take_irqs(1_000_000_000), 1000);
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(0, 1193, 1001)));
        assert_eq!(pit.take_irqs(999_999_999_999), 999_152);
    }

    #[test]
    fn square_wave_has_same_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 3, HZ_1000_COUNT, 77);
        for k in 1..=1000u64 {
            let edge = periodic_edge(77, 1193, k);
            assert_eq!(pit.next_irq_ns(), Some(edge));
            assert_eq!(pit.take_irqs(edge - 1), 0);
            assert_eq!(pit.take_irqs(edge), 1);
        }
        // Mode 6/7 alias 2/3.
        pit.port_write(0x43, 0x3e, 0);
        assert_eq!(pit.state().channels[0].mode(), 3);
    }

    #[test]
    fn count_zero_means_65536() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 0, 0);
        assert_eq!(pit.next_irq_ns(), Some(54_925_402));
        assert_eq!(latched_count(&mut pit, 0, 0), 0);
        assert_eq!(latched_count(&mut pit, 0, 1_000), 0xffff);
    }

    #[test]
    fn one_shot_mode_0() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0, 100, 1_000);
        assert_eq!(pit.next_irq_ns(), Some(1_000 + 83_810));
        assert_eq!(pit.take_irqs(1_000 + 83_809), 0);
        assert_eq!(pit.take_irqs(1_000_000_000), 1);
        assert_eq!(pit.next_irq_ns(), None);
        assert_eq!(pit.take_irqs(u64::MAX), 0);
        // The counter keeps going and wraps after terminal count.
        let v = latched_count(&mut pit, 0, 1_000 + 84_648);
        assert_eq!(v, 0xffff);
        // Status shows OUT high after terminal count, low before.
        pit.port_write(0x43, 0xe2, 1_000 + 84_648);
        assert_eq!(pit.port_read(0x40, 0) & 0xc0, 0x80);
        program(&mut pit, 0, 0, 100, 2_000_000);
        pit.port_write(0x43, 0xe2, 2_000_001);
        assert_eq!(pit.port_read(0x40, 0) & 0xc0, 0x00);
    }

    #[test]
    fn one_shot_mode_4_fires_one_clock_later() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 4, 100, 0);
        assert_eq!(pit.next_irq_ns(), Some(84_648));
        assert_eq!(pit.take_irqs(84_647), 0);
        assert_eq!(pit.take_irqs(84_648), 1);
        assert_eq!(pit.next_irq_ns(), None);
    }

    #[test]
    fn latch_read_decreases_with_time() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 10_000, 0);
        let mut last = latched_count(&mut pit, 0, 0);
        assert_eq!(last, 10_000);
        for i in 1..8_000u64 {
            let v = latched_count(&mut pit, 0, i * 1_000);
            // 1 us is 1.19 clocks.
            assert!(v < last, "{v} !< {last} at {i}");
            last = v;
        }
        // Exact value: after 1 ms, floor(1e6 * 1193182 / 1e9) = 1193 clocks.
        assert_eq!(latched_count(&mut pit, 0, 1_000_000), 10_000 - 1193);
        // The rate generator reloads: after exactly one period it reads C.
        let period = periodic_edge(0, 10_000, 1);
        assert_eq!(latched_count(&mut pit, 0, period), 10_000);
        assert_eq!(latched_count(&mut pit, 0, period - 1), 1);
    }

    #[test]
    fn latch_holds_value_until_read() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 50_000, 0);
        pit.port_write(0x43, 0x00, 1_000_000);
        // A second latch before reading is ignored.
        pit.port_write(0x43, 0x00, 2_000_000);
        let low = pit.port_read(0x40, 9_000_000);
        let high = pit.port_read(0x40, 9_000_000);
        assert_eq!(u16::from_le_bytes([low, high]), 50_000 - 1193);
        // Next read is live again.
        let live = latched_count(&mut pit, 0, 2_000_000);
        assert_eq!(live, 50_000 - 2386);
    }

    #[test]
    fn lohi_flip_flops() {
        let mut pit = Pit::new();
        program(&mut pit, 2, 0, 0x1234, 0);
        assert_eq!(pit.state().channels[2].reload, 0x1234);
        // Unlatched reads alternate low/high and sample the live counter.
        assert_eq!(pit.port_read(0x42, 0), 0x34);
        assert_eq!(pit.port_read(0x42, 0), 0x12);
        assert_eq!(pit.port_read(0x42, 0), 0x34);
        // Interleaved write does not disturb the read flip-flop.
        pit.port_write(0x42, 0x00, 0);
        assert_eq!(pit.port_read(0x42, 0), 0x12);
        pit.port_write(0x42, 0x20, 0);
        assert_eq!(pit.state().channels[2].reload, 0x2000);
        // A control word resets both flip-flops.
        pit.port_write(0x42, 0x11, 0);
        pit.port_write(0x43, 0xb0, 0);
        pit.port_write(0x42, 0x78, 0);
        pit.port_write(0x42, 0x56, 0);
        assert_eq!(pit.state().channels[2].reload, 0x5678);
    }

    #[test]
    fn low_only_and_high_only_access() {
        let mut pit = Pit::new();
        pit.port_write(0x43, 0x14, 0); // counter 0, LSB only, mode 2
        pit.port_write(0x40, 200, 0);
        assert_eq!(pit.state().channels[0].reload, 200);
        assert_eq!(pit.port_read(0x40, 0), 200);
        assert_eq!(pit.port_read(0x40, 0), 200);
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(0, 200, 1)));
        pit.port_write(0x43, 0x24, 0); // counter 0, MSB only, mode 2
        pit.port_write(0x40, 0x02, 0);
        assert_eq!(pit.state().channels[0].reload, 0x200);
        assert_eq!(pit.port_read(0x40, 0), 0x02);
        pit.port_write(0x43, 0x00, 0);
        assert_eq!(pit.port_read(0x40, 0), 0x02);
    }

    #[test]
    fn reprogramming_restarts_counting() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, HZ_1000_COUNT, 0);
        assert_eq!(pit.take_irqs(500_000), 0);
        // A control word stops the counter until the count is complete.
        pit.port_write(0x43, 0x34, 600_000);
        assert_eq!(pit.next_irq_ns(), None);
        pit.port_write(0x40, 0x9c, 700_000);
        assert_eq!(pit.next_irq_ns(), None);
        pit.port_write(0x40, 0x2e, 800_000); // 0x2e9c = 11932, ~100 Hz
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(800_000, 11_932, 1)));
        // Writing a new count without a control word restarts too; in mode
        // 2 the first byte alone leaves the running period alone.
        pit.port_write(0x40, 0xa9, 5_000_000);
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(800_000, 11_932, 1)));
        pit.port_write(0x40, 0x04, 5_000_000);
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(5_000_000, 1193, 1)));
    }

    #[test]
    fn edges_before_reprogramming_are_kept() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, HZ_1000_COUNT, 0);
        let e1 = periodic_edge(0, 1193, 1);
        let e3 = periodic_edge(0, 1193, 3);
        // Guest reprograms after three edges the engine has not collected.
        program(&mut pit, 0, 0, 100, e3 + 10);
        assert_eq!(pit.next_irq_ns(), Some(e1));
        assert_eq!(pit.take_irqs(e1 - 1), 0);
        assert_eq!(pit.take_irqs(e3 + 10), 3);
        assert_eq!(pit.next_irq_ns(), Some(e3 + 10 + 83_810));
        assert_eq!(pit.take_irqs(u64::MAX), 1);
        assert_eq!(pit.next_irq_ns(), None);
    }

    #[test]
    fn mode_0_first_byte_stops_counting() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 0, 1000, 0);
        pit.port_write(0x40, 0xe8, 100_000);
        assert_eq!(pit.next_irq_ns(), None);
        pit.port_write(0x40, 0x03, 200_000);
        assert_eq!(pit.next_irq_ns(), Some(200_000 + 838_096));
    }

    #[test]
    fn read_back_command() {
        let mut pit = Pit::new();
        program(&mut pit, 1, 2, 0x1000, 0);
        // Latch status and count of counter 1.
        pit.port_write(0x43, 0xc4, 1_000_000);
        assert_eq!(pit.port_read(0x41, 5_000_000), 0x80 | 0x34);
        let low = pit.port_read(0x41, 5_000_000);
        let high = pit.port_read(0x41, 5_000_000);
        assert_eq!(u16::from_le_bytes([low, high]), 0x1000 - 1193);
        // Status only, after a control word: null count set, OUT high (mode 2).
        pit.port_write(0x43, 0x74, 0);
        pit.port_write(0x43, 0xe4, 0);
        assert_eq!(pit.port_read(0x41, 0), 0xc0 | 0x34);
        pit.port_write(0x41, 0x01, 0);
        pit.port_write(0x43, 0xe4, 0);
        assert_eq!(pit.port_read(0x41, 0) & 0x40, 0x40);
        pit.port_write(0x41, 0x01, 0);
        pit.port_write(0x43, 0xe4, 0);
        assert_eq!(pit.port_read(0x41, 0) & 0x40, 0);
    }

    #[test]
    fn bcd_counting() {
        let mut pit = Pit::new();
        pit.port_write(0x43, 0x35, 0); // counter 0, lohi, mode 2, BCD
        pit.port_write(0x40, 0x00, 0);
        pit.port_write(0x40, 0x10, 0); // BCD 1000
        assert_eq!(pit.state().channels[0].reload, 1000);
        assert_eq!(pit.next_irq_ns(), Some(periodic_edge(0, 1000, 1)));
        // 100 clocks later the counter reads BCD 900.
        assert_eq!(latched_count(&mut pit, 0, 83_810), 0x0900);
        // BCD 0 means 10000.
        program(&mut pit, 1, 0, 0, 0);
        pit.port_write(0x43, 0x71, 0);
        pit.port_write(0x41, 0, 0);
        pit.port_write(0x41, 0, 0);
        assert_eq!(pit.state().channels[1].reload, 10_000);
    }

    #[test]
    fn square_wave_reads_by_two() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 3, 1000, 0);
        // 100 clocks into the high half: 1000 - 200.
        assert_eq!(latched_count(&mut pit, 0, 83_810), 800);
        // 600 clocks: 100 clocks into the low half.
        assert_eq!(latched_count(&mut pit, 0, 502_858), 800);
        pit.port_write(0x43, 0xe2, 502_858);
        assert_eq!(pit.port_read(0x40, 0) & 0x80, 0);
    }

    /// Linux's PIT TSC calibration: gate on, channel 2 mode 0, spin on OUT2.
    #[test]
    fn channel_2_calibration_via_port_61() {
        let mut pit = Pit::new();
        let port_b = pit.port_read(0x61, 0);
        pit.port_write(0x61, (port_b & !0x02) | 0x01, 0);
        program(&mut pit, 2, 0, 11_932, 10);
        let done = periodic_edge(10, 11_932, 1);
        assert_eq!(pit.port_read(0x61, done - 1) & 0x20, 0);
        assert_eq!(pit.port_read(0x61, done) & 0x20, 0x20);
        assert_eq!(pit.port_read(0x61, done) & 0x0f, 0x01);
        // Channel 2 never produces IRQ0.
        assert_eq!(pit.next_irq_ns(), None);
    }

    #[test]
    fn channel_2_gate_pauses_and_restarts() {
        let mut pit = Pit::new();
        // Gate low: count loaded but not counting.
        program(&mut pit, 2, 0, 1000, 0);
        assert_eq!(latched_count(&mut pit, 2, 1_000_000), 1000);
        pit.port_write(0x61, 0x01, 1_000_000);
        assert_eq!(latched_count(&mut pit, 2, 1_083_810), 900);
        // Gate low pauses mode 0, gate high resumes.
        pit.port_write(0x61, 0x00, 1_083_810);
        assert_eq!(latched_count(&mut pit, 2, 9_000_000), 900);
        pit.port_write(0x61, 0x01, 9_000_000);
        assert_eq!(latched_count(&mut pit, 2, 9_083_810), 800);
        // Mode 2 restarts from the initial count on a rising gate.
        program(&mut pit, 2, 2, 500, 10_000_000);
        assert_eq!(latched_count(&mut pit, 2, 10_083_810), 400);
        pit.port_write(0x61, 0x00, 10_083_810);
        pit.port_write(0x61, 0x01, 20_000_000);
        assert_eq!(latched_count(&mut pit, 2, 20_000_000), 500);
        // Mode 1 waits for the trigger.
        program(&mut pit, 2, 1, 300, 30_000_000);
        pit.port_write(0x43, 0xe8, 30_000_000);
        assert_eq!(pit.port_read(0x42, 0) & 0x80, 0x80);
        pit.port_write(0x61, 0x00, 30_000_000);
        pit.port_write(0x61, 0x01, 31_000_000);
        assert_eq!(pit.port_read(0x61, 31_000_001) & 0x20, 0);
        assert_eq!(pit.port_read(0x61, 32_000_000) & 0x20, 0x20);
    }

    #[test]
    fn refresh_bit_toggles() {
        let mut pit = Pit::new();
        let a = pit.port_read(0x61, 0) & 0x10;
        let b = pit.port_read(0x61, 16_000) & 0x10;
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_ports() {
        let mut pit = Pit::new();
        let before = pit.state();
        pit.port_write(0x44, 0x34, 0);
        assert_eq!(pit.port_read(0x43, 0), 0xff);
        assert_eq!(pit.port_read(0x60, 0), 0xff);
        assert_eq!(pit.state(), before);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut pit = Pit::new();
        program(&mut pit, 0, 2, 0, u64::MAX - 10);
        assert_eq!(pit.next_irq_ns(), None);
        assert_eq!(pit.take_irqs(u64::MAX), 0);
        program(&mut pit, 0, 2, 1, 0);
        assert_eq!(pit.take_irqs(u64::MAX), clocks_between(0, u64::MAX));
        // The next edge lies beyond the representable range.
        assert_eq!(pit.next_irq_ns(), None);
        latched_count(&mut pit, 0, u64::MAX);
        // Time going backwards is clamped, not a panic.
        program(&mut pit, 0, 0, 5, 1_000);
        assert_eq!(pit.take_irqs(0), 0);
        latched_count(&mut pit, 0, 0);
    }

    #[test]
    fn state_round_trip_gives_identical_future() {
        let mut a = Pit::new();
        program(&mut a, 0, 2, HZ_1000_COUNT, 0);
        program(&mut a, 2, 3, 5000, 0);
        a.port_write(0x61, 0x01, 10);
        a.take_irqs(3_500_000);
        // Snapshot in the middle of reading a latched count.
        a.port_write(0x43, 0x00, 3_600_000);
        a.port_read(0x40, 3_600_000);
        assert!(a.state().channels[0].latched_count.is_some());
        let mut b = Pit::from_state(&a.state());
        assert_eq!(a, b);
        let mut now = 3_700_000;
        for i in 0..500u64 {
            now += 997 * (i % 7 + 1);
            assert_eq!(a.next_irq_ns(), b.next_irq_ns());
            assert_eq!(a.take_irqs(now), b.take_irqs(now));
            assert_eq!(
                a.port_read(0x40 + (i % 3) as u16, now),
                b.port_read(0x40 + (i % 3) as u16, now)
            );
            assert_eq!(a.port_read(0x61, now), b.port_read(0x61, now));
            if i == 250 {
                program(&mut a, 0, 0, 3000, now);
                program(&mut b, 0, 0, 3000, now);
            }
        }
        assert_eq!(a.state(), b.state());
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    /// Random port traffic at random (mostly increasing) times: never a
    /// panic, and `next_irq_ns` always agrees with `take_irqs`.
    #[test]
    fn fuzz_never_panics_and_stays_consistent() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let ports = [0x40u16, 0x41, 0x42, 0x43, 0x43, 0x61, 0x44];
        for _ in 0..32 {
            let mut pit = Pit::new();
            let mut now: u64 = 0;
            for _ in 0..3_000 {
                let r = rng.next();
                now = match r % 50 {
                    0 => now.saturating_sub(r >> 40),
                    1 => u64::MAX - (r >> 50),
                    _ => now.saturating_add((r >> 20) % 5_000_000),
                };
                let port = ports[((r >> 8) % ports.len() as u64) as usize];
                let value = (r >> 16) as u8;
                match (r >> 24) % 5 {
                    0 | 1 => pit.port_write(port, value, now),
                    2 => {
                        pit.port_read(port, now);
                    }
                    3 => {
                        pit.take_irqs(now);
                    }
                    _ => {
                        if let Some(t) = pit.next_irq_ns() {
                            let mut probe = pit.clone();
                            if t > 0 {
                                assert_eq!(probe.take_irqs(t - 1), 0);
                            }
                            assert!(probe.take_irqs(t) >= 1);
                        }
                        assert_eq!(Pit::from_state(&pit.state()), pit);
                    }
                }
            }
        }
    }
}
