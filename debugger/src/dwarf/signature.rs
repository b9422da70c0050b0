//! A function's signature from DWARF — its parameters' names and types and
//! its return type — so that a call's registers read as C arguments
//! (`seq = 5, key = 3, val = 31`) in the calls analysis.

use gimli::{constants, AttributeValue};

use super::eval::{self, TypeInfo};
use super::location::NoTarget;
use super::scopes::{attr_or_origin, die_name};
use super::unwind::FrameRegs;
use super::Program;

/// A C type, as far as printing a value held in a register needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueType {
    /// Its name (`uint32_t`, `const struct msg *`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    info: TypeInfo,
}

impl ValueType {
    /// `value` (a register: the type's low bytes count) as C would print it.
    pub fn format(&self, value: u64) -> String {
        eval::format_value(&self.info, &value.to_le_bytes())
    }

    /// `value` cut to the type's size (what the callee sees).
    pub fn truncate(&self, value: u64) -> u64 {
        match self.size {
            1 => value & 0xff,
            2 => value & 0xffff,
            4 => value & 0xffff_ffff,
            _ => value,
        }
    }
}

/// One formal parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name in the source.
    pub name: String,
    /// Its type.
    pub ty: ValueType,
}

/// What DWARF says a function takes and returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// The function's name.
    pub name: String,
    /// Its formal parameters, in order.
    pub params: Vec<Param>,
    /// Its return type (`None`: `void`).
    pub returns: Option<ValueType>,
}

impl Program {
    /// The signature of the function whose code contains `addr` (its
    /// entry, typically), if the image has DWARF for it.
    pub fn signature(&self, addr: u64) -> Option<Signature> {
        let debug = self.debug.as_ref()?;
        let (ui, die) = debug.scopes.function_at(addr)?;
        let unit = debug.scopes.units.get(ui)?;
        let regs = FrameRegs::default();
        let ctx = eval::Context {
            dwarf: &debug.dwarf,
            unit,
            regs: &regs,
            cfa: None,
            frame_base: None,
            pc: addr,
            target: &NoTarget,
        };
        let type_of = |offset| {
            let ty = match attr_or_origin(unit, offset, constants::DW_AT_type) {
                Some(AttributeValue::UnitRef(o)) => Some(o),
                _ => None,
            };
            let info = eval::type_info(&ctx, ty, 0);
            (ty.is_some()).then(|| ValueType {
                name: info.name.clone(),
                size: info.size,
                info,
            })
        };
        let name = die_name(&debug.dwarf, unit, die)?;
        // Parameters are the subprogram's direct children; for a concrete
        // out-of-line copy they point at the abstract ones for their names.
        let mut params = Vec::new();
        let mut tree = unit.entries_tree(Some(die)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let entry = child.entry();
            if entry.tag() != constants::DW_TAG_formal_parameter {
                continue;
            }
            let offset = entry.offset();
            let (Some(pname), Some(ty)) = (die_name(&debug.dwarf, unit, offset), type_of(offset)) else {
                continue;
            };
            params.push(Param { name: pname, ty });
        }
        Some(Signature {
            name,
            params,
            returns: type_of(die),
        })
    }
}
