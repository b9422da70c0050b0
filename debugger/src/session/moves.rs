//! Every movement a view can ask for, as one [`Move`] that
//! [`Session::perform`] carries out, and its [`Outcome`].

use vmrr_index::{EventFilter, Position};

use super::follow::{FrameEnd, SegmentLink};
use super::moment::Moment;
use super::over::Returned;
use super::{Direction, Hit, Pos, Scope, Session, SessionError, StopReason, VmId};

/// A movement of the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// One instruction of one VM (it becomes the focus).
    Step {
        /// The VM.
        vm: VmId,
        /// Which way.
        dir: Direction,
    },
    /// One instruction of the cluster, in the cluster order.
    StepCluster(Direction),
    /// Step one VM forward while its next instruction is in `[start, end)`
    /// (gdb's range stepping): one request instead of one per instruction.
    StepRange {
        /// The VM.
        vm: VmId,
        /// First address of the range.
        start: u64,
        /// Just past its last address.
        end: u64,
    },
    /// To a moment as a person names it (`12.5ms`, `backup2:45000`, …).
    Goto(Moment),
    /// To an event (its VM becomes the focus).
    GotoEvent(u64),
    /// To the next or previous event that passes `filter`.
    Event {
        /// Which way.
        dir: Direction,
        /// Which events count.
        filter: EventFilter,
    },
    /// Along a frame to its other end: from a send to a receipt, from a
    /// receipt to just after the send.
    Follow {
        /// The frame's `frame_sent`/`frame_recv` event; `None`: the frame the
        /// focus VM sent or received at the cursor.
        event: Option<u64>,
        /// Which receiver, for a frame that reached several.
        to: Option<VmId>,
    },
    /// From a TCP segment to another frame of its connection: the
    /// retransmission of the segment (same flow, same sequence number,
    /// later), its first copy (the same, earliest), or the ACK that covers
    /// it (the opposite flow, an acknowledgement number at or past its
    /// end). The cursor goes just after that frame's send, on its
    /// `frame_sent` event; [`Move::Follow`] then reaches its receipt.
    FollowSegment {
        /// The segment's `frame_sent`/`frame_recv` event; `None`: the frame
        /// the focus VM sent or received at the cursor.
        event: Option<u64>,
        /// Which frame.
        to: SegmentLink,
    },
    /// Until the function the VM stands in returns (`finish`).
    Finish {
        /// The VM.
        vm: VmId,
    },
    /// One instruction, or while in `range` (a source line), running calls
    /// through to their return (`next`, `nexti`).
    Next {
        /// The VM.
        vm: VmId,
        /// Keep going while the next instruction is in `[start, end)`.
        range: Option<(u64, u64)>,
    },
    /// Over the source line the VM stands on, running calls through to
    /// their return (a `next` whose range the Session takes from the line
    /// table; one instruction where there is none).
    NextLine {
        /// The VM.
        vm: VmId,
    },
    /// To an address, or until the current function returns, whichever comes
    /// first (`until LOCATION`, `advance`).
    Until {
        /// The VM.
        vm: VmId,
        /// The address.
        addr: u64,
    },
    /// Until a breakpoint or watchpoint hit, or an end of the recording.
    Continue {
        /// The VMs searched.
        scope: Scope,
        /// Which way.
        dir: Direction,
    },
}

/// How a move ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cursor moved; the focus VM stands at `pos`.
    Moved {
        /// Where the focus VM stands.
        pos: Pos,
        /// The event the cursor stands on, if the move went to one.
        event: Option<u64>,
    },
    /// A breakpoint or watchpoint was hit; the cursor is there.
    Hit(Hit),
    /// The recording ends this way: a step did not move, a continue went to that end.
    End(Direction),
    /// No event passes the filter that way; the cursor did not move.
    NoEvent(Direction),
    /// The search was cancelled; the cursor did not move.
    Cancelled,
    /// The frame has several other ends and the move named none: the cursor
    /// did not move; follow again with `to` set to one of them.
    Choose(Vec<FrameEnd>),
}

/// The outcome of a continue.
fn stopped(stop: StopReason) -> Outcome {
    match stop {
        StopReason::Hit(hit) => Outcome::Hit(hit),
        StopReason::EndOfHistory(dir) => Outcome::End(dir),
        StopReason::Cancelled => Outcome::Cancelled,
    }
}

impl Session {
    /// Performs a move. `progress` gets the fraction done of a long search.
    pub fn perform(&mut self, mv: &Move, progress: &(dyn Fn(f64) + Sync)) -> Result<Outcome, SessionError> {
        match mv {
            Move::Step { vm, dir } => match self.step(*vm, *dir)? {
                Some(pos) => Ok(self.moved(pos)),
                None => Ok(Outcome::End(*dir)),
            },
            Move::StepCluster(dir) => match self.step_cluster(*dir)? {
                Some(pos) => Ok(self.moved(pos)),
                None => Ok(Outcome::End(*dir)),
            },
            Move::StepRange { vm, start, end } => match self.step_range(*vm, *start, *end)? {
                Some(pos) => Ok(self.moved(pos)),
                None => Ok(Outcome::End(Direction::Forward)),
            },
            Move::Goto(moment) => {
                let pos = self.goto_moment(moment)?;
                Ok(self.moved(pos))
            }
            Move::GotoEvent(id) => {
                let pos = self.goto_event(*id)?;
                Ok(self.moved(pos))
            }
            Move::Event { dir, filter } => self.step_event(*dir, filter),
            Move::Follow { event, to } => self.follow(*event, *to),
            Move::FollowSegment { event, to } => {
                let pos = self.follow_segment(*event, *to)?;
                Ok(self.moved(pos))
            }
            Move::Continue { scope, dir } => Ok(stopped(self.continue_(*scope, *dir, progress)?)),
            Move::Finish { vm } => {
                let done = self.finish(*vm, progress)?;
                Ok(self.returned(done))
            }
            Move::Next { vm, range } => {
                let done = self.next(*vm, *range, progress)?;
                Ok(self.returned(done))
            }
            Move::NextLine { vm } => {
                let done = self.next_line(*vm, progress)?;
                Ok(self.returned(done))
            }
            Move::Until { vm, addr } => {
                let done = self.until(*vm, *addr, progress)?;
                Ok(self.returned(done))
            }
        }
    }

