//! Variables: where DWARF says each one lives at a pc (a location
//! expression or a location list), its value read through a [`Target`] and
//! the frame's registers, and its type to print the value the way C would.

use gimli::{constants, AttributeValue, EvaluationResult, Location, Reader, UnitOffset, Value};

use super::scopes::{attr_or_origin, die_name};
use super::unwind::FrameRegs;
use super::{Target, R};

/// Whether a variable is a function's argument or a local.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    /// A formal parameter.
    Argument,
    /// A local variable.
    Local,
}

/// A variable at a position, with its value as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its name in the source.
    pub name: String,
    /// Argument or local.
    pub kind: VariableKind,
    /// Its C type (`uint32_t`, `const struct msg *`).
    pub type_name: String,
    /// Its value (`31`, `0x10b040`, `{30, 12}`), or why there is none
    /// (`<optimized out>`).
    pub value: String,
    /// Whether `value` is a value (not an explanation).
    pub available: bool,
    /// Its address, when it lives in memory at this pc (what a watchpoint watches).
    pub addr: Option<u64>,
    /// Its size in bytes.
    pub size: u64,
}

/// What evaluating a variable needs.
pub(crate) struct Context<'a> {
    pub(crate) dwarf: &'a gimli::Dwarf<R>,
    pub(crate) unit: &'a gimli::Unit<R>,
    pub(crate) regs: &'a FrameRegs,
    pub(crate) cfa: Option<u64>,
    pub(crate) frame_base: Option<AttributeValue<R>>,
    pub(crate) pc: u64,
    pub(crate) target: &'a dyn Target,
}

/// How a type's values are printed.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Signed,
    Unsigned,
    Bool,
    Char,
    Float,
    Pointer,
    Array { elem: Box<TypeInfo>, count: u64 },
    Aggregate,
    Void,
}

/// A type, as far as printing needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeInfo {
    pub(crate) name: String,
    pub(crate) size: u64,
    kind: Kind,
}

impl TypeInfo {
    /// The size of one element, for an array.
    pub(crate) fn elem_size(&self) -> Option<u64> {
        match &self.kind {
            Kind::Array { elem, .. } => Some(elem.size),
            _ => None,
        }
    }
}

fn udata(entry: &gimli::DebuggingInformationEntry<R>, at: constants::DwAt) -> Option<u64> {
    entry.attr_value(at)?.udata_value()
}

/// The type at `offset` (None: void). Depth-limited against loops in a
/// damaged file.
pub(crate) fn type_info(ctx: &Context<'_>, offset: Option<UnitOffset<usize>>, depth: usize) -> TypeInfo {
    let void = TypeInfo {
        name: "void".into(),
        size: 0,
        kind: Kind::Void,
    };
    let Some(offset) = offset else {
        return void;
    };
    let Ok(entry) = ctx.unit.entry(offset) else {
        return void;
    };
    if depth > 16 {
        return TypeInfo {
            name: "?".into(),
            ..void
        };
    }
    let name = die_name(ctx.dwarf, ctx.unit, offset);
    let inner = || {
        let next = match entry.attr_value(constants::DW_AT_type) {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        };
        type_info(ctx, next, depth + 1)
    };
    let size = udata(&entry, constants::DW_AT_byte_size);
    match entry.tag() {
        constants::DW_TAG_base_type => {
            let enc = match entry.attr_value(constants::DW_AT_encoding) {
                Some(AttributeValue::Encoding(e)) => e,
                _ => constants::DW_ATE_unsigned,
            };
            let kind = match enc {
                constants::DW_ATE_signed => Kind::Signed,
                constants::DW_ATE_boolean => Kind::Bool,
                constants::DW_ATE_signed_char | constants::DW_ATE_unsigned_char => Kind::Char,
                constants::DW_ATE_float => Kind::Float,
                _ => Kind::Unsigned,
            };
            TypeInfo {
                name: name.unwrap_or_else(|| "?".into()),
                size: size.unwrap_or(0),
                kind,
            }
        }
        constants::DW_TAG_pointer_type => TypeInfo {
            name: format!("{} *", inner().name),
            size: size.unwrap_or(8),
            kind: Kind::Pointer,
        },
        constants::DW_TAG_typedef => TypeInfo {
            name: name.unwrap_or_else(|| "?".into()),
            ..inner()
        },
        constants::DW_TAG_const_type | constants::DW_TAG_volatile_type => {
            let t = inner();
            let q = if entry.tag() == constants::DW_TAG_const_type {
                "const"
            } else {
                "volatile"
            };
            TypeInfo {
                name: format!("{q} {}", t.name),
                ..t
            }
        }
        constants::DW_TAG_enumeration_type => TypeInfo {
            name: format!("enum {}", name.unwrap_or_default()),
            size: size.unwrap_or(4),
            kind: Kind::Unsigned,
        },
        constants::DW_TAG_array_type => {
            let elem = inner();
            let count = array_count(ctx, offset).unwrap_or(0);
            TypeInfo {
                name: format!("{}[{count}]", elem.name),
                size: elem.size.saturating_mul(count),
                kind: Kind::Array {
                    elem: Box::new(elem),
                    count,
                },
            }
        }
        tag => {
            let what = match tag {
                constants::DW_TAG_structure_type => "struct",
                constants::DW_TAG_union_type => "union",
                _ => "",
            };
            TypeInfo {
                name: format!("{what} {}", name.unwrap_or_else(|| "{…}".into()))
                    .trim()
                    .to_string(),
                size: size.unwrap_or(0),
                kind: Kind::Aggregate,
            }
        }
    }
}

