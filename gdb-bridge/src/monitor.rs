//! `monitor` commands: where the cursor is, moving it by position, time,
//! event or bookmark, listing events, following frames, bookmarks.
//!
//! Each command is a call of the session's API; this module only parses
//! and formats. gdb caches registers and frames until the target stops, so
//! after a command that moves the cursor gdb must drop that cache
//! (`maintenance flush register-cache`): the script the server prints at
//! start does it after every `monitor` command.

use gdbstub::target::ext::monitor_cmd::{outputln, ConsoleOutput, MonitorCmd};
use vmrr_debugger::session::{Pos, Session};
use vmrr_debugger::vtime::{format_ms as fmt_time, parse as parse_time};
use vmrr_index::{EventFilter, EventKind, EventRow, Position};

use crate::target::{lock, tid_of, VmrrTarget};

/// Most events `monitor events` lists on each side of the cursor.
const MAX_EVENTS: usize = 500;

/// The `monitor help` text.
pub const HELP: &str = "\
vmrr monitor commands (VMs are gdb threads: thread N is VM N-1)
  when                         where the focus VM and the cluster cursor stand
  vm                           list the VMs; * marks the focus
  vm NAME                      make VM NAME the focus (then `thread N` in gdb)
  goto ICOUNT | goto VM ICOUNT go to an instruction count of the focus VM (or of VM)
  goto TIME                    go to a virtual time, e.g. 12.5ms, 300us, 2s, 1000ns
  goto event ID                go to an event (ids are shown by `monitor events`)
  goto bookmark NAME           go to a bookmark
  goto start | goto end        the start of the trace, the end of the focus VM
  events [N] [KIND...] [VM|all]  N events (default 5) each side of the cursor,
                               of the focus VM unless a VM or `all` is given;
                               kinds: console frame_sent frame_recv interrupt marker
                               halt wake tsc rand fault checkpoint stop exit
  follow                       follow the frame sent or received at the cursor
  bookmark add NAME [NOTE]     bookmark the focus VM's position (stored in the trace)
  bookmark list                list bookmarks
  bookmark goto NAME           go to a bookmark
  bookmark delete NAME         delete a bookmark
  help                         this text
After a command that moves the cursor, gdb must drop its cached registers:
`maintenance flush register-cache` (the vmrr.gdb script does it for you).";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `backup2 (thread 3), icount 61234, 122.230150 ms`
fn describe(s: &Session, p: Pos) -> String {
    format!(
        "{} (thread {}), icount {}, {}",
        s.vm_name(p.vm),
        tid_of(p.vm),
        p.icount,
        fmt_time(p.vtime_ns)
    )
}

fn fmt_event(s: &Session, e: &EventRow) -> String {
    let mut detail = String::new();
    if let Some(t) = &e.text {
        detail = format!("{:?}", t.trim_end_matches('\n'));
    }
    if let Some(v) = e.value {
        detail = if detail.is_empty() {
            v.to_string()
        } else {
            format!("{detail} = {v}")
        };
    }
    format!(
        "#{:<7} {:>17}  {:<10} icount {:>10}  {:<10} {detail}",
        e.id,
        fmt_time(e.vtime_ns),
        s.vm_name(e.vm as usize),
        e.icount,
        e.kind.as_str()
    )
}

