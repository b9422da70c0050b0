//! Frames as causal edges: from a send to every receipt (a flooded frame
//! has several), from a receipt back to its send; and TCP segments as parts
//! of a connection: from a segment to its retransmission and to the ACK
//! that covers it.

use vmrr_index::decode::Proto;
use vmrr_index::{EventKind, EventRow, FrameFate, PacketRow};

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

/// Which later frame of a TCP connection [`Move::FollowSegment`](super::Move::FollowSegment) goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentLink {
    /// The segment sent again: the same flow and sequence number, later.
    Retransmission,
    /// The first copy of a segment that was sent again: the same flow and
    /// sequence number, earliest.
    Original,
    /// The first frame back whose acknowledgement covers the segment.
    Ack,
}

impl SegmentLink {
    /// What it is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            SegmentLink::Retransmission => "retransmission",
            SegmentLink::Original => "first copy",
            SegmentLink::Ack => "ACK",
        }
    }
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

    /// Performs [`Move::FollowSegment`](super::Move::FollowSegment): goes to
    /// just after the send of the retransmission of, or the ACK covering,
    /// the TCP segment of `event` (or of the frame at the cursor).
    pub(super) fn follow_segment(
        &mut self,
        event: Option<u64>,
        to: SegmentLink,
    ) -> Result<vmrr_index::Pos, SessionError> {
        let frames = self.frame_ends(event)?;
        let frame = match (event, frames.first()) {
            (_, Some(end)) => end.frame,
            (Some(id), None) => {
                return Err(SessionError::NoFrame(format!(
                    "frame event #{id} has no frame in this trace"
                )))
            }
            (None, None) => {
                return Err(SessionError::NoFrame(format!(
                    "{} sent or received no frame at the cursor: select a TCP segment",
                    self.vm_name(self.focus)
                )))
            }
        };
        let found = self.segment_link(frame, to)?;
        let end = {
            let index = self.trace.index();
            FrameEnd {
                frame: found.id,
                kind: EndKind::Send,
                vm: found.src,
                icount: Some((found.sent_icount + 1).min(self.trace.end_icount(found.src as usize))),
                fate: FrameFate::Received,
                event: index
                    .frame_event(found.src, found.sent_icount, EventKind::FrameSent, found.id)?
                    .map(|e| e.id),
            }
        };
        self.go_to_end(&end)
    }

    /// The frame that is `to` of TCP segment `frame`, or why there is none.
    fn segment_link(&self, frame: u64, to: SegmentLink) -> Result<PacketRow, SessionError> {
        let index = self.trace.index();
        let Some(packet) = index.packet(frame)? else {
            return Err(SessionError::NoFrame(format!(
                "the trace keeps no bytes of frame #{frame} (recorded before vmrr kept frames): record it again"
            )));
        };
        let d = packet.decoded();
        if d.proto != Proto::Tcp {
            return Err(SessionError::NoFrame(format!(
                "frame #{frame} is not a TCP segment ({})",
                d.proto
            )));
        }
        if !d.tcp_occupies_sequence() {
            return Err(SessionError::NoFrame(format!(
                "frame #{frame} carries no data, SYN or FIN: nothing is retransmitted or acknowledged"
            )));
        }
        let found = match to {
            SegmentLink::Retransmission => index.tcp_retransmission(&packet)?,
            SegmentLink::Original => index.tcp_original(&packet)?,
            SegmentLink::Ack => index.tcp_ack_of(&packet)?,
        };
        found.ok_or_else(|| {
            SessionError::NoFrame(match to {
                SegmentLink::Retransmission => {
                    format!("frame #{frame} was not sent again later in this trace")
                }
                SegmentLink::Original => format!("frame #{frame} is the first copy of its segment"),
                SegmentLink::Ack => format!("no later frame in this trace acknowledges frame #{frame}"),
            })
        })
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
