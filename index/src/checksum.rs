//! Checksums of what replay depends on: the frames handed to each VM (the
//! `frame_recv` events, payloads included), the frames table, the
//! checkpoints and the VMs; and of the frames' bytes and headers that the
//! views and `vmrr pcap` show (the packets table). The recorder's index keeps them up to date as it
//! writes (in `meta`, committed with the rows they cover), and opening a
//! trace recomputes them: an edited, deleted or added row is named as damage
//! before anything is shown from it.
//!
//! Each checksum is the sum, modulo 2^128, of a hash of every row, so rows
//! can be added in any order and a replaced row (a frame's fate updated)
//! is subtracted and added again.

use std::collections::HashMap;

use crate::error::{IndexError, Result, SqlContext};
use rusqlite::types::Value;

use crate::packets::PacketRow;
use crate::rows::{CheckpointRow, EventKind, EventRow, FrameRow, VmRow};
use crate::Index;

/// The tables a checksum covers, and their keys in `meta`.
pub const COVERED: [(&str, &str); 5] = [
    (
        "checksum.inputs",
        "the frames handed to the VMs (frame_recv events)",
    ),
    ("checksum.frames", "the frames table"),
    ("checksum.checkpoints", "the checkpoints table"),
    ("checksum.vms", "the vms table"),
    ("checksum.packets", "the packets table (the frames' bytes)"),
];

/// Bytes of a row, field by field with lengths, for hashing.
#[derive(Default)]
struct Canon(Vec<u8>);

impl Canon {
    fn u(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn opt(self, v: Option<u64>) -> Self {
        match v {
            Some(v) => self.u(1).u(v),
            None => self.u(0),
        }
    }
    fn bytes(mut self, b: Option<&[u8]>) -> Self {
        match b {
            Some(b) => {
                self = self.u(1).u(b.len() as u64);
                self.0.extend_from_slice(b);
                self
            }
            None => self.u(0),
        }
    }
    fn text(self, t: &str) -> Self {
        self.bytes(Some(t.as_bytes()))
    }
    fn hash(self) -> u128 {
        let h = blake3::hash(&self.0);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h.as_bytes()[..16]);
        u128::from_le_bytes(first)
    }
}

fn event_hash(e: &EventRow) -> u128 {
    Canon::default()
        .u(e.id)
        .u(u64::from(e.vm))
        .u(e.icount)
        .u(e.vtime_ns)
        .text(e.kind.as_str())
        .opt(e.value)
        .bytes(e.payload.as_deref())
        .bytes(e.text.as_deref().map(str::as_bytes))
        .hash()
}

fn frame_hash(f: &FrameRow) -> u128 {
    Canon::default()
        .u(f.id)
        .u(u64::from(f.src))
        .u(u64::from(f.dst))
        .u(u64::from(f.len))
        .u(f.sent_icount)
        .u(f.sent_vtime_ns)
        .u(f.arrival_ns)
        .opt(f.recv_icount)
        .opt(f.recv_vtime_ns)
        .text(f.fate.as_str())
        .bytes(f.payload.as_deref())
        .hash()
}

/// A packet row by its stored column values (the decoded columns too, so
/// an edit of any of them is caught).
fn packet_hash(values: &[Value]) -> u128 {
    values
        .iter()
        .fold(Canon::default(), |c, v| match v {
            Value::Null => c.u(0),
            Value::Integer(i) => c.u(1).u(*i as u64),
            Value::Real(r) => c.u(2).u(r.to_bits()),
            Value::Text(t) => c.u(3).text(t),
            Value::Blob(b) => c.u(4).bytes(Some(b)),
        })
        .hash()
}

fn checkpoint_hash(c: &CheckpointRow) -> u128 {
    Canon::default()
        .u(u64::from(c.vm))
        .u(c.icount)
        .u(c.vtime_ns)
        .text(&c.state_hash)
        .text(&c.manifest)
        .bytes(c.file_hash.as_deref().map(str::as_bytes))
        .hash()
}

fn vm_hash(v: &VmRow) -> u128 {
    Canon::default()
        .u(u64::from(v.id))
        .text(&v.name)
        .text(&v.image)
        .text(&v.image_hash)
        .u(v.mem_bytes)
        .text(&v.cmdline)
        .u(v.instr_per_us)
        .text(&v.mac)
        .opt(v.final_icount)
        .opt(v.final_vtime_ns)
        .bytes(v.stop.as_deref().map(str::as_bytes))
        .hash()
}

/// The running checksums of an index being recorded.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    sums: [u128; 5],
    frames: HashMap<(u64, u32), u128>,
    packets: HashMap<u64, u128>,
    checkpoints: HashMap<(u32, u64), u128>,
    vms: HashMap<u32, u128>,
}

impl Tracker {
    fn replace<K: std::hash::Hash + Eq>(sum: &mut u128, map: &mut HashMap<K, u128>, key: K, h: u128) {
        if let Some(old) = map.insert(key, h) {
            *sum = sum.wrapping_sub(old);
        }
        *sum = sum.wrapping_add(h);
    }

