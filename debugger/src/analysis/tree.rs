//! The call tree of a window of one VM: every call (and interrupt) entered
//! in it, nested, with where it returned. The window is replayed step by
//! step in one piece (the stack crosses slices), so it is meant for short
//! windows: at most [`MAX_TREE_STEPS`] steps.

use std::any::Any;

use iced_x86::FlowControl;
use vmrr_index::{Pos, VmId};

use super::pass::{run_jobs, Here, Observer, PassOptions, SliceJob, StepOutcome, Work};
use super::steps::decode_at;
use super::{AnalysisError, Images};
use crate::trace::Trace;

/// The longest window a call tree replays.
pub const MAX_TREE_STEPS: u64 = 5_000_000;

/// One call in a call tree, in the order entered (a pre-order walk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTreeNode {
    /// How many calls of the window it is nested in.
    pub depth: u32,
    /// The function called (`function+offset` without a symbol at the
    /// target, `interrupt 0x20` for an interrupt).
    pub function: String,
    /// Before its first instruction.
    pub entry: Pos,
    /// Before the instruction after it returned (`None`: not within the window).
    pub ret: Option<Pos>,
}

/// A frame under way: its node and the stack pointer it returns with.
struct Frame {
    node: usize,
    sp: u64,
}

struct TreeWatch {
    vm: usize,
    nodes: Vec<(CallTreeNode, u64)>,
    stack: Vec<Frame>,
    /// The step about to run: its flow control and stack pointer.
    pending: Option<(FlowControl, u64)>,
}

impl Observer for TreeWatch {
    fn every_step(&self) -> bool {
        true
    }

    fn at(&mut self, here: &Here<'_>) -> bool {
        let m = here.machine;
        let instr = decode_at(m);
        self.pending = Some((instr.flow_control(), m.regs().rsp));
        false
    }

    fn after(&mut self, here: &Here<'_>, step: &StepOutcome) {
        let r = here.machine.regs();
        let pos = here.pos();
        let interrupt = step.events.iter().find_map(|e| match e.kind {
            vmrr_backend::EventKind::Interrupt(v) if e.icount == step.icount => Some(v),
            _ => None,
        });
        let Some((flow, sp)) = self.pending.take() else {
            return;
        };
        let entry = Pos::new(self.vm as VmId, step.icount, pos.vtime_ns);
        if let Some(v) = interrupt {
            // The handler's first instruction already ran in this step.
            self.nodes.push((
                CallTreeNode {
                    depth: self.stack.len() as u32,
                    function: format!("interrupt {v:#x}"),
                    entry,
                    ret: None,
                },
                0,
            ));
            self.stack.push(Frame {
                node: self.nodes.len() - 1,
                sp,
            });
            return;
        }
        match flow {
            FlowControl::Call | FlowControl::IndirectCall => {
                self.nodes.push((
                    CallTreeNode {
                        depth: self.stack.len() as u32,
                        function: String::new(),
                        entry: pos,
                        ret: None,
                    },
                    r.rip,
                ));
                self.stack.push(Frame {
                    node: self.nodes.len() - 1,
                    sp,
                });
            }
            FlowControl::Return => {
                // Back in a frame: every frame whose stack is now popped has returned.
                while let Some(top) = self.stack.last() {
                    if r.rsp < top.sp {
                        break;
                    }
                    self.nodes[top.node].0.ret = Some(pos);
                    self.stack.pop();
                }
            }
            _ => {}
        }
    }

    fn finish(self: Box<Self>, _here: &Here<'_>) -> Box<dyn Any + Send> {
        Box::new(self.nodes)
    }
}

/// The call tree of `vm` over icounts `[from, to)`.
pub fn call_tree(
    trace: &Trace,
    images: &Images,
    vm: usize,
    from: u64,
    to: u64,
    opts: &PassOptions<'_>,
) -> Result<Vec<CallTreeNode>, AnalysisError> {
    let end = trace.end_icount(vm);
    let to = to.min(end);
    if to.saturating_sub(from) > MAX_TREE_STEPS {
        return Err(AnalysisError::BadRequest(format!(
            "a call tree replays its window step by step: {} steps is more than {MAX_TREE_STEPS}; narrow it with --from/--to",
            to - from
        )));
    }
    if from >= to {
        return Ok(Vec::new());
    }
    let slice = trace
        .checkpoints(vm)
        .iter()
        .rposition(|c| c.icount <= from)
        .unwrap_or(0);
    let job = SliceJob { vm, slice, from, to };
    let watch = TreeWatch {
        vm,
        nodes: Vec::new(),
        stack: Vec::new(),
        pending: None,
    };
    let result = run_jobs(
        trace,
        vec![Work {
            job,
            observers: vec![Box::new(watch)],
        }],
        opts,
    )?;
    let nodes = result
        .into_iter()
        .next()
        .and_then(|r| r.outputs.into_iter().next())
        .and_then(|o| o.downcast::<Vec<(CallTreeNode, u64)>>().ok())
        .ok_or(AnalysisError::Cancelled)?;
    let program = images.program(trace, vm);
    Ok(nodes
        .into_iter()
        .map(|(mut n, target)| {
            if n.function.is_empty() {
                n.function = program
                    .symbols()
                    .describe(target)
                    .unwrap_or_else(|| format!("{target:#x}"));
            }
            n
        })
        .collect())
}
