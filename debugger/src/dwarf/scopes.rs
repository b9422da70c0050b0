//! Functions and the scopes inside them: which function (and which chain
//! of inlined calls) an address is in, and the variables each scope
//! declares there.

use std::path::PathBuf;

use gimli::{constants, AttributeValue, Reader, UnitOffset};

use super::eval::{self, Variable, VariableKind};
use super::unwind::PhysicalFrame;
use super::{Debug, DwarfError, SourceLine, Target, R};
use crate::symbols::SymbolTable;

/// A concrete function's address range, pointing at its DIE.
#[derive(Debug, Clone, Copy)]
struct FunctionRange {
    begin: u64,
    end: u64,
    unit: usize,
    die: UnitOffset<usize>,
}

/// The units and an index of function ranges by address.
pub(crate) struct ScopeIndex {
    pub(crate) units: Vec<gimli::Unit<R>>,
    ranges: Vec<FunctionRange>,
}

/// One function activation as the source sees it: a physical frame's
/// function, or a function inlined into it (listed before the function it
/// was inlined into).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionScope {
    /// The function's name (`?` when unknown).
    pub name: String,
    /// Whether this function was inlined into the next scope of the list.
    pub inlined: bool,
    /// The physical frame it belongs to (0: the innermost).
    pub frame: usize,
    /// The frame's pc.
    pub pc: u64,
    /// Where in the source this scope stands: the current line for the
    /// innermost, the call site of the inlined function for the others.
    pub line: Option<SourceLine>,
    /// Its parameters and local variables, parameters first.
    pub vars: Vec<Variable>,
}

impl FunctionScope {
    /// A frame without DWARF: named by its ELF symbol.
    pub(crate) fn unknown(frame: &PhysicalFrame, symbols: &SymbolTable, index: usize) -> FunctionScope {
        FunctionScope {
            name: symbols
                .containing(frame.pc)
                .map(|(s, _)| s.name.clone())
                .unwrap_or_else(|| format!("{:#x}", frame.pc)),
            inlined: false,
            frame: index,
            pc: frame.pc,
            line: None,
            vars: Vec::new(),
        }
    }
}

/// The name of a DIE, through its abstract origin or specification.
pub(crate) fn die_name(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    offset: UnitOffset<usize>,
) -> Option<String> {
    let mut offset = offset;
    // A chain of origins is short; a loop in a damaged file must not hang.
    for _ in 0..8 {
        let entry = unit.entry(offset).ok()?;
        if let Some(v) = entry.attr_value(constants::DW_AT_name) {
            let s = dwarf.attr_string(unit, v).ok()?;
            return Some(s.to_string_lossy().ok()?.into_owned());
        }
        match entry
            .attr_value(constants::DW_AT_abstract_origin)
            .or_else(|| entry.attr_value(constants::DW_AT_specification))
        {
            Some(AttributeValue::UnitRef(o)) => offset = o,
            _ => return None,
        }
    }
    None
}

/// A DIE's attribute, or its abstract origin's.
pub(crate) fn attr_or_origin(
    unit: &gimli::Unit<R>,
    offset: UnitOffset<usize>,
    at: constants::DwAt,
) -> Option<AttributeValue<R>> {
    let mut offset = offset;
    for _ in 0..8 {
        let entry = unit.entry(offset).ok()?;
        if let Some(v) = entry.attr_value(at) {
            return Some(v);
        }
        match entry.attr_value(constants::DW_AT_abstract_origin) {
            Some(AttributeValue::UnitRef(o)) => offset = o,
            _ => return None,
        }
    }
    None
}

fn contains(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    entry: &gimli::DebuggingInformationEntry<R>,
    pc: u64,
) -> bool {
    let Ok(mut ranges) = dwarf.die_ranges(unit, entry) else {
        return false;
    };
    while let Ok(Some(r)) = ranges.next() {
        if r.begin <= pc && pc < r.end {
            return true;
        }
    }
    false
}

impl ScopeIndex {
    /// Reads every unit and the address ranges of its concrete functions.
    pub(crate) fn read(dwarf: &gimli::Dwarf<R>) -> Result<ScopeIndex, DwarfError> {
        let mut units = Vec::new();
        let mut ranges = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next()? {
            let unit = dwarf.unit(header)?;
            let ui = units.len();
            let mut cursor = unit.entries();
            while let Some(entry) = cursor.next_dfs()? {
                if entry.tag() != constants::DW_TAG_subprogram {
                    continue;
                }
                let mut rs = dwarf.die_ranges(&unit, entry)?;
                while let Some(r) = rs.next()? {
                    if r.end > r.begin {
                        ranges.push(FunctionRange {
                            begin: r.begin,
                            end: r.end,
                            unit: ui,
                            die: entry.offset(),
                        });
                    }
                }
            }
            units.push(unit);
        }
        ranges.sort_by_key(|r| (r.begin, r.end));
        Ok(ScopeIndex { units, ranges })
    }

    /// The function containing `pc`, as (unit index, DIE).
    pub(crate) fn function_at(&self, pc: u64) -> Option<(usize, UnitOffset<usize>)> {
        let i = self.ranges.partition_point(|r| r.begin <= pc);
        self.ranges[..i]
            .iter()
            .rev()
            .take(16)
            .find(|r| pc < r.end)
            .map(|r| (r.unit, r.die))
    }

