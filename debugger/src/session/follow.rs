//! Frames as causal edges: from a send to every receipt (a flooded frame
//! has several), from a receipt back to its send.

use vmrr_index::{EventKind, EventRow, FrameFate};

use super::{Session, SessionError, VmId};

/// Which end of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// Where it was sent.
    Send,
    /// Where it was (or would have been) received.
    Receipt,
}

/// One end of a frame, as a place to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameEnd {
    /// The frame's id.
    pub frame: u64,
    /// Send or receipt.
    pub kind: EndKind,
    /// The VM at that end.
    pub vm: VmId,
    /// Where following it puts that VM: just after the sending instruction,
    /// or at the receipt. `None` for a receipt that never happened.
    pub icount: Option<u64>,
    /// What became of the frame on its way to this receipt (`Received` for a send).
    pub fate: FrameFate,
    /// The event of this end (`frame_sent` or `frame_recv`), if it has one.
    pub event: Option<u64>,
}

impl FrameEnd {
    /// Whether following can go there.
    pub fn reachable(&self) -> bool {
        self.icount.is_some()
    }
}

impl Session {
    /// The other ends of the frame of event `event` (a `frame_sent` or
    /// `frame_recv` event), or of the frame the focus VM received at the
    /// cursor or sent with the instruction just before it.
    pub fn frame_ends(&mut self, event: Option<u64>) -> Result<Vec<FrameEnd>, SessionError> {
        let from: Vec<(EventKind, VmId, u64)> = match event {
            Some(id) => {
                let e = self
                    .trace
                    .index()
                    .event(id)?
                    .ok_or(SessionError::NoSuchEvent(id))?;
                if !matches!(e.kind, EventKind::FrameSent | EventKind::FrameRecv) {
                    return Err(SessionError::NoFrame(format!(
                        "event #{id} is a {} event, not a frame: select a sent or received frame",
                        e.kind
                    )));
                }
                vec![(e.kind, e.vm, e.value.unwrap_or(u64::MAX))]
            }
            None => self.frames_here()?,
        };
        let mut ends = Vec::new();
        for (kind, vm, frame) in from {
            ends.extend(self.other_ends(kind, vm, frame)?);
        }
        Ok(ends)
    }

    /// The frames the focus VM received exactly at the cursor, else those
    /// the instruction just before it sent.
    fn frames_here(&mut self) -> Result<Vec<(EventKind, VmId, u64)>, SessionError> {
        let vm = self.focus;
        let here = self.machine(vm)?.icount();
        let index = self.trace.index();
        let received: Vec<_> = index
            .frames_received_at(vm, here)?
            .into_iter()
            .map(|f| (EventKind::FrameRecv, vm, f.id))
            .collect();
        if !received.is_empty() {
            return Ok(received);
        }
        let mut sent: Vec<_> = Vec::new();
        for icount in [here.checked_sub(1), Some(here)].into_iter().flatten() {
            for f in index.frames_sent_at(vm, icount)? {
                if !sent.iter().any(|&(_, _, id)| id == f.id) {
                    sent.push((EventKind::FrameSent, vm, f.id));
                }
            }
            if !sent.is_empty() {
                break;
            }
        }
        Ok(sent)
    }

    fn other_ends(&self, kind: EventKind, vm: VmId, frame: u64) -> Result<Vec<FrameEnd>, SessionError> {
        let index = self.trace.index();
        let event_at = |vm: VmId, icount: u64, kind: EventKind| -> Result<Option<u64>, SessionError> {
            Ok(index
                .frame_event(vm, icount, kind, frame)?
                .map(|e: EventRow| e.id))
        };
        let mut ends = Vec::new();
        if kind == EventKind::FrameSent {
            for row in index.frame_receipts_of_send(frame)? {
                let event = match row.recv_icount {
                    Some(i) => event_at(row.dst, i, EventKind::FrameRecv)?,
                    None => None,
                };
                ends.push(FrameEnd {
                    frame,
                    kind: EndKind::Receipt,
                    vm: row.dst,
                    icount: row.recv_icount,
                    fate: row.fate,
                    event,
                });
            }
        } else if let Some(row) = index.frame(frame, vm)? {
            // Stand just after the instruction that sent it.
            let end = self.trace.end_icount(row.src as usize);
            ends.push(FrameEnd {
                frame,
                kind: EndKind::Send,
                vm: row.src,
                icount: Some((row.sent_icount + 1).min(end)),
                fate: FrameFate::Received,
                event: event_at(row.src, row.sent_icount, EventKind::FrameSent)?,
            });
        }
        Ok(ends)
    }

    /// Goes to one end of a frame; it and its VM become the cursor's event
    /// and the focus.
    pub(super) fn go_to_end(&mut self, end: &FrameEnd) -> Result<vmrr_index::Pos, SessionError> {
        let Some(icount) = end.icount else {
            return Err(SessionError::NoFrame(format!(
                "frame #{} never reached {}: {}",
                end.frame,
                self.vm_name(end.vm),
                end.fate
            )));
        };
        let pos = self.anchor(end.vm, icount, end.event)?;
        self.focus = end.vm;
        Ok(pos)
    }
}
