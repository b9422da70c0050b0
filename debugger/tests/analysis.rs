//! The analyses against brute force (`common::brute`: each VM of the
//! kvstore-bug demo stepped one instruction at a time): `calls kv_apply`
//! must find every entry, argument, return and value that stepping finds,
//! coverage must name the code stepping runs, a call tree must nest what
//! stepping sees; several analyses share one pass, which can be
//! cancelled. The origin of a value is in `origin.rs`. Needs /dev/kvm.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::brute::{brute_force, Seen};
use vmrr_debugger::analysis::CallQuery;
use vmrr_debugger::session::{Pos, Session, VmId};
use vmrr_debugger::trace::Trace;

fn trace() -> &'static Path {
    common::kvstore_bug_trace()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BruteCall {
    entry: Pos,
    args: [u64; 3],
    ret: Option<(Pos, u64)>,
}

#[test]
fn calls_of_kv_apply_are_what_stepping_finds() {
    let mut s = Session::open(trace()).expect("open");
    let query = CallQuery {
        function: "kv_apply".into(),
        vms: vec![],
        from: None,
        to: None,
    };
    let found = s.calls(&query, &|_| {}).expect("calls");
    assert!(
        found.replayed < found.slices,
        "the index skipped nothing: {found:?}"
    );
    let entry = common::kvstore_symbol("kv_apply");
    let mut want: Vec<(VmId, BruteCall)> = Vec::new();
    let t = Trace::open(trace(), false).expect("trace");
    for vm in 0..t.config().vms.len() {
        let mut open: Vec<(BruteCall, u64, u64)> = Vec::new();
        let mut done: Vec<BruteCall> = Vec::new();
        brute_force(&t, vm, |m, seen| {
            if !matches!(seen, Seen::Before) || m.is_halted() {
                return;
            }
            let r = m.regs();
            let pos = Pos::new(vm as VmId, m.icount(), m.vtime_ns());
            if let Some(i) = open
                .iter()
                .rposition(|(_, ret, cfa)| *ret == r.rip && *cfa == r.rsp)
            {
                let (mut c, _, _) = open.remove(i);
                c.ret = Some((pos, r.rax));
                done.push(c);
            }
            if r.rip == entry {
                let mut b = [0u8; 8];
                m.read_virt(r.rsp, &mut b);
                open.push((
                    BruteCall {
                        entry: pos,
                        args: [r.rdi & 0xffff_ffff, r.rsi & 0xff, r.rdx & 0xffff_ffff],
                        ret: None,
                    },
                    u64::from_le_bytes(b),
                    r.rsp + 8,
                ));
            }
        });
        done.extend(open.into_iter().map(|(c, _, _)| c));
        want.extend(done.into_iter().map(|c| (vm as VmId, c)));
    }
    want.sort_by_key(|(_, c)| c.entry);
    let got: Vec<(VmId, BruteCall)> = found
        .calls
        .iter()
        .map(|c| {
            let args: Vec<u64> = c.args.iter().map(|a| a.value).collect();
            assert_eq!(
                c.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
                ["seq", "key", "val"]
            );
            (
                c.vm,
                BruteCall {
                    entry: c.entry,
                    args: [args[0], args[1], args[2]],
                    ret: c.ret.zip(c.retval),
                },
            )
        })
        .collect();
    assert_eq!(got.len(), 20, "ten writes applied by each backup");
    assert_eq!(got, want);
    // The late #5 in backup2: k3 = 31 after #9 wrote 32.
    let late = found
        .calls
        .iter()
        .find(|c| s.vm_name(c.vm) == "backup2" && c.args[0].value == 5)
        .expect("#5 in backup2");
    assert_eq!(late.args[2].text, "31");
    assert_eq!(late.ret_text.as_deref(), Some("void"));

    // Asked again: from the cache, the same rows, nothing replayed.
    let again = s.calls(&query, &|_| {}).expect("calls again");
    assert_eq!(again.replayed, 0);
    assert_eq!(again.calls, found.calls);
    // A window and a VM filter the same rows.
    let backup2 = s.vm_by_name("backup2").expect("backup2");
    let (from, to) = (Pos::time(100_000_000), Pos::time(130_000_000));
    let window = s
        .calls(
            &CallQuery {
                vms: vec![backup2],
                from: Some(from),
                to: Some(to),
                ..query.clone()
            },
            &|_| {},
        )
        .expect("window");
    let filtered: Vec<_> = found
        .calls
        .iter()
        .filter(|c| c.vm == backup2 && c.entry >= from && c.entry < to)
        .cloned()
        .collect();
    assert_eq!(window.calls, filtered);
    assert_eq!(window.calls.len(), 5, "#9 and the resent #5..#8");
    // Unknown functions are named, with what looks alike.
    let err = s
        .calls(
            &CallQuery {
                function: "kv_aply".into(),
                ..query
            },
            &|_| {},
        )
        .expect_err("no such function");
    assert!(err.to_string().contains("did you mean kv_apply"), "{err}");
}

