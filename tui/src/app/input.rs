//! Input: a key press becomes an [`Action`] through the one key table
//! ([`crate::keys`]), and an action becomes a session job (a [`Move`] the
//! Session performs) or a change of a widget state. Prompts (goto,
//! breakpoint, search…) are read here too.

use std::sync::atomic::Ordering;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use vmrr_backend::regs::Gpr;
use vmrr_debugger::session::{Direction, Moment, Move, Scope, SegmentLink, VmId};

use super::{App, KEY_QUEUE_CAP};
use crate::keys::{action_for, Action};
use crate::state::{ListPane, MemSource, Prompt, PromptKind};
use crate::worker::Job;
use vmrr_debugger::fork::Change;
use vmrr_index::{EventKind, Pos};

impl App {
    /// Handles one key press. While a job runs, keys wait for it (except
    /// Esc, which cancels it, and quitting).
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press && key.kind != KeyEventKind::Repeat {
            return;
        }
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        let plain_q = key.code == KeyCode::Char('q') && self.state.prompt.is_none();
        if ctrl_c || (plain_q && self.held_keys.is_empty()) {
            // A running search must not keep the program alive.
            self.cancel.store(true, Ordering::Relaxed);
            self.quit = true;
            return;
        }
        if self.running.is_some() || !self.held_keys.is_empty() {
            // Esc cancels a search at once; after a short job it is just the next key.
            let long = self.running.as_ref().is_some_and(Job::has_progress);
            if key.code == KeyCode::Esc && long && self.state.prompt.is_none() {
                self.held_keys.clear();
                self.escape();
            } else if self.held_keys.len() < KEY_QUEUE_CAP {
                self.held_keys.push_back(key);
                self.update_busy();
            }
            return;
        }
        self.handle_key(key);
    }

    /// A key, with no job running.
    pub(super) fn handle_key(&mut self, key: KeyEvent) {
        if self.state.prompt.is_some() {
            self.on_prompt_key(key);
            return;
        }
        if !self.choices.is_empty() {
            // A flooded frame: the digit picks the receiver to follow it to.
            let choices = std::mem::take(&mut self.choices);
            if let KeyCode::Char(d @ '1'..='9') = key.code {
                if let Some(end) = choices.get((d as u8 - b'1') as usize) {
                    self.submit(Job::Move(Move::Follow {
                        event: self.follow_from,
                        to: Some(end.vm),
                    }));
                    return;
                }
            }
            self.state.message = None;
            if key.code == KeyCode::Esc {
                return;
            }
        }
        if self.state.show_help {
            // Any key closes the help; q still quits.
            self.state.show_help = false;
            if key.code == KeyCode::Char('q') {
                self.quit = true;
            }
            return;
        }
        if let Some(action) = action_for(&key) {
            self.act(action, key);
        }
    }

    /// Carries out an action of the key table.
    fn act(&mut self, action: Action, key: KeyEvent) {
        let focus = self.state.snapshot.focus as VmId;
        let step = |dir| Job::Move(Move::Step { vm: focus, dir });
        let cont = |dir| {
            Job::Move(Move::Continue {
                scope: Scope::Vm(focus),
                dir,
            })
        };
        match action {
            Action::Quit => {
                self.cancel.store(true, Ordering::Relaxed);
                self.quit = true;
            }
            Action::Help => self.state.show_help = true,
            Action::Escape => self.escape(),
            Action::StepBack => self.submit(step(Direction::Backward)),
            Action::StepForward => self.submit(step(Direction::Forward)),
            Action::ClusterBack => self.submit(Job::Move(Move::StepCluster(Direction::Backward))),
            Action::ClusterForward => self.submit(Job::Move(Move::StepCluster(Direction::Forward))),
            Action::PrevEvent => self.next_event(Direction::Backward),
            Action::NextEvent => self.next_event(Direction::Forward),
            Action::Follow => {
                let event = match self.state.list_pane {
                    ListPane::Events => self.state.events.selected_frame_event().map(|e| e.id),
                    _ => None,
                };
                self.follow_from = event;
                self.submit(Job::Move(Move::Follow { event, to: None }));
            }
            Action::FollowRetransmission | Action::FollowOriginal | Action::FollowAck => {
                let event = match self.state.list_pane {
                    ListPane::Events => self.state.events.selected_frame_event().map(|e| e.id),
                    _ => None,
                };
                let to = match action {
                    Action::FollowAck => SegmentLink::Ack,
                    Action::FollowOriginal => SegmentLink::Original,
                    _ => SegmentLink::Retransmission,
                };
                self.submit(Job::Move(Move::FollowSegment { event, to }));
            }
            Action::Continue => self.submit(cont(Direction::Forward)),
            Action::ReverseContinue => self.submit(cont(Direction::Backward)),
            Action::StepOver => self.submit(Job::Move(Move::NextLine { vm: focus })),
            Action::Finish => self.submit(Job::Move(Move::Finish { vm: focus })),
            Action::Breakpoint => self.open_prompt(PromptKind::Breakpoint),
            Action::Watchpoint => self.open_prompt(PromptKind::Watchpoint),
            Action::Goto => self.open_prompt(PromptKind::Goto),
            Action::AddBookmark => self.open_prompt(PromptKind::AddBookmark),
            Action::Memory => self.open_prompt(PromptKind::Memory),
            Action::Search => {
                self.state.list_pane = ListPane::Events;
                self.state.events.search.clear();
                self.open_prompt(PromptKind::Search)
            }
            Action::ToggleList => self.state.list_pane = self.state.list_pane.other(),
            Action::ToggleSide => self.state.side_pane = self.state.side_pane.next(),
            Action::ToggleCode => self.state.code_view = self.state.code_view.next(),
            Action::RenameBookmark if self.state.list_pane == ListPane::Bookmarks => {
                if let Some(b) = self.state.bookmarks.selected_name() {
                    self.open_prompt(PromptKind::RenameBookmark(b));
                }
            }
            Action::DeleteBookmark if self.state.list_pane == ListPane::Bookmarks => {
                if let Some(b) = self.state.bookmarks.selected_name() {
                    self.submit(Job::DeleteBookmark(b));
                }
            }
            Action::RenameBookmark | Action::DeleteBookmark => {}
            Action::Enter => match self.state.list_pane {
                ListPane::Events => {
                    if let Some(id) = self.state.events.selected_id() {
                        self.submit(Job::Move(Move::GotoEvent(id)));
                    }
                }
                ListPane::Bookmarks => {
                    if let Some(b) = self.state.bookmarks.selected_name() {
                        self.submit(Job::Move(Move::Goto(Moment::Bookmark(b))));
                    }
                }
                ListPane::Calls => {
                    let call = self.state.calls.as_ref().and_then(|c| c.selected_call());
                    if let Some(pos) = call.map(|c| c.entry) {
                        self.submit(goto_pos(pos));
                    }
                }
                ListPane::Origin => {
                    let link = self.state.origin.as_ref().and_then(|o| o.selected_link());
                    if let Some(pos) = link.map(|l| l.pos) {
                        self.submit(goto_pos(pos));
                    }
                }
            },
            Action::Calls => {
                let last = self.state.calls.as_ref().map(|c| c.function.clone());
                self.open_prompt_with(PromptKind::Calls, last.unwrap_or_default());
            }
            Action::Origin => {
                // The memory view's target, when the user gave it one with `M`.
                let what = match &self.mem {
                    MemSource::Fixed(_, text) => text.clone(),
                    MemSource::Register(_) => String::new(),
                };
                self.open_prompt_with(PromptKind::Origin, what);
            }
            Action::Fork => {
                let change = self.suggested_change().unwrap_or_default();
                self.open_prompt_with(PromptKind::ForkChange, change);
            }
            Action::Divergence => self.go_to_divergence(),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-10),
            Action::PageDown => self.move_selection(10),
            Action::Home => self.move_selection(i64::MIN / 2),
            Action::End => self.move_selection(i64::MAX / 2),
            Action::FocusNext => self.switch_focus(1),
            Action::FocusPrev => self.switch_focus(-1),
            Action::FocusDigit => {
                if let KeyCode::Char(d @ '1'..='9') = key.code {
                    let vm = (d as u8 - b'1') as usize;
                    if vm < self.state.vms.len() {
                        self.submit(Job::SetFocus(vm as VmId));
                    }
                }
            }
            Action::ZoomIn | Action::ZoomOut => {
                let (num, den) = if action == Action::ZoomIn { (1, 2) } else { (2, 1) };
                let snap = &self.state.snapshot;
                let center = snap.cursor_vtime.max(snap.vtime);
                self.state.timeline.zoom(num, den, center, self.state.end_vtime);
                self.reload_timeline();
            }
            Action::ZoomAll => {
                self.state.timeline.show_all(self.state.end_vtime);
                self.reload_timeline();
            }
            Action::ScrollBack | Action::ScrollForward => {
                let forward = action == Action::ScrollForward;
                self.state.timeline.scroll(forward, self.state.end_vtime);
                self.reload_timeline();
            }
            Action::ToggleInterrupts => {
                self.state.timeline.show_interrupts = !self.state.timeline.show_interrupts;
                self.reload_timeline();
            }
            Action::FilterVm => {
                self.state.events.cycle_vm_filter(self.state.vms.len());
                self.refilter_events();
            }
            Action::KindNext | Action::KindPrev => {
                self.state.events.cycle_preset(action == Action::KindNext);
                self.refilter_events();
            }
        }
    }

    fn escape(&mut self) {
        if self.running.is_some() {
            self.cancel.store(true, Ordering::Relaxed);
            self.pending.clear();
            self.held_keys.clear();
            self.info("cancelling…".into());
        } else if matches!(self.state.list_pane, ListPane::Calls | ListPane::Origin) {
            // Back to the events; the answer stays for the next `a` or `Y`.
            self.state.list_pane = ListPane::Events;
            self.state.message = None;
        } else if !self.state.events.search.is_empty() {
            let keep = self.state.events.selected_id();
            self.state.events.search.clear();
            self.state.events.apply_search();
            let snap = &self.state.snapshot;
            self.state.events.reselect(keep, snap.cursor, snap.cursor_event);
            self.update_selected_frame();
        } else {
            self.state.message = None;
        }
    }

    fn switch_focus(&mut self, delta: i64) {
        let n = self.state.vms.len() as i64;
        if n == 0 {
            return;
        }
        let vm = (self.state.snapshot.focus as i64 + delta).rem_euclid(n) as VmId;
        self.submit(Job::SetFocus(vm));
    }

    fn move_selection(&mut self, delta: i64) {
        match self.state.list_pane {
            ListPane::Events => {
                self.state.events.move_selection(delta);
                self.update_selected_frame();
            }
            ListPane::Bookmarks => self.state.bookmarks.move_selection(delta),
            ListPane::Calls => {
                if let Some(c) = self.state.calls.as_mut() {
                    c.move_selection(delta);
                }
            }
            ListPane::Origin => {
                if let Some(o) = self.state.origin.as_mut() {
                    o.move_selection(delta);
                }
            }
        }
    }

    /// n / p: the next (previous) event of the list. Without a search the
    /// Session finds it from the cursor, with the list's filter; with one,
    /// the list's next (previous) matching line from the selection.
    fn next_event(&mut self, dir: Direction) {
        if self.state.events.search.is_empty() {
            let filter = self.event_filter();
            self.submit(Job::Move(Move::Event { dir, filter }));
            return;
        }
        let forward = dir == Direction::Forward;
        match self.state.events.neighbour_id(forward) {
            Some(id) => self.submit(Job::Move(Move::GotoEvent(id))),
            None => self.info(format!(
                "no {} event in this list",
                if forward { "later" } else { "earlier" }
            )),
        }
    }

    fn open_prompt(&mut self, kind: PromptKind) {
        self.open_prompt_with(kind, String::new());
    }

    /// A prompt with a suggestion already typed (Backspace edits it).
    fn open_prompt_with(&mut self, kind: PromptKind, input: String) {
        self.state.prompt = Some(Prompt { kind, input });
    }

    fn on_prompt_key(&mut self, key: KeyEvent) {
        let Some(prompt) = self.state.prompt.as_mut() else {
            return;
        };
        let is_search = prompt.kind == PromptKind::Search;
        match key.code {
            KeyCode::Esc => {
                self.state.prompt = None;
                if is_search {
                    self.state.events.search.clear();
                    self.state.events.apply_search();
                    self.select_event_at_cursor();
                }
            }
            KeyCode::Enter => {
                if let Some(p) = self.state.prompt.take() {
                    self.submit_prompt(p);
                }
            }
            KeyCode::Backspace => {
                prompt.input.pop();
                if is_search {
                    self.search_changed();
                }
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                // Control characters never get into a prompt (nor onto the screen).
                if prompt.input.chars().count() < 200 && !c.is_control() {
                    prompt.input.push(c);
                }
                if is_search {
                    self.search_changed();
                }
            }
            _ => {}
        }
    }

    /// Incremental search: narrow the list and select the first match at or after the cursor.
    fn search_changed(&mut self) {
        let text = self
            .state
            .prompt
            .as_ref()
            .map(|p| p.input.clone())
            .unwrap_or_default();
        let ev = &mut self.state.events;
        ev.search = text;
        ev.apply_search();
        ev.select_first_ahead(self.state.snapshot.cursor);
        self.update_selected_frame();
    }

    fn submit_prompt(&mut self, p: Prompt) {
        let input = p.input.trim().to_string();
        let focus = self.state.snapshot.focus;
        match p.kind {
            PromptKind::Search => {
                self.state.events.search = p.input;
                match self.state.events.selected_id() {
                    Some(id) => self.submit(Job::Move(Move::GotoEvent(id))),
                    None => self.error(format!("no event matches '{}'", self.state.events.search)),
                }
            }
            PromptKind::Goto => match Moment::parse(&input) {
                Ok(moment) => self.submit(Job::Move(Move::Goto(moment))),
                Err(e) => self.error(e.to_string()),
            },
            PromptKind::Breakpoint => {
                if input.is_empty() {
                    self.error("give a file:line, a function or an address".into());
                } else {
                    self.submit(Job::ToggleBreakpoint {
                        vm: focus as VmId,
                        location: input,
                    });
                }
            }
            PromptKind::Watchpoint => {
                if input.is_empty() {
                    self.error("give a variable (store[3], applied) or an address".into());
                } else {
                    self.submit(Job::ToggleWatchpoint {
                        vm: focus as VmId,
                        expr: input,
                    });
                }
            }
            PromptKind::AddBookmark => {
                if input.is_empty() {
                    self.error("a bookmark needs a name".into());
                } else {
                    self.submit(Job::AddBookmark(input));
                }
            }
            PromptKind::RenameBookmark(old) => {
                if input.is_empty() {
                    self.error("a bookmark needs a name".into());
                } else {
                    self.submit(Job::RenameBookmark { old, new: input });
                }
            }
            PromptKind::Calls => {
                if input.is_empty() {
                    self.error("give a function's name (kv_apply)".into());
                } else {
                    self.submit(Job::Calls(input));
                }
            }
            PromptKind::Origin => {
                if input.is_empty() {
                    self.error("give a register (edx), a variable (store[3]) or 0xaddr[:len]".into());
                } else {
                    self.submit(Job::Origin {
                        vm: focus as VmId,
                        what: input,
                    });
                }
            }
            PromptKind::ForkChange => match parse_changes(&input) {
                Ok(_) => {
                    let out = self.fork_folder();
                    self.open_prompt_with(PromptKind::ForkOutput { changes: input }, out);
                }
                Err(e) => self.error(e),
            },
            PromptKind::ForkOutput { changes } => {
                if input.is_empty() {
                    self.error("the fork needs a folder".into());
                } else {
                    let snap = &self.state.snapshot;
                    self.submit(Job::Fork {
                        at_ns: snap.cursor_vtime,
                        changes: split_changes(&changes),
                        out: input.into(),
                        end_ns: self.state.end_vtime,
                    });
                }
            }
            PromptKind::Memory => {
                let table = self
                    .programs
                    .get(focus)
                    .map(|p| p.symbols().clone())
                    .unwrap_or_default();
                let source = match Gpr::from_name(&input.to_lowercase()) {
                    Some(r) => Ok(MemSource::Register(r)),
                    None => table
                        .parse_location(&input)
                        .map(|a| MemSource::Fixed(a, input.clone())),
                };
                match source {
                    Ok(s) => {
                        self.mem = s;
                        self.state.side_pane = crate::state::SidePane::Memory;
                        self.submit(Job::Refresh);
                    }
                    Err(e) => self.error(e),
                }
            }
        }
    }
}