    fn returned(&self, done: Returned) -> Outcome {
        match done {
            Returned::Yes(pos) => self.moved(pos),
            Returned::No(stop) => stopped(stop),
        }
    }

    fn moved(&self, pos: Pos) -> Outcome {
        Outcome::Moved {
            pos,
            event: self.cursor.event,
        }
    }

    /// Goes to a moment; returns where the focus VM stands.
    pub fn goto_moment(&mut self, moment: &Moment) -> Result<Pos, SessionError> {
        match moment {
            Moment::Start => self.goto_vtime(0)?,
            Moment::End => {
                let vm = self.focus;
                self.goto(vm, self.end_icount(vm))?;
            }
            Moment::Time(t) => self.goto_vtime(*t)?,
            Moment::Icount { vm, icount } => {
                let vm = match vm {
                    Some(name) => self.vm_by_name(name)?,
                    None => self.focus,
                };
                self.goto(vm, *icount)?;
            }
            Moment::Event(id) => {
                self.goto_event(*id)?;
            }
            Moment::Bookmark(name) => {
                self.goto_bookmark(name)?;
            }
        }
        let focus = self.focus;
        self.position(focus)
    }

    /// Goes to the position of event `id`; its VM becomes the focus and the
    /// cursor stands on it.
    pub fn goto_event(&mut self, id: u64) -> Result<Pos, SessionError> {
        let event = self
            .trace
            .index()
            .event(id)?
            .ok_or(SessionError::NoSuchEvent(id))?;
        let pos = self.anchor(event.vm, event.icount, Some(id))?;
        self.focus = event.vm;
        Ok(pos)
    }

    /// The next or previous event passing `filter`, from the cursor (or the
    /// event it stands on).
    fn step_event(&mut self, dir: Direction, filter: &EventFilter) -> Result<Outcome, SessionError> {
        let found = {
            let index = self.trace.index();
            // From the event the cursor stands on (after following a frame to
            // its send, the cursor is just past the sending instruction), or
            // from the cursor itself.
            let on = match self.cursor.event {
                Some(id) => index.event(id)?,
                None => None,
            };
            let here = on
                .map(|e| e.position())
                .unwrap_or_else(|| Position::from(self.cursor.pos));
            match dir {
                Direction::Forward => index.next_event_after(None, here, filter)?,
                Direction::Backward => index.prev_event_before(None, here, filter)?,
            }
        };
        match found {
            Some(e) => {
                let pos = self.goto_event(e.id)?;
                Ok(self.moved(pos))
            }
            None => Ok(Outcome::NoEvent(dir)),
        }
    }

    /// Follows a frame (see [`Move::Follow`]).
    fn follow(&mut self, event: Option<u64>, to: Option<VmId>) -> Result<Outcome, SessionError> {
        let ends = self.frame_ends(event)?;
        if ends.is_empty() {
            return Err(SessionError::NoFrame(match event {
                Some(id) => format!("frame event #{id} has no other end in this trace"),
                None => format!(
                    "{} sent or received no frame at the cursor: select a frame event",
                    self.vm_name(self.focus)
                ),
            }));
        }
        let chosen = match to {
            Some(vm) => ends.iter().find(|e| e.vm == vm).ok_or_else(|| {
                SessionError::NoFrame(format!(
                    "frame #{} did not go to {}",
                    ends[0].frame,
                    self.vm_name(vm)
                ))
            })?,
            None => {
                let reachable: Vec<&FrameEnd> = ends.iter().filter(|e| e.reachable()).collect();
                match reachable.as_slice() {
                    [one] => *one,
                    [] => &ends[0],
                    _ => return Ok(Outcome::Choose(ends)),
                }
            }
        };
        let chosen = chosen.clone();
        let pos = self.go_to_end(&chosen)?;
        Ok(self.moved(pos))
    }

    /// For `vm` at the cursor, the last instruction before it that wrote
    /// (changed) guest-virtual bytes `[addr, addr + len)`; the cursor does
    /// not move.
    pub fn last_write(&mut self, vm: VmId, addr: u64, len: u64) -> Result<Option<Pos>, SessionError> {
        self.find_last_write(vm, addr, len)
    }

    /// Goes to a bookmark; its VM becomes the focus.
    pub fn goto_bookmark(&mut self, name: &str) -> Result<Pos, SessionError> {
        let b = self
            .trace
            .index()
            .bookmark_by_name(name)?
            .ok_or_else(|| SessionError::NoSuchBookmark(name.trim().to_string()))?;
        self.goto(b.vm, b.icount)
    }
}
