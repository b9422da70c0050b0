//! Queries of the frames table: a frame's receipts, its send, the edges a
//! timeline draws.

use super::{frame_from_row, limit, FRAME_COLS};
use crate::error::{Result, SqlContext};
use crate::rows::{EventKind, EventRow, FrameRow, VmId};
use crate::Index;

impl Index {
    fn query_frames(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<FrameRow>> {
        let p = &self.path;
        let mut stmt = self.conn.prepare_cached(sql).ctx(p, what)?;
        let rows = stmt.query_map(params, frame_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// Up to `limit` frame rows, without their payloads, in send order
    /// (sent time, id, destination): the edges a timeline draws.
    pub fn frame_edges(&self, limit: usize) -> Result<Vec<FrameRow>> {
        let cols = FRAME_COLS.replace("payload", "NULL");
        let sql = format!("SELECT {cols} FROM frames ORDER BY sent_vtime_ns, id, dst LIMIT ?1");
        self.query_frames(&sql, [self::limit(limit)], "reading frames")
    }

    /// The VMs at the other end of a frame event: every receiver of a send
    /// (several for a flooded frame), the sender of a receipt; none for
    /// other events.
    pub fn frame_peers(&self, e: &EventRow) -> Result<Vec<VmId>> {
        let Some(frame) = e.value else {
            return Ok(Vec::new());
        };
        Ok(match e.kind {
            EventKind::FrameSent => self
                .frame_receipts_of_send(frame)?
                .iter()
                .map(|f| f.dst)
                .collect(),
            EventKind::FrameRecv => self.frame(frame, e.vm)?.map(|f| f.src).into_iter().collect(),
            _ => Vec::new(),
        })
    }

    /// The frame `id` on its way to `dst`.
    pub fn frame(&self, id: u64, dst: VmId) -> Result<Option<FrameRow>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let sql = format!("SELECT {FRAME_COLS} FROM frames WHERE id = ?1 AND dst = ?2");
        Ok(self.query_frames(&sql, (id, dst), "reading a frame")?.pop())
    }

    /// Every destination's row of frame `frame_id` (one for a unicast frame,
    /// several for a flooded one), by destination.
    pub fn frame_receipts_of_send(&self, frame_id: u64) -> Result<Vec<FrameRow>> {
        let Ok(id) = i64::try_from(frame_id) else {
            return Ok(Vec::new());
        };
        let sql = format!("SELECT {FRAME_COLS} FROM frames WHERE id = ?1 ORDER BY dst");
        self.query_frames(&sql, [id], "reading the receipts of a frame")
    }

    /// The frames handed to `dst`'s NIC before its instruction `recv_icount`
    /// (several frames can arrive at the same instruction boundary), by id.
    pub fn frames_received_at(&self, dst: VmId, recv_icount: u64) -> Result<Vec<FrameRow>> {
        let Ok(icount) = i64::try_from(recv_icount) else {
            return Ok(Vec::new());
        };
        let sql = format!("SELECT {FRAME_COLS} FROM frames WHERE dst = ?1 AND recv_icount = ?2 ORDER BY id");
        self.query_frames(&sql, (dst, icount), "reading received frames")
    }

    /// The send of the frame `dst` received at `recv_icount` (the one with
    /// the lowest id if several arrived at that instruction): its row holds
    /// the sender and the sender's icount.
    pub fn frame_send_of_receipt(&self, dst: VmId, recv_icount: u64) -> Result<Option<FrameRow>> {
        Ok(self.frames_received_at(dst, recv_icount)?.into_iter().next())
    }

    /// The frames `src` sent at its instruction `sent_icount` (one row per
    /// destination), by id and destination.
    pub fn frames_sent_at(&self, src: VmId, sent_icount: u64) -> Result<Vec<FrameRow>> {
        let Ok(icount) = i64::try_from(sent_icount) else {
            return Ok(Vec::new());
        };
        let sql =
            format!("SELECT {FRAME_COLS} FROM frames WHERE src = ?1 AND sent_icount = ?2 ORDER BY id, dst");
        self.query_frames(&sql, (src, icount), "reading sent frames")
    }
}
