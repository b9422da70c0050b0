//! Queries of what describes the trace as a whole: checkpoints, VMs,
//! meta and row counts.

use super::{checkpoint_from_row, get_u64, vm_from_row, CHECKPOINT_COLS, VM_COLS};
use rusqlite::OptionalExtension;

use crate::error::{IndexError, Result, SqlContext};
use crate::rows::{CheckpointRow, IndexStats, VmId, VmRow};
use crate::Index;

impl Index {
    fn query_checkpoints(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<CheckpointRow>> {
        let p = &self.path;
        let mut stmt = self.conn.prepare_cached(sql).ctx(p, what)?;
        let rows = stmt.query_map(params, checkpoint_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The last checkpoint of `vm` at or before `icount`: where replay to
    /// `(vm, icount)` starts.
    pub fn nearest_checkpoint(&self, vm: VmId, icount: u64) -> Result<Option<CheckpointRow>> {
        let icount = i64::try_from(icount).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE vm = ?1 AND icount <= ?2 \
             ORDER BY icount DESC LIMIT 1"
        );
        Ok(self
            .query_checkpoints(&sql, (vm, icount), "finding the nearest checkpoint")?
            .pop())
    }

    /// Every checkpoint of `vm`, by icount.
    pub fn checkpoints(&self, vm: VmId) -> Result<Vec<CheckpointRow>> {
        let sql = format!("SELECT {CHECKPOINT_COLS} FROM checkpoints WHERE vm = ?1 ORDER BY icount");
        self.query_checkpoints(&sql, [vm], "reading checkpoints")
    }

    /// Every VM, by id.
    pub fn vms(&self) -> Result<Vec<VmRow>> {
        let p = &self.path;
        let what = "reading VMs";
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {VM_COLS} FROM vms ORDER BY id"))
            .ctx(p, what)?;
        let rows = stmt.query_map([], vm_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The VM with this id.
    pub fn vm(&self, id: VmId) -> Result<Option<VmRow>> {
        self.conn
            .query_row(
                &format!("SELECT {VM_COLS} FROM vms WHERE id = ?1"),
                [id],
                vm_from_row,
            )
            .optional()
            .ctx(&self.path, "reading a VM")
    }

    /// The `meta` value of `key`.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()
            .map(Option::flatten)
            .ctx(&self.path, "reading meta")
    }

    /// Every `meta` entry, by key.
    pub fn meta_all(&self) -> Result<Vec<(String, String)>> {
        let p = &self.path;
        let what = "reading meta";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, coalesce(value, '') FROM meta ORDER BY key")
            .ctx(p, what)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The schema version of the open file (after any migration).
    pub fn schema_version(&self) -> Result<i64> {
        let text = self.meta("schema_version")?.unwrap_or_default();
        text.trim().parse().map_err(|_| IndexError::Damaged {
            path: self.path.clone(),
            detail: format!("meta.schema_version is '{text}', not a number"),
        })
    }

    /// Row counts of the main tables.
    pub fn stats(&self) -> Result<IndexStats> {
        let count = |table: &str| -> Result<u64> {
            self.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| get_u64(r, 0))
                .ctx(&self.path, "counting rows")
        };
        Ok(IndexStats {
            vms: count("vms")?,
            events: count("events")?,
            frames: count("frames")?,
            checkpoints: count("checkpoints")?,
            bookmarks: count("bookmarks")?,
        })
    }
}
