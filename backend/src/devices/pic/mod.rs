//! Dual Intel 8259A programmable interrupt controller, wired as on the PC/AT.
//!
//! The master chip answers on ports 0x20/0x21 and the slave on 0xa0/0xa1; the
//! slave's INT output drives the master's IR2 input. vmrr has no in-kernel
//! irqchip, so the engine asks [`Pic::has_pending`] at instruction boundaries
//! and performs the INTA cycle itself with [`Pic::acknowledge`] when it
//! injects. Everything here is therefore a pure function of the sequence of
//! calls: no clocks, no host state, no hashing.
//!
//! Modelled: the ICW1..ICW4 initialisation sequence, OCW1 (mask), OCW2 (EOI,
//! specific EOI, the rotation commands), OCW3 (IRR/ISR read select, special
//! mask mode, poll), automatic EOI, special fully nested mode on the master,
//! and rotating or fixed priority. Level-triggered mode is only recorded
//! (the LTIM bit of ICW1): requests are always treated as edges.
//!
//! Simplifications a reader should know about:
//! * ICW3 is stored but not interpreted: the slave is always on master IR2.
//! * While the master is in cascade mode, [`Pic::raise_irq`] of line 2 is
//!   delivered to slave line 1 (IRQ 9), as the AT redirects the ISA IRQ2
//!   pin; in single mode line 2 is an ordinary master line.
//! * A chip that has never completed an initialisation sequence (or is in the
//!   middle of one) never asserts INT, so a guest cannot get vectors 0..7
//!   injected by an unprogrammed controller.

use serde::{Deserialize, Serialize};

/// The four I/O ports the pair decodes, for the port-I/O router.
pub const PORTS: [u16; 4] = [0x20, 0x21, 0xa0, 0xa1];

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;

/// The master input the slave's INT output is wired to.
const CASCADE_LINE: u8 = 2;
/// The slave input that receives requests for IRQ 2 in cascade mode (IRQ 9).
const IRQ2_REDIRECT_LINE: u8 = 1;

const ICW1_IC4: u8 = 0x01;
const ICW1_SNGL: u8 = 0x02;
const ICW1_INIT: u8 = 0x10;
const ICW4_AEOI: u8 = 0x02;
const ICW4_SFNM: u8 = 0x10;
const OCW3_SELECT: u8 = 0x08;
const OCW3_RIS: u8 = 0x01;
const OCW3_RR: u8 = 0x02;
const OCW3_POLL: u8 = 0x04;
const OCW3_SMM: u8 = 0x20;
const OCW3_ESMM: u8 = 0x40;

/// Where one chip is in its initialisation sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitStep {
    /// Never initialised since power-on: data-port writes go to the IMR, INT is never asserted.
    Uninitialised,
    /// ICW1 seen; the next data-port write is ICW2 (vector base).
    Icw2,
    /// The next data-port write is ICW3 (cascade wiring).
    Icw3,
    /// The next data-port write is ICW4 (mode bits).
    Icw4,
    /// Initialised: data-port writes are OCW1 and interrupts are delivered.
    Ready,
}

/// Registers of one 8259A. Fields are public so that a debugger front end can
/// display them; any combination of values is handled without panicking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicChip {
    /// Interrupt request register: latched edges not yet acknowledged.
    pub irr: u8,
    /// In-service register: acknowledged lines awaiting EOI.
    pub isr: u8,
    /// Interrupt mask register (OCW1); a set bit blocks that line.
    pub imr: u8,
    /// Last ICW1 (IC4, SNGL and LTIM bits are consulted).
    pub icw1: u8,
    /// Last ICW2; bits 7..3 are the vector base.
    pub icw2: u8,
    /// Last ICW3, stored only (the wiring is fixed).
    pub icw3: u8,
    /// Last ICW4 (AEOI and SFNM bits are consulted); zero when ICW1 had no IC4.
    pub icw4: u8,
    /// Progress of the initialisation sequence.
    pub init_step: InitStep,
    /// OCW3 read-register select: even-port reads return ISR when set, IRR otherwise.
    pub read_isr: bool,
    /// A poll command is armed: the next even-port read returns the poll word.
    pub poll: bool,
    /// Special mask mode (OCW3 ESMM/SMM).
    pub special_mask: bool,
    /// Rotate priority on automatic EOI (OCW2 R=1 SL=0 EOI=0).
    pub rotate_in_aeoi: bool,
    /// The line currently holding the lowest priority (7 under fixed priority); only bits 2..0 matter.
    pub lowest_priority: u8,
}

