//! Every call of a function, in every VM: where and when it was entered,
//! its arguments (the System V integer registers, named and typed from the
//! image's DWARF where it has them), where and when it returned and what it
//! returned (RAX), and how deep it was nested in calls of itself.
//!
//! Only the slices whose execution index shows the function's entry are
//! replayed — at the engine's full speed, stopping at the entry and at the
//! return addresses of the calls under way. A call still under way at the
//! end of its slice returns where its return address runs again with the
//! stack pointer it was called with: only the later slices that ran that
//! address are replayed to find it (in waves, all VMs at once). A call that
//! never returns (the VM stopped inside it, or its stack was abandoned) has
//! no return.
//!
//! Calls are computed for whole slices from the start of each VM up to the
//! end of the window asked about (so nesting depth is exact), cached per
//! slice, and filtered to the window.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

use vmrr_index::{ExecSliceRow, Pos, VmId};

use super::cache::Cache;
use super::pass::{run_analyses, run_jobs, Analysis, Here, Observer, PassOptions, SliceJob, Span, Work};
use super::{AnalysisError, Images};
use crate::dwarf::Signature;
use crate::trace::Trace;

/// The System V x86-64 integer argument registers, in order.
pub const ARG_REGS: [&str; 6] = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"];

/// One argument of a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Arg {
    /// The parameter's name (the register's, without DWARF).
    pub name: String,
    /// Its C type, from DWARF.
    pub type_name: Option<String>,
    /// The register's value, cut to the type's size.
    pub value: u64,
    /// The value as C prints it.
    pub text: String,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The VM.
    pub vm: VmId,
    /// Before the function's first instruction.
    pub entry: Pos,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Where it returns to.
    pub return_addr: u64,
    /// Before the first instruction after the return (`None`: it never
    /// returned within the trace).
    pub ret: Option<Pos>,
    /// RAX at the return.
    pub retval: Option<u64>,
    /// The return value as C prints it (`void` when DWARF says so).
    pub ret_text: Option<String>,
    /// Calls of the same function in this VM it is nested in (0: none).
    pub depth: u32,
}

/// A calls question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    /// The function's name (an ELF symbol).
    pub function: String,
    /// The VMs (empty: all).
    pub vms: Vec<VmId>,
    /// Only calls entered at or after this position.
    pub from: Option<Pos>,
    /// Only calls entered before this position.
    pub to: Option<Pos>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calls {
    /// The function.
    pub function: String,
    /// Its calls in the window, in the cluster order of their entries.
    pub calls: Vec<Call>,
    /// Slices replayed to answer (0: everything came from the cache).
    pub replayed: usize,
    /// Slices the question covered.
    pub slices: usize,
}

/// A call as the replay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCall {
    pub entry: Pos,
    pub regs: [u64; 6],
    pub return_addr: u64,
    pub cfa: u64,
    pub ret: Option<(Pos, u64)>,
}

fn read_u64(m: &vmrr_backend::Machine, va: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (m.read_virt(va, &mut b) == 8).then(|| u64::from_le_bytes(b))
}

/// Watches a slice for entries of one function and returns of its calls.
struct Entries {
    entry: u64,
    open: Vec<RawCall>,
    done: Vec<RawCall>,
}

impl Observer for Entries {
    fn breakpoints(&self) -> Vec<u64> {
        std::iter::once(self.entry)
            .chain(self.open.iter().map(|c| c.return_addr))
            .collect()
    }

    fn at(&mut self, here: &Here<'_>) -> bool {
        let m = here.machine;
        let r = m.regs();
        let mut changed = false;
        // A return first: the innermost call returning to here with the
        // stack pointer it was called with.
        if let Some(i) = self
            .open
            .iter()
            .rposition(|c| c.return_addr == r.rip && c.cfa == r.rsp)
        {
            let mut c = self.open.remove(i);
            c.ret = Some((here.pos(), r.rax));
            self.done.push(c);
            changed = true;
        }
        if r.rip == self.entry {
            if let Some(return_addr) = read_u64(m, r.rsp) {
                self.open.push(RawCall {
                    entry: here.pos(),
                    regs: [r.rdi, r.rsi, r.rdx, r.rcx, r.r8, r.r9],
                    return_addr,
                    cfa: r.rsp.wrapping_add(8),
                    ret: None,
                });
                changed = true;
            }
        }
        changed
    }

