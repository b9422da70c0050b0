//! Crossing the wire: bytes the network card wrote into a receive buffer
//! are bytes of a recorded frame; the frame's row names its sender and the
//! sender's icount, and the sender's step there — replayed with the card's
//! log on — says which transmit-buffer bytes the card read for them.

use std::sync::Arc;

use vmrr_backend::devices::virtio_net::{DmaAccess, DmaKind};
use vmrr_index::{Pos, VmId};

use super::super::flow::{hex_value, Loc};
use super::{LinkKind, OriginEnd, OriginLink, Place, Tracer};
use crate::analysis::AnalysisError;

/// Where a chain goes after the card.
pub(super) enum Crossed {
    /// On, in `vm` at position `at`, with `loc`.
    Next {
        /// The VM.
        vm: usize,
        /// The position (before that instruction).
        at: u64,
        /// The bytes.
        loc: Loc,
    },
    /// Nowhere: the card wrote something of its own, or the send cannot be replayed.
    End(OriginEnd),
}

impl Tracer<'_> {
    /// The card of `vm` wrote `part` at `pos` (handing over input `input`,
    /// or at a queue notification at `rip`): adds the links of the frame
    /// and says where the chain goes on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cross(
        &mut self,
        vm: usize,
        pos: Pos,
        rip: Option<u64>,
        dma: &DmaAccess,
        input: Option<usize>,
        part: &Loc,
        links: &mut Vec<OriginLink>,
    ) -> Result<Crossed, AnalysisError> {
        let (DmaKind::RxFrame { frame, offset }, Loc::Mem { pa, len }) = (&dma.kind, *part) else {
            return Ok(Crossed::End(OriginEnd::Constant(match dma.kind {
                DmaKind::RxHeader => "the virtio-net header the card writes before each frame".into(),
                _ => "the card's used-ring bookkeeping".into(),
            })));
        };
        let fo = offset + (pa - dma.gpa);
        let bytes = frame
            .get(fo as usize..(fo + len) as usize)
            .map(hex_value)
            .unwrap_or_default();
        let inputs = self.trace.inputs(vm);
        // A frame written at a queue notification waited in the card's
        // backlog: the latest input with these bytes handed over before.
        let Some(i) = input.or_else(|| {
            inputs
                .iter()
                .rposition(|i| i.icount <= pos.icount && i.frame[..] == frame[..])
        }) else {
            return Ok(Crossed::End(OriginEnd::Unknown(
                "a frame the card wrote is not among the recorded inputs".into(),
            )));
        };
        let inp = &inputs[i];
        let rank = inputs[..i]
            .iter()
            .filter(|j| j.icount == inp.icount && j.frame == inp.frame)
            .count();
        let rows = self.trace.index().frames_received_at(vm as VmId, inp.icount)?;
        let Some(row) = rows
            .iter()
            .filter(|r| r.payload.as_deref().is_none_or(|p| p == &inp.frame[..]))
            .nth(rank)
            .or(rows.first())
            .cloned()
        else {
            return Ok(Crossed::End(OriginEnd::Unknown(format!(
                "no frame row for the frame handed to {} at icount {}",
                self.vm_name(vm),
                inp.icount
            ))));
        };
        let src = row.src as usize;
        let (function, line) = match rip {
            Some(r) => self.images.place(self.trace, vm, r),
            None => (None, None),
        };
        let range = format!("bytes {fo}..{}", fo + len);
        links.push(OriginLink {
            pos,
            vm_name: self.vm_name(vm),
            rip,
            function,
            line,
            kind: LinkKind::Received {
                frame: row.id,
                from_vm: row.src,
            },
            what: format!(
                "virtio-net wrote frame #{} from {} into a receive buffer",
                row.id,
                self.vm_name(src)
            ),
            dest: format!("physical {pa:#x}, {len} bytes"),
            place: Place::Memory { pa, va: None, len },
            from: format!("frame #{} {range}", row.id),
            flow: "received".into(),
            value: Some(bytes.clone()),
            trivial: false,
        });
        let s_at = row.sent_icount;
        let cps = self.trace.checkpoints(src);
        if s_at >= self.trace.end_icount(src) {
            return Ok(Crossed::End(OriginEnd::Unknown(format!(
                "frame #{} was sent by {} after its last checkpoint: the send cannot be replayed",
                row.id,
                self.vm_name(src)
            ))));
        }
        let k = cps.iter().rposition(|c| c.icount <= s_at).unwrap_or(0);
        let rec = self.recording(src, k, s_at + 1)?;
        let Some(step) = rec.steps.iter().find(|s| s.icount == s_at) else {
            return Ok(Crossed::End(OriginEnd::Unknown(format!(
                "{} did not run its step {s_at} on replay",
                self.vm_name(src)
            ))));
        };
        // Several frames with the same bytes may go out at one notification.
        let sent = self.trace.index().frames_sent_at(row.src, s_at)?;
        let mut ids: Vec<u64> = sent
            .iter()
            .filter(|r| r.payload.as_deref().is_none_or(|p| p == &frame[..]))
            .map(|r| r.id)
            .collect();
        ids.dedup();
        let nth = ids.iter().position(|id| *id == row.id).unwrap_or(0);
        let mut groups: Vec<&Arc<[u8]>> = Vec::new();
        let piece = step.dma.iter().find(|a| {
            let DmaKind::TxFrame { frame: f, offset } = &a.kind else {
                return false;
            };
            if f[..] != frame[..] {
                return false;
            }
            if !groups.iter().any(|g| Arc::ptr_eq(g, f)) {
                groups.push(f);
            }
            groups.len() == nth + 1 && *offset <= fo && fo < offset + a.len
        });
        let Some((tx_pa, n)) = piece.and_then(|a| match &a.kind {
            DmaKind::TxFrame { offset, .. } => Some((a.gpa + (fo - offset), len.min(offset + a.len - fo))),
            _ => None,
        }) else {
            return Ok(Crossed::End(OriginEnd::Unknown(format!(
                "{} sent no such bytes at its step {s_at} on replay",
                self.vm_name(src)
            ))));
        };
        let (function, line) = self.images.place(self.trace, src, step.regs.rip());
        links.push(OriginLink {
            pos: Pos::new(row.src, s_at, step.vtime),
            vm_name: self.vm_name(src),
            rip: Some(step.regs.rip()),
            function,
            line,
            kind: LinkKind::Sent {
                frame: row.id,
                to_vm: vm as VmId,
            },
            what: format!(
                "virtio-net read frame #{} for {} from a transmit buffer ({})",
                row.id,
                self.vm_name(vm),
                step.instr
            ),
            dest: format!("frame #{} {range}", row.id),
            place: Place::Frame {
                frame: row.id,
                offset: fo,
                len: n,
            },
            from: format!("physical {tx_pa:#x}, {n} bytes"),
            flow: "sent".into(),
            value: Some(bytes),
            trivial: false,
        });
        Ok(Crossed::Next {
            vm: src,
            at: s_at,
            loc: Loc::Mem { pa: tx_pa, len: n },
        })
    }
}