/// The element count of an array type (its first dimension's subrange).
fn array_count(ctx: &Context<'_>, offset: UnitOffset<usize>) -> Option<u64> {
    let mut tree = ctx.unit.entries_tree(Some(offset)).ok()?;
    let root = tree.root().ok()?;
    let mut children = root.children();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        if e.tag() == constants::DW_TAG_subrange_type {
            if let Some(n) = udata(e, constants::DW_AT_count) {
                return Some(n);
            }
            return udata(e, constants::DW_AT_upper_bound).map(|u| u.saturating_add(1));
        }
    }
    None
}

/// Runs a location expression to its pieces. Errors are the text a view
/// shows instead of a value.
fn evaluate(
    ctx: &Context<'_>,
    expr: gimli::Expression<R>,
    for_frame_base: bool,
) -> Result<Vec<gimli::Piece<R>>, String> {
    let damaged = |e: gimli::Error| format!("<{e}>");
    let mut ev = expr.evaluation(ctx.unit.encoding());
    let mut res = ev.evaluate().map_err(damaged)?;
    // Each step answers one question of the evaluation; a damaged
    // expression must not loop for ever.
    for _ in 0..256 {
        res = match res {
            EvaluationResult::Complete => return Ok(ev.result()),
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let mut b = [0u8; 8];
                let n = usize::from(size).min(8);
                if ctx.target.read(address, &mut b[..n]) != n {
                    return Err("<unreadable>".into());
                }
                ev.resume_with_memory(Value::Generic(u64::from_le_bytes(b)))
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = ctx.regs.get(register.0).ok_or("<unavailable>")?;
                ev.resume_with_register(Value::Generic(v))
            }
            EvaluationResult::RequiresFrameBase if !for_frame_base => {
                let fb = frame_base(ctx)?;
                ev.resume_with_frame_base(fb)
            }
            EvaluationResult::RequiresCallFrameCfa => {
                let cfa = ctx.cfa.ok_or("<unavailable>")?;
                ev.resume_with_call_frame_cfa(cfa)
            }
            EvaluationResult::RequiresRelocatedAddress(a) => ev.resume_with_relocated_address(a),
            EvaluationResult::RequiresIndexedAddress { index, .. } => {
                let a = ctx.dwarf.address(ctx.unit, index).map_err(damaged)?;
                ev.resume_with_indexed_address(a)
            }
            // The value a register had on entry to the function is gone
            // once the register is reused: gdb says the same.
            EvaluationResult::RequiresEntryValue(_) => return Err("<optimized out>".into()),
            _ => return Err("<unsupported location>".into()),
        }
        .map_err(damaged)?;
    }
    Err("<unsupported location>".into())
}

/// The function's frame base (DW_AT_frame_base), usually the CFA.
fn frame_base(ctx: &Context<'_>) -> Result<u64, String> {
    let Some(AttributeValue::Exprloc(expr)) = ctx.frame_base.clone() else {
        return Err("<no frame base>".into());
    };
    let pieces = evaluate(ctx, expr, true)?;
    match pieces.first().map(|p| &p.location) {
        Some(Location::Address { address }) => Ok(*address),
        Some(Location::Register { register }) => {
            ctx.regs.get(register.0).ok_or_else(|| "<unavailable>".into())
        }
        Some(Location::Value { value }) => value.to_u64(!0).map_err(|e| format!("<{e}>")),
        _ => Err("<no frame base>".into()),
    }
}

/// The location expression that applies at `pc`, if any.
fn location_at(ctx: &Context<'_>, v: AttributeValue<R>) -> Result<Option<gimli::Expression<R>>, String> {
    if let AttributeValue::Exprloc(e) = v {
        return Ok(Some(e));
    }
    let damaged = |e: gimli::Error| format!("<{e}>");
    let Some(mut list) = ctx.dwarf.attr_locations(ctx.unit, v).map_err(damaged)? else {
        return Ok(None);
    };
    while let Some(entry) = list.next().map_err(damaged)? {
        if entry.range.begin <= ctx.pc && ctx.pc < entry.range.end {
            return Ok(Some(entry.data));
        }
    }
    Ok(None)
}

