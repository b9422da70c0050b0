//! Which functions and source lines ran, per VM, in a window of the trace.
//!
//! The execution index already holds, per slice, every instruction address
//! that ran: slices wholly inside the window are answered from it without
//! replay. Only the slices the window cuts (at most two per VM) and slices
//! the trace has no index for are replayed, step by step, keeping the
//! addresses of the instructions inside the window. Addresses are then
//! named with the image's symbols and line table.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params;
use vmrr_index::{ExecSliceRow, Pos, VmId};

use super::cache::Cache;
use super::pass::{run_analyses, Analysis, Here, Observer, PassOptions, SliceJob, Span};
use super::{short_file, AnalysisError, Images};
use crate::trace::Trace;

/// One function that ran in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRow {
    /// The VM.
    pub vm: VmId,
    /// The function (its ELF symbol; `?` for code outside any).
    pub function: String,
    /// Its source file, when DWARF names one.
    pub file: Option<String>,
    /// Distinct instruction addresses of it that ran.
    pub addrs_run: usize,
    /// Its source lines that ran.
    pub lines_run: usize,
    /// Its source lines that have code.
    pub lines_total: usize,
    /// The source lines that ran (file, line): an inlined function's
    /// lines are in its own file.
    pub lines: Vec<(String, u32)>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Per VM and function, by VM then name.
    pub rows: Vec<CoverageRow>,
    /// Slices answered from the execution index alone.
    pub from_index: usize,
    /// Slices replayed.
    pub replayed: usize,
}

/// Collects the addresses run inside the window.
struct Addrs {
    from: Option<Pos>,
    to: Option<Pos>,
    seen: BTreeSet<u64>,
}

impl Observer for Addrs {
    fn every_step(&self) -> bool {
        true
    }

    fn at(&mut self, here: &Here<'_>) -> bool {
        let pos = here.pos();
        let inside = self.from.is_none_or(|f| pos >= f) && self.to.is_none_or(|t| pos < t);
        if inside && !here.machine.is_halted() {
            self.seen.insert(here.machine.regs().rip);
        }
        false
    }

    fn finish(self: Box<Self>, _here: &Here<'_>) -> Box<dyn Any + Send> {
        Box::new(self.seen)
    }
}

/// Whether slice `k` of `vm` lies wholly inside the window (by its
/// checkpoints' times; the index then answers it).
fn inside(trace: &Trace, vm: usize, k: usize, from: Option<Pos>, to: Option<Pos>) -> bool {
    let cps = trace.checkpoints(vm);
    let (a, b) = (&cps[k], &cps[k + 1]);
    let start = Pos::new(vm as VmId, a.icount, a.vtime_ns);
    let end = Pos::new(vm as VmId, b.icount, b.vtime_ns);
    from.is_none_or(|f| start >= f) && to.is_none_or(|t| end <= t)
}

/// Replays what the index cannot answer: the cut slices.
struct Edges<'a> {
    trace: &'a Trace,
    from: Option<Pos>,
    to: Option<Pos>,
}

impl Analysis for Edges<'_> {
    fn wants(&self, vm: usize, slice: usize, row: Option<&ExecSliceRow>) -> bool {
        row.is_none() || !inside(self.trace, vm, slice, self.from, self.to)
    }

    fn observer(&self, _job: &SliceJob) -> Box<dyn Observer> {
        Box::new(Addrs {
            from: self.from,
            to: self.to,
            seen: BTreeSet::new(),
        })
    }
}

/// The window as the cache's key.
fn window_key(from: Option<Pos>, to: Option<Pos>) -> String {
    let p = |p: Option<Pos>| {
        p.map(|p| format!("{}/{}/{}", p.vtime_ns, p.vm, p.icount))
            .unwrap_or_default()
    };
    format!("{}..{}", p(from), p(to))
}

/// What ran in `vms` (empty: all) between `from` and `to`.
pub fn coverage(
    trace: &Trace,
    images: &Images,
    vms: &[VmId],
    from: Option<Pos>,
    to: Option<Pos>,
    opts: &PassOptions<'_>,
) -> Result<Coverage, AnalysisError> {
    let n = trace.config().vms.len();
    let vms: Vec<usize> = if vms.is_empty() {
        (0..n).collect()
    } else {
        vms.iter().map(|v| *v as usize).filter(|v| *v < n).collect()
    };
    let cache = Cache::open(trace)?;
    let key = window_key(from, to);
    if let Some(rows) = load(&cache, &key, &vms)? {
        return Ok(Coverage {
            rows,
            from_index: 0,
            replayed: 0,
        });
    }
    // Slices that end before the window or start after it hold nothing.
    let spans: Vec<Span> = vms
        .iter()
        .map(|&vm| Span {
            vm,
            from: 0,
            to: trace.end_icount(vm),
        })
        .collect();
    let mut addrs: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); n];
    let mut from_index = 0;
    let mut relevant: Vec<Span> = Vec::new();
    for span in &spans {
        let cps = trace.checkpoints(span.vm);
        let rows = trace.exec_index(span.vm)?;
        let mut lo = u64::MAX;
        let mut hi = 0;
        for k in 0..cps.len().saturating_sub(1) {
            let (a, b) = (&cps[k], &cps[k + 1]);
            let before = to.is_some_and(|t| Pos::new(span.vm as VmId, a.icount, a.vtime_ns) >= t);
            let after = from.is_some_and(|f| Pos::new(span.vm as VmId, b.icount, b.vtime_ns) <= f);
            if before || after {
                continue;
            }
            match rows.get(k).and_then(Option::as_ref) {
                Some(row) if inside(trace, span.vm, k, from, to) => {
                    addrs[span.vm].extend(row.addrs.iter().copied());
                    from_index += 1;
                }
                _ => {
                    lo = lo.min(a.icount);
                    hi = hi.max(b.icount);
                }
            }
        }
        if lo < hi {
            relevant.push(Span {
                vm: span.vm,
                from: lo,
                to: hi,
            });
        }
    }
    let edges = Edges { trace, from, to };
    let found = run_analyses(trace, &[&edges], &relevant, opts)?;
    let replayed = found.first().map(Vec::len).unwrap_or(0);
    for (job, out) in found.into_iter().flatten() {
        if let Ok(seen) = out.downcast::<BTreeSet<u64>>() {
            addrs[job.vm].extend(*seen);
        }
    }
    let mut rows = Vec::new();
    for &vm in &vms {
        rows.extend(name_addresses(trace, images, vm, &addrs[vm]));
    }
    save(&cache, &key, &vms, &rows)?;
    Ok(Coverage {
        rows,
        from_index,
        replayed,
    })
}

