//! The `packets` table (schema 3): every frame a VM sent, once, with its
//! bytes and its decoded headers, and the typed queries over it (a frame,
//! the frames of a time window, a TCP segment's retransmission and the ACK
//! that covers it).

use rusqlite::types::Value;
use rusqlite::Row;

use crate::decode::{ip_text, mac_text, tcp_flags, Decoded};
use crate::error::{Result, SqlContext};
use crate::query::get_u64;
use crate::rows::VmId;
use crate::write::int;
use crate::Index;

/// The most bytes of one frame `packets.bytes` keeps. vmrr's NIC carries
/// frames of at most 1514 bytes, so every frame is kept whole; the cap
/// bounds what a future device or a hand-made row could make the index
/// hold. A longer frame keeps its first bytes and its full `len`.
pub const PACKET_BYTES_CAP: usize = 4096;

/// One row of `packets`: a frame as its sender's NIC sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRow {
    /// The frame's id (`frames.id`, `events.value` of its events).
    pub id: u64,
    /// The sending VM.
    pub src: VmId,
    /// The sender's icount at the send.
    pub sent_icount: u64,
    /// The sender's virtual time at the send.
    pub sent_vtime_ns: u64,
    /// The frame's length on the wire.
    pub len: u32,
    /// Its first [`PACKET_BYTES_CAP`] bytes (all of them, in practice).
    pub bytes: Vec<u8>,
}

/// Columns of `packets`, in the order [`PacketRow::values`] gives them.
pub(crate) const PACKET_COLS: &str = "id, src, sent_icount, sent_vtime_ns, len, bytes, proto, eth_dst, \
     eth_src, ethertype, ip_src, ip_dst, ip_proto, src_port, dst_port, tcp_seq, tcp_ack, tcp_flags, \
     tcp_window, payload_len, arp_op, icmp_type, icmp_code, malformed";
/// How many columns that is.
pub(crate) const PACKET_COL_COUNT: usize = 24;
/// The columns a [`PacketRow`] is read back from (the rest is decoded again).
const ROW_COLS: &str = "id, src, sent_icount, sent_vtime_ns, len, bytes";

impl PacketRow {
    /// The row of frame `id` sent by `src` at `(sent_icount, sent_vtime_ns)`:
    /// its bytes, cut at [`PACKET_BYTES_CAP`].
    pub fn new(id: u64, src: VmId, sent_icount: u64, sent_vtime_ns: u64, frame: &[u8]) -> PacketRow {
        PacketRow {
            id,
            src,
            sent_icount,
            sent_vtime_ns,
            len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            bytes: frame[..frame.len().min(PACKET_BYTES_CAP)].to_vec(),
        }
    }

    /// The headers of the kept bytes.
    pub fn decoded(&self) -> Decoded {
        Decoded::of(&self.bytes)
    }

    /// Whether the frame was longer than what is kept.
    pub fn is_cut(&self) -> bool {
        (self.bytes.len() as u64) < u64::from(self.len)
    }

    /// Every column's value, as stored (the decoded ones computed here): the
    /// writer inserts them and the checksum hashes them.
    pub(crate) fn values(&self) -> Vec<Value> {
        let d = self.decoded();
        let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
        let text = |v: Option<String>| v.map_or(Value::Null, Value::Text);
        let tcp = d.tcp;
        vec![
            Value::Integer(self.id as i64),
            Value::Integer(i64::from(self.src)),
            Value::Integer(self.sent_icount as i64),
            Value::Integer(self.sent_vtime_ns as i64),
            Value::Integer(i64::from(self.len)),
            Value::Blob(self.bytes.clone()),
            Value::Text(d.proto.as_str().to_string()),
            text(d.eth_dst.as_ref().map(mac_text)),
            text(d.eth_src.as_ref().map(mac_text)),
            int(d.ethertype.map(i64::from)),
            text(d.ip_src.as_ref().map(ip_text)),
            text(d.ip_dst.as_ref().map(ip_text)),
            int(d.ip_proto.map(i64::from)),
            int(d.src_port.map(i64::from)),
            int(d.dst_port.map(i64::from)),
            int(tcp.map(|t| i64::from(t.seq))),
            int(tcp.map(|t| i64::from(t.ack))),
            int(tcp.map(|t| i64::from(t.flags))),
            int(tcp.map(|t| i64::from(t.window))),
            int(d.payload_len.map(i64::from)),
            int(d.arp_op.map(i64::from)),
            int(d.icmp.map(|(t, _)| i64::from(t))),
            int(d.icmp.map(|(_, c)| i64::from(c))),
            text(d.malformed),
        ]
    }
}

/// The first column of every row `stmt` gives for `params`.
fn stmt_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<i64>> {
    stmt.query_map(params, |r| r.get::<_, i64>(0))?.collect()
}

fn packet_from_row(r: &Row<'_>) -> rusqlite::Result<PacketRow> {
    Ok(PacketRow {
        id: get_u64(r, 0)?,
        src: r.get(1)?,
        sent_icount: get_u64(r, 2)?,
        sent_vtime_ns: get_u64(r, 3)?,
        len: r.get(4)?,
        bytes: r.get(5)?,
    })
}