/// The variable declared by DIE `offset`, read at the context's pc.
pub(crate) fn variable(ctx: &Context<'_>, offset: UnitOffset<usize>, kind: VariableKind) -> Option<Variable> {
    let name = die_name(ctx.dwarf, ctx.unit, offset)?;
    let ty = match attr_or_origin(ctx.unit, offset, constants::DW_AT_type) {
        Some(AttributeValue::UnitRef(o)) => Some(o),
        _ => None,
    };
    let ty = type_info(ctx, ty, 0);
    let entry = ctx.unit.entry(offset).ok()?;
    let mut var = Variable {
        name,
        kind,
        type_name: ty.name.clone(),
        value: String::new(),
        available: false,
        addr: None,
        size: ty.size,
    };
    let read = match entry.attr_value(constants::DW_AT_location) {
        Some(v) => match location_at(ctx, v) {
            Ok(Some(expr)) => {
                evaluate(ctx, expr, false).and_then(|p| bytes_of(ctx, &p, ty.size, &mut var.addr))
            }
            Ok(None) => Err("<optimized out>".into()),
            Err(e) => Err(e),
        },
        None => match attr_or_origin(ctx.unit, offset, constants::DW_AT_const_value) {
            Some(AttributeValue::Block(b)) => b.to_slice().map(|s| s.to_vec()).map_err(|e| format!("<{e}>")),
            Some(v) => match v.sdata_value().or_else(|| v.udata_value().map(|u| u as i64)) {
                Some(n) => Ok(n.to_le_bytes().to_vec()),
                None => Err("<optimized out>".into()),
            },
            None => Err("<optimized out>".into()),
        },
    };
    match read {
        Ok(bytes) => {
            var.value = format_value(&ty, &bytes);
            var.available = true;
        }
        Err(why) => var.value = why,
    }
    Some(var)
}

/// The bytes of a value of `size` bytes from its pieces; `addr` is set when
/// the whole value is in memory.
fn bytes_of(
    ctx: &Context<'_>,
    pieces: &[gimli::Piece<R>],
    size: u64,
    addr: &mut Option<u64>,
) -> Result<Vec<u8>, String> {
    // Values larger than this are shown by address only.
    const MAX: u64 = 256;
    let want = size.min(MAX) as usize;
    let mut out = Vec::new();
    for p in pieces {
        let n = p
            .size_in_bits
            .map(|b| (b / 8) as usize)
            .unwrap_or(want.saturating_sub(out.len()));
        match &p.location {
            Location::Empty => return Err("<optimized out>".into()),
            Location::Register { register } => {
                let v = ctx.regs.get(register.0).ok_or("<unavailable>")?;
                out.extend(v.to_le_bytes().iter().take(n.min(8)));
            }
            Location::Address { address } => {
                if pieces.len() == 1 {
                    *addr = Some(*address);
                }
                let mut b = vec![0u8; n];
                if ctx.target.read(*address, &mut b) != n {
                    return Err(format!("<unreadable at {address:#x}>"));
                }
                out.extend(b);
            }
            Location::Value { value } => {
                let v = value.to_u64(!0).map_err(|e| format!("<{e}>"))?;
                out.extend(v.to_le_bytes().iter().take(n.min(8)));
            }
            Location::Bytes { value } => {
                let b = value.to_slice().map_err(|e| format!("<{e}>"))?;
                out.extend(b.iter().take(n));
            }
            Location::ImplicitPointer { .. } => return Err("<implicit pointer>".into()),
        }
    }
    Ok(out)
}

fn le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u64::from_le_bytes(b)
}

/// A value as C would print it.
pub(crate) fn format_value(ty: &TypeInfo, bytes: &[u8]) -> String {
    let size = (ty.size as usize).clamp(1, 8).min(bytes.len().max(1));
    let raw = le(&bytes[..size.min(bytes.len())]);
    match &ty.kind {
        Kind::Signed => {
            let shift = 64 - 8 * size as u32;
            (((raw << shift) as i64) >> shift).to_string()
        }
        Kind::Unsigned if raw >= 1 << 32 => format!("{raw:#x}"),
        Kind::Unsigned => raw.to_string(),
        Kind::Bool => (raw != 0).to_string(),
        Kind::Char => {
            let c = raw as u8;
            if c.is_ascii_graphic() || c == b' ' {
                format!("{c} '{}'", c as char)
            } else {
                c.to_string()
            }
        }
        Kind::Float if size == 4 => f32::from_bits(raw as u32).to_string(),
        Kind::Float => f64::from_bits(raw).to_string(),
        Kind::Pointer => format!("{raw:#x}"),
        Kind::Array { elem, count } if (*count as usize) <= 16 && elem.size > 0 && elem.size <= 8 => {
            let n = elem.size as usize;
            let items: Vec<String> = bytes
                .chunks(n)
                .take(*count as usize)
                .map(|c| format_value(elem, c))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Kind::Void => "void".into(),
        _ if bytes.len() <= 16 => {
            let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("{{{}}}", hex.join(" "))
        }
        _ => "{…}".into(),
    }
}