    pub(crate) fn event(&mut self, e: &EventRow) {
        if e.kind == EventKind::FrameRecv {
            self.sums[0] = self.sums[0].wrapping_add(event_hash(e));
        }
    }

    pub(crate) fn frame(&mut self, f: &FrameRow) {
        Self::replace(&mut self.sums[1], &mut self.frames, (f.id, f.dst), frame_hash(f));
    }

    pub(crate) fn checkpoint(&mut self, c: &CheckpointRow) {
        Self::replace(
            &mut self.sums[2],
            &mut self.checkpoints,
            (c.vm, c.icount),
            checkpoint_hash(c),
        );
    }

    pub(crate) fn packet(&mut self, p: &PacketRow) {
        Self::replace(
            &mut self.sums[4],
            &mut self.packets,
            p.id,
            packet_hash(&p.values()),
        );
    }

    pub(crate) fn vm(&mut self, v: &VmRow) {
        Self::replace(&mut self.sums[3], &mut self.vms, v.id, vm_hash(v));
    }

    /// The `meta` entries to write with the next flush.
    pub(crate) fn meta(&self) -> Vec<(String, String)> {
        COVERED
            .iter()
            .zip(self.sums)
            .map(|((key, _), sum)| (key.to_string(), format!("{sum:032x}")))
            .collect()
    }
}

impl Index {
    /// The checksums of the rows as they are now.
    fn current_sums(&self) -> Result<[u128; 5]> {
        let p = self.path.clone();
        let what = "computing the index's checksums";
        let mut sums = [0u128; 5];
        let inputs = self.events_in_window(
            0,
            u64::MAX,
            &crate::EventFilter::all().with_kinds(vec![EventKind::FrameRecv]),
            usize::MAX,
        )?;
        sums[0] = inputs.iter().fold(0, |s, e| s.wrapping_add(event_hash(e)));
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {} FROM frames", crate::query::FRAME_COLS))
            .ctx(&p, what)?;
        let frames = stmt
            .query_map([], crate::query::frame_from_row)
            .ctx(&p, what)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx(&p, what)?;
        sums[1] = frames.iter().fold(0, |s, f| s.wrapping_add(frame_hash(f)));
        let vms = self.vms()?;
        for v in &vms {
            sums[2] = self
                .checkpoints(v.id)?
                .iter()
                .fold(sums[2], |s, c| s.wrapping_add(checkpoint_hash(c)));
        }
        sums[3] = vms.iter().fold(0, |s, v| s.wrapping_add(vm_hash(v)));
        sums[4] = self
            .packet_values()?
            .iter()
            .fold(0, |s, row| s.wrapping_add(packet_hash(row)));
        Ok(sums)
    }

    /// Whether this index holds checksums (traces recorded before they were
    /// kept do not, until `vmrr index` adds them).
    pub fn has_checksums(&self) -> Result<bool> {
        Ok(self.meta(COVERED[0].0)?.is_some())
    }

    /// Recomputes the checksums of what replay depends on and compares them
    /// with the ones recorded. `Ok(false)` for a trace recorded before they
    /// were kept (nothing to compare with); a damage error naming the table
    /// that no longer matches.
    pub fn verify_checksums(&self) -> Result<bool> {
        if !self.has_checksums()? {
            return Ok(false);
        }
        let sums = self.current_sums()?;
        for ((key, covers), sum) in COVERED.iter().zip(sums) {
            let recorded = self.meta(key)?.unwrap_or_default();
            if recorded != format!("{sum:032x}") {
                return Err(IndexError::Damaged {
                    path: self.path.clone(),
                    detail: format!(
                        "{covers} no longer match the checksum recorded with them: rows were edited, \
                         added or deleted"
                    ),
                });
            }
        }
        Ok(true)
    }

    /// Stores checksums of the rows as they are now, for a trace recorded
    /// before they were kept: from here on, changes to them are caught.
    pub fn seal_checksums(&mut self) -> Result<()> {
        let sums = self.current_sums()?;
        for ((key, _), sum) in COVERED.iter().zip(sums) {
            self.set_meta(key, &format!("{sum:032x}"))?;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_a_row_subtracts_its_old_hash() {
        let mut t = Tracker::default();
        let mut f = FrameRow {
            id: 1,
            src: 0,
            dst: 1,
            len: 60,
            sent_icount: 10,
            sent_vtime_ns: 100,
            arrival_ns: 150,
            recv_icount: None,
            recv_vtime_ns: None,
            fate: crate::FrameFate::InFlight,
            payload: None,
        };
        t.frame(&f);
        f.fate = crate::FrameFate::Received;
        f.recv_icount = Some(20);
        f.recv_vtime_ns = Some(160);
        t.frame(&f);
        assert_eq!(t.sums[1], frame_hash(&f));
    }
}