/// Goes to a position an analysis named (a call's entry, an origin link):
/// the Session's goto of `VM:ICOUNT`, with the VM by its number.
fn goto_pos(pos: Pos) -> Job {
    Job::Move(goto_move(pos))
}

/// The Session's goto of `VM:ICOUNT`, with the VM by its number.
fn goto_move(pos: Pos) -> Move {
    Move::Goto(Moment::Icount {
        vm: Some((pos.vm + 1).to_string()),
        icount: pos.icount,
    })
}

/// The changes of a fork prompt: `;` separates several; none is allowed
/// (the fork then runs on as recorded).
fn split_changes(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// Checks every change of a fork prompt with the one change grammar.
fn parse_changes(text: &str) -> Result<Vec<Change>, String> {
    split_changes(text)
        .iter()
        .map(|c| Change::parse(c).map_err(|e| e.to_string()))
        .collect()
}

impl App {
    /// The change a fork at the cursor suggests from the selected event:
    /// dropping the selected frame, removing the selected fault.
    fn suggested_change(&self) -> Option<String> {
        if self.state.list_pane != ListPane::Events {
            return None;
        }
        let e = self.state.events.selected_event()?;
        match e.kind {
            EventKind::FrameSent | EventKind::FrameRecv => Some(format!("drop frame {}", e.value?)),
            EventKind::Fault => Some(format!("remove fault {}", self.views.fault_number(e.vtime_ns)?)),
            _ => None,
        }
    }

    /// Goes to where the focus VM first differs from the trace this one is
    /// opened beside: the Session's goto of the diff's `VM:ICOUNT`.
    fn go_to_divergence(&mut self) {
        let focus = self.state.snapshot.focus;
        let name = self.state.vm_name(focus).to_string();
        match &self.state.compare {
            None => self.error("not opened beside another trace: vmrr tui FORK --beside".into()),
            Some(c) => match c.divergence(focus) {
                Some(d) => {
                    let pos = Pos::new(focus as VmId, d.icount, d.vtime_ns);
                    let summary = c.summary(focus, &name);
                    self.submit(Job::Divergence {
                        to: goto_move(pos),
                        summary,
                    });
                }
                None => {
                    let summary = c.summary(focus, &name);
                    self.info(summary);
                }
            },
        }
    }

    /// The first `<trace>-fork-N` beside the trace that does not exist yet.
    fn fork_folder(&self) -> String {
        let base = self.trace_dir.as_os_str().to_string_lossy();
        let base = base.trim_end_matches('/');
        (1..)
            .map(|n| format!("{base}-fork-{n}"))
            .find(|p| !std::path::Path::new(p).exists())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_changes_split_and_parse() {
        assert_eq!(
            split_changes(" drop frame 49 ; ; seed 3 "),
            ["drop frame 49", "seed 3"]
        );
        assert!(split_changes("  ").is_empty());
        assert_eq!(parse_changes("drop frame 49; seed 3").map(|c| c.len()), Ok(2));
        assert!(parse_changes("drop the bass").is_err());
    }

    #[test]
    fn positions_are_gone_to_by_vm_number() {
        let job = goto_pos(Pos::new(2, 38711, 5));
        let expected = Moment::Icount {
            vm: Some("3".into()),
            icount: 38711,
        };
        assert_eq!(job, Job::Move(Move::Goto(expected)));
    }
}
