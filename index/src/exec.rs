//! The execution index: per VM and per checkpoint slice, which instruction
//! addresses ran and which memory (8-byte words) was written, so that a search replays only
//! the slices that can hold its answer. Stored in `exec_slices` (schema 2),
//! each set sorted, delta-encoded as LEB128 varints and zstd-compressed.

use rusqlite::{params, Row};

use crate::error::{IndexError, Result, SqlContext};
use crate::query::get_u64;
use crate::rows::VmId;
use crate::write::int;
use crate::Index;

/// zstd level of the stored sets: fast, and the sets compress well.
const ZSTD_LEVEL: i32 = 3;

/// What one VM did in one checkpoint slice, as far as searches care.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSliceRow {
    /// The VM.
    pub vm: VmId,
    /// The slice's first icount (its checkpoint).
    pub icount: u64,
    /// The next checkpoint's icount (the slice's end, exclusive).
    pub end_icount: u64,
    /// Guest-virtual addresses of the instructions run, sorted, unique.
    pub addrs: Vec<u64>,
    /// Guest-physical 8-byte words written (address / 8), sorted, unique.
    pub words: Vec<u64>,
    /// Guest-physical pages written in ways no word says (device DMA, the
    /// CPU's own accessed/dirty bits): the whole page counts as written.
    pub pages: Vec<u64>,
}

impl ExecSliceRow {
    /// Whether an instruction at any of `addrs` (sorted) ran in this slice.
    pub fn ran_any(&self, addrs: &[u64]) -> bool {
        intersects(&self.addrs, addrs)
    }

    /// Whether guest-physical bytes `[pa, pa + len)` may have been written
    /// in this slice.
    pub fn may_write(&self, pa: u64, len: u64) -> bool {
        let last = pa.saturating_add(len.max(1) - 1);
        let words = (pa / 8)..=(last / 8);
        let pages = (pa / 4096)..=(last / 4096);
        let hit = |set: &[u64], lo: u64, hi: u64| {
            let i = set.partition_point(|&v| v < lo);
            set.get(i).is_some_and(|&v| v <= hi)
        };
        hit(&self.words, *words.start(), *words.end()) || hit(&self.pages, *pages.start(), *pages.end())
    }
}

/// Whether two sorted sets share an element.
fn intersects(a: &[u64], b: &[u64]) -> bool {
    let (small, large) = if a.len() < b.len() { (a, b) } else { (b, a) };
    small.iter().any(|v| large.binary_search(v).is_ok())
}

/// A sorted set as deltas in LEB128, compressed.
pub(crate) fn pack(values: &[u64]) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(values.len() * 2);
    let mut prev = 0u64;
    for &v in values {
        let mut d = v.wrapping_sub(prev);
        prev = v;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                raw.push(byte);
                break;
            }
            raw.push(byte | 0x80);
        }
    }
    zstd::encode_all(&raw[..], ZSTD_LEVEL)
}

/// The set [`pack`] stored, or what is wrong with the blob.
pub(crate) fn unpack(blob: &[u8]) -> std::result::Result<Vec<u64>, String> {
    let raw = zstd::decode_all(blob).map_err(|e| format!("does not decompress ({e})"))?;
    let mut out = Vec::new();
    let mut prev = 0u64;
    let mut d = 0u64;
    let mut shift = 0u32;
    for &byte in &raw {
        if shift > 63 {
            return Err("holds a number of more than 64 bits".into());
        }
        d |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            prev = prev.wrapping_add(d);
            out.push(prev);
            d = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err("ends in the middle of a number".into());
    }
    if out.windows(2).any(|w| w[0] >= w[1]) {
        return Err("is not a sorted set".into());
    }
    Ok(out)
}