impl VmrrTarget {
    /// Runs one monitor command line and returns its output.
    pub(crate) fn monitor(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let session = self.session.clone();
        let mut s = lock(&session);
        let result = match words.as_slice() {
            [] | ["help"] => Ok(HELP.to_string()),
            ["when"] => self.when(&mut s),
            ["vm"] => Ok(list_vms(&s)),
            ["vm", name] => self.set_vm(&mut s, name),
            ["goto", args @ ..] => {
                self.discard_writes(&mut s);
                goto(&mut s, args).and_then(|_| self.moved(&mut s))
            }
            ["events", args @ ..] => events(&mut s, args),
            ["follow"] => {
                self.discard_writes(&mut s);
                match s.follow_frame() {
                    Ok(Some(_)) => self.moved(&mut s),
                    Ok(None) => Err("no frame was sent or received by the focus VM at the cursor".into()),
                    Err(e) => Err(err(e)),
                }
            }
            ["bookmark", "add", name, note @ ..] => {
                s.add_bookmark(name, &note.join(" ")).map_err(err).map(|b| {
                    format!(
                        "bookmark '{}': {}",
                        b.name,
                        describe(
                            &s,
                            Pos {
                                vm: b.vm as usize,
                                icount: b.icount,
                                vtime_ns: b.vtime_ns
                            }
                        )
                    )
                })
            }
            ["bookmark", "list"] | ["bookmarks"] => list_bookmarks(&s),
            ["bookmark", "goto", name] => {
                self.discard_writes(&mut s);
                s.goto_bookmark(name)
                    .map_err(err)
                    .and_then(|_| self.moved(&mut s))
            }
            ["bookmark", "delete", name] => s
                .delete_bookmark(name)
                .map_err(err)
                .map(|_| format!("deleted bookmark '{name}'")),
            ["bookmark", ..] => {
                Err("usage: bookmark add NAME [NOTE] | list | goto NAME | delete NAME".into())
            }
            [other, ..] => Err(format!("unknown command '{other}' (monitor help lists them)")),
        };
        result.unwrap_or_else(|e| format!("error: {e}"))
    }

    fn when(&mut self, s: &mut Session) -> Result<String, String> {
        let focus = s.focus();
        let p = s.position(focus).map_err(err)?;
        Ok(format!(
            "{} of {}; cluster cursor at {}",
            describe(s, p),
            s.end_icount(focus),
            fmt_time(s.cursor_vtime())
        ))
    }

    fn set_vm(&mut self, s: &mut Session, name: &str) -> Result<String, String> {
        let vm = match name.parse::<usize>() {
            // A number is a gdb thread number.
            Ok(n) if n >= 1 && n <= s.vm_count() => n - 1,
            _ => s.vm_by_name(name).map_err(err)?,
        };
        s.set_focus(vm).map_err(err)?;
        Ok(format!(
            "focus: {} (in gdb: thread {})",
            s.vm_name(vm),
            tid_of(vm)
        ))
    }

    /// Where the cursor went, and how to see it in gdb.
    fn moved(&mut self, s: &mut Session) -> Result<String, String> {
        let mut text = self.when(s)?;
        let tid = tid_of(s.focus());
        if self.selected != tid {
            text += &format!("\n(in gdb: thread {tid})");
        }
        Ok(text)
    }
}

