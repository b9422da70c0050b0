//! Typed queries for the debugger, the TUI, gdb and `vmrr events`.
//!
//! They read through the index's own connection and see what has been
//! flushed. Events come in the cluster order (vtime_ns, vm, icount, id)
//! unless a query says otherwise.

use std::fmt::Write as _;

use rusqlite::Row;

use crate::error::{Result, SqlContext};
use crate::kinds::known_kinds;
use crate::pos::Position;
use crate::rows::{CheckpointRow, EventFilter, EventKind, EventRow, FrameFate, FrameRow, VmId, VmRow};
use crate::Index;

mod frames;
mod trace_info;

/// Columns read by [`event_from_row`], in order.
pub(crate) const EVENT_COLS: &str = "id, vm, icount, vtime_ns, kind, value, payload, text";
pub(crate) const FRAME_COLS: &str =
    "id, src, dst, len, sent_icount, sent_vtime_ns, arrival_ns, recv_icount, \
                          recv_vtime_ns, fate, payload";
pub(super) const CHECKPOINT_COLS: &str = "vm, icount, vtime_ns, state_hash, manifest, file_hash";
pub(super) const VM_COLS: &str =
    "id, name, image, image_hash, mem_bytes, cmdline, instr_per_us, mac, final_icount, \
                       final_vtime_ns, stop";

/// The order of the cluster ([`crate::Pos`], then event id), in SQL, ascending.
pub(crate) const CLUSTER_ORDER: &str = "vtime_ns, vm, icount, id";
/// The same order, descending.
const CLUSTER_ORDER_DESC: &str = "vtime_ns DESC, vm DESC, icount DESC, id DESC";

fn unknown_text(col: usize, e: crate::rows::UnknownName) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

/// Column `col` parsed by `parse` without copying the text.
fn parse_text<T>(
    r: &Row<'_>,
    col: usize,
    what: &'static str,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text = r.get_ref(col)?.as_str()?;
    parse(text).ok_or_else(|| {
        unknown_text(
            col,
            crate::rows::UnknownName {
                what,
                name: text.to_string(),
            },
        )
    })
}

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: get_u64(r, 0)?,
        vm: r.get(1)?,
        icount: get_u64(r, 2)?,
        vtime_ns: get_u64(r, 3)?,
        kind: parse_text(r, 4, "event kind", EventKind::parse)?,
        value: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        payload: r.get(6)?,
        text: r.get(7)?,
    })
}

pub(crate) fn frame_from_row(r: &Row<'_>) -> rusqlite::Result<FrameRow> {
    Ok(FrameRow {
        id: get_u64(r, 0)?,
        src: r.get(1)?,
        dst: r.get(2)?,
        len: r.get(3)?,
        sent_icount: get_u64(r, 4)?,
        sent_vtime_ns: get_u64(r, 5)?,
        arrival_ns: get_u64(r, 6)?,
        recv_icount: get_opt_u64(r, 7)?,
        recv_vtime_ns: get_opt_u64(r, 8)?,
        fate: parse_text(r, 9, "frame fate", FrameFate::parse)?,
        payload: r.get(10)?,
    })
}

pub(super) fn checkpoint_from_row(r: &Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        vm: r.get(0)?,
        icount: get_u64(r, 1)?,
        vtime_ns: get_u64(r, 2)?,
        state_hash: r.get(3)?,
        manifest: r.get(4)?,
        file_hash: r.get(5)?,
    })
}

pub(super) fn vm_from_row(r: &Row<'_>) -> rusqlite::Result<VmRow> {
    Ok(VmRow {
        id: r.get(0)?,
        name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        image: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        image_hash: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        mem_bytes: get_opt_u64(r, 4)?.unwrap_or_default(),
        cmdline: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        instr_per_us: get_opt_u64(r, 6)?.unwrap_or_default(),
        mac: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        final_icount: get_opt_u64(r, 8)?,
        final_vtime_ns: get_opt_u64(r, 9)?,
        stop: r.get(10)?,
    })
}

/// `LIMIT` for a row count (SQLite's limit is an i64).
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// ` AND vm IN (..)` / ` AND kind IN (..)` for a filter; the values are
/// numbers and fixed kind names, so they are written into the SQL.
fn filter_sql(filter: &EventFilter) -> String {
    let mut sql = String::new();
    if let Some(vms) = &filter.vms {
        let list: Vec<String> = vms.iter().map(|v| v.to_string()).collect();
        let _ = write!(sql, " AND vm IN ({})", list.join(", "));
    }
    match &filter.kinds {
        Some(kinds) => {
            let list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
            let _ = write!(sql, " AND kind IN ({})", list.join(", "));
        }
        None => sql += known_kinds(),
    }
    sql
}

/// `vm = v` or `vm IN (..)` for a list of VMs.
fn vm_condition(vms: &[VmId]) -> String {
    match vms {
        [one] => format!("vm = {one}"),
        list => {
            let list: Vec<String> = list.iter().map(|v| v.to_string()).collect();
            format!("vm IN ({})", list.join(", "))
        }
    }
}