impl Index {
    /// Buffers a slice of the execution index (replacing one of the same
    /// VM and start), written at the next flush.
    pub fn add_exec_slice(&mut self, row: &ExecSliceRow) -> Result<()> {
        self.require_writable("add to the execution index")?;
        int(&self.path, "exec slice icount", row.icount)?;
        int(&self.path, "exec slice end_icount", row.end_icount)?;
        self.pending.exec.push(row.clone());
        if self.pending.len() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered slices inside the flush's transaction.
    pub(crate) fn write_exec_slices(
        &self,
        tx: &rusqlite::Transaction<'_>,
        rows: &[ExecSliceRow],
    ) -> Result<()> {
        let p = self.path.as_path();
        let mut stmt = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO exec_slices(vm, icount, end_icount, addrs, words, pages) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .ctx(p, "writing the execution index")?;
        let io = |source| IndexError::Io {
            path: p.to_path_buf(),
            source,
        };
        for r in rows {
            stmt.execute(params![
                r.vm,
                r.icount as i64,
                r.end_icount as i64,
                pack(&r.addrs).map_err(io)?,
                pack(&r.words).map_err(io)?,
                pack(&r.pages).map_err(io)?,
            ])
            .ctx(p, "writing the execution index")?;
        }
        Ok(())
    }

    /// The execution index of `vm`, slice by slice in icount order (empty
    /// for a trace recorded before it existed: `vmrr index` builds it).
    pub fn exec_slices(&self, vm: VmId) -> Result<Vec<ExecSliceRow>> {
        let p = self.path.clone();
        let what = "reading the execution index";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT vm, icount, end_icount, addrs, words, pages FROM exec_slices \
                 WHERE vm = ?1 ORDER BY icount",
            )
            .ctx(&p, what)?;
        let rows = stmt
            .query_map([vm], |r: &Row<'_>| {
                Ok((
                    r.get::<_, VmId>(0)?,
                    get_u64(r, 1)?,
                    get_u64(r, 2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .ctx(&p, what)?;
        let mut out = Vec::new();
        for row in rows {
            let (vm, icount, end_icount, a, l, g) = row.ctx(&p, what)?;
            let damaged = |which: &str, e: String| IndexError::Damaged {
                path: p.clone(),
                detail: format!("the execution index of VM {vm} at icount {icount}: its {which} {e}"),
            };
            out.push(ExecSliceRow {
                vm,
                icount,
                end_icount,
                addrs: unpack(&a).map_err(|e| damaged("addresses", e))?,
                words: unpack(&l).map_err(|e| damaged("written words", e))?,
                pages: unpack(&g).map_err(|e| damaged("written pages", e))?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_round_trip_and_damage_is_named() {
        for set in [
            vec![],
            vec![0],
            vec![1, 2, 3, 1 << 40, u64::MAX],
            (0..5000).map(|i| i * 7).collect(),
        ] {
            assert_eq!(unpack(&pack(&set).expect("pack")), Ok(set));
        }
        assert!(unpack(b"not zstd").is_err());
        let unsorted = zstd::encode_all(&[5u8, 0][..], 3).expect("zstd");
        assert_eq!(unpack(&unsorted), Err("is not a sorted set".into()));
        let cut = zstd::encode_all(&[0x80u8][..], 3).expect("zstd");
        assert_eq!(unpack(&cut), Err("ends in the middle of a number".into()));
    }

    #[test]
    fn queries_on_a_slice() {
        let s = ExecSliceRow {
            addrs: vec![0x1000, 0x1010, 0x2000],
            words: vec![0x4000 / 8, 0x4008 / 8],
            pages: vec![9],
            ..ExecSliceRow::default()
        };
        assert!(s.ran_any(&[0x5, 0x1010]));
        assert!(!s.ran_any(&[0x1011]));
        assert!(s.may_write(0x4008, 4));
        assert!(s.may_write(0x3ffe, 4), "straddles into the written word");
        assert!(!s.may_write(0x4010, 64));
        assert!(s.may_write(9 * 4096 + 100, 1), "a whole page");
    }
}