/// `PacketRow`'s IP and ports as SQL parameters, the flow of a TCP segment:
/// (source address, source port, destination address, destination port).
type Flow = (String, i64, String, i64);

fn flow(d: &Decoded) -> Option<Flow> {
    Some((
        ip_text(d.ip_src.as_ref()?),
        i64::from(d.src_port?),
        ip_text(d.ip_dst.as_ref()?),
        i64::from(d.dst_port?),
    ))
}

impl Index {
    /// Buffers the row of a frame that was sent (one per frame id; a row
    /// with the same id replaces it).
    pub fn add_packet(&mut self, packet: &PacketRow) -> Result<()> {
        self.require_writable("add packets")?;
        let p = &self.path;
        int(p, "packet id", packet.id)?;
        int(p, "packet sent_icount", packet.sent_icount)?;
        int(p, "packet sent_vtime_ns", packet.sent_vtime_ns)?;
        if let Some(c) = &mut self.checksums {
            c.packet(packet);
        }
        self.pending.packets.push(packet.clone());
        self.auto_flush()
    }

    fn query_packets(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<PacketRow>> {
        let p = &self.path;
        let mut stmt = self.conn.prepare_cached(sql).ctx(p, what)?;
        let rows = stmt.query_map(params, packet_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The frame with this id, as sent.
    pub fn packet(&self, id: u64) -> Result<Option<PacketRow>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let sql = format!("SELECT {ROW_COLS} FROM packets WHERE id = ?1");
        Ok(self.query_packets(&sql, [id], "reading a packet")?.pop())
    }

    /// Frames sent at `from_ns <= sent_vtime_ns < to_ns`, at most `limit`
    /// of them, in send order (id).
    pub fn packets_in_window(&self, from_ns: u64, to_ns: u64, limit: usize) -> Result<Vec<PacketRow>> {
        if from_ns >= to_ns || limit == 0 {
            return Ok(Vec::new());
        }
        let from = i64::try_from(from_ns).unwrap_or(i64::MAX);
        let to = i64::try_from(to_ns).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {ROW_COLS} FROM packets WHERE sent_vtime_ns >= ?1 AND sent_vtime_ns < ?2 ORDER BY id LIMIT ?3"
        );
        self.query_packets(&sql, (from, to, limit), "reading packets")
    }

    /// The frames `src` sent at its instruction `sent_icount`, by id.
    pub fn packets_sent_at(&self, src: VmId, sent_icount: u64) -> Result<Vec<PacketRow>> {
        let Ok(icount) = i64::try_from(sent_icount) else {
            return Ok(Vec::new());
        };
        let sql = format!("SELECT {ROW_COLS} FROM packets WHERE src = ?1 AND sent_icount = ?2 ORDER BY id");
        self.query_packets(&sql, (src, icount), "reading sent packets")
    }

    /// How many frames `packets` holds.
    pub fn packet_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM packets", [], |r| get_u64(r, 0))
            .ctx(&self.path, "counting packets")
    }

    /// The first later frame of the same TCP flow that starts at the same
    /// sequence number and carries data, SYN or FIN: the retransmission of
    /// `segment`. `None` for a segment that occupies no sequence space (a
    /// pure ACK) or was never sent again.
    pub fn tcp_retransmission(&self, segment: &PacketRow) -> Result<Option<PacketRow>> {
        self.same_start(segment, ">", "finding a retransmission")
    }

    /// The first frame of the same TCP flow that started at the same
    /// sequence number and carried data, SYN or FIN, if it is earlier than
    /// `segment`: what `segment` retransmits. `None` for a first copy.
    pub fn tcp_original(&self, segment: &PacketRow) -> Result<Option<PacketRow>> {
        self.same_start(segment, "<", "finding a segment's first copy")
    }