    fn finish(self: Box<Self>, _here: &Here<'_>) -> Box<dyn Any + Send> {
        let mut all = self.done;
        all.extend(self.open);
        all.sort_by_key(|c| c.entry);
        Box::new(all)
    }
}

/// Phase one: the slices where the entry ran.
struct EntryScan<'a> {
    /// Per VM: the entry address, if its image has the function.
    entries: &'a [Option<u64>],
    /// Per VM: the slices to scan.
    todo: &'a [BTreeSet<usize>],
}

impl Analysis for EntryScan<'_> {
    fn wants(&self, vm: usize, slice: usize, row: Option<&ExecSliceRow>) -> bool {
        let Some(entry) = self.entries[vm] else {
            return false;
        };
        self.todo[vm].contains(&slice) && row.is_none_or(|r| r.ran_any(&[entry]))
    }

    fn observer(&self, job: &SliceJob) -> Box<dyn Observer> {
        Box::new(Entries {
            entry: self.entries[job.vm].unwrap_or(0),
            open: Vec::new(),
            done: Vec::new(),
        })
    }
}

/// Phase two: watches a slice for the returns of calls entered before it.
struct Returns {
    /// (call number, return address, stack pointer after the return).
    wanted: Vec<(usize, u64, u64)>,
    found: Vec<(usize, Pos, u64)>,
}

impl Observer for Returns {
    fn breakpoints(&self) -> Vec<u64> {
        self.wanted
            .iter()
            .filter(|w| !self.found.iter().any(|f| f.0 == w.0))
            .map(|w| w.1)
            .collect()
    }

    fn at(&mut self, here: &Here<'_>) -> bool {
        let r = here.machine.regs();
        let mut changed = false;
        for &(n, addr, cfa) in &self.wanted {
            if addr == r.rip && cfa == r.rsp && !self.found.iter().any(|f| f.0 == n) {
                self.found.push((n, here.pos(), r.rax));
                changed = true;
            }
        }
        changed
    }

    fn finish(self: Box<Self>, _here: &Here<'_>) -> Box<dyn Any + Send> {
        Box::new(self.found)
    }
}

/// Finds the returns of calls still under way at the end of their slice,
/// replaying only later slices that ran their return addresses.
fn find_returns(
    trace: &Trace,
    pending: &mut [(usize, RawCall)],
    opts: &PassOptions<'_>,
) -> Result<usize, AnalysisError> {
    // (index in `pending`, next slice to look at)
    let mut cursor: Vec<(usize, usize)> = pending
        .iter()
        .enumerate()
        .map(|(i, (vm, c))| {
            let k = trace
                .checkpoints(*vm)
                .iter()
                .rposition(|cp| cp.icount <= c.entry.icount)
                .unwrap_or(0);
            (i, k + 1)
        })
        .collect();
    let mut replayed = 0;
    while !cursor.is_empty() {
        let mut groups: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        let mut still = Vec::new();
        for (i, from) in cursor.drain(..) {
            let (vm, c) = &pending[i];
            let rows = trace.exec_index(*vm)?;
            let slices = trace.checkpoints(*vm).len().saturating_sub(1);
            let next = (from..slices).find(|&k| {
                rows.get(k)
                    .and_then(Option::as_ref)
                    .is_none_or(|r| r.ran_any(&[c.return_addr]))
            });
            if let Some(k) = next {
                groups.entry((*vm, k)).or_default().push(i);
                still.push((i, k));
            }
        }
        if groups.is_empty() {
            break;
        }
        let mut work = Vec::new();
        let mut order = Vec::new();
        for ((vm, k), members) in &groups {
            let cps = trace.checkpoints(*vm);
            let job = SliceJob {
                vm: *vm,
                slice: *k,
                from: cps[*k].icount,
                to: cps[*k + 1].icount,
            };
            let wanted = members
                .iter()
                .map(|&i| (i, pending[i].1.return_addr, pending[i].1.cfa))
                .collect();
            work.push(Work {
                job,
                observers: vec![Box::new(Returns {
                    wanted,
                    found: Vec::new(),
                })],
            });
            order.push((*vm, *k));
        }
        replayed += work.len();
        for result in run_jobs(trace, work, opts)? {
            for out in result.outputs {
                if let Ok(found) = out.downcast::<Vec<(usize, Pos, u64)>>() {
                    for (i, pos, rax) in *found {
                        pending[i].1.ret = Some((pos, rax));
                    }
                }
            }
        }
        cursor = still
            .into_iter()
            .filter(|(i, _)| pending[*i].1.ret.is_none())
            .map(|(i, k)| (i, k + 1))
            .collect();
    }
    Ok(replayed)
}

