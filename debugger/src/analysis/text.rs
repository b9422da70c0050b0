//! How the analyses' answers read, defined once for the command line and
//! gdb's `monitor calls` / `monitor origin` (the TUI draws the same rows
//! its own way): a call per line, an origin chain link by link. Positions
//! are written `VM:ICOUNT`, the moment grammar's, so each can be gone to.

use vmrr_index::{Pos, VmId};

use super::{Call, CallTreeNode, LinkKind, Origin, OriginLink};
use crate::dwarf::Signature;
use crate::vtime::format_ms;

/// `void kv_apply(uint32_t seq, uint8_t key, uint32_t val)`, or the bare
/// name without DWARF.
pub fn signature(function: &str, sig: Option<&Signature>) -> String {
    match sig {
        Some(sig) => {
            let params: Vec<String> = sig
                .params
                .iter()
                .map(|p| format!("{} {}", p.ty.name, p.name))
                .collect();
            let ret = sig.returns.as_ref().map(|t| t.name.as_str()).unwrap_or("void");
            format!("{ret} {}({})", sig.name, params.join(", "))
        }
        None => format!("{function} (no DWARF: arguments are rdi rsi rdx rcx r8 r9)"),
    }
}

/// The header of [`call_row`]s.
pub fn calls_header() -> String {
    format!(
        "{:<12} {:>10} {:>18}  {:<40} {:>10} {:>18}  value",
        "vm", "entry", "time", "arguments", "return", "time"
    )
}

/// A call's arguments (`seq = 5, key = 3, val = 31`), led by its nesting
/// depth when it is nested in a call of itself.
pub fn call_args(c: &Call) -> String {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| format!("{} = {}", a.name, a.text))
        .collect();
    let nested = if c.depth > 0 {
        format!("[depth {}] ", c.depth)
    } else {
        String::new()
    };
    format!("{nested}{}", args.join(", "))
}

/// A call's return: its icount, its time and the value (`-`, `never
/// returned` and nothing for a call that did not return).
pub fn call_return(c: &Call) -> (String, String, String) {
    match c.ret {
        Some(r) => (
            r.icount.to_string(),
            format_ms(r.vtime_ns),
            c.ret_text.clone().unwrap_or_default(),
        ),
        None => ("-".into(), "never returned".into(), String::new()),
    }
}

/// One call: VM, entry, arguments, return and value.
pub fn call_row(vm_name: &str, c: &Call) -> String {
    let (ret, ret_time, value) = call_return(c);
    format!(
        "{:<12} {:>10} {:>18}  {:<40} {:>10} {:>18}  {}",
        vm_name,
        c.entry.icount,
        format_ms(c.entry.vtime_ns),
        call_args(c),
        ret,
        ret_time,
        value
    )
}

/// Call-tree nodes from `min` levels deep down to `max`, indented; the
/// last line counts those left out.
pub fn tree_lines(
    nodes: &[CallTreeNode],
    min: u32,
    max: u32,
    indent: &str,
    name: &dyn Fn(VmId) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut hidden = 0;
    for n in nodes {
        if n.depth + min > max {
            hidden += 1;
            continue;
        }
        let ret = match n.ret {
            Some(r) => format!("-> {}", r.icount),
            None => "(not returned in the window)".into(),
        };
        out.push(format!(
            "{indent}{}{} {}:{}  {} {ret}",
            "  ".repeat(n.depth as usize),
            n.function,
            name(n.entry.vm),
            n.entry.icount,
            format_ms(n.entry.vtime_ns),
        ));
    }
    if hidden > 0 {
        out.push(format!(
            "{indent}({hidden} deeper calls hidden: --depth shows more)"
        ));
    }
    out
}

/// `VM:ICOUNT`.
pub fn place(pos: Pos, name: &dyn Fn(VmId) -> String) -> String {
    format!("{}:{}", name(pos.vm), pos.icount)
}

/// The first line of an origin chain: what was asked about, where, and its value.
pub fn origin_header(o: &Origin, label: &str, name: &dyn Fn(VmId) -> String) -> String {
    format!(
        "origin of {label}: {} at {} ({}) = {}",
        o.target,
        place(o.start, name),
        format_ms(o.start.vtime_ns),
        o.value
    )
}

/// Where a link's instruction is: `kv_apply+0x1a (kvstore.c:369)`, the
/// card, or the bare address.
pub fn link_at(l: &OriginLink) -> String {
    match (&l.function, &l.line) {
        (Some(f), Some(line)) => format!("{f} ({line})"),
        (Some(f), None) => f.clone(),
        (None, _) if matches!(l.kind, LinkKind::Received { .. }) => "virtio-net (receive)".into(),
        (None, _) => l.rip.map(|r| format!("{r:#x}")).unwrap_or_default(),
    }
}

/// What a link did: `mov [..],edx: 0x10622c (store+0xc), 4 bytes = 0x1f <- edx (copy)`.
pub fn link_description(l: &OriginLink) -> String {
    let value = l.value.as_deref().map(|v| format!(" = {v}")).unwrap_or_default();
    match l.kind {
        LinkKind::Write => format!("{}: {}{value} <- {} ({})", l.what, l.dest, l.from, l.flow),
        _ => format!("{}: {}{value} <- {}", l.what, l.dest, l.from),
    }
}

/// An origin chain, newest link first; `all` keeps the links through
/// registers and stack spills. `label` is what the person asked about.
pub fn origin_lines(o: &Origin, label: &str, all: bool, name: &dyn Fn(VmId) -> String) -> Vec<String> {
    let mut out = vec![origin_header(o, label, name)];
    let mut hidden = 0;
    let mut n = 0;
    for l in &o.links {
        if l.trivial && !all {
            hidden += 1;
            continue;
        }
        n += 1;
        out.push(format!(
            "{n:>3}. {:<18} {:>18}  {}",
            place(l.pos, name),
            format_ms(l.pos.vtime_ns),
            link_at(l)
        ));
        out.push(format!("       {}", link_description(l)));
    }
    out.push(format!("  end: {}", o.end));
    if hidden > 0 {
        out.push(format!(
            "  ({hidden} link{} through registers or the stack hidden: --all shows them)",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    out
}
