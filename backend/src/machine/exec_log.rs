//! The execution log: while it is on, the engine notes the address of every
//! instruction it is about to step and every 8-byte word of guest-physical
//! memory the instruction writes (words, not cache lines: a variable next to
//! a busy one must not look written whenever its neighbour is). Recording keeps one log per checkpoint
//! slice, so that a later search ("where does execution next reach address
//! A, write line L") replays only the slices that can hold the answer.
//!
//! The log is a filter, never the answer: it may hold more than happened
//! (a conditional write that did not write, a whole stack range) but must
//! never hold less. What it covers:
//! * every instruction's explicit and implicit memory operands (iced-x86's
//!   `used_memory`: `mov`, `push`, `call`, `xchg`, string instructions …),
//!   translated to guest-physical words through the guest's page tables;
//! * a `rep` string instruction's chunk, from RDI before and after the step;
//! * an interrupt's or exception's frame: the stack between RSP after and
//!   before the step, and the first instruction of an interrupt's handler;
//! * everything else — writes by the devices (virtio DMA), by the CPU itself
//!   (accessed/dirty bits) — is covered by the recorder, which marks the
//!   dirty pages no logged word explains as written whole.

use iced_x86::{Instruction, InstructionInfoFactory, Mnemonic, OpAccess};

use super::Machine;
use crate::memory;
use crate::regs::address_register;

/// Bytes in one word of the write log.
pub const WORD_BYTES: u64 = 8;
/// A stack range larger than this between RSP before and after a step is a
/// stack switch (`mov rsp, …`), not a frame: it is not logged as written.
const MAX_FRAME_BYTES: u64 = 512;

/// What one VM executed and wrote since the log was last taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecLog {
    /// Guest-virtual addresses of the instructions stepped, sorted, unique.
    pub addrs: Vec<u64>,
    /// Guest-physical 8-byte words written (address / 8), sorted, unique.
    pub words: Vec<u64>,
}

/// The log being gathered (unsorted; sorted when taken).
#[derive(Default)]
pub(super) struct LogState {
    pub(super) on: bool,
    addrs: Vec<u64>,
    words: Vec<u64>,
    factory: Option<InstructionInfoFactory>,
}

impl std::fmt::Debug for LogState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogState")
            .field("on", &self.on)
            .field("addrs", &self.addrs.len())
            .field("words", &self.words.len())
            .finish()
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

impl Machine {
    /// Turns the execution log on or off (off: nothing is noted; what was
    /// gathered is kept until taken).
    pub fn set_exec_log(&mut self, on: bool) {
        self.log.on = on;
    }

    /// Takes what was logged since the last call.
    pub fn take_exec_log(&mut self) -> ExecLog {
        ExecLog {
            addrs: sorted(std::mem::take(&mut self.log.addrs)),
            words: sorted(std::mem::take(&mut self.log.words)),
        }
    }

    /// Notes the instruction about to be stepped.
    pub(super) fn log_rip(&mut self, rip: u64) {
        if self.log.on {
            self.log.addrs.push(rip);
        }
    }

    /// Notes `[va, va + len)` as written, word by word, through the page tables.
    fn log_write(&mut self, va: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mode = self.paging();
        let end = va.saturating_add(len);
        let mut at = va;
        while at < end {
            // One page at a time: each may map elsewhere.
            let page_end = (at | (memory::PAGE_SIZE - 1)).saturating_add(1).min(end);
            if let Ok(pa) = memory::translate(&self.ram, &mode, at) {
                let last = pa + (page_end - at - 1);
                self.log.words.extend(pa / WORD_BYTES..=last / WORD_BYTES);
            }
            if page_end <= at {
                break;
            }
            at = page_end;
        }
    }

    /// The memory `instr` writes when it runs with the registers as they
    /// are (or with RSP replaced by `rsp`): logged. String instructions with a
    /// `rep` prefix are logged after their step, from RDI (see
    /// [`Machine::log_after_step`]).
    pub(super) fn log_writes_of(&mut self, instr: &Instruction, rsp: Option<u64>) {
        if !self.log.on || instr.is_invalid() {
            return;
        }
        let mut regs = self.vcpu.sync_regs().regs;
        let sregs = self.vcpu.sync_regs().sregs;
        if let Some(rsp) = rsp {
            regs.rsp = rsp;
        }
        let factory = self.log.factory.get_or_insert_with(InstructionInfoFactory::new);
        let mut writes: Vec<(u64, u64)> = Vec::new();
        let rep_string = instr.has_rep_prefix() || instr.has_repne_prefix();
        for mem in factory.info(instr).used_memory() {
            let writes_it = matches!(
                mem.access(),
                OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
            );
            if !writes_it {
                continue;
            }
            let size = mem.memory_size().size() as u64;
            if size == 0 || rep_string {
                continue; // a rep string chunk: logged after the step
            }
            if let Some(addr) = mem.virtual_address(0, |reg, _, _| address_register(&regs, &sregs, reg)) {
                writes.push((addr, size));
            }
        }
        for (addr, size) in writes {
            self.log_write(addr, size);
        }
    }

    /// After a step: the stack a frame was pushed on (RSP went down by a
    /// frame's worth), and the chunk a `rep` string instruction wrote.
    pub(super) fn log_after_step(&mut self, before: &kvm_bindings::kvm_regs, instr: Option<&Instruction>) {
        if !self.log.on {
            return;
        }
        let after = self.vcpu.sync_regs().regs;
        if after.rsp < before.rsp && before.rsp - after.rsp <= MAX_FRAME_BYTES {
            self.log_write(after.rsp, before.rsp - after.rsp);
        }
        let Some(instr) = instr else {
            return;
        };
        let stores = matches!(
            instr.mnemonic(),
            Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd | Mnemonic::Stosq
        ) || matches!(
            instr.mnemonic(),
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq
        );
        if stores && (instr.has_rep_prefix() || instr.has_repne_prefix()) {
            // RDI moved over what this chunk stored (down, with DF set).
            let (lo, hi) = if after.rdi >= before.rdi {
                (before.rdi, after.rdi)
            } else {
                (after.rdi.saturating_add(1), before.rdi.saturating_add(1))
            };
            // Plus one element either way: the last store ends past RDI.
            let elem = u64::from(instr.memory_size().size() as u32).max(1);
            self.log_write(lo.saturating_sub(elem), hi - lo + 2 * elem);
        }
    }

    /// The first instruction of the handler of interrupt `vector` runs in
    /// the same step as the delivery: log its writes too, with RSP where the
    /// delivery leaves it (its stack frame is logged from RSP after the step).
    pub(super) fn log_handler_entry(&mut self, vector: u8, rsp_before: u64) {
        if !self.log.on || self.bitness() != 64 {
            return;
        }
        let idt = self.vcpu.sync_regs().sregs.idt;
        let mut gate = [0u8; 16];
        if self.read_virt(idt.base + u64::from(vector) * 16, &mut gate) < 16 {
            return;
        }
        let word = |i: usize| u64::from(u16::from_le_bytes([gate[i], gate[i + 1]]));
        let high = u64::from(u32::from_le_bytes([gate[8], gate[9], gate[10], gate[11]]));
        let handler = word(0) | (word(6) << 16) | (high << 32);
        let mut bytes = [0u8; 15];
        let n = self.read_virt(handler, &mut bytes);
        let instr = crate::decode::instruction(&bytes[..n], handler, 64);
        // A 64-bit delivery aligns RSP to 16 and pushes SS, RSP, RFLAGS, CS, RIP.
        let rsp = (rsp_before & !0xf) - 40;
        self.log_writes_of(&instr, Some(rsp));
    }
}