fn list_vms(s: &Session) -> String {
    (0..s.vm_count())
        .map(|vm| {
            format!(
                "{} thread {}  {:<12} {} instructions",
                if vm == s.focus() { '*' } else { ' ' },
                tid_of(vm),
                s.vm_name(vm),
                s.end_icount(vm)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn goto(s: &mut Session, args: &[&str]) -> Result<(), String> {
    let focus = s.focus();
    let parse_u64 = |t: &str| t.parse::<u64>().map_err(|_| format!("'{t}' is not a number"));
    match args {
        ["start"] => s.goto_vtime(0).map_err(err),
        ["end"] => s.goto(focus, s.end_icount(focus)).map(|_| ()).map_err(err),
        ["event", id] => s.goto_event(parse_u64(id)?).map(|_| ()).map_err(err),
        ["bookmark", name] => s.goto_bookmark(name).map(|_| ()).map_err(err),
        ["icount", n] => s.goto(focus, parse_u64(n)?).map(|_| ()).map_err(err),
        ["time", t] => {
            let t = parse_time(t).ok_or_else(|| format!("'{t}' is not a time: write e.g. 12.5ms"))?;
            s.goto_vtime(t).map_err(err)
        }
        [vm, n] => {
            let vm = s.vm_by_name(vm).map_err(err)?;
            let n = parse_u64(n)?;
            s.set_focus(vm).map_err(err)?;
            s.goto(vm, n).map(|_| ()).map_err(err)
        }
        [one] => match (one.parse::<u64>(), parse_time(one)) {
            (Ok(n), _) => s.goto(focus, n).map(|_| ()).map_err(err),
            (_, Some(t)) => s.goto_vtime(t).map_err(err),
            _ => Err(format!(
                "'{one}' is neither an instruction count nor a time (e.g. 12.5ms)"
            )),
        },
        _ => Err("usage: goto ICOUNT | VM ICOUNT | TIME | event ID | bookmark NAME | start | end".into()),
    }
}

fn events(s: &mut Session, args: &[&str]) -> Result<String, String> {
    let mut count = 5;
    let mut kinds = Vec::new();
    let mut vm = s.focus();
    let mut all = false;
    for a in args {
        if let Ok(n) = a.parse::<usize>() {
            count = n.min(MAX_EVENTS);
        } else if *a == "all" {
            all = true;
        } else if let Some(k) = EventKind::parse(a) {
            kinds.push(k);
        } else if let Ok(v) = s.vm_by_name(a) {
            vm = v;
        } else {
            return Err(format!("'{a}' is not a count, an event kind, a VM or 'all'"));
        }
    }
    let here = s.position(vm).map_err(err)?;
    let mut filter = EventFilter::all();
    if !all {
        filter = filter.with_vms(vec![vm as u32]);
    }
    if !kinds.is_empty() {
        filter = filter.with_kinds(kinds);
    }
    let cursor = Position::at(vm as u32, here.icount, here.vtime_ns);
    let index = s.trace().index();
    let mut before = Vec::new();
    let mut at = cursor;
    while before.len() < count {
        match index.prev_event_before(None, at, &filter).map_err(err)? {
            Some(e) => {
                at = e.position();
                before.push(e);
            }
            None => break,
        }
    }
    before.reverse();
    let mut after = Vec::new();
    let mut at = cursor;
    while after.len() < count {
        match index.next_event_after(None, at, &filter).map_err(err)? {
            Some(e) => {
                at = e.position();
                after.push(e);
            }
            None => break,
        }
    }
    drop(index);
    let mut lines: Vec<String> = before.iter().map(|e| format!("  {}", fmt_event(s, e))).collect();
    lines.push(format!("> cursor: {}", describe(s, here)));
    lines.extend(after.iter().map(|e| format!("  {}", fmt_event(s, e))));
    Ok(lines.join("\n"))
}

fn list_bookmarks(s: &Session) -> Result<String, String> {
    let rows = s.bookmarks().map_err(err)?;
    if rows.is_empty() {
        return Ok("no bookmarks (monitor bookmark add NAME)".into());
    }
    Ok(rows
        .iter()
        .map(|b| {
            let p = Pos {
                vm: b.vm as usize,
                icount: b.icount,
                vtime_ns: b.vtime_ns,
            };
            let note = if b.note.is_empty() {
                String::new()
            } else {
                format!("  {}", b.note)
            };
            format!("{:<16} {}{note}", b.name, describe(s, p))
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

impl MonitorCmd for VmrrTarget {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), Self::Error> {
        let line = String::from_utf8_lossy(cmd);
        for l in self.monitor(&line).lines() {
            outputln!(out, "{l}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("12.5ms"), Some(12_500_000));
        assert_eq!(parse_time("300us"), Some(300_000));
        assert_eq!(parse_time("2s"), Some(2_000_000_000));
        assert_eq!(parse_time("1000ns"), Some(1000));
        assert_eq!(parse_time("12"), None);
        assert_eq!(parse_time("-1ms"), None);
        assert_eq!(parse_time("1e30s"), None);
        assert_eq!(parse_time("nanms"), None);
        assert_eq!(fmt_time(122_230_150), "122.230150 ms");
    }
}
