//! `monitor calls FUNC [VM...]` and `monitor origin EXPR`: the analyses of
//! the recording (every call of a function; where a value came from), in
//! the words the command line prints them (`vmrr_debugger::analysis::text`).
//! Both read the rows cached in the trace when an earlier question (from
//! any view) computed them.

use vmrr_debugger::analysis::text;
use vmrr_debugger::session::Session;

/// Most calls `monitor calls` lists (gdb prints every console line; the
/// rest are a `vmrr calls` away).
const MAX_CALLS: usize = 200;

/// `calls FUNC [VM...] [FROM..TO]`: every call of FUNC in the VMs named
/// (all if none), within the window if one is given.
pub(crate) fn calls(s: &mut Session, text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("usage: calls FUNCTION [VM...] [FROM..TO]".into());
    }
    let query = s.calls_query(text).map_err(|e| e.to_string())?;
    let (function, vms) = (query.function.as_str(), query.vms.as_slice());
    let found = s.calls(&query, &|_| {}).map_err(|e| e.to_string())?;
    let signature = s.signature(function, vms);
    let mut lines = vec![format!(
        "{}: {} call{} (replayed {} of {} slices)",
        text::signature(function, signature.as_ref()),
        found.calls.len(),
        if found.calls.len() == 1 { "" } else { "s" },
        found.replayed,
        found.slices
    )];
    if !found.calls.is_empty() {
        lines.push(text::calls_header());
        let name = s.vm_namer();
        lines.extend(
            found
                .calls
                .iter()
                .take(MAX_CALLS)
                .map(|c| text::call_row(&name(c.vm), c)),
        );
        if found.calls.len() > MAX_CALLS {
            lines.push(format!(
                "... {} more (vmrr calls TRACE {function} lists them all)",
                found.calls.len() - MAX_CALLS
            ));
        }
        lines.push("(monitor goto VM:ICOUNT goes to a call)".into());
    }
    Ok(lines.join("\n"))
}

/// `origin EXPR`: where the value of EXPR in the focus VM at the cursor
/// came from (a register, ADDR[:LEN], or a variable as `watch` takes it).
pub(crate) fn origin(s: &mut Session, expr: &str) -> Result<String, String> {
    if expr.is_empty() {
        return Err(
            "usage: origin EXPR (a register: edx; an address: 0x10622c:4; a variable: store[3])".into(),
        );
    }
    let vm = s.focus();
    let (target, label) = s.origin_target(vm, expr).map_err(|e| e.to_string())?;
    let chain = s.origin(vm, target, &|_| {}).map_err(|e| e.to_string())?;
    let mut lines = text::origin_lines(&chain, &label, false, &s.vm_namer());
    lines.push("(monitor goto VM:ICOUNT goes to a link)".into());
    Ok(lines.join("\n"))
}
