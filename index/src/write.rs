//! The batched writer: rows are checked and buffered, then committed together
//! in one transaction by `flush` (or by themselves every `batch_rows` rows).

use std::path::Path;

use rusqlite::params;

use crate::error::{IndexError, Result, SqlContext};
use crate::exec::ExecSliceRow;
use crate::packets::PacketRow;
use crate::rows::{CheckpointRow, EventRow, FrameRow, VmRow};
use crate::Index;

/// Rows waiting for the next flush.
#[derive(Default)]
pub(crate) struct Pending {
    events: Vec<EventRow>,
    frames: Vec<FrameRow>,
    pub(crate) packets: Vec<PacketRow>,
    checkpoints: Vec<CheckpointRow>,
    vms: Vec<VmRow>,
    meta: Vec<(String, String)>,
    pub(crate) exec: Vec<ExecSliceRow>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.events.len()
            + self.frames.len()
            + self.packets.len()
            + self.checkpoints.len()
            + self.vms.len()
            + self.meta.len()
            + self.exec.len()
    }
}

/// `v` as an SQLite integer, or an error naming the field if it is ≥ 2^63.
pub(crate) fn int(path: &Path, what: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| IndexError::OutOfRange {
        path: path.to_path_buf(),
        what,
        value: v,
    })
}

/// An optional coordinate as an SQLite integer or NULL.
fn opt_int(path: &Path, what: &'static str, v: Option<u64>) -> Result<Option<i64>> {
    v.map(|v| int(path, what, v)).transpose()
}

/// Bit-for-bit storage of `events.value` (see `rows.rs`).
pub(crate) fn value_bits(v: Option<u64>) -> Option<i64> {
    v.map(|v| v as i64)
}