/// A call's arguments and return value, read with the function's signature.
pub(crate) fn decorate(vm: VmId, raw: &RawCall, sig: Option<&Signature>) -> Call {
    let args = match sig {
        Some(sig) => sig
            .params
            .iter()
            .zip(raw.regs)
            .map(|(p, v)| Arg {
                name: p.name.clone(),
                type_name: Some(p.ty.name.clone()),
                value: p.ty.truncate(v),
                text: p.ty.format(v),
            })
            .collect(),
        None => ARG_REGS
            .iter()
            .zip(raw.regs)
            .map(|(n, v)| Arg {
                name: n.to_string(),
                type_name: None,
                value: v,
                text: format!("{v:#x}"),
            })
            .collect(),
    };
    let ret_text = raw.ret.map(|(_, rax)| match sig {
        Some(Signature { returns: Some(t), .. }) => t.format(rax),
        Some(_) => "void".to_string(),
        None => format!("{rax:#x}"),
    });
    Call {
        vm,
        entry: raw.entry,
        args,
        return_addr: raw.return_addr,
        ret: raw.ret.map(|(p, _)| p),
        retval: raw.ret.map(|(_, rax)| rax),
        ret_text,
        depth: 0,
    }
}

/// Nesting depth of each call among the calls of its VM (sorted by entry).
fn set_depths(calls: &mut [Call]) {
    let mut open: Vec<Option<Pos>> = Vec::new();
    for c in calls.iter_mut() {
        // Calls that have returned by this entry are no longer enclosing.
        open.retain(|r| r.is_none_or(|r| r > c.entry));
        c.depth = open.len() as u32;
        open.push(c.ret);
    }
}

/// Levenshtein distance (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Names that look like `name`, for an error message.
fn similar(images: &Images, trace: &Trace, vms: &[usize], name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut found: BTreeSet<String> = BTreeSet::new();
    for &vm in vms {
        for s in images.program(trace, vm).symbols().symbols() {
            let other = s.name.to_ascii_lowercase();
            let alike = other.contains(&lower) || edit_distance(&other, &lower) <= 2;
            if s.kind == crate::symbols::SymbolKind::Function && alike {
                found.insert(s.name.clone());
            }
        }
    }
    if found.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = found.into_iter().take(6).collect();
        format!(" (did you mean {}?)", list.join(", "))
    }
}