/// Snapshot of the whole controller pair; restoring it with
/// [`Pic::from_state`] reproduces the exact future behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicState {
    /// The chip at 0x20/0x21 (IRQ 0..7).
    pub master: PicChip,
    /// The chip at 0xa0/0xa1 (IRQ 8..15), cascaded on master IR2.
    pub slave: PicChip,
}

/// The dual-8259A device. All of its state is the [`PicState`] it wraps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pic {
    state: PicState,
}

impl PicChip {
    /// Power-on registers: uninitialised and fully masked.
    fn power_on() -> Self {
        PicChip {
            irr: 0,
            isr: 0,
            imr: 0xff,
            icw1: 0,
            icw2: 0,
            icw3: 0,
            icw4: 0,
            init_step: InitStep::Uninitialised,
            read_isr: false,
            poll: false,
            special_mask: false,
            rotate_in_aeoi: false,
            lowest_priority: 7,
        }
    }

    fn ready(&self) -> bool {
        self.init_step == InitStep::Ready
    }

    fn single(&self) -> bool {
        self.icw1 & ICW1_SNGL != 0
    }

    fn aeoi(&self) -> bool {
        self.icw4 & ICW4_AEOI != 0
    }

    fn vector(&self, line: u8) -> u8 {
        (self.icw2 & 0xf8) | (line & 7)
    }

    /// The eight lines, highest priority first.
    fn priority_order(&self) -> impl Iterator<Item = u8> {
        let first = self.lowest_priority.wrapping_add(1) & 7;
        (0..8u8).map(move |i| (first + i) & 7)
    }

    /// In special mask mode a masked in-service level stops inhibiting the
    /// levels below it; that is the whole point of the mode.
    fn blocking_isr(&self) -> u8 {
        if self.special_mask {
            self.isr & !self.imr
        } else {
            self.isr
        }
    }

    /// Highest-priority request that may interrupt what is in service.
    /// `requests` are the raw request bits (IRR plus any cascade input);
    /// lines in `nestable` may be requested again while in service (the
    /// cascade line under special fully nested mode, whose slave does its own
    /// priority resolution).
    fn best_request(&self, requests: u8, nestable: u8) -> Option<u8> {
        let pending = requests & !self.imr;
        let blocking = self.blocking_isr();
        for line in self.priority_order() {
            let bit = 1u8 << line;
            let in_service = blocking & bit != 0;
            if pending & bit != 0 && (!in_service || nestable & bit != 0) {
                return Some(line);
            }
            if in_service {
                return None;
            }
        }
        None
    }

    /// INTA for one line: the edge latch is consumed and, unless in AEOI
    /// mode, the line enters service.
    fn accept(&mut self, line: u8) {
        let bit = 1u8 << (line & 7);
        self.irr &= !bit;
        if self.aeoi() {
            if self.rotate_in_aeoi {
                self.lowest_priority = line & 7;
            }
        } else {
            self.isr |= bit;
        }
    }

    /// Highest-priority in-service level a non-specific EOI would retire.
    /// Per the datasheet, in special mask mode masked levels are skipped.
    fn eoi_candidate(&self) -> Option<u8> {
        let eligible = self.blocking_isr();
        self.priority_order().find(|&l| eligible & (1 << l) != 0)
    }

    /// ICW1: restart initialisation. The datasheet clears the IMR, resets
    /// the edge latches, gives IR7 lowest priority, leaves special mask mode
    /// and selects IRR for reads; we also clear the ISR so a stale in-service
    /// bit cannot block the freshly programmed chip forever.
    fn write_icw1(&mut self, value: u8) {
        self.icw1 = value;
        if value & ICW1_IC4 == 0 {
            self.icw4 = 0;
        }
        self.irr = 0;
        self.isr = 0;
        self.imr = 0;
        self.read_isr = false;
        self.poll = false;
        self.special_mask = false;
        self.rotate_in_aeoi = false;
        self.lowest_priority = 7;
        self.init_step = InitStep::Icw2;
    }

