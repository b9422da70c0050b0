//! Building a [`Snapshot`] of the focus VM from the session: registers,
//! disassembly around RIP with `function+offset`, a few rows of memory.
//! Runs on the worker thread, while it holds the session.

use std::sync::Arc;

use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, SymbolResolver, SymbolResult,
};
use vmrr_backend::Machine;
use vmrr_debugger::session::Session;
use vmrr_debugger::symbols::SymbolTable;

use vmrr_backend::regs::GeneralRegs;

use crate::state::{DisasmLine, MemSource, MemoryView, Snapshot};

/// Instructions kept before RIP (the view shows as many as fit).
const LINES_BEFORE: usize = 16;
/// Instructions kept from RIP on.
const LINES_AFTER: usize = 40;
/// Decoding starts at the containing function when it begins at most this
/// far before RIP: x86 cannot be decoded backwards, and a function start is
/// the one place known to be an instruction boundary.
const MAX_FUNCTION_LEAD: u64 = 4096;
/// Bytes of memory fetched for the memory view.
pub const MEMORY_BYTES: usize = 512;

/// Lets iced-x86 print branch targets and RIP-relative operands as symbols.
struct Resolver(Arc<SymbolTable>);

impl SymbolResolver for Resolver {
    fn symbol(
        &mut self,
        _instruction: &Instruction,
        _operand: u32,
        _instruction_operand: Option<u32>,
        address: u64,
        _address_size: u32,
    ) -> Option<SymbolResult<'_>> {
        let text = self.0.describe(address)?;
        Some(SymbolResult::with_string(address, text))
    }
}

/// Decodes the code around RIP: from the start of the containing function
/// (if near) so the lines before RIP are real instruction boundaries.
pub fn disassemble(m: &Machine, symbols: &Arc<SymbolTable>, breakpoints: &[u64]) -> Vec<DisasmLine> {
    let rip = m.general_regs().rip();
    let bitness = m.bitness();
    let start = symbols
        .containing(rip)
        .filter(|(_, off)| *off <= MAX_FUNCTION_LEAD)
        .map(|(s, _)| s.addr)
        .unwrap_or(rip);
    let decode_from = |start: u64| -> Vec<Instruction> {
        let len = (rip - start) as usize + LINES_AFTER * 15;
        let mut bytes = vec![0u8; len];
        let n = m.read_virt(start, &mut bytes);
        bytes.truncate(n);
        let mut decoder = Decoder::with_ip(bitness, &bytes, start, DecoderOptions::NONE);
        let mut out = Vec::new();
        while decoder.can_decode() {
            let i = decoder.decode();
            if i.is_invalid() && i.ip() >= rip {
                break;
            }
            out.push(i);
            if i.ip() > rip && out.iter().filter(|x| x.ip() > rip).count() >= LINES_AFTER {
                break;
            }
        }
        out
    };
    let mut instrs = decode_from(start);
    // Data inside the function can put the decoder off RIP's boundary.
    if !instrs.iter().any(|i| i.ip() == rip) {
        instrs = decode_from(rip);
    }
    let at = instrs.iter().position(|i| i.ip() == rip).unwrap_or(0);
    let first = at.saturating_sub(LINES_BEFORE);
    let mut formatter = IntelFormatter::with_options(Some(Box::new(Resolver(symbols.clone()))), None);
    formatter.options_mut().set_space_after_operand_separator(true);
    formatter.options_mut().set_hex_prefix("0x");
    formatter.options_mut().set_hex_suffix("");
    formatter.options_mut().set_uppercase_hex(false);
    formatter.options_mut().set_branch_leading_zeros(false);
    formatter.options_mut().set_leading_zeros(false);
    instrs[first..]
        .iter()
        .map(|i| {
            let mut text = String::new();
            if i.is_invalid() {
                text.push_str("(bad)");
            } else {
                formatter.format(i, &mut text);
            }
            DisasmLine {
                addr: i.ip(),
                label: symbols.describe(i.ip()).unwrap_or_default(),
                text,
                current: i.ip() == rip,
                breakpoint: breakpoints.contains(&i.ip()),
            }
        })
        .collect()
}

/// The memory view's bytes.
pub fn memory(m: &Machine, regs: &GeneralRegs, source: &MemSource) -> MemoryView {
    let (addr, label) = match source {
        MemSource::Register(r) => (regs[*r], r.name().to_string()),
        MemSource::Fixed(a, text) => (*a, text.clone()),
    };
    // Start on a 16-byte boundary so rows line up with addresses.
    let addr = addr & !0xf;
    let mut buf = vec![0u8; MEMORY_BYTES];
    let n = m.read_virt(addr, &mut buf);
    let bytes = buf
        .iter()
        .enumerate()
        .map(|(i, b)| (i < n).then_some(*b))
        .collect();
    MemoryView { addr, label, bytes }
}

/// A snapshot of the focus VM at the cursor.
pub fn build(session: &mut Session, symbols: &[Arc<SymbolTable>], mem: &MemSource) -> Snapshot {
    let focus = session.focus();
    let mut snap = Snapshot {
        generation: session.generation(),
        cursor: session.cursor(),
        cursor_event: session.cursor_event(),
        cursor_vtime: session.cursor_vtime(),
        focus: focus as usize,
        ..Snapshot::default()
    };
    let breakpoints: Vec<u64> = session
        .breakpoints()
        .iter()
        .filter(|b| b.vm.is_none_or(|v| v == focus))
        .map(|b| b.addr)
        .collect();
    let empty = Arc::new(SymbolTable::default());
    let table = symbols.get(focus as usize).unwrap_or(&empty);
    let pos = session.position(focus);
    match pos.and_then(|p| session.machine(focus).map(|m| (p, m))) {
        Ok((pos, m)) => {
            let regs = m.general_regs();
            snap.icount = pos.icount;
            snap.vtime = pos.vtime_ns;
            snap.disasm = disassemble(m, table, &breakpoints);
            snap.memory = memory(m, &regs, mem);
            snap.regs = Some(regs);
        }
        Err(e) => snap.error = Some(e.to_string()),
    }
    snap
}
