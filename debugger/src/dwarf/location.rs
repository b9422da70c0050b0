//! What a person types to name code or data: breakpoint locations
//! (`kvstore.c:369`, `kv_apply`, `kv_apply+0x10`, `0x100490`) and watch
//! expressions (`applied`, `store[3]`, `0x10b040:4`), resolved to addresses.

use gimli::{constants, AttributeValue, Location};

use super::eval::{type_info, Context};
use super::unwind::FrameRegs;
use super::{DwarfError, FunctionScope, Program, Target};

/// Where a breakpoint location resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The addresses (a line inlined in several places has several).
    pub addrs: Vec<u64>,
    /// How to name it back to the user (`kvstore.c:369`, `kv_apply`).
    pub label: String,
}

/// A watch expression, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchExpr {
    /// A variable, optionally one element of it (`store[3]`).
    Variable {
        /// Its name.
        name: String,
        /// The element, for an array.
        index: Option<u64>,
    },
    /// Raw bytes.
    Address {
        /// Start.
        addr: u64,
        /// Length (default 8).
        len: u64,
    },
}

fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses `name`, `name[3]`, `0xaddr` or `0xaddr:len`.
pub fn parse_watch(text: &str) -> Result<WatchExpr, DwarfError> {
    let text = text.trim().trim_start_matches('*').trim();
    let bad = || {
        DwarfError::BadWatch(format!(
            "cannot watch '{text}': give a variable, name[index] or 0xaddr[:len]"
        ))
    };
    if text.starts_with("0x") || text.starts_with("0X") {
        let (a, len) = match text.split_once(':') {
            Some((a, l)) => (a, number(l).ok_or_else(bad)?),
            None => (text, 8),
        };
        return Ok(WatchExpr::Address {
            addr: number(a).ok_or_else(bad)?,
            len,
        });
    }
    let (name, index) = match text.split_once('[') {
        Some((n, rest)) => {
            let i = rest.strip_suffix(']').and_then(number).ok_or_else(bad)?;
            (n.trim(), Some(i))
        }
        None => (text, None),
    };
    let ident = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ident {
        return Err(bad());
    }
    Ok(WatchExpr::Variable {
        name: name.to_string(),
        index,
    })
}

/// A target with nothing in it: globals' addresses need no registers.
pub(crate) struct NoTarget;

impl Target for NoTarget {
    fn dwarf_reg(&self, _reg: u16) -> Option<u64> {
        None
    }

    fn read(&self, _addr: u64, _buf: &mut [u8]) -> usize {
        0
    }
}

impl Program {
    /// Resolves a breakpoint location: `file:line` (a file name or the end of
    /// its path), a function, `function+offset`, or an address.
    pub fn resolve_location(&self, text: &str) -> Result<Resolved, DwarfError> {
        let text = text.trim();
        if let Some((file, line)) = text.rsplit_once(':') {
            if let (false, Ok(line)) = (file.is_empty(), line.trim().parse::<u64>()) {
                let debug = self.debug.as_ref().ok_or(DwarfError::NoDebugInfo)?;
                let (found, addrs) = debug.lines.addresses_of(file.trim(), line)?;
                // One place per function: a line split into several runs
                // by the optimiser is still one breakpoint.
                let mut seen: Vec<String> = Vec::new();
                let mut out = Vec::new();
                for a in addrs {
                    let f = self
                        .symbols
                        .containing(a)
                        .map(|(s, _)| s.name.clone())
                        .unwrap_or_default();
                    if !seen.contains(&f) {
                        seen.push(f);
                        out.push(a);
                    }
                }
                return Ok(Resolved {
                    addrs: out,
                    label: format!("{}:{found}", file.trim()),
                });
            }
        }
        if let Some(debug) = &self.debug {
            if self.symbols.by_name(text).is_none() {
                if let Some(a) = debug.scopes.function_named(&debug.dwarf, text) {
                    return Ok(Resolved {
                        addrs: vec![a],
                        label: text.to_string(),
                    });
                }
            }
        }
        let addr = self
            .symbols
            .parse_location(text)
            .map_err(DwarfError::BadLocation)?;
        Ok(Resolved {
            addrs: vec![addr],
            label: text.to_string(),
        })
    }