#[test]
fn coverage_names_the_code_stepping_runs() {
    let mut s = Session::open(trace()).expect("open");
    let t = Trace::open(trace(), false).expect("trace");
    let backup2 = s.vm_by_name("backup2").expect("backup2");
    let (from, to) = (Pos::time(100_000_000), Pos::time(150_000_000));
    let cov = s
        .coverage(&[backup2], Some(from), Some(to), &|_| {})
        .expect("coverage");
    let images = s.images();
    let program = images.program(&t, backup2 as usize);
    let mut want: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    brute_force(&t, backup2 as usize, |m, seen| {
        if !matches!(seen, Seen::Before) || m.is_halted() {
            return;
        }
        let pos = Pos::new(backup2, m.icount(), m.vtime_ns());
        if pos >= from && pos < to {
            let rip = m.regs().rip;
            let name = program
                .symbols()
                .containing(rip)
                .map(|(s, _)| s.name.clone())
                .unwrap_or("?".into());
            want.entry(name).or_default().insert(rip);
        }
    });
    let got: BTreeMap<String, usize> = cov
        .rows
        .iter()
        .map(|r| (r.function.clone(), r.addrs_run))
        .collect();
    let want: BTreeMap<String, usize> = want.into_iter().map(|(k, v)| (k, v.len())).collect();
    assert_eq!(got, want);
    assert!(got.contains_key("kv_apply") && got.contains_key("ask_resend"));
    let kv = cov
        .rows
        .iter()
        .find(|r| r.function == "kv_apply")
        .expect("kv_apply");
    assert!(kv.lines.contains(&("kvstore.c".to_string(), 369)));
    // Again: from the cache.
    let again = s
        .coverage(&[backup2], Some(from), Some(to), &|_| {})
        .expect("again");
    assert_eq!((again.rows, again.replayed), (cov.rows, 0));
}

#[test]
fn a_call_tree_nests_what_kv_apply_calls() {
    let mut s = Session::open(trace()).expect("open");
    let backup2 = s.vm_by_name("backup2").expect("backup2");
    let calls = s
        .calls(
            &CallQuery {
                function: "kv_apply".into(),
                vms: vec![backup2],
                from: None,
                to: None,
            },
            &|_| {},
        )
        .expect("calls");
    let c = &calls.calls[0];
    let ret = c.ret.expect("returns");
    let tree = s
        .call_tree(backup2, c.entry.icount, ret.icount, &|_| {})
        .expect("tree");
    let top: Vec<&str> = tree
        .iter()
        .filter(|n| n.depth == 0)
        .map(|n| n.function.as_str())
        .collect();
    assert_eq!(top, ["marker", "vprintf"]);
    for n in &tree {
        let r = n.ret.expect("every callee returns inside kv_apply");
        assert!(n.entry < r && r <= ret, "{n:?}");
    }
    assert!(tree.iter().any(|n| n.depth == 1 && n.function == "serial_putc"));
}

/// Counts stops at one address (a test analysis for the framework).
struct CountAt(u64);

struct Counter {
    addr: u64,
    hits: Vec<u64>,
}

