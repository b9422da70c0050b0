//! `monitor fork NEW [CHANGE; CHANGE...]`: runs the recording on from the
//! cursor's time with something changed, into a new trace, and prints the
//! command that opens it. The recording itself never changes (gdb's writes
//! are refused); this is where a user who wanted to write goes instead.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use vmrr_debugger::fork::{fork, Change, ForkOptions};
use vmrr_debugger::session::{Moment, Session};
use vmrr_debugger::vtime::format_ms;

/// The usage line of `monitor fork`.
pub(crate) const USAGE: &str = "usage: fork NEW [CHANGE; CHANGE...], e.g. \
     fork /tmp/kv-poke set backup2 store[3] = 99 (the changes of vmrr fork, separated by ';')";

/// Splits `NEW CHANGE; CHANGE` into the folder and the parsed changes.
fn parse(text: &str) -> Result<(&str, Vec<Change>), String> {
    let (out, changes) = match text.split_once(char::is_whitespace) {
        Some((out, rest)) => (out, rest.trim()),
        None => (text, ""),
    };
    if out.is_empty() {
        return Err(USAGE.into());
    }
    let changes = changes
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| Change::parse(c).map_err(|e| format!("'{c}': {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, changes))
}

/// Forks the session's trace at its cursor's virtual time.
pub(crate) fn fork_here(s: &Session, text: &str) -> Result<String, String> {
    let (out, changes) = parse(text)?;
    let at_ns = s.cursor_vtime();
    let parent = s.trace().dir().to_path_buf();
    // gdb waits for the reply: a fork of the demo takes a few seconds.
    let never = AtomicBool::new(false);
    let summary = fork(
        &parent,
        &Moment::Time(at_ns),
        &changes,
        Path::new(out),
        &ForkOptions::default(),
        &never,
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    let shown = std::fs::canonicalize(out).unwrap_or_else(|_| Path::new(out).to_path_buf());
    let mut lines = vec![format!(
        "forked {} at {} into {}",
        parent.display(),
        format_ms(summary.at_ns),
        shown.display()
    )];
    lines.extend(summary.changes.iter().map(|c| format!("  {c}")));
    if changes.is_empty() {
        lines.push("  (no change: the fork reproduces the recording from there)".into());
    }
    lines.push(format!("open it: vmrr replay {}", shown.display()));
    lines.push(format!(
        "compare: vmrr diff {} {}",
        parent.display(),
        shown.display()
    ));
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn changes_are_separated_by_semicolons() {
        let (out, changes) = parse("/tmp/x set backup2 store[3] = 99; seed 7").unwrap();
        assert_eq!(out, "/tmp/x");
        assert_eq!(changes.len(), 2);
        assert_eq!(parse("/tmp/x").unwrap().1.len(), 0);
        assert!(parse("").is_err());
        assert!(parse("/tmp/x frobnicate").unwrap_err().contains("frobnicate"));
    }
}
