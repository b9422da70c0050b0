//! The analyses (see [`crate::analysis`]) as a session offers them to its
//! views: the TUI's calls view and origin key, gdb's `monitor calls` and
//! `monitor origin`, and the command line. Each runs on the session's
//! threads (`set_jobs`), can be cancelled with the session's cancel flag,
//! reports its progress as a fraction, and leaves the cursor where it was.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::analysis::{
    self, calls::CallQuery, coverage, origin::DEFAULT_MAX_LINKS, tree, CallTreeNode, Calls, Coverage, Images,
    Origin, OriginQuery, OriginTarget, PassOptions, Progress,
};

use super::{ix, Moment, Pos, Session, SessionError, VmId};
use crate::dwarf::{parse_watch, WatchExpr};

impl Session {
    fn with_pass<T>(
        &mut self,
        progress: &(dyn Fn(f64) + Sync),
        f: impl FnOnce(&mut Session, &PassOptions<'_>) -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        self.cancel.store(false, Ordering::Relaxed);
        let cancel = self.cancel.clone();
        let report = |p: Progress| progress(p.done as f64 / p.total.max(1) as f64);
        let opts = PassOptions {
            jobs: self.jobs,
            cancel: &cancel,
            progress: &report,
        };
        f(self, &opts)
    }

    /// A question about calls as a person types it in the TUI or gdb:
    /// `FUNC [VM...] [FROM..TO]`, e.g. `kv_apply backup2 122ms..123ms` (VMs by
    /// name or number; the window's ends are moments, either may be left
    /// out: `..123ms`).
    pub fn calls_query(&mut self, text: &str) -> Result<CallQuery, SessionError> {
        const USAGE: &str = "write FUNCTION [VM...] [FROM..TO], e.g. kv_apply backup2 122ms..123ms";
        let mut words = text.split_whitespace();
        let function = words
            .next()
            .ok_or_else(|| SessionError::BadQuestion(USAGE.into()))?
            .to_string();
        let mut query = CallQuery {
            function,
            vms: Vec::new(),
            from: None,
            to: None,
        };
        for word in words {
            match word.split_once("..") {
                Some((from, to)) => {
                    let mut end = |t: &str| -> Result<Option<Pos>, SessionError> {
                        if t.is_empty() {
                            return Ok(None);
                        }
                        Ok(Some(self.moment_pos(&Moment::parse(t)?)?))
                    };
                    query.from = end(from)?;
                    query.to = end(to)?;
                    if let (Some(f), Some(t)) = (query.from, query.to) {
                        if t < f {
                            return Err(SessionError::BadQuestion(format!(
                                "the window {word} ends before it starts: write the earlier moment first"
                            )));
                        }
                    }
                }
                None => query.vms.push(self.vm_by_name(word)?),
            }
        }
        Ok(query)
    }

    /// The DWARF signature of `function` (its parameters' names and types)
    /// in the first of `vms` (all if empty) whose image has it.
    pub fn signature(&self, function: &str, vms: &[VmId]) -> Option<crate::dwarf::Signature> {
        let images = self.images();
        self.vm_ids()
            .filter(|v| vms.is_empty() || vms.contains(v))
            .find_map(|v| {
                let p = images.program(&self.trace, ix(v));
                let entry = p.symbols().by_name(function)?.addr;
                p.signature(entry)
            })
    }

    /// The images of the trace's VMs as analyses name code (read once).
    pub fn images(&self) -> Arc<Images> {
        self.images
            .get_or_init(|| Arc::new(Images::new(&self.trace)))
            .clone()
    }

    /// Every call of `query.function` in the VMs and window it names:
    /// entry, arguments, return and value (see [`analysis::calls`]).
    /// Cached in the trace: asking again is instant.
    pub fn calls(
        &mut self,
        query: &CallQuery,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Calls, SessionError> {
        let images = self.images();
        self.with_pass(progress, |s, opts| {
            Ok(analysis::calls::calls(&s.trace, &images, query, opts)?)
        })
    }

    /// Where the target of `vm` at the cursor came from (see
    /// [`analysis::origin`]): `Memory` is a guest-virtual range of `vm`.
    /// Follows at most [`DEFAULT_MAX_LINKS`] links.
    pub fn origin(
        &mut self,
        vm: VmId,
        target: OriginTarget,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Origin, SessionError> {
        self.origin_with_limit(vm, target, DEFAULT_MAX_LINKS, progress)
    }

    /// What `text` names in `vm` at the cursor, for [`Session::origin`]: a
    /// register (`edx`), an address with a length (`0x10622c:4`), or a C
    /// variable or element (`store[3]`, a global or one in scope), with the
    /// label a view shows for it. One grammar for the command line, gdb's
    /// `monitor origin` and the TUI.
    pub fn origin_target(&mut self, vm: VmId, text: &str) -> Result<(OriginTarget, String), SessionError> {
        self.check_vm(vm)?;
        let text = text.trim();
        if analysis::origin::is_register(text) {
            return Ok((OriginTarget::Register(text.to_string()), text.to_string()));
        }
        let (addr, len, label) = match parse_watch(text)? {
            WatchExpr::Address { addr, len } => (addr, len, format!("{addr:#x}")),
            expr => {
                let program = self.images().program(&self.trace, ix(vm));
                let stack = self.source_stack(vm, &program)?;
                program.resolve_watch(&expr, &stack)?
            }
        };
        Ok((OriginTarget::Memory { addr, len }, label))
    }

    /// [`Session::origin`], following at most `max_links` links.
    pub fn origin_with_limit(
        &mut self,
        vm: VmId,
        target: OriginTarget,
        max_links: usize,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Origin, SessionError> {
        self.check_vm(vm)?;
        let pos = self.position(vm)?;
        let images = self.images();
        let trace = self.trace.clone();
        let query = OriginQuery {
            vm,
            icount: pos.icount,
            target,
            max_links,
        };
        self.with_pass(progress, |s, opts| {
            let m = s.machine(vm)?;
            Ok(analysis::origin::origin(&trace, &images, &query, Some(m), opts)?)
        })
    }

    /// The call tree of `vm` between icounts `from` and `to` (at most
    /// [`analysis::MAX_TREE_STEPS`] steps).
    pub fn call_tree(
        &mut self,
        vm: VmId,
        from: u64,
        to: u64,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Vec<CallTreeNode>, SessionError> {
        self.check_vm(vm)?;
        let images = self.images();
        self.with_pass(progress, |s, opts| {
            Ok(tree::call_tree(&s.trace, &images, ix(vm), from, to, opts)?)
        })
    }

    /// Which functions and lines ran in `vms` (all if empty) between two
    /// cluster positions (see [`analysis::coverage`]).
    pub fn coverage(
        &mut self,
        vms: &[VmId],
        from: Option<Pos>,
        to: Option<Pos>,
        progress: &(dyn Fn(f64) + Sync),
    ) -> Result<Coverage, SessionError> {
        let images = self.images();
        self.with_pass(progress, |s, opts| {
            Ok(coverage::coverage(&s.trace, &images, vms, from, to, opts)?)
        })
    }

    /// The cluster position a moment names (as `goto_moment` would put the
    /// cursor), without moving the cursor.
    pub fn moment_pos(&mut self, moment: &Moment) -> Result<Pos, SessionError> {
        let (cursor, focus) = (self.cursor, self.focus);
        let result = self.goto_moment(moment).map(|_| self.cursor.pos);
        self.cursor = cursor;
        self.focus = focus;
        self.generation += 1;
        result
    }

    /// Where `vm` stands when the cursor is at `pos` (its icount), without
    /// moving the cursor.
    pub fn icount_at(&mut self, vm: VmId, pos: Pos) -> Result<u64, SessionError> {
        let (cursor, focus) = (self.cursor, self.focus);
        let result = if pos.vm == vm && pos.icount > 0 {
            Ok(pos.icount)
        } else {
            self.goto_vtime(pos.vtime_ns)
                .and_then(|_| self.position(vm))
                .map(|p| p.icount)
        };
        self.cursor = cursor;
        self.focus = focus;
        self.generation += 1;
        result
    }
}