    /// The concrete function called `name`: its DIE and entry address.
    pub(crate) fn function_named(&self, dwarf: &gimli::Dwarf<R>, name: &str) -> Option<u64> {
        self.ranges
            .iter()
            .find(|r| {
                self.units
                    .get(r.unit)
                    .and_then(|u| die_name(dwarf, u, r.die))
                    .is_some_and(|n| n == name)
            })
            .map(|r| r.begin)
    }
}

/// A scope on the way down to `pc`: its DIE, whether it is an inlined
/// call, its call site, and the variable DIEs it declares.
struct Scope {
    die: UnitOffset<usize>,
    inlined: bool,
    call: Option<(PathBuf, u32)>,
    vars: Vec<(UnitOffset<usize>, VariableKind)>,
}

/// Walks a function's DIE tree down to `pc`: a new scope per inlined call
/// containing it, the variables of lexical blocks containing it added to
/// the scope they are in.
fn walk(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    node: gimli::EntriesTreeNode<'_, '_, R>,
    pc: u64,
    scopes: &mut Vec<Scope>,
    depth: usize,
) -> Result<(), gimli::Error> {
    let mut children = node.children();
    while let Some(child) = children.next()? {
        let entry = child.entry();
        let current = scopes.len() - 1;
        match entry.tag() {
            constants::DW_TAG_formal_parameter => {
                scopes[current]
                    .vars
                    .push((entry.offset(), VariableKind::Argument));
            }
            constants::DW_TAG_variable => {
                scopes[current].vars.push((entry.offset(), VariableKind::Local));
            }
            constants::DW_TAG_lexical_block if depth < 64 && contains(dwarf, unit, entry, pc) => {
                walk(dwarf, unit, child, pc, scopes, depth + 1)?;
            }
            constants::DW_TAG_inlined_subroutine if depth < 64 && contains(dwarf, unit, entry, pc) => {
                let call = call_site(dwarf, unit, entry);
                scopes.push(Scope {
                    die: entry.offset(),
                    inlined: true,
                    call,
                    vars: Vec::new(),
                });
                walk(dwarf, unit, child, pc, scopes, depth + 1)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The file and line an inlined function was called from.
fn call_site(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    entry: &gimli::DebuggingInformationEntry<R>,
) -> Option<(PathBuf, u32)> {
    let file = match entry.attr_value(constants::DW_AT_call_file)? {
        AttributeValue::FileIndex(i) => i,
        v => v.udata_value()?,
    };
    let line = entry.attr_value(constants::DW_AT_call_line)?.udata_value()?;
    let header = unit.line_program.as_ref()?.header();
    let path = super::lines::file_path(dwarf, unit, header, file)?;
    Some((path, u32::try_from(line).unwrap_or(u32::MAX)))
}

/// The scopes at `pc` in one physical frame, innermost first, with their
/// variables read through `target` and the frame's registers.
pub(crate) fn scopes_at(
    debug: &Debug,
    symbols: &SymbolTable,
    pc: u64,
    frame: &PhysicalFrame,
    target: &dyn Target,
) -> Vec<FunctionScope> {
    let Some((ui, die)) = debug.scopes.function_at(pc) else {
        return Vec::new();
    };
    let Some(unit) = debug.scopes.units.get(ui) else {
        return Vec::new();
    };
    let dwarf = &debug.dwarf;
    let mut scopes = vec![Scope {
        die,
        inlined: false,
        call: None,
        vars: Vec::new(),
    }];
    let walked = unit
        .entries_tree(Some(die))
        .and_then(|mut tree| {
            let root = tree.root()?;
            walk(dwarf, unit, root, pc, &mut scopes, 0)
        })
        .is_ok();
    if !walked {
        scopes.truncate(1);
    }
    let frame_base = unit
        .entry(die)
        .ok()
        .and_then(|e| e.attr_value(constants::DW_AT_frame_base));
    let ctx = eval::Context {
        dwarf,
        unit,
        regs: &frame.regs,
        cfa: frame.cfa,
        frame_base,
        pc,
        target,
    };
    let mut out: Vec<FunctionScope> = Vec::new();
    // Innermost first: each inlined call's site is the line of the scope
    // that contains it.
    let mut line = debug.lines.line_at(pc);
    for s in scopes.iter().rev() {
        let name = die_name(dwarf, unit, s.die)
            .or_else(|| symbols.containing(pc).map(|(sym, _)| sym.name.clone()))
            .unwrap_or_else(|| "?".into());
        let mut vars: Vec<Variable> = s
            .vars
            .iter()
            .filter_map(|(off, kind)| eval::variable(&ctx, *off, *kind))
            .collect();
        vars.sort_by_key(|v| v.kind != VariableKind::Argument);
        out.push(FunctionScope {
            name,
            inlined: s.inlined,
            frame: 0,
            pc,
            line: line.clone(),
            vars,
        });
        line = s.call.as_ref().map(|(path, l)| {
            let file = debug.lines.find_path(path);
            SourceLine {
                addr: pc,
                file: file.map(|(i, _)| i).unwrap_or(usize::MAX),
                file_name: file
                    .map(|(_, n)| n.to_string())
                    .unwrap_or_else(|| path.to_string_lossy().into_owned()),
                line: *l,
            }
        });
    }
    out
}