impl vmrr_debugger::analysis::pass::Observer for Counter {
    fn breakpoints(&self) -> Vec<u64> {
        vec![self.addr]
    }

    fn at(&mut self, here: &vmrr_debugger::analysis::pass::Here<'_>) -> bool {
        self.hits.push(here.machine.icount());
        false
    }

    fn finish(
        self: Box<Self>,
        _here: &vmrr_debugger::analysis::pass::Here<'_>,
    ) -> Box<dyn std::any::Any + Send> {
        Box::new(self.hits)
    }
}

impl vmrr_debugger::analysis::pass::Analysis for CountAt {
    fn wants(&self, _vm: usize, _slice: usize, row: Option<&vmrr_index::ExecSliceRow>) -> bool {
        row.is_none_or(|r| r.ran_any(&[self.0]))
    }

    fn observer(
        &self,
        _job: &vmrr_debugger::analysis::pass::SliceJob,
    ) -> Box<dyn vmrr_debugger::analysis::pass::Observer> {
        Box::new(Counter {
            addr: self.0,
            hits: Vec::new(),
        })
    }
}

#[test]
fn several_analyses_share_one_pass_and_a_pass_can_be_cancelled() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use vmrr_debugger::analysis::pass::{run_analyses, Span};
    use vmrr_debugger::analysis::PassOptions;
    let t = Trace::open(trace(), false).expect("trace");
    let spans: Vec<Span> = (0..t.config().vms.len())
        .map(|vm| Span {
            vm,
            from: 0,
            to: t.end_icount(vm),
        })
        .collect();
    let cancel = AtomicBool::new(false);
    let jobs = std::sync::Mutex::new(0usize);
    let count = |p: vmrr_debugger::analysis::Progress| {
        *jobs.lock().expect("lock") = p.total;
    };
    let opts = PassOptions {
        jobs: 2,
        cancel: &cancel,
        progress: &count,
    };
    let (a, b) = (
        CountAt(common::kvstore_symbol("kv_apply")),
        CountAt(common::kvstore_symbol("ask_resend")),
    );
    let flat = |found: Vec<vmrr_debugger::analysis::pass::Found>| -> Vec<(usize, Vec<u64>)> {
        found
            .into_iter()
            .map(|(job, out)| (job.vm, *out.downcast::<Vec<u64>>().expect("hits")))
            .filter(|(_, h)| !h.is_empty())
            .collect()
    };
    let both = run_analyses(&t, &[&a, &b], &spans, &opts).expect("shared pass");
    let shared_jobs = *jobs.lock().expect("lock");
    let mut both = both.into_iter();
    let (in_both_a, in_both_b) = (flat(both.next().expect("a")), flat(both.next().expect("b")));
    let alone_a = flat(run_analyses(&t, &[&a], &spans, &opts).expect("a").remove(0));
    let jobs_a = *jobs.lock().expect("lock");
    let alone_b = flat(run_analyses(&t, &[&b], &spans, &opts).expect("b").remove(0));
    let jobs_b = *jobs.lock().expect("lock");
    assert_eq!((in_both_a.clone(), in_both_b.clone()), (alone_a, alone_b));
    assert_eq!(in_both_a.iter().map(|(_, h)| h.len()).sum::<usize>(), 20);
    assert!(!in_both_b.is_empty(), "backup2 asked for a resend");
    assert!(
        shared_jobs < jobs_a + jobs_b,
        "one replay per slice both want: {shared_jobs} {jobs_a} {jobs_b}"
    );
    assert!(shared_jobs >= jobs_a.max(jobs_b));

    // Cancelled after the first job: the pass says so instead of answering.
    let stop = |_: vmrr_debugger::analysis::Progress| cancel.store(true, Ordering::Relaxed);
    let opts = PassOptions {
        jobs: 1,
        cancel: &cancel,
        progress: &stop,
    };
    match run_analyses(&t, &[&a], &spans, &opts) {
        Err(vmrr_debugger::analysis::AnalysisError::Cancelled) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("not cancelled"),
    }
}
