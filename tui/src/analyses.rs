//! The long questions the worker runs for the TUI besides moves: every
//! call of a function, the origin of a value, a fork at the cursor, the
//! comparison with the trace this one is opened beside. Each
//! reports progress as a fraction and stops on the session's cancel flag
//! (Esc); the rows it hands back are formatted by
//! `vmrr_debugger::analysis::text`, as the command line prints them.

use std::path::Path;
use std::sync::atomic::Ordering;

use vmrr_debugger::analysis::text;
use vmrr_debugger::cluster::ClusterStop;
use vmrr_debugger::fork::{fork, Change, ForkOptions};
use vmrr_debugger::session::{Moment, Session, SessionError, VmId};
use vmrr_debugger::vtime::format_ms;

use crate::state::{CallLine, CallsView, Comparison, Divergence, OriginLine, OriginView};

/// What a question leaves besides its message: the list to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Every call of a function.
    Calls(CallsView),
    /// An origin chain.
    Origin(OriginView),
    /// Where this trace's VMs first differ from another trace's.
    Compare(Comparison),
}

/// Every call the question names (`FUNC [VM...] [FROM..TO]`, the Session's
/// grammar); the message counts them.
pub fn calls(
    s: &mut Session,
    question: &str,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(String, Answer), SessionError> {
    let query = s.calls_query(question)?;
    let function = query.function.as_str();
    let found = s.calls(&query, progress)?;
    let sig = s.signature(function, &query.vms);
    let rows: Vec<CallLine> = found
        .calls
        .iter()
        .map(|c| {
            let (ret, ret_time, value) = text::call_return(c);
            CallLine {
                vm: c.vm as usize,
                entry: c.entry,
                args: vmrr_debugger::describe::printable(&text::call_args(c)),
                ret,
                ret_time,
                value: vmrr_debugger::describe::printable(&value),
            }
        })
        .collect();
    let n = rows.len();
    let message = format!(
        "{function}: {n} call{} in {} (replayed {} of {} slices){}",
        if n == 1 { "" } else { "s" },
        if query.vms.is_empty() && query.from.is_none() && query.to.is_none() {
            "every VM".to_string()
        } else {
            question.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
        },
        found.replayed,
        found.slices,
        if n > 0 {
            "; Enter goes to a call's entry"
        } else {
            ""
        }
    );
    let view = CallsView {
        function: function.to_string(),
        signature: vmrr_debugger::describe::printable(&text::signature(function, sig.as_ref())),
        selected: (n > 0).then_some(0),
        rows,
    };
    Ok((message, Answer::Calls(view)))
}

/// The origin of `what` in `vm` at the cursor; the message says where it ended.
pub fn origin(
    s: &mut Session,
    vm: VmId,
    what: &str,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(String, Answer), SessionError> {
    let (target, label) = s.origin_target(vm, what)?;
    let o = s.origin(vm, target, progress)?;
    let name = s.vm_namer();
    let shown: Vec<OriginLine> = o
        .links
        .iter()
        .filter(|l| !l.trivial)
        .map(|l| OriginLine {
            pos: l.pos,
            place: text::place(l.pos, &name),
            at: vmrr_debugger::describe::printable(&text::link_at(l)),
            description: vmrr_debugger::describe::printable(&text::link_description(l)),
        })
        .collect();
    let n = shown.len();
    let message = format!(
        "origin of {label}: {n} link{}, ending in {}{}",
        if n == 1 { "" } else { "s" },
        o.end,
        if n > 0 { "; Enter goes to a link" } else { "" }
    );
    let view = OriginView {
        header: vmrr_debugger::describe::printable(&text::origin_header(&o, &label, &name)),
        hidden: o.links.len() - n,
        end: vmrr_debugger::describe::printable(&o.end.to_string()),
        selected: (n > 0).then_some(0),
        links: shown,
    };
    Ok((vmrr_debugger::describe::printable(&message), Answer::Origin(view)))
}

/// Forks the session's trace at `at_ns` with `changes` into `out`; Esc
/// (the session's cancel flag) stops the run at its next barrier, leaving
/// a fork that replays up to its last checkpoint. The message names the
/// new trace and the commands that open and compare it.
pub fn fork_here(
    s: &Session,
    at_ns: u64,
    changes: &[String],
    out: &Path,
    end_ns: u64,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<String, String> {
    let changes: Vec<Change> = changes
        .iter()
        .map(|c| Change::parse(c).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let parent = s.trace().dir().to_path_buf();
    let stop = s.cancel_flag();
    stop.store(false, Ordering::Relaxed);
    // The fork runs on as far as its parent did: its progress is measured
    // against the parent's end.
    let mut report = |p: &vmrr_debugger::trace::record::Progress| {
        let done = p.vtime_ns.saturating_sub(at_ns) as f64;
        progress(done / end_ns.saturating_sub(at_ns).max(1) as f64);
    };
    let summary = fork(
        &parent,
        &Moment::Time(at_ns),
        &changes,
        out,
        &ForkOptions::default(),
        &stop,
        &mut report,
    )
    .map_err(|e| format!("fork: {e}"))?;
    let (new, old) = (out.display(), parent.display());
    let how = match summary.record.stop {
        ClusterStop::Interrupted => "stopped early (Esc): it replays up to its last checkpoint; ",
        _ => "",
    };
    let notes = if summary.changes.is_empty() {
        "no change".to_string()
    } else {
        summary.changes.join("; ")
    };
    Ok(vmrr_debugger::describe::printable(&format!(
        "forked at {} into {new}: {how}vmrr tui {new} --beside · vmrr diff {old} {new} ({notes}; {} frames)",
        format_ms(summary.at_ns),
        summary.record.frames
    )))
}

/// Compares the session's trace with `other` (`diff(other, this)`: the
/// other is side A, as `vmrr diff PARENT FORK` has it); the message is the
/// focus VM's first difference, both sides.
pub fn compare(s: &Session, other: &Path) -> Result<(String, Answer), String> {
    let here = s.trace().dir().to_path_buf();
    let report = vmrr_debugger::fork::diff::diff(other, &here).map_err(|e| format!("compare: {e}"))?;
    let printable = vmrr_debugger::describe::printable;
    let lanes = s
        .vm_ids()
        .map(|vm| {
            let name = s.vm_name(vm);
            let first = report.vms.iter().find(|v| v.vm == name)?.first.as_ref()?;
            Some(Divergence {
                icount: first.icount,
                vtime_ns: first.vtime_ns,
                what: first.what.clone(),
                theirs: printable(&first.a),
                ours: printable(&first.b),
            })
        })
        .collect();
    let other_name = other
        .file_name()
        .map(|n| printable(&n.to_string_lossy()))
        .unwrap_or_else(|| printable(&other.display().to_string()));
    let view = Comparison {
        other: other_name,
        relation: printable(&report.relation),
        from_ns: report.from_ns,
        lanes,
    };
    let focus = s.focus();
    let message = format!(
        "beside {}: {}; D: to the focus VM's divergence",
        view.other,
        view.summary(focus as usize, &printable(s.vm_name(focus)))
    );
    Ok((message, Answer::Compare(view)))
}