    fn write_ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, with or without rotation.
            0b001 | 0b101 => {
                if let Some(line) = self.eoi_candidate() {
                    self.isr &= !(1 << line);
                    if value & 0x80 != 0 {
                        self.lowest_priority = line;
                    }
                }
            }
            // Specific EOI, with or without rotation.
            0b011 | 0b111 => {
                self.isr &= !(1 << level);
                if value & 0x80 != 0 {
                    self.lowest_priority = level;
                }
            }
            0b100 => self.rotate_in_aeoi = true,
            0b000 => self.rotate_in_aeoi = false,
            0b110 => self.lowest_priority = level,
            // 0b010: no operation.
            _ => {}
        }
    }

    fn write_ocw3(&mut self, value: u8) {
        if value & OCW3_RR != 0 {
            self.read_isr = value & OCW3_RIS != 0;
        }
        if value & OCW3_ESMM != 0 {
            self.special_mask = value & OCW3_SMM != 0;
        }
        self.poll = value & OCW3_POLL != 0;
    }

    /// A write to the even (command) port: ICW1, OCW2 or OCW3 by bits 4..3.
    fn write_command(&mut self, value: u8) {
        if value & ICW1_INIT != 0 {
            self.write_icw1(value);
        } else if value & OCW3_SELECT != 0 {
            self.write_ocw3(value);
        } else {
            self.write_ocw2(value);
        }
    }

    /// A write to the odd (data) port: the next ICW during initialisation,
    /// OCW1 (the mask) otherwise.
    fn write_data(&mut self, value: u8) {
        let ic4 = self.icw1 & ICW1_IC4 != 0;
        let after_icw3 = if ic4 { InitStep::Icw4 } else { InitStep::Ready };
        self.init_step = match self.init_step {
            InitStep::Icw2 => {
                self.icw2 = value;
                if self.single() {
                    after_icw3
                } else {
                    InitStep::Icw3
                }
            }
            InitStep::Icw3 => {
                self.icw3 = value;
                after_icw3
            }
            InitStep::Icw4 => {
                self.icw4 = value;
                InitStep::Ready
            }
            step @ (InitStep::Uninitialised | InitStep::Ready) => {
                self.imr = value;
                step
            }
        };
    }
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl Pic {
    /// A pair in its power-on state: both chips uninitialised and masked.
    pub fn new() -> Self {
        Pic {
            state: PicState {
                master: PicChip::power_on(),
                slave: PicChip::power_on(),
            },
        }
    }

    /// Handle an OUT to 0x20, 0x21, 0xa0 or 0xa1; other ports are ignored.
    pub fn port_write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_COMMAND => self.state.master.write_command(value),
            MASTER_DATA => self.state.master.write_data(value),
            SLAVE_COMMAND => self.state.slave.write_command(value),
            SLAVE_DATA => self.state.slave.write_data(value),
            _ => {}
        }
    }

    /// Handle an IN from 0x20, 0x21, 0xa0 or 0xa1 (0xff for other ports).
    /// Even ports return IRR or ISR as selected by OCW3, or the poll word
    /// (which acknowledges, hence `&mut`) after a poll command; odd ports
    /// return the IMR.
    pub fn port_read(&mut self, port: u16) -> u8 {
        match port {
            MASTER_COMMAND => {
                if self.state.master.poll {
                    self.state.master.poll = false;
                    let (requests, nestable) = self.master_inputs();
                    return poll_word(&mut self.state.master, requests, nestable);
                }
                status_read(&self.state.master)
            }
            SLAVE_COMMAND => {
                if self.state.slave.poll {
                    self.state.slave.poll = false;
                    let requests = self.state.slave.irr;
                    return poll_word(&mut self.state.slave, requests, 0);
                }
                status_read(&self.state.slave)
            }
            MASTER_DATA => self.state.master.imr,
            SLAVE_DATA => self.state.slave.imr,
            _ => 0xff,
        }
    }

    /// Latch an edge on IRQ `irq` (0..15; larger numbers are ignored). The
    /// request is latched even when masked, as on the real part, and is
    /// delivered once unmasked.
    pub fn raise_irq(&mut self, irq: u8) {
        match irq {
            CASCADE_LINE if self.cascaded() => {
                self.state.slave.irr |= 1 << IRQ2_REDIRECT_LINE;
            }
            0..=7 => self.state.master.irr |= 1 << irq,
            8..=15 => self.state.slave.irr |= 1 << (irq - 8),
            _ => {}
        }
    }

    /// Whether the master asserts INT: an unmasked request (possibly from the
    /// slave through the cascade) of higher priority than everything in
    /// service.
    pub fn has_pending(&self) -> bool {
        self.master_choice().is_some()
    }

    /// Perform the INTA cycle: move the winning request from IRR to ISR
    /// (unless AEOI) on the master and, for a cascaded request, on the slave
    /// too, and return the vector the CPU should take. `None` when nothing
    /// is pending (the caller should then not inject anything).
    pub fn acknowledge(&mut self) -> Option<u8> {
        let line = self.master_choice()?;
        self.state.master.accept(line);
        if line == CASCADE_LINE && self.cascaded() {
            let slave = &mut self.state.slave;
            // The master only chose line 2 because the slave is requesting,
            // so the fallback (what a real slave answers with no request: a
            // spurious IR7) is unreachable in practice.
            return Some(match slave.best_request(slave.irr, 0) {
                Some(slave_line) => {
                    slave.accept(slave_line);
                    slave.vector(slave_line)
                }
                None => slave.vector(7),
            });
        }
        Some(self.state.master.vector(line))
    }

    /// Snapshot of both chips.
    pub fn state(&self) -> PicState {
        self.state.clone()
    }

    /// Rebuild a controller from a snapshot taken by [`Pic::state`].
    pub fn from_state(state: &PicState) -> Self {
        Pic { state: state.clone() }
    }

    /// The master is wired for a slave (ICW1 SNGL clear).
    fn cascaded(&self) -> bool {
        !self.state.master.single()
    }

    /// The slave's INT output.
    fn slave_int(&self) -> bool {
        let slave = &self.state.slave;
        slave.ready() && slave.best_request(slave.irr, 0).is_some()
    }

    /// The master's request inputs and nestable lines. In cascade mode IR2
    /// follows the slave's INT output instead of a latched edge, which keeps
    /// the two chips consistent however the guest orders its EOIs.
    fn master_inputs(&self) -> (u8, u8) {
        let master = &self.state.master;
        if !self.cascaded() {
            return (master.irr, 0);
        }
        let cascade_bit = 1u8 << CASCADE_LINE;
        let from_slave = if self.slave_int() { cascade_bit } else { 0 };
        let nestable = if master.icw4 & ICW4_SFNM != 0 {
            cascade_bit
        } else {
            0
        };
        ((master.irr & !cascade_bit) | from_slave, nestable)
    }

    /// The master line that would be acknowledged now, if INT is asserted.
    fn master_choice(&self) -> Option<u8> {
        if !self.state.master.ready() {
            return None;
        }
        let (requests, nestable) = self.master_inputs();
        self.state.master.best_request(requests, nestable)
    }
}

/// Even-port read without poll: IRR or ISR as selected by OCW3.
fn status_read(chip: &PicChip) -> u8 {
    if chip.read_isr {
        chip.isr
    } else {
        chip.irr
    }
}

/// Poll command read: bit 7 says whether a request is pending, bits 2..0
/// name it, and the request is acknowledged on this chip only (a polled
/// master does not run a cascade cycle; software polls the slave itself).
fn poll_word(chip: &mut PicChip, requests: u8, nestable: u8) -> u8 {
    if !chip.ready() {
        return 0;
    }
    match chip.best_request(requests, nestable) {
        Some(line) => {
            chip.accept(line);
            0x80 | line
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests;
