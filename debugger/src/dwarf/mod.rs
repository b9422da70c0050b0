//! Source-level knowledge of a guest image, from its DWARF (read with
//! `gimli`): line tables (address ⇄ `file:line`), functions and their
//! inlined calls, call-frame information from `.debug_frame` to unwind the
//! stack, and where each variable lives (registers, stack slots, location
//! lists) so its value can be read at any position of a trace.
//!
//! One [`Program`] per image joins this to the image's ELF symbols, so the
//! TUI, the gdb bridge and future analyses (`calls`) name code the same way.
//! A [`Program`] reads nothing from a VM by itself: the values come through
//! a [`Target`] (the machine at the cursor), so the same code serves any
//! position.
//!
//! Everything here reads a file that came from outside: a damaged or
//! missing section is an error or an empty answer, never a panic.

mod eval;
mod lines;
mod location;
mod scopes;
mod signature;
mod unwind;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gimli::{EndianArcSlice, LittleEndian};

pub use eval::{Variable, VariableKind};
pub use lines::{LineRow, SourceLine};
pub use location::{parse_watch, Resolved, WatchExpr};
pub use scopes::FunctionScope;
pub use signature::{Param, Signature, ValueType};
pub use unwind::{FrameRegs, PhysicalFrame};

use crate::symbols::SymbolTable;
use crate::trace::Trace;

/// The reader type for every section: shared, so a [`Program`] can be
/// used from several threads.
pub(crate) type R = EndianArcSlice<LittleEndian>;

/// What can go wrong reading or using an image's debugging information.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    /// The image file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image is not an ELF file object can read.
    #[error("not a readable ELF image: {0}")]
    Elf(#[source] object::read::Error),
    /// The ELF symbol table is damaged.
    #[error("{0}")]
    Symbols(String),
    /// The DWARF is damaged.
    #[error("damaged debugging information: {0}")]
    Dwarf(#[source] gimli::Error),
    /// The image has no line table (built without `-g`).
    #[error("the image has no debugging information (build it with -g)")]
    NoDebugInfo,
    /// No source file of that name.
    #[error("no source file '{0}' in this image")]
    NoSuchFile(String),
    /// The file has no code at or after that line.
    #[error("no code at or after {file}:{line}")]
    NoCode {
        /// The file as the user wrote it.
        file: String,
        /// The line.
        line: u64,
    },
    /// A location that is not a file:line, a function or an address.
    #[error("{0}")]
    BadLocation(String),
    /// A watch expression that cannot be watched.
    #[error("{0}")]
    BadWatch(String),
}

impl From<gimli::Error> for DwarfError {
    fn from(e: gimli::Error) -> Self {
        DwarfError::Dwarf(e)
    }
}

/// The registers and memory of a VM at some position, as the DWARF
/// evaluation needs them.
pub trait Target {
    /// A general register by its DWARF number (x86-64: 0 rax, 1 rdx, 2 rcx,
    /// 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8–15 r8–r15, 16 rip).
    fn dwarf_reg(&self, reg: u16) -> Option<u64>;
    /// Reads guest-virtual memory; the number of bytes that could be read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize;
}

/// The DWARF sections of an image, parsed once.
pub(crate) struct Debug {
    pub(crate) dwarf: gimli::Dwarf<R>,
    pub(crate) frame: gimli::DebugFrame<R>,
    pub(crate) lines: lines::LineTable,
    pub(crate) scopes: scopes::ScopeIndex,
}

/// One guest image as a debugger sees it: ELF symbols and, when the image
/// was built with `-g`, its DWARF.
pub struct Program {
    symbols: Arc<SymbolTable>,
    debug: Option<Debug>,
    /// Why the DWARF could not be used, for a view to say (an image
    /// without it still disassembles with symbols).
    debug_error: Option<String>,
}

impl Default for Program {
    fn default() -> Self {
        Program {
            symbols: Arc::new(SymbolTable::default()),
            debug: None,
            debug_error: Some("no image".into()),
        }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("symbols", &self.symbols.symbols().len())
            .field("dwarf", &self.debug.is_some())
            .finish()
    }
}

/// A section's bytes, or an empty section when the image has none.
fn section(file: &object::File<'_>, name: &str) -> Result<R, DwarfError> {
    use object::{Object, ObjectSection};
    let data: &[u8] = match file.section_by_name(name) {
        Some(s) => s.data().map_err(DwarfError::Elf)?,
        None => &[],
    };
    Ok(EndianArcSlice::new(Arc::from(data), LittleEndian))
}

impl Program {
    /// Reads an ELF image: its symbols (an error if damaged) and its DWARF
    /// (kept as [`Program::debug_error`] if missing or damaged: symbols
    /// alone are still useful).
    pub fn from_elf(bytes: &[u8]) -> Result<Program, DwarfError> {
        let symbols = SymbolTable::from_elf(bytes).map_err(DwarfError::Symbols)?;
        let (debug, debug_error) = match Self::read_dwarf(bytes) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Program {
            symbols: Arc::new(symbols),
            debug,
            debug_error,
        })
    }

    fn read_dwarf(bytes: &[u8]) -> Result<Debug, DwarfError> {
        let file = object::File::parse(bytes).map_err(DwarfError::Elf)?;
        let sections = gimli::DwarfSections::load(|id| section(&file, id.name()))?;
        let dwarf = sections.borrow(|s| s.clone());
        let mut frame = gimli::DebugFrame::from(section(&file, ".debug_frame")?);
        // CIEs before version 4 do not say; the kit's images are x86-64.
        frame.set_address_size(8);
        let lines = lines::LineTable::read(&dwarf)?;
        if lines.is_empty() {
            return Err(DwarfError::NoDebugInfo);
        }
        let scopes = scopes::ScopeIndex::read(&dwarf)?;
        Ok(Debug {
            dwarf,
            frame,
            lines,
            scopes,
        })
    }

    /// Reads the image at `path`.
    pub fn load(path: &Path) -> Result<Program, DwarfError> {
        let bytes = std::fs::read(path).map_err(|source| DwarfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Program::from_elf(&bytes)
    }

    /// The image of VM `vm` inside `trace` (its copy under `images/`).
    pub fn for_vm(trace: &Trace, vm: usize) -> Result<Program, DwarfError> {
        let spec = trace
            .config()
            .vms
            .get(vm)
            .ok_or_else(|| DwarfError::BadLocation(format!("no VM number {} in this trace", vm + 1)))?;
        let path = if spec.image.is_absolute() {
            spec.image.clone()
        } else {
            trace.dir().join(&spec.image)
        };
        Program::load(&path)
    }

    /// The ELF symbols.
    pub fn symbols(&self) -> &Arc<SymbolTable> {
        &self.symbols
    }

    /// Whether DWARF is there (a source view is possible).
    pub fn has_source(&self) -> bool {
        self.debug.is_some()
    }

    /// Why there is no DWARF, if there is none.
    pub fn debug_error(&self) -> Option<&str> {
        self.debug_error.as_deref()
    }

    /// The source line of `addr`: the line-table row covering it.
    pub fn line_at(&self, addr: u64) -> Option<SourceLine> {
        self.debug.as_ref()?.lines.line_at(addr)
    }

    /// The addresses of the source line `addr` is on, as `next` steps over
    /// it: from the line-table row covering `addr` to the next row of
    /// another line (or file). `None` without line information.
    pub fn line_range(&self, addr: u64) -> Option<(u64, u64)> {
        let here = self.line_at(addr)?;
        // Rows of one line follow each other; a line longer than this is
        // stepped in parts, which `next` handles by stopping early.
        const LOOKAHEAD: u64 = 0x1_0000;
        let end = self
            .rows_between(here.addr.saturating_add(1), here.addr.saturating_add(LOOKAHEAD))
            .into_iter()
            .find(|r| r.addr > addr && (r.line != here.line || r.file != here.file))
            .map_or(here.addr.saturating_add(LOOKAHEAD), |r| r.addr);
        Some((here.addr, end))
    }

    /// Every line-table row, by address (for the mixed view).
    pub fn rows_between(&self, start: u64, end: u64) -> Vec<SourceLine> {
        match &self.debug {
            Some(d) => d.lines.rows_between(start, end),
            None => Vec::new(),
        }
    }

    /// The path of source file `file` as the image names it (for reading it).
    pub fn file_path(&self, file: usize) -> Option<&Path> {
        self.debug.as_ref()?.lines.path(file)
    }

    /// The call stack at the VM's position: physical frames unwound with
    /// `.debug_frame` (or frame pointers where there is no CFI), each with
    /// the functions inlined at its pc and their variables. At most `depth`
    /// physical frames.
    pub fn stack(&self, target: &dyn Target, depth: usize) -> Vec<FunctionScope> {
        let Some(debug) = &self.debug else {
            return Vec::new();
        };
        let frames = unwind::unwind(debug, target, depth);
        let mut out = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            // A return address is just past the call: look up the call itself.
            let lookup = if i == 0 {
                frame.pc
            } else {
                frame.pc.wrapping_sub(1)
            };
            let mut scopes = scopes::scopes_at(debug, &self.symbols, lookup, frame, target);
            if scopes.is_empty() {
                scopes.push(FunctionScope::unknown(frame, &self.symbols, i));
            }
            for s in &mut scopes {
                s.frame = i;
            }
            out.extend(scopes);
        }
        out
    }
}