/// The access paths ("lanes") that together cover the events passing a
/// filter, each as (index, condition), and each returning rows in the
/// cluster order straight from its index: one per kind if kinds are given
/// (`events_kind`), else one per VM if VMs are given (`events_vm_vtime`),
/// else the whole cluster (`events_vtime`). Searching each lane and merging
/// costs in proportion to the matching rows, never a scan of the others.
/// Empty if the filter lets nothing through.
fn lanes(vms: Option<&[VmId]>, kinds: Option<&[EventKind]>) -> Vec<(&'static str, String)> {
    if vms.is_some_and(|v| v.is_empty()) || kinds.is_some_and(|k| k.is_empty()) {
        return Vec::new();
    }
    match (kinds, vms) {
        (Some(kinds), vms) => {
            let mut kinds = kinds.to_vec();
            kinds.sort();
            kinds.dedup();
            let vm_sql = vms
                .map(|v| format!(" AND {}", vm_condition(v)))
                .unwrap_or_default();
            kinds
                .iter()
                .map(|k| ("events_kind", format!("kind = '{}'{vm_sql}", k.as_str())))
                .collect()
        }
        (None, Some(vms)) => {
            let mut vms = vms.to_vec();
            vms.sort_unstable();
            vms.dedup();
            vms.iter()
                .map(|v| ("events_vm_vtime", format!("vm = {v}{}", known_kinds())))
                .collect()
        }
        (None, None) => vec![("events_vtime", format!("1{}", known_kinds()))],
    }
}

/// A direction of search in the cluster order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Backward,
}

impl Index {
    fn query_events(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<EventRow>> {
        let p = &self.path;
        let mut stmt = self.conn.prepare_cached(sql).ctx(p, what)?;
        let rows = stmt.query_map(params, event_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The event with this id.
    pub fn event(&self, id: u64) -> Result<Option<EventRow>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = ?1{}", known_kinds());
        Ok(self.query_events(&sql, [id], "reading an event")?.pop())
    }

    /// Up to `before` events of `vm` before instruction `icount` and up to
    /// `after` events at or after it (the events of instruction `icount`
    /// count as after), in icount order.
    pub fn events_of_vm_around(
        &self,
        vm: VmId,
        icount: u64,
        before: usize,
        after: usize,
    ) -> Result<Vec<EventRow>> {
        let icount = i64::try_from(icount).unwrap_or(i64::MAX);
        let what = "reading events around a position";
        let mut events = self.query_events(
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE vm = ?1 AND icount < ?2{} \
                 ORDER BY icount DESC, id DESC LIMIT ?3",
                known_kinds()
            ),
            (vm, icount, limit(before)),
            what,
        )?;
        events.reverse();
        events.extend(self.query_events(
            &format!(
                "SELECT {EVENT_COLS} FROM events WHERE vm = ?1 AND icount >= ?2{} \
                 ORDER BY icount, id LIMIT ?3",
                known_kinds()
            ),
            (vm, icount, limit(after)),
            what,
        )?);
        Ok(events)
    }

    /// The virtual time at which `vm`, halted at `icount`, woke (its `wake`
    /// event there), if it did.
    pub fn wake_at(&self, vm: VmId, icount: u64) -> Result<Option<u64>> {
        let Ok(icount) = i64::try_from(icount) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events INDEXED BY events_vm_icount \
             WHERE vm = ?1 AND icount = ?2 AND kind = 'wake' ORDER BY id LIMIT 1"
        );
        let found = self.query_events(&sql, (vm, icount), "finding a wake")?;
        Ok(found.first().map(|e| e.vtime_ns))
    }

