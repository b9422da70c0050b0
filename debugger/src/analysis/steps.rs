//! Every step of a slice, recorded for the data-flow questions of
//! [`super::origin`]: each instruction with the registers before it, the
//! guest memory it read and wrote (guest-virtual and guest-physical), the
//! interrupt it may have been, and the network card's memory accesses —
//! during the step, or when a recorded frame was handed over before it.

use std::any::Any;

use iced_x86::{Decoder, DecoderOptions, Instruction, InstructionInfoFactory, Mnemonic, OpAccess};
use vmrr_backend::devices::virtio_net::DmaAccess;
use vmrr_backend::regs::address_register;
use vmrr_backend::{EventKind, GeneralRegs, Machine};

use super::pass::{Here, Observer, SliceJob, StepOutcome};

/// A stack range larger than this between RSP before and after an
/// interrupt step is a stack switch, not a frame (as the execution log).
const MAX_FRAME_BYTES: u64 = 512;

/// One memory access of a step, within one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemOp {
    /// Guest-virtual address.
    pub va: u64,
    /// Guest-physical address (`None`: not mapped; the step faulted).
    pub pa: Option<u64>,
    /// Bytes.
    pub len: u64,
    /// Read by the step.
    pub read: bool,
    /// Written by the step.
    pub write: bool,
}

/// One step of a VM.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Its icount (the position before it).
    pub icount: u64,
    /// Virtual time before it.
    pub vtime: u64,
    /// The registers before it.
    pub regs: GeneralRegs,
    /// The instruction at RIP (for an interrupt step: the interrupted one,
    /// which did not run).
    pub instr: Instruction,
    /// Its memory accesses.
    pub mem: Vec<MemOp>,
    /// The vector, if this step delivered an interrupt (it then ran the
    /// handler's first instruction instead).
    pub interrupt: Option<u8>,
    /// The card's accesses during the step (a queue notification).
    pub dma: Vec<DmaAccess>,
}

/// A recorded frame handed to the card before instruction `icount`.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Before this instruction.
    pub icount: u64,
    /// At this virtual time.
    pub vtime: u64,
    /// The input's index in the VM's recorded inputs.
    pub input: usize,
    /// What the card wrote.
    pub dma: Vec<DmaAccess>,
}

/// A job's steps and deliveries, in order.
#[derive(Debug, Clone)]
pub(crate) struct SliceSteps {
    /// What was replayed.
    pub job: SliceJob,
    /// The steps.
    pub steps: Vec<Step>,
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
    /// The registers at the end.
    pub end_regs: GeneralRegs,
}

impl SliceSteps {
    /// The registers after step `i`.
    pub fn regs_after(&self, i: usize) -> &GeneralRegs {
        self.steps.get(i + 1).map(|s| &s.regs).unwrap_or(&self.end_regs)
    }
}

/// Whether `instr` is a string instruction (its accesses follow RSI/RDI,
/// over as many elements as a `rep` chunk covered).
pub(crate) fn is_string(instr: &Instruction) -> bool {
    use iced_x86::OpKind as K;
    (0..instr.op_count()).any(|i| {
        matches!(
            instr.op_kind(i),
            K::MemorySegRSI
                | K::MemorySegESI
                | K::MemorySegSI
                | K::MemoryESRDI
                | K::MemoryESEDI
                | K::MemoryESDI
        )
    })
}

/// The instruction at RIP of `m`.
pub(crate) fn decode_at(m: &Machine) -> Instruction {
    let rip = m.regs().rip;
    let mut bytes = [0u8; 15];
    let n = m.read_virt(rip, &mut bytes);
    Decoder::with_ip(m.bitness(), &bytes[..n], rip, DecoderOptions::NONE).decode()
}

/// `[va, va + len)` of `m` as accesses within single pages.
fn pieces(m: &Machine, va: u64, len: u64, read: bool, write: bool, out: &mut Vec<MemOp>) {
    let end = va.saturating_add(len);
    let mut at = va;
    while at < end {
        let page_end = (at | 0xfff).saturating_add(1).min(end);
        out.push(MemOp {
            va: at,
            pa: m.translate(at),
            len: page_end - at,
            read,
            write,
        });
        if page_end <= at {
            break;
        }
        at = page_end;
    }
}

/// The records a job's observer gathers.
pub(crate) struct Recorder {
    job: SliceJob,
    steps: Vec<Step>,
    deliveries: Vec<Delivery>,
    pending: Option<Step>,
    factory: InstructionInfoFactory,
}