    /// The bytes a watch expression names, as (address, length, label):
    /// a variable of the innermost scope of `stack` that has one in memory,
    /// else a global, else an ELF symbol; or raw bytes.
    pub fn resolve_watch(
        &self,
        expr: &WatchExpr,
        stack: &[FunctionScope],
    ) -> Result<(u64, u64, String), DwarfError> {
        let (name, index) = match expr {
            WatchExpr::Address { addr, len } => return Ok((*addr, *len, format!("{addr:#x}"))),
            WatchExpr::Variable { name, index } => (name, *index),
        };
        if index.is_none() {
            let local = stack
                .iter()
                .take_while(|s| s.frame == 0)
                .flat_map(|s| s.vars.iter())
                .find(|v| &v.name == name);
            if let Some(v) = local {
                return match v.addr {
                    Some(a) => Ok((a, v.size.clamp(1, 8), name.clone())),
                    None => Err(DwarfError::BadWatch(format!(
                        "'{name}' is not in memory here (a register, or optimized out): watch a global"
                    ))),
                };
            }
        }
        if let Some((addr, size, elem)) = self.global(name) {
            return match index {
                None => Ok((addr, size.clamp(1, 8), name.clone())),
                Some(i) => {
                    let elem = elem
                        .filter(|&e| e > 0)
                        .ok_or_else(|| DwarfError::BadWatch(format!("'{name}' is not an array")))?;
                    if i.saturating_mul(elem) >= size {
                        return Err(DwarfError::BadWatch(format!("{name}[{i}] is past its end")));
                    }
                    Ok((addr + i * elem, elem.min(8), format!("{name}[{i}]")))
                }
            };
        }
        match (self.symbols.by_name(name), index) {
            (Some(s), None) => Ok((s.addr, s.size.clamp(1, 8), name.clone())),
            _ => Err(DwarfError::BadWatch(format!("no variable '{name}' here"))),
        }
    }

    /// A global variable: (address, size, element size for an array).
    fn global(&self, name: &str) -> Option<(u64, u64, Option<u64>)> {
        let debug = self.debug.as_ref()?;
        let regs = FrameRegs::default();
        for unit in &debug.scopes.units {
            let mut cursor = unit.entries();
            while let Ok(Some(entry)) = cursor.next_dfs() {
                // Globals and file-scope statics are children of the unit.
                if entry.tag() != constants::DW_TAG_variable || entry.depth() != 1 {
                    continue;
                }
                let offset = entry.offset();
                if super::scopes::die_name(&debug.dwarf, unit, offset).as_deref() != Some(name) {
                    continue;
                }
                let Some(AttributeValue::Exprloc(expr)) = entry.attr_value(constants::DW_AT_location) else {
                    continue;
                };
                let ctx = Context {
                    dwarf: &debug.dwarf,
                    unit,
                    regs: &regs,
                    cfa: None,
                    frame_base: None,
                    pc: 0,
                    target: &NoTarget,
                };
                let mut ev = expr.evaluation(unit.encoding());
                let addr = match ev.evaluate() {
                    Ok(gimli::EvaluationResult::Complete) => match ev.result().first().map(|p| &p.location) {
                        Some(Location::Address { address }) => *address,
                        _ => continue,
                    },
                    Ok(gimli::EvaluationResult::RequiresRelocatedAddress(a)) => a,
                    _ => continue,
                };
                let ty = match super::scopes::attr_or_origin(unit, offset, constants::DW_AT_type) {
                    Some(AttributeValue::UnitRef(o)) => Some(o),
                    _ => None,
                };
                let info = type_info(&ctx, ty, 0);
                return Some((addr, info.size, info.elem_size()));
            }
        }
        None
    }
}
