//! `monitor` commands (`qRcmd`): where the cursor is, moving it to a
//! moment (the one grammar of vmrr: a time, `vm:icount`, `#event`, a
//! bookmark), listing events, following frames, bookmarks.
//!
//! Each command is a call of the session's API; this module only parses
//! and formats. gdb caches registers and frames until the target stops, so
//! after a command that moves the cursor gdb must drop that cache: vmrr's
//! gdb settings do it after every `monitor` command, and `monitor sync`
//! (run by those settings before each prompt) also tells gdb to select the
//! VM a move went to and prints the notices no reply could carry.

use vmrr_debugger::describe::event_line;
use vmrr_debugger::session::{Moment, Move, Outcome, Pos, Session, VmId, MOMENT_HELP};
use vmrr_debugger::vtime::format_ms as fmt_time;
use vmrr_index::{EventFilter, EventKind};

use crate::proto::reply::console;
use crate::state::{lock, pid_of, Target};

/// Most events `monitor events` lists on each side of the cursor.
const MAX_EVENTS: usize = 500;

/// The `monitor help` text.
pub const HELP: &str = "\
vmrr monitor commands (each VM is a gdb inferior: inferior N is VM N)
  when                         where the focus VM and the cluster cursor stand
  vm                           the VMs and where each stands; * marks the focus
  vm NAME|N                    make a VM the focus (then `inferior N` in gdb)
  goto MOMENT                  go to a moment: a time (12.5ms), an icount of the
                               focus VM, VM:ICOUNT (backup2:4500), #EVENT,
                               start, end, or a bookmark name (spaces allowed)
  events [N] [KIND...] [VM|all]  N events (default 5) each side of the cursor,
                               of the focus VM unless a VM or `all` is given;
                               kinds: console frame_sent frame_recv interrupt marker
                               halt wake tsc rand fault checkpoint stop exit
  follow [VM]                  follow the frame sent or received at the cursor
                               (VM: which receiver of a frame that reached several)
  bookmark add NAME            bookmark the focus VM's position (stored in the trace);
  bookmark add \"NAME\" NOTE   with a note after a quoted name
  bookmark list                list bookmarks
  bookmark goto NAME           go to a bookmark
  bookmark delete NAME         delete a bookmark
  calls FUNC [VM...] [A..B]    every call of FUNC in the recording (all VMs unless
                               named; A..B a window of moments, e.g. 122ms..123ms):
                               entry, arguments, return and value
  origin EXPR                  where the value of EXPR (store[3], edx, 0x10622c:4)
                               in the focus VM at the cursor came from, across
                               VMs through the frames that carried it
  fork NEW [CHANGE; ...]       run the cluster on from the cursor's time with the
                               changes of `vmrr fork` (set backup2 store[3] = 99;
                               drop next frame to backup2; seed 7) into the new
                               trace NEW, and print how to open it
  sync                         what vmrr's gdb settings run before each prompt and
                               after each monitor command: notices (refused
                               writes), and whether gdb must drop its cached
                               registers, select a VM or show the frame
  null-resume                  the next step or continue reports a stop without
                               moving (vmrr's gdb settings use it once)
  help                         this text
After a command that moves the cursor, gdb must drop its cached registers:
`maintenance flush register-cache` (vmrr's gdb settings do it for you).";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// `backup2 (inferior 3), icount 61234, 122.230150 ms`
fn describe(s: &Session, p: Pos) -> String {
    format!(
        "{} (inferior {}), icount {}, {}",
        s.vm_name(p.vm),
        pid_of(p.vm),
        p.icount,
        fmt_time(p.vtime_ns)
    )
}

/// A bookmark name and note: `"late #5" the note` (quoted name, then the
/// note) or `late #5` (all of it is the name).
fn name_and_note(text: &str) -> (&str, &str) {
    for q in ['"', '\''] {
        if let Some(body) = text.strip_prefix(q) {
            if let Some((name, note)) = body.split_once(q) {
                return (name, note.trim());
            }
        }
    }
    (text, "")
}

/// The words after the first `n` of `line`, as typed (spaces kept).
fn rest(line: &str, n: usize) -> &str {
    let mut t = line.trim_start();
    for _ in 0..n {
        t = t
            .split_once(char::is_whitespace)
            .map(|(_, r)| r.trim_start())
            .unwrap_or("");
    }
    t.trim_end()
}

impl Target {
    /// `qRcmd`: runs one monitor command; its output goes back in console
    /// packets, then `OK`.
    pub(crate) fn monitor(&mut self, command: &[u8]) -> Vec<String> {
        let line = String::from_utf8_lossy(command);
        let text = self.monitor_text(&line);
        let mut replies: Vec<String> = text.lines().map(|l| console(&format!("{l}\n"))).collect();
        replies.push("OK".into());
        replies
    }

    /// Runs one monitor command line and returns its output.
    fn monitor_text(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["sync"] => return self.sync_text(),
            ["null-resume"] => {
                self.null_resume = true;
                return String::new();
            }
            _ => {}
        }
        let session = self.session.clone();
        let mut s = lock(&session);
        let result = match words.as_slice() {
            [] | ["help"] => Ok(HELP.to_string()),
            ["when"] => self.when(&mut s),
            ["vm"] => Ok(list_vms(&mut s)),
            ["vm", ..] => self.set_vm(&mut s, rest(line, 1)),
            ["goto", ..] => self.go(&mut s, rest(line, 1)),
            ["events", args @ ..] => events(&mut s, args),
            ["follow", ..] => {
                let to = match rest(line, 1) {
                    "" => None,
                    name => match s.vm_by_name(name) {
                        Ok(vm) => Some(vm),
                        Err(e) => return format!("error: {e}"),
                    },
                };
                self.perform(&mut s, &Move::Follow { event: None, to })
            }
            ["bookmark", "add", _, ..] => {
                let (name, note) = name_and_note(rest(line, 2));
                s.add_bookmark(name, note).map_err(err).map(|b| {
                    format!(
                        "bookmark '{}': {}",
                        b.name,
                        describe(&s, Pos::new(b.vm, b.icount, b.vtime_ns))
                    )
                })
            }
            ["bookmark", "list"] | ["bookmarks"] => list_bookmarks(&s),
            ["bookmark", "goto", _, ..] => {
                let moment = Moment::Bookmark(rest(line, 2).to_string());
                self.perform(&mut s, &Move::Goto(moment))
            }
            ["bookmark", "delete", _, ..] => {
                let name = rest(line, 2);
                s.delete_bookmark(name)
                    .map_err(err)
                    .map(|_| format!("deleted bookmark '{name}'"))
            }
            ["calls", ..] => super::analyses::calls(&mut s, rest(line, 1)),
            ["origin", ..] => super::analyses::origin(&mut s, rest(line, 1)),
            ["fork", ..] => super::fork::fork_here(&s, rest(line, 1)),
            ["bookmark", ..] => Err("usage: bookmark add NAME | list | goto NAME | delete NAME".into()),
            [other, ..] => Err(format!("unknown command '{other}' (monitor help lists them)")),
        };
        result.unwrap_or_else(|e| format!("error: {e}"))
    }

    fn go(&mut self, s: &mut Session, text: &str) -> Result<String, String> {
        if text.is_empty() {
            return Err(format!("usage: goto MOMENT, where MOMENT is {MOMENT_HELP}"));
        }
        let moment = Moment::parse(text).map_err(err)?;
        self.perform(s, &Move::Goto(moment))
    }

    /// Performs a move, then says where the cursor went.
    fn perform(&mut self, s: &mut Session, mv: &Move) -> Result<String, String> {
        let outcome = s.perform(mv, &|_| {}).map_err(err)?;
        // gdb's view is stale now: the settings flush it, and select the
        // VM the move went to.
        self.pending.clear();
        self.sync.flush = true;
        if self.vms.get(s.focus() as usize).is_some_and(|v| v.attached) {
            self.sync.select = Some(s.focus());
        }
        match outcome {
            Outcome::Choose(ends) => {
                let names: Vec<&str> = ends.iter().map(|e| s.vm_name(e.vm)).collect();
                Err(format!(
                    "frame #{} reached several VMs: follow one of {}",
                    ends.first().map(|e| e.frame).unwrap_or(0),
                    names.join(", ")
                ))
            }
            _ => self.moved(s),
        }
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
        let vm = s.vm_by_name(name).map_err(err)?;
        s.set_focus(vm).map_err(err)?;
        Ok(format!(
            "focus: {} (in gdb: inferior {})",
            s.vm_name(vm),
            pid_of(vm)
        ))
    }

    /// Where the cursor went, and how to see it in gdb.
    fn moved(&mut self, s: &mut Session) -> Result<String, String> {
        let mut text = self.when(s)?;
        if self.selected != s.focus() {
            text += &format!("\n(in gdb: inferior {})", pid_of(s.focus()));
        }
        Ok(text)
    }

    /// `monitor sync`: one line per thing for vmrr's gdb settings to do
    /// (`flush`, `select N`), then the notices.
    fn sync_text(&mut self) -> String {
        let mut lines = Vec::new();
        let moved_elsewhere = {
            let s = lock(&self.session);
            self.moved_to.is_some_and(|p| p != s.cursor())
        };
        if std::mem::take(&mut self.sync.flush) || moved_elsewhere {
            lines.push("flush".to_string());
            // Flushing once is enough for a move made elsewhere; stops
            // found before it no longer hold.
            let s = lock(&self.session);
            self.moved_to = Some(s.cursor());
            self.pending.clear();
        }
        match self.sync.select.take() {
            // Show where the move went: the frame of the VM gdb shows.
            Some(vm) if vm == self.selected => lines.push("frame".into()),
            Some(vm) => {
                // gdb switches with `Hg`, which does not say the user chose
                // it: make it the focus here.
                self.selected = vm;
                let _ = lock(&self.session).set_focus(vm);
                lines.push(format!("select {}", pid_of(vm)));
            }
            None => {}
        }
        lines.extend(std::mem::take(&mut self.notices));
        lines.join("\n")
    }
}

/// Every VM, where it stands at the cursor, and how long its recording is.
fn list_vms(s: &mut Session) -> String {
    let width = s.vm_ids().map(|v| s.vm_name(v).len()).max().unwrap_or(4);
    s.vm_ids()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|vm| {
            let here = match s.position(vm) {
                Ok(p) => format!("icount {}, {}", p.icount, fmt_time(p.vtime_ns)),
                Err(e) => format!("({e})"),
            };
            format!(
                "{} inferior {}  {:<width$}  {here} (of {})",
                if vm == s.focus() { '*' } else { ' ' },
                pid_of(vm),
                s.vm_name(vm),
                s.end_icount(vm)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn events(s: &mut Session, args: &[&str]) -> Result<String, String> {
    let mut count = 5;
    let mut kinds = Vec::new();
    let mut vm: Option<VmId> = Some(s.focus());
    for a in args {
        if let Ok(n) = a.parse::<usize>() {
            count = n.min(MAX_EVENTS);
        } else if *a == "all" {
            vm = None;
        } else if let Some(k) = EventKind::parse(a) {
            kinds.push(k);
        } else {
            vm = Some(
                s.vm_by_name(a)
                    .map_err(|_| format!("'{a}' is neither a count, an event kind, a VM nor `all`"))?,
            );
        }
    }
    let mut filter = EventFilter::all();
    if let Some(vm) = vm {
        filter = filter.with_vms(vec![vm]);
    }
    if !kinds.is_empty() {
        filter = filter.with_kinds(kinds);
    }
    let here = s.position(s.focus()).map_err(err)?;
    let (before, after) = s.events_near(&filter, count).map_err(err)?;
    let width = s.vm_ids().map(|v| s.vm_name(v).len()).max().unwrap_or(4);
    let line = |e: &vmrr_index::EventRow| {
        let peers = s.event_peers(e).unwrap_or_default();
        format!(
            "  {}",
            event_line(e, &|v| s.vm_name(v).to_string(), &peers, width)
        )
    };
    let mut lines: Vec<String> = before.iter().map(line).collect();
    lines.push(format!("> cursor: {}", describe(s, here)));
    lines.extend(after.iter().map(line));
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
            let note = if b.note.is_empty() {
                String::new()
            } else {
                format!("  {}", b.note)
            };
            format!(
                "{:<16} {}{note}",
                b.name,
                describe(s, Pos::new(b.vm, b.icount, b.vtime_ns))
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::{name_and_note, rest};

    #[test]
    fn the_rest_of_a_line_keeps_its_spaces() {
        assert_eq!(rest("bookmark goto late #5", 2), "late #5");
        assert_eq!(rest("  goto   backup2:12 ", 1), "backup2:12");
        assert_eq!(rest("follow", 1), "");
        assert_eq!(name_and_note("\"late #5\" the note"), ("late #5", "the note"));
        assert_eq!(name_and_note("late #5"), ("late #5", ""));
    }
}
