//! Building a [`Snapshot`] of the focus VM from the session: registers,
//! disassembly around RIP with `function+offset`, the source around the
//! current line, the call stack with its variables, a few rows of memory.
//! Runs on the worker thread, while it holds the session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iced_x86::{
    Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, SymbolResolver, SymbolResult,
};
use vmrr_backend::Machine;
use vmrr_debugger::describe::printable;
use vmrr_debugger::dwarf::Program;
use vmrr_debugger::session::Session;
use vmrr_debugger::symbols::SymbolTable;

use vmrr_backend::regs::GeneralRegs;

use crate::state::{DisasmLine, MemSource, MemoryView, Snapshot, SourceView};

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
pub fn disassemble(
    m: &Machine,
    program: &Program,
    sources: &mut Sources,
    breakpoints: &[u64],
) -> Vec<DisasmLine> {
    let symbols = program.symbols();
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
    let mut last_line = None;
    instrs[first..]
        .iter()
        .map(|i| {
            // The mixed view heads each change of source line with its text.
            let line = program.line_at(i.ip());
            let key = line.as_ref().map(|l| (l.file, l.line));
            let source = match line {
                Some(l) if key != last_line => {
                    let text = program
                        .file_path(l.file)
                        .and_then(|p| sources.get(p, &l.file_name).ok())
                        .and_then(|lines| lines.get(l.line as usize - 1).cloned())
                        .unwrap_or_default();
                    Some((l.file_name, l.line, text))
                }
                _ => None,
            };
            last_line = key;
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
                source,
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

/// Source files read so far, by path: the worker reads each once.
#[derive(Debug, Default)]
pub struct Sources {
    files: HashMap<PathBuf, Result<Arc<Vec<String>>, String>>,
}

/// A line of a source file as a terminal may show it: tabs expanded to
/// the next multiple of 4, other control characters made visible.
fn clean_line(line: &str) -> String {
    let mut out = String::new();
    for c in line.trim_end_matches('\r').chars() {
        if c == '\t' {
            let pad = 4 - out.chars().count() % 4;
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.push(c);
        }
    }
    printable(&out)
}

impl Sources {
    /// The lines of the source file built at `path` (also looked for as
    /// `name` under the current directory: the tree may have moved).
    pub fn get(&mut self, path: &Path, name: &str) -> Result<Arc<Vec<String>>, String> {
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let text = std::fs::read(path)
                    .or_else(|_| std::fs::read(name))
                    .map_err(|e| format!("source {name} not found ({e})"))?;
                let text = String::from_utf8_lossy(&text);
                Ok(Arc::new(text.lines().map(clean_line).collect()))
            })
            .clone()
    }
}

/// The source view at `rip`: its file read through `sources`.
fn source_view(
    program: &Program,
    sources: &mut Sources,
    rip: u64,
    breakpoints: &[u64],
) -> Option<SourceView> {
    let at = program.line_at(rip)?;
    let path = program.file_path(at.file)?;
    let (lines, error) = match sources.get(path, &at.file_name) {
        Ok(lines) => (lines, None),
        Err(e) => (Arc::new(Vec::new()), Some(e)),
    };
    let mut bp_lines: Vec<u32> = breakpoints
        .iter()
        .filter_map(|&a| program.line_at(a))
        .filter(|l| l.file == at.file)
        .map(|l| l.line)
        .collect();
    bp_lines.dedup();
    Some(SourceView {
        file_name: at.file_name,
        lines,
        current: at.line,
        breakpoints: bp_lines,
        error,
    })
}

/// A snapshot of the focus VM at the cursor.
pub fn build(
    session: &mut Session,
    programs: &[Arc<Program>],
    sources: &mut Sources,
    mem: &MemSource,
) -> Snapshot {
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
    let empty = Arc::new(Program::default());
    let program = programs.get(focus as usize).unwrap_or(&empty).clone();
    let pos = session.position(focus);
    match pos.and_then(|p| session.machine(focus).map(|m| (p, m))) {
        Ok((pos, m)) => {
            let regs = m.general_regs();
            snap.icount = pos.icount;
            snap.vtime = pos.vtime_ns;
            snap.disasm = disassemble(m, &program, sources, &breakpoints);
            snap.memory = memory(m, &regs, mem);
            snap.source = source_view(&program, sources, regs.rip(), &breakpoints);
            snap.regs = Some(regs);
        }
        Err(e) => snap.error = Some(e.to_string()),
    }
    if snap.error.is_none() && program.has_source() {
        snap.stack = session.source_stack(focus, &program).unwrap_or_default();
    }
    snap
}