/// What ran of one function: its range, addresses run, lines run, file.
type FunctionRun = (u64, u64, usize, BTreeSet<(String, u32)>, Option<String>);

/// Addresses that ran, grouped by function, with their lines.
fn name_addresses(trace: &Trace, images: &Images, vm: usize, addrs: &BTreeSet<u64>) -> Vec<CoverageRow> {
    let program = images.program(trace, vm);
    let symbols = program.symbols();
    // function -> (start, end, addresses, lines)
    let mut by_fn: BTreeMap<String, FunctionRun> = BTreeMap::new();
    for &a in addrs {
        let (name, start, end) = match symbols.containing(a) {
            Some((s, _)) => (s.name.clone(), s.addr, s.addr + s.size.max(1)),
            None => ("?".to_string(), a, a + 1),
        };
        let e = by_fn
            .entry(name)
            .or_insert((start, end, 0, BTreeSet::new(), None));
        e.2 += 1;
        if let Some(l) = program.line_at(a) {
            let file = short_file(&l.file_name).to_string();
            e.4.get_or_insert_with(|| file.clone());
            e.3.insert((file, l.line));
        }
    }
    by_fn
        .into_iter()
        .map(|(function, (start, end, n, lines, file))| {
            let total: BTreeSet<(String, u32)> = program
                .rows_between(start, end)
                .into_iter()
                .map(|r| (short_file(&r.file_name).to_string(), r.line))
                .collect();
            CoverageRow {
                vm: vm as VmId,
                function,
                file,
                addrs_run: n,
                lines_run: lines.len(),
                lines_total: total.len().max(lines.len()),
                lines: lines.into_iter().collect(),
            }
        })
        .collect()
}

fn load(cache: &Cache, key: &str, vms: &[usize]) -> Result<Option<Vec<CoverageRow>>, AnalysisError> {
    if cache.is_absent()? {
        return Ok(None);
    }
    let conn = cache.conn();
    let mut rows = Vec::new();
    for &vm in vms {
        let done: i64 = conn
            .query_row(
                "SELECT count(*) FROM analysis_done WHERE analysis = 'coverage' AND key = ?1 AND vm = ?2",
                params![key, vm as i64],
                |r| r.get(0),
            )
            .map_err(|e| cache.error(e))?;
        if done == 0 {
            return Ok(None);
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT function, file, addrs_run, lines_run, lines_total FROM analysis_coverage
                 WHERE window = ?1 AND vm = ?2 ORDER BY function",
            )
            .map_err(|e| cache.error(e))?;
        let found = stmt
            .query_map(params![key, vm as i64], |r| {
                Ok(CoverageRow {
                    vm: vm as VmId,
                    function: r.get(0)?,
                    file: r.get(1)?,
                    addrs_run: r.get::<_, i64>(2)? as usize,
                    lines_run: r.get::<_, i64>(3)? as usize,
                    lines_total: r.get::<_, i64>(4)? as usize,
                    lines: Vec::new(),
                })
            })
            .map_err(|e| cache.error(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| cache.error(e))?;
        let mut lines = conn
            .prepare_cached(
                "SELECT file, line FROM analysis_coverage_lines WHERE window = ?1 AND vm = ?2 AND function = ?3
                 ORDER BY file, line",
            )
            .map_err(|e| cache.error(e))?;
        for mut row in found {
            row.lines = lines
                .query_map(params![key, vm as i64, row.function], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u32))
                })
                .map_err(|e| cache.error(e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| cache.error(e))?;
            rows.push(row);
        }
    }
    Ok(Some(rows))
}

fn save(cache: &Cache, key: &str, vms: &[usize], rows: &[CoverageRow]) -> Result<(), AnalysisError> {
    if !cache.writable() {
        return Ok(());
    }
    let write = || -> rusqlite::Result<()> {
        let tx = cache.conn().unchecked_transaction()?;
        {
            let mut f = tx.prepare_cached(
                "INSERT OR REPLACE INTO analysis_coverage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut l = tx.prepare_cached(
                "INSERT OR REPLACE INTO analysis_coverage_lines VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut d =
                tx.prepare_cached("INSERT OR REPLACE INTO analysis_done VALUES ('coverage', ?1, ?2, 0)")?;
            for r in rows {
                f.execute(params![
                    key,
                    i64::from(r.vm),
                    r.function,
                    r.file,
                    r.addrs_run as i64,
                    r.lines_run as i64,
                    r.lines_total as i64
                ])?;
                for (file, line) in &r.lines {
                    l.execute(params![key, i64::from(r.vm), r.function, file, i64::from(*line)])?;
                }
            }
            for vm in vms {
                d.execute(params![key, *vm as i64])?;
            }
        }
        tx.commit()
    };
    write().map_err(|e| cache.error(e))
}