/// Every call of `query.function` in the window (see the module documentation).
pub fn calls(
    trace: &Trace,
    images: &Images,
    query: &CallQuery,
    opts: &PassOptions<'_>,
) -> Result<Calls, AnalysisError> {
    let n = trace.config().vms.len();
    let vms: Vec<usize> = if query.vms.is_empty() {
        (0..n).collect()
    } else {
        query.vms.iter().map(|v| *v as usize).filter(|v| *v < n).collect()
    };
    let mut entries: Vec<Option<u64>> = vec![None; n];
    for &vm in &vms {
        entries[vm] = images
            .program(trace, vm)
            .symbols()
            .by_name(&query.function)
            .map(|s| s.addr);
    }
    if entries.iter().all(Option::is_none) {
        let names: Vec<String> = vms.iter().map(|&v| trace.config().vms[v].name.clone()).collect();
        return Err(AnalysisError::UnknownFunction {
            name: query.function.clone(),
            vms: names.join(", "),
            hint: similar(images, trace, &vms, &query.function),
        });
    }
    let cache = Cache::open(trace)?;
    let to_time = query.to.map(|p| p.vtime_ns);
    // Per VM: every slice up to the window's end, and those not cached yet.
    let mut wanted: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut todo: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &vm in &vms {
        let Some(entry) = entries[vm] else { continue };
        let cps = trace.checkpoints(vm);
        let done = cache.calls_done(&query.function, entry, vm)?;
        for (k, cp) in cps.iter().enumerate().take(cps.len().saturating_sub(1)) {
            if to_time.is_some_and(|t| cp.vtime_ns >= t) {
                break;
            }
            wanted[vm].insert(k);
            if !done.contains(&cp.icount) {
                todo[vm].insert(k);
            }
        }
    }
    let slices = wanted.iter().map(BTreeSet::len).sum();
    let scan = EntryScan {
        entries: &entries,
        todo: &todo,
    };
    let spans: Vec<Span> = vms
        .iter()
        .filter(|&&vm| !todo[vm].is_empty())
        .map(|&vm| Span {
            vm,
            from: 0,
            to: trace.end_icount(vm),
        })
        .collect();
    let found = run_analyses(trace, &[&scan], &spans, opts)?;
    let mut replayed = found.first().map(Vec::len).unwrap_or(0);
    let mut raw: Vec<(usize, RawCall)> = Vec::new();
    for (job, out) in found.into_iter().flatten() {
        if let Ok(list) = out.downcast::<Vec<RawCall>>() {
            raw.extend(list.into_iter().map(|c| (job.vm, c)));
        }
    }
    // Calls under way at the end of their slice: their returns are later.
    let (mut pending, complete): (Vec<_>, Vec<_>) = raw.into_iter().partition(|(_, c)| c.ret.is_none());
    replayed += find_returns(trace, &mut pending, opts)?;
    let mut fresh: Vec<(usize, RawCall)> = complete;
    fresh.extend(pending);
    // Rows for the new slices, cached per slice; then every call up to the window's end.
    let mut all: Vec<Call> = Vec::new();
    for &vm in &vms {
        let Some(entry) = entries[vm] else { continue };
        let program = images.program(trace, vm);
        let sig = program.signature(entry);
        let mut new: Vec<Call> = fresh
            .iter()
            .filter(|(v, _)| *v == vm)
            .map(|(_, c)| decorate(vm as VmId, c, sig.as_ref()))
            .collect();
        new.sort_by_key(|c| c.entry);
        let cps = trace.checkpoints(vm);
        let new_slices: Vec<u64> = todo[vm].iter().map(|&k| cps[k].icount).collect();
        cache.store_calls(&query.function, entry, vm, &new_slices, &new)?;
        let mut mine = cache.calls(&query.function, entry, vm)?.unwrap_or_default();
        if !cache.writable() {
            mine.extend(new);
        }
        mine.sort_by_key(|c| c.entry);
        mine.dedup_by_key(|c| c.entry);
        set_depths(&mut mine);
        all.extend(mine);
    }
    all.retain(|c| query.from.is_none_or(|f| c.entry >= f) && query.to.is_none_or(|t| c.entry < t));
    all.sort_by_key(|c| c.entry);
    Ok(Calls {
        function: query.function.clone(),
        calls: all,
        replayed,
        slices,
    })
}