impl Program {
    /// Where the frame `target` stands in returns to — the caller's pc and
    /// the stack pointer once it has returned (the frame's CFA) — from the
    /// call-frame information, or the frame-pointer chain where there is
    /// none. `None` without debug information or at the outermost frame.
    pub fn return_site(&self, target: &dyn Target) -> Option<(u64, u64)> {
        let debug = self.debug.as_ref()?;
        let frames = unwind::unwind(debug, target, 2);
        let (callee, caller) = (frames.first()?, frames.get(1)?);
        Some((caller.pc, callee.cfa?))
    }
}

/// The x86-64 DWARF register number of each general register, in the order
/// of `vmrr_backend::regs::Gpr` (rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rip).
pub const DWARF_OF_GPR: [u16; 17] = [0, 3, 2, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// A [`Target`] over a live machine.
pub struct MachineTarget<'a>(pub &'a vmrr_backend::Machine);

impl Target for MachineTarget<'_> {
    fn dwarf_reg(&self, reg: u16) -> Option<u64> {
        let regs = self.0.general_regs();
        let i = DWARF_OF_GPR.iter().position(|&d| d == reg)?;
        Some(regs.0[i])
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        self.0.read_virt(addr, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_images_are_errors_not_panics() {
        assert!(Program::from_elf(b"").is_err());
        assert!(Program::from_elf(b"\x7fELF\x02\x01garbage").is_err());
        assert!(parse_watch("store[").is_err());
        assert!(parse_watch("a b").is_err());
        assert_eq!(
            parse_watch("0x10:4").ok(),
            Some(WatchExpr::Address { addr: 0x10, len: 4 })
        );
        assert_eq!(
            parse_watch("store[3]").ok(),
            Some(WatchExpr::Variable {
                name: "store".into(),
                index: Some(3)
            })
        );
    }

    #[test]
    fn an_image_without_dwarf_still_has_symbols() {
        let p = Program::default();
        assert!(!p.has_source());
        assert!(p.line_at(0x1000).is_none());
        assert!(p.resolve_location("kvstore.c:3").is_err());
    }
}