impl Index {
    /// How many rows are buffered and not yet flushed.
    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }

    /// Sets how many buffered rows trigger an automatic flush (at least 1;
    /// the default is [`DEFAULT_BATCH_ROWS`](crate::DEFAULT_BATCH_ROWS)).
    pub fn set_batch_rows(&mut self, rows: usize) {
        self.batch_rows = rows.max(1);
    }

    /// Buffers an event and returns the id it gets (its `id` field is
    /// ignored). Events are numbered in the order they are added.
    pub fn add_event(&mut self, event: &EventRow) -> Result<u64> {
        self.require_writable("add events")?;
        let p = &self.path;
        int(p, "event vm", u64::from(event.vm))?;
        int(p, "event icount", event.icount)?;
        int(p, "event vtime_ns", event.vtime_ns)?;
        let id = self.next_event_id;
        int(p, "event id", id)?;
        let mut row = event.clone();
        row.id = id;
        if let Some(c) = &mut self.checksums {
            c.event(&row);
        }
        self.pending.events.push(row);
        self.next_event_id += 1;
        self.auto_flush()?;
        Ok(id)
    }

    /// Buffers a frame. A frame with the same (id, dst) as one already
    /// written replaces it: that is how an in-flight frame's fate is updated.
    pub fn add_frame(&mut self, frame: &FrameRow) -> Result<()> {
        self.require_writable("add frames")?;
        let p = &self.path;
        int(p, "frame id", frame.id)?;
        int(p, "frame sent_icount", frame.sent_icount)?;
        int(p, "frame sent_vtime_ns", frame.sent_vtime_ns)?;
        int(p, "frame arrival_ns", frame.arrival_ns)?;
        opt_int(p, "frame recv_icount", frame.recv_icount)?;
        opt_int(p, "frame recv_vtime_ns", frame.recv_vtime_ns)?;
        if let Some(c) = &mut self.checksums {
            c.frame(frame);
        }
        self.pending.frames.push(frame.clone());
        self.auto_flush()
    }

    /// Buffers a checkpoint; one at the same (vm, icount) is replaced.
    pub fn add_checkpoint(&mut self, checkpoint: &CheckpointRow) -> Result<()> {
        self.require_writable("add checkpoints")?;
        int(&self.path, "checkpoint icount", checkpoint.icount)?;
        int(&self.path, "checkpoint vtime_ns", checkpoint.vtime_ns)?;
        if let Some(c) = &mut self.checksums {
            c.checkpoint(checkpoint);
        }
        self.pending.checkpoints.push(checkpoint.clone());
        self.auto_flush()
    }

    /// Buffers a VM's row, replacing the row with the same id (and any other
    /// row with the same name). Called at the start of a recording, and again
    /// at its end with the final icount, time and stop reason.
    pub fn set_vm(&mut self, vm: &VmRow) -> Result<()> {
        self.require_writable("write VMs")?;
        let p = &self.path;
        int(p, "VM mem_bytes", vm.mem_bytes)?;
        int(p, "VM instr_per_us", vm.instr_per_us)?;
        opt_int(p, "VM final_icount", vm.final_icount)?;
        opt_int(p, "VM final_vtime_ns", vm.final_vtime_ns)?;
        if let Some(c) = &mut self.checksums {
            c.vm(vm);
        }
        self.pending.vms.push(vm.clone());
        self.auto_flush()
    }

    /// Buffers a `meta` entry, replacing any value the key had.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.require_writable("write meta")?;
        self.pending.meta.push((key.to_string(), value.to_string()));
        self.auto_flush()
    }

    pub(crate) fn auto_flush(&mut self) -> Result<()> {
        if self.pending.len() >= self.batch_rows {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Commits every buffered row in one transaction. Cheap when nothing is
    /// buffered, and meant to be called at every checkpoint: once it returns,
    /// what was added survives the recording process being killed. On error
    /// the rows stay buffered (and the transaction is rolled back).
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        self.require_writable("flush")?;
        // The checksums go with the rows they cover, in one transaction.
        if let Some(c) = &self.checksums {
            let meta = c.meta();
            self.pending
                .meta
                .retain(|(k, _)| !meta.iter().any(|(m, _)| m == k));
            self.pending.meta.extend(meta);
        }
        let path = self.path.clone();
        let p = path.as_path();
        let what = "writing a batch of rows";
        let tx = self.conn.unchecked_transaction().ctx(p, what)?;
        {
            let pending = &self.pending;
            if !pending.events.is_empty() {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO events(id, vm, icount, vtime_ns, kind, value, payload, text) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .ctx(p, what)?;
                for e in &pending.events {
                    stmt.execute(params![
                        e.id as i64,
                        e.vm,
                        e.icount as i64,
                        e.vtime_ns as i64,
                        e.kind.as_str(),
                        value_bits(e.value),
                        e.payload,
                        e.text,
                    ])
                    .ctx(p, "writing an event")?;
                }
            }
            if !pending.frames.is_empty() {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO frames(id, src, dst, len, sent_icount, sent_vtime_ns, \
                         arrival_ns, recv_icount, recv_vtime_ns, fate, payload) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .ctx(p, what)?;
                for f in &pending.frames {
                    stmt.execute(params![
                        f.id as i64,
                        f.src,
                        f.dst,
                        f.len,
                        f.sent_icount as i64,
                        f.sent_vtime_ns as i64,
                        f.arrival_ns as i64,
                        f.recv_icount.map(|v| v as i64),
                        f.recv_vtime_ns.map(|v| v as i64),
                        f.fate.as_str(),
                        f.payload,
                    ])
                    .ctx(p, "writing a frame")?;
                }
            }
            if !pending.packets.is_empty() {
                let marks = vec!["?"; crate::packets::PACKET_COL_COUNT].join(", ");
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO packets({}) VALUES ({marks})",
                        crate::packets::PACKET_COLS
                    ))
                    .ctx(p, what)?;
                for packet in &pending.packets {
                    stmt.execute(rusqlite::params_from_iter(packet.values()))
                        .ctx(p, "writing a packet")?;
                }
            }
            if !pending.checkpoints.is_empty() {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO checkpoints(vm, icount, vtime_ns, state_hash, manifest, \
                         file_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .ctx(p, what)?;
                for c in &pending.checkpoints {
                    stmt.execute(params![
                        c.vm,
                        c.icount as i64,
                        c.vtime_ns as i64,
                        c.state_hash,
                        c.manifest,
                        c.file_hash
                    ])
                    .ctx(p, "writing a checkpoint")?;
                }
            }
            if !pending.vms.is_empty() {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO vms(id, name, image, image_hash, mem_bytes, cmdline, \
                         instr_per_us, mac, final_icount, final_vtime_ns, stop) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .ctx(p, what)?;
                for v in &pending.vms {
                    stmt.execute(params![
                        v.id,
                        v.name,
                        v.image,
                        v.image_hash,
                        v.mem_bytes as i64,
                        v.cmdline,
                        v.instr_per_us as i64,
                        v.mac,
                        v.final_icount.map(|x| x as i64),
                        v.final_vtime_ns.map(|x| x as i64),
                        v.stop,
                    ])
                    .ctx(p, "writing a VM")?;
                }
            }
            if !pending.exec.is_empty() {
                self.write_exec_slices(&tx, &pending.exec)?;
            }
            if !pending.meta.is_empty() {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")
                    .ctx(p, what)?;
                for (k, v) in &pending.meta {
                    stmt.execute((k, v)).ctx(p, "writing meta")?;
                }
            }
        }
        tx.commit().ctx(p, what)?;
        self.pending = Pending::default();
        Ok(())
    }
}
