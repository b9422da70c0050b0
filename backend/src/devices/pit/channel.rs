//! One 8254 counter: its mode, count, latches and read/write flip-flops,
//! and the clock arithmetic that places its output edges in virtual time
//! (see the parent module for the timing rules).

use serde::{Deserialize, Serialize};

use super::PIT_HZ;

const NS_PER_SEC: u128 = 1_000_000_000;

/// How a counter's data port transfers its 16-bit value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Only the low byte.
    Low,
    /// Only the high byte.
    High,
    /// Low byte, then high byte.
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

/// Input clocks elapsed between `t0` and `now` (zero if `now` is earlier).
pub(super) fn clocks_between(t0: u64, now: u64) -> u64 {
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
    pub(super) fn power_on() -> Self {
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
    pub(super) fn mode(&self) -> u8 {
        match (self.control >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        }
    }

    fn periodic(&self) -> bool {
        matches!(self.mode(), 2 | 3)
    }

    pub(super) fn access(&self) -> Access {
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
    pub(super) fn out(&self, now: u64) -> bool {
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
    pub(super) fn edge_ns(&self, k: u64) -> Option<u64> {
        time_of_clock(self.t0_ns, self.edge_clock(k)?)
    }

    /// Number of IRQ edges of this run at or before `now`; agrees with
    /// `edge_ns` because both compare elapsed clocks with the edge clock.
    pub(super) fn edges_by(&self, now: u64) -> u64 {
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
    pub(super) fn freeze(&mut self, now: u64) {
        if !self.running {
            return;
        }
        let passed = !self.periodic() && self.clocks(now) >= self.one_shot_clock();
        self.expired = self.expired || passed;
        self.held = u32::try_from(self.value(now)).unwrap_or(0);
        self.running = false;
    }

    pub(super) fn latch_count(&mut self, now: u64) {
        // Further latch commands are ignored until the latch has been read.
        if self.latched_count.is_none() {
            self.latched_count = Some(self.read_value(now));
            self.latch_high_next = self.access() == Access::High;
        }
    }

    pub(super) fn latch_status(&mut self, now: u64) {
        if self.latched_status.is_none() {
            self.latched_status = Some(self.status(now));
        }
    }

    /// A data-port read: latched status first, then a latched count, then
    /// the live counter.
    pub(super) fn read(&mut self, now: u64) -> u8 {
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
    pub(super) fn program(&mut self, control: u8, now: u64) {
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
    pub(super) fn count_write_changes_run(&self) -> bool {
        !matches!(self.mode(), 1 | 5)
    }

    /// A complete count was written: load it and, except in the gate
    /// triggered modes, start counting now (or once the gate goes high).
    pub(super) fn load(&mut self, raw: u16, now: u64, gate: bool) {
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
    pub(super) fn gate_fell(&mut self, now: u64) {
        if self.count_write_changes_run() {
            self.freeze(now);
        }
    }

    /// Gate input went high: modes 0 and 4 resume, the others (re)start
    /// from the initial count.
    pub(super) fn gate_rose(&mut self, now: u64) {
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