    /// The first frame (by id) of `segment`'s flow and sequence number that
    /// occupies sequence space, among those whose id is `side` (`<` or
    /// `>`) the segment's.
    fn same_start(&self, segment: &PacketRow, side: &str, doing: &'static str) -> Result<Option<PacketRow>> {
        let d = segment.decoded();
        let (Some(flow), Some(tcp), true) = (flow(&d), d.tcp, d.tcp_occupies_sequence()) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {ROW_COLS} FROM packets WHERE proto = 'tcp' AND ip_src = ?1 AND src_port = ?2 \
             AND ip_dst = ?3 AND dst_port = ?4 AND tcp_seq = ?5 AND id {side} ?6 \
             AND (payload_len > 0 OR tcp_flags & {}) ORDER BY id LIMIT 1",
            tcp_flags::SYN | tcp_flags::FIN
        );
        Ok(self
            .query_packets(
                &sql,
                (
                    flow.0,
                    flow.1,
                    flow.2,
                    flow.3,
                    i64::from(tcp.seq),
                    segment.id as i64,
                ),
                doing,
            )?
            .pop())
    }

    /// The first later frame of the opposite direction of `segment`'s TCP
    /// flow whose acknowledgement number covers it (at or past its end, in
    /// sequence arithmetic modulo 2^32). `None` for a segment that
    /// occupies no sequence space or was never acknowledged.
    pub fn tcp_ack_of(&self, segment: &PacketRow) -> Result<Option<PacketRow>> {
        let d = segment.decoded();
        let (Some(flow), Some(end), true) = (flow(&d), d.tcp_end_seq(), d.tcp_occupies_sequence()) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {ROW_COLS} FROM packets WHERE proto = 'tcp' AND ip_src = ?1 AND src_port = ?2 \
             AND ip_dst = ?3 AND dst_port = ?4 AND id > ?5 AND tcp_flags & {} \
             AND ((tcp_ack - ?6) & 4294967295) < 2147483648 ORDER BY id LIMIT 1",
            tcp_flags::ACK
        );
        Ok(self
            .query_packets(
                &sql,
                (flow.2, flow.3, flow.0, flow.1, segment.id as i64, i64::from(end)),
                "finding the ACK of a segment",
            )?
            .pop())
    }

    /// The initial sequence numbers of `segment`'s connection, as of that
    /// segment: (its flow's, the opposite flow's), each the sequence number
    /// of the flow's last SYN up to it; `None` where no SYN was seen.
    /// Relative sequence numbers (Wireshark's) count from them.
    pub fn tcp_isns(&self, segment: &PacketRow) -> Result<(Option<u32>, Option<u32>)> {
        let Some(flow) = flow(&segment.decoded()) else {
            return Ok((None, None));
        };
        let sql = format!(
            "SELECT tcp_seq FROM packets WHERE proto = 'tcp' AND ip_src = ?1 AND src_port = ?2 \
             AND ip_dst = ?3 AND dst_port = ?4 AND tcp_flags & {} AND id <= ?5 ORDER BY id DESC LIMIT 1",
            tcp_flags::SYN
        );
        let p = &self.path;
        let what = "finding a connection's SYN";
        let mut stmt = self.conn.prepare_cached(&sql).ctx(p, what)?;
        let id = segment.id as i64;
        let mut isn = |a: &String, ap: i64, b: &String, bp: i64| -> Result<Option<u32>> {
            let mut rows = stmt_rows(&mut stmt, (a, ap, b, bp, id)).ctx(p, what)?;
            Ok(rows.pop().and_then(|v| u32::try_from(v).ok()))
        };
        let own = isn(&flow.0, flow.1, &flow.2, flow.3)?;
        let peer = isn(&flow.2, flow.3, &flow.0, flow.1)?;
        Ok((own, peer))
    }

    /// For a trace recorded before schema 3 (its `packets` table is empty):
    /// a row for every frame that was received, from the bytes its
    /// `frame_recv` event carries and the send in `frames`. Frames that
    /// reached nobody kept no bytes then, and get no row. Returns how many
    /// rows were added; nothing when the table already has rows. The
    /// checksums are sealed again, since the rows are new.
    pub fn fill_packets_from_receipts(&mut self) -> Result<u64> {
        if self.packet_count()? > 0 {
            return Ok(0);
        }
        let p = self.path.clone();
        let what = "reading the frames received";
        let rows: Vec<PacketRow> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT f.id, f.src, f.sent_icount, f.sent_vtime_ns, e.payload FROM frames f \
                     JOIN events e ON e.kind = 'frame_recv' AND e.value = f.id AND e.vm = f.dst \
                     AND e.icount = f.recv_icount WHERE e.payload IS NOT NULL GROUP BY f.id ORDER BY f.id",
                )
                .ctx(&p, what)?;
            let found = stmt
                .query_map([], |r| {
                    Ok(PacketRow::new(
                        get_u64(r, 0)?,
                        r.get(1)?,
                        get_u64(r, 2)?,
                        get_u64(r, 3)?,
                        &r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .ctx(&p, what)?;
            found.collect::<rusqlite::Result<Vec<_>>>().ctx(&p, what)?
        };
        for row in &rows {
            self.add_packet(row)?;
        }
        self.flush()?;
        if self.has_checksums()? {
            self.seal_checksums()?;
        }
        Ok(rows.len() as u64)
    }

    /// Every row of `packets` as stored, column by column (for the checksum).
    pub(crate) fn packet_values(&self) -> Result<Vec<Vec<Value>>> {
        let p = &self.path;
        let what = "reading packets";
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {PACKET_COLS} FROM packets"))
            .ctx(p, what)?;
        let rows = stmt
            .query_map([], |r| {
                (0..PACKET_COL_COUNT).map(|i| r.get::<_, Value>(i)).collect()
            })
            .ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Proto;

    #[test]
    fn the_sql_spells_the_protocol_as_the_decoder_does() {
        assert_eq!(Proto::Tcp.as_str(), "tcp");
        assert_eq!(PACKET_COLS.split(',').count(), PACKET_COL_COUNT);
        let row = PacketRow::new(1, 0, 2, 3, &[0u8; 5000]);
        assert_eq!(
            (row.len, row.bytes.len(), row.is_cut()),
            (5000, PACKET_BYTES_CAP, true)
        );
        assert_eq!(row.values().len(), PACKET_COL_COUNT);
    }
}