    /// The first event of `kind` that `vm` has at `icount`.
    pub fn event_at(&self, vm: VmId, icount: u64, kind: EventKind) -> Result<Option<EventRow>> {
        let Ok(icount) = i64::try_from(icount) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events INDEXED BY events_vm_icount \
             WHERE vm = ?1 AND icount = ?2 AND kind = ?3 ORDER BY id LIMIT 1"
        );
        Ok(self
            .query_events(&sql, (vm, icount, kind.as_str()), "finding an event")?
            .pop())
    }

    /// The events of `vm` whose ids lie strictly between `after` and
    /// `before`, in id (recording) order.
    pub fn events_of_vm_between_ids(&self, vm: VmId, after: u64, before: u64) -> Result<Vec<EventRow>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE id > ?1 AND id < ?2 AND vm = ?3{} ORDER BY id",
            known_kinds()
        );
        self.query_events(&sql, (after, before, vm), "reading a slice's events")
    }

    /// The `frame_sent` or `frame_recv` event of frame `frame` at
    /// `(vm, icount)`.
    pub fn frame_event(
        &self,
        vm: VmId,
        icount: u64,
        kind: EventKind,
        frame: u64,
    ) -> Result<Option<EventRow>> {
        let (Ok(icount), Ok(frame)) = (i64::try_from(icount), i64::try_from(frame)) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events INDEXED BY events_vm_icount \
             WHERE vm = ?1 AND icount = ?2 AND kind = ?3 AND value = ?4 ORDER BY id LIMIT 1"
        );
        Ok(self
            .query_events(
                &sql,
                (vm, icount, kind.as_str(), frame),
                "finding a frame's event",
            )?
            .pop())
    }

    /// Events with `from_ns <= vtime_ns < to_ns` that pass `filter`, at most
    /// `limit` of them (`usize::MAX` for all), in the cluster order
    /// (vtime_ns, vm, icount, id).
    pub fn events_in_window(
        &self,
        from_ns: u64,
        to_ns: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<EventRow>> {
        if from_ns >= to_ns || limit == 0 {
            return Ok(Vec::new());
        }
        let from = i64::try_from(from_ns).unwrap_or(i64::MAX);
        let to = i64::try_from(to_ns).unwrap_or(i64::MAX);
        let lanes = lanes(filter.vms.as_deref(), filter.kinds.as_deref());
        let mut events = Vec::new();
        for (index, condition) in &lanes {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events INDEXED BY {index} \
                 WHERE {condition} AND vtime_ns >= ?1 AND vtime_ns < ?2 ORDER BY {CLUSTER_ORDER} LIMIT ?3"
            );
            events.extend(self.query_events(
                &sql,
                (from, to, self::limit(limit)),
                "reading events in a time window",
            )?);
        }
        if lanes.len() > 1 {
            events.sort_by_key(EventRow::position);
            events.truncate(limit);
        }
        Ok(events)
    }

    /// The first event strictly after `pos` in the cluster order that passes
    /// `filter` and, if `vm` is given, is on that VM.
    pub fn next_event_after(
        &self,
        vm: Option<VmId>,
        pos: Position,
        filter: &EventFilter,
    ) -> Result<Option<EventRow>> {
        self.seek(Direction::Forward, vm, pos, filter)
    }

    /// The last event strictly before `pos` in the cluster order that passes
    /// `filter` and, if `vm` is given, is on that VM.
    pub fn prev_event_before(
        &self,
        vm: Option<VmId>,
        pos: Position,
        filter: &EventFilter,
    ) -> Result<Option<EventRow>> {
        self.seek(Direction::Backward, vm, pos, filter)
    }

    /// Searches one "lane" per kind or per VM, each an indexed `LIMIT 1`
    /// query, and keeps the nearest answer, so that a rare kind or a quiet VM
    /// costs a few index seeks and not a scan.
    fn seek(
        &self,
        dir: Direction,
        vm: Option<VmId>,
        pos: Position,
        filter: &EventFilter,
    ) -> Result<Option<EventRow>> {
        let vms: Option<Vec<VmId>> = match (vm, &filter.vms) {
            (Some(v), Some(list)) if !list.contains(&v) => return Ok(None),
            (Some(v), _) => Some(vec![v]),
            (None, list) => list.clone(),
        };
        // Nothing is stored at 2^63 or beyond: saturating keeps the order.
        let t = i64::try_from(pos.pos.vtime_ns).unwrap_or(i64::MAX);
        let icount = i64::try_from(pos.pos.icount).unwrap_or(i64::MAX);
        // Standing before an instruction = before its events (ids start at 1).
        let id = pos.event.map_or(0, |e| i64::try_from(e).unwrap_or(i64::MAX));
        let (cmp, range, order) = match dir {
            Direction::Forward => (">", ">=", CLUSTER_ORDER),
            Direction::Backward => ("<", "<=", CLUSTER_ORDER_DESC),
        };
        let key = format!("(vtime_ns, vm, icount, id) {cmp} (?1, ?2, ?3, ?4)");
        let lanes: Vec<String> = lanes(vms.as_deref(), filter.kinds.as_deref())
            .into_iter()
            .map(|(index, condition)| {
                format!(
                    "SELECT {EVENT_COLS} FROM events INDEXED BY {index} \
                     WHERE {condition} AND vtime_ns {range} ?1 AND {key} ORDER BY {order} LIMIT 1"
                )
            })
            .collect();
        let mut best: Option<EventRow> = None;
        for sql in lanes {
            let found = self.query_events(&sql, (t, pos.pos.vm, icount, id), "searching for an event")?;
            for e in found {
                let key = e.position();
                let better = match &best {
                    None => true,
                    Some(b) => match dir {
                        Direction::Forward => key < b.position(),
                        Direction::Backward => key > b.position(),
                    },
                };
                if better {
                    best = Some(e);
                }
            }
        }
        Ok(best)
    }

    /// How many events pass `filter`.
    pub fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM events WHERE 1{}", filter_sql(filter));
        self.conn
            .query_row(&sql, [], |r| get_u64(r, 0))
            .ctx(&self.path, "counting events")
    }
}

/// Column `i` as a non-negative integer (a coordinate or count).
pub(crate) fn get_u64(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

/// Column `i` as a non-negative integer or NULL.
pub(crate) fn get_opt_u64(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    match r.get::<_, Option<i64>>(i)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v)),
    }
}