impl Recorder {
    /// A recorder for `job`.
    pub fn new(job: SliceJob) -> Recorder {
        Recorder {
            job,
            steps: Vec::with_capacity((job.to - job.from).min(1 << 20) as usize),
            deliveries: Vec::new(),
            pending: None,
            factory: InstructionInfoFactory::new(),
        }
    }
}

impl Observer for Recorder {
    fn every_step(&self) -> bool {
        true
    }

    fn at(&mut self, here: &Here<'_>) -> bool {
        let m = here.machine;
        let regs = m.regs();
        let sregs = m.sregs();
        let instr = decode_at(m);
        let mut mem = Vec::new();
        if !is_string(&instr) && !instr.is_invalid() {
            for op in self.factory.info(&instr).used_memory() {
                let size = op.memory_size().size() as u64;
                if size == 0 {
                    continue;
                }
                let Some(va) = op.virtual_address(0, |reg, _, _| address_register(&regs, &sregs, reg)) else {
                    continue;
                };
                let (read, write) = match op.access() {
                    OpAccess::Read | OpAccess::CondRead => (true, false),
                    OpAccess::Write | OpAccess::CondWrite => (false, true),
                    OpAccess::ReadWrite | OpAccess::ReadCondWrite => (true, true),
                    _ => continue,
                };
                pieces(m, va, size, read, write, &mut mem);
            }
        }
        self.pending = Some(Step {
            icount: m.icount(),
            vtime: m.vtime_ns(),
            regs: GeneralRegs::from_kvm(&regs),
            instr,
            mem,
            interrupt: None,
            dma: Vec::new(),
        });
        false
    }

    fn delivered(&mut self, here: &Here<'_>, input: usize, dma: &[DmaAccess]) {
        self.deliveries.push(Delivery {
            icount: here.machine.icount(),
            vtime: here.machine.vtime_ns(),
            input,
            dma: dma.to_vec(),
        });
    }

    fn after(&mut self, here: &Here<'_>, outcome: &StepOutcome) {
        let Some(mut step) = self.pending.take() else {
            return;
        };
        let m = here.machine;
        let after = m.regs();
        step.interrupt = outcome.events.iter().find_map(|e| match e.kind {
            EventKind::Interrupt(v) if e.icount == outcome.icount => Some(v),
            _ => None,
        });
        let (rsp0, rsp1) = (step.regs.0[7], after.rsp);
        if step.interrupt.is_some() {
            // The CPU's frame and the handler's first push: everything
            // between RSP after and before.
            step.mem.clear();
            if rsp1 < rsp0 && rsp0 - rsp1 <= MAX_FRAME_BYTES {
                pieces(m, rsp1, rsp0 - rsp1, false, true, &mut step.mem);
            }
        } else if is_string(&step.instr) {
            // What a (rep) string step covered: RSI/RDI moved over it.
            let elem = u64::from(step.instr.memory_size().size() as u32).max(1);
            let range = |before: u64, after: u64| {
                if after >= before {
                    (before, after - before)
                } else {
                    (after.wrapping_add(elem), before - after)
                }
            };
            use Mnemonic as M;
            let mn = step.instr.mnemonic();
            let writes_rdi = matches!(mn, M::Movsb | M::Movsw | M::Movsd | M::Movsq)
                || matches!(mn, M::Stosb | M::Stosw | M::Stosd | M::Stosq);
            let reads_rsi = !matches!(mn, M::Stosb | M::Stosw | M::Stosd | M::Stosq | M::Scasb)
                && !matches!(mn, M::Scasw | M::Scasd | M::Scasq);
            let reads_rdi = matches!(mn, M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq)
                || matches!(mn, M::Scasb | M::Scasw | M::Scasd | M::Scasq);
            if reads_rsi {
                let (va, len) = range(step.regs.0[4], after.rsi);
                pieces(m, va, len, true, false, &mut step.mem);
            }
            if writes_rdi || reads_rdi {
                let (va, len) = range(step.regs.0[5], after.rdi);
                pieces(m, va, len, reads_rdi, writes_rdi, &mut step.mem);
            }
        }
        step.dma = outcome.dma.clone();
        self.steps.push(step);
    }

    fn finish(self: Box<Self>, here: &Here<'_>) -> Box<dyn Any + Send> {
        Box::new(SliceSteps {
            job: self.job,
            steps: self.steps,
            deliveries: self.deliveries,
            end_regs: GeneralRegs::from_kvm(&here.machine.regs()),
        })
    }
}
