//! The origin of a value: for bytes of a VM's memory (or a register) at a
//! position, the chain of where they came from.
//!
//! Each link is found by exact replay. The last write of the bytes before
//! the position is searched slice by slice, newest first — for memory only
//! in the slices the execution index says may write them (or that hand the
//! VM a frame) — by recording every step of the slice (see `steps`). The
//! writing instruction's data flow (see `flow`) names where the bytes came
//! from: a copy or a one-input transform is followed to its source (a
//! register or memory, read at that instruction's position); a constant,
//! an input from outside (rdtsc, a random number, a device register, an
//! interrupt frame) or a computation mixing several sources ends the chain.
//!
//! When the writer is the network card, handing over a recorded frame, the
//! chain crosses the wire: the frame's row in the index names the sender and
//! its icount; the sender's step there is replayed with the card's log on,
//! which says from which transmit buffer the card read those very bytes of
//! the frame, and the chain goes on in the sender from there.

use std::sync::Arc;

use vmrr_backend::devices::virtio_net::DmaAccess;
use vmrr_backend::Machine;
use vmrr_index::{Pos, VmId};

use super::cache::Cache;
use super::flow::{self, hex_value, reg_bytes, reg_name, FlowCtx, Loc, Source};
use super::pass::PassOptions;
use super::steps::SliceSteps;
use super::{AnalysisError, Images};
use crate::trace::Trace;

/// Links followed at most unless asked otherwise.
pub const DEFAULT_MAX_LINKS: usize = 64;
/// Slices searched back for a register's last write before giving up
/// (registers have no index: each slice is replayed).
const MAX_REGISTER_SLICES: usize = 8;
/// Recorded slices kept for the next links.
const KEEP_RECORDINGS: usize = 6;

/// Whether `text` names a general register (`rax`, `edx`, `dl`, `r8d`,
/// `rflags`): what [`OriginTarget::Register`] takes.
pub fn is_register(text: &str) -> bool {
    flow::parse_reg(text).is_some()
}

/// What to trace back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginTarget {
    /// Guest-virtual bytes `[addr, addr + len)`.
    Memory {
        /// Address.
        addr: u64,
        /// Bytes (1 to 64).
        len: u64,
    },
    /// A register as an instruction names it (`rax`, `edx`, `dl`).
    Register(String),
}

/// A question: where did the target of `vm` at `icount` (before that
/// instruction) come from?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginQuery {
    /// The VM.
    pub vm: VmId,
    /// The position.
    pub icount: u64,
    /// The bytes.
    pub target: OriginTarget,
    /// Links followed at most.
    pub max_links: usize,
}

/// What a link of the chain is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// An instruction wrote the bytes.
    Write,
    /// The network card wrote them: bytes of a frame from another VM.
    Received {
        /// The frame's id (`frames.id`).
        frame: u64,
        /// The VM that sent it.
        from_vm: VmId,
    },
    /// The network card read them from the sender's transmit buffer.
    Sent {
        /// The frame's id.
        frame: u64,
        /// The VM it went to.
        to_vm: VmId,
    },
}

/// A place that held the value after a link, for a view to show, watch or
/// go to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Place {
    /// Guest memory of the link's VM.
    Memory {
        /// Guest-physical address.
        pa: u64,
        /// The guest-virtual address the writing instruction used, if known.
        va: Option<u64>,
        /// Bytes.
        len: u64,
    },
    /// A register of the link's VM (`edx`).
    Register(String),
    /// Bytes of a frame on the wire.
    Frame {
        /// The frame's id.
        frame: u64,
        /// First byte.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

/// One link: where the value was written (or carried), and from what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginLink {
    /// Where it happened: before the writing instruction (a step), or
    /// where the frame was handed over or sent. A place to go to.
    pub pos: Pos,
    /// The VM's name.
    pub vm_name: String,
    /// The instruction's address (the queue notification for a send).
    pub rip: Option<u64>,
    /// `function+offset` of `rip`.
    pub function: Option<String>,
    /// `file:line` of `rip`.
    pub line: Option<String>,
    /// What the link is.
    pub kind: LinkKind,
    /// The instruction, or what the card did.
    pub what: String,
    /// The place that held the value after this link, as a person reads it.
    pub dest: String,
    /// The same place, for a view.
    pub place: Place,
    /// Where the link took it from.
    pub from: String,
    /// How: `copy`, `transform`, `received`, `sent`.
    pub flow: String,
    /// The value, when this link knows it (hex, little-endian bytes).
    pub value: Option<String>,
    /// A link a short chain leaves out: the value passing through a
    /// register, or spilled on the stack and back.
    pub trivial: bool,
}

/// Where the chain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginEnd {
    /// A constant of the program.
    Constant(String),
    /// Something from outside the program.
    Input(String),
    /// A computation mixing several sources (named, with values).
    Mix {
        /// The instruction.
        op: String,
        /// Its varying inputs.
        sources: Vec<String>,
    },
    /// The bytes were never written since the trace began.
    Initial(String),
    /// vmrr cannot follow this step.
    Unknown(String),
    /// The chain was cut after this many links.
    TooLong(usize),
}

impl std::fmt::Display for OriginEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginEnd::Constant(s) => write!(f, "a constant: {s}"),
            OriginEnd::Input(s) => write!(f, "an input: {s}"),
            OriginEnd::Mix { op, sources } => write!(f, "a computation of {}: {op}", sources.join(", ")),
            OriginEnd::Initial(s) => write!(f, "{s}"),
            OriginEnd::Unknown(s) => write!(f, "not followed: {s}"),
            OriginEnd::TooLong(n) => write!(f, "cut after {n} links (raise the limit to follow further)"),
        }
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Where the question was asked.
    pub start: Pos,
    /// The target, as a person reads it.
    pub target: String,
    /// Its value there (hex, little-endian bytes).
    pub value: String,
    /// The links, newest first.
    pub links: Vec<OriginLink>,
    /// Where the chain ended.
    pub end: OriginEnd,
}

/// What the last write of some bytes was.
enum Writer {
    /// Step `step` of the recording wrote `part`.
    Step {
        rec: Arc<SliceSteps>,
        step: usize,
        part: Loc,
    },
    /// The card wrote `part` (handing over input `input`, or during a step).
    Card {
        pos: Pos,
        rip: Option<u64>,
        dma: DmaAccess,
        input: Option<usize>,
        part: Loc,
    },
}

/// A chain being followed.
struct Tracer<'a> {
    trace: &'a Trace,
    images: &'a Images,
    opts: &'a PassOptions<'a>,
    recordings: Vec<Arc<SliceSteps>>,
}

/// Follows the origin of `query`'s target. `start` is the VM standing at
/// the position (the session's machine), or `None` to replay there. The
/// answer is cached: the same question again is read back.
pub fn origin(
    trace: &Trace,
    images: &Images,
    query: &OriginQuery,
    start: Option<&Machine>,
    opts: &PassOptions<'_>,
) -> Result<Origin, AnalysisError> {
    let cache = Cache::open(trace)?;
    let key = store::key(query);
    if let Some(found) = store::load(&cache, &key)? {
        return Ok(found);
    }
    let found = trace_origin(trace, images, query, start, opts)?;
    store::save(&cache, &key, &found)?;
    Ok(found)
}

/// [`origin`] without the cache.
fn trace_origin(
    trace: &Trace,
    images: &Images,
    query: &OriginQuery,
    start: Option<&Machine>,
    opts: &PassOptions<'_>,
) -> Result<Origin, AnalysisError> {
    let vm = query.vm as usize;
    let name = trace
        .config()
        .vms
        .get(vm)
        .map(|v| v.name.clone())
        .ok_or_else(|| {
            AnalysisError::BadRequest(format!("no VM number {} in this trace", u64::from(query.vm) + 1))
        })?;
    let end = trace.end_icount(vm);
    if query.icount > end {
        return Err(AnalysisError::PastEnd {
            vm: name,
            icount: query.icount,
            end,
        });
    }
    let seeked;
    let m = match start.filter(|m| m.icount() == query.icount) {
        Some(m) => m,
        None => {
            seeked = trace.seek(vm, query.icount)?;
            &seeked
        }
    };
    let (loc, target, value) = match &query.target {
        OriginTarget::Memory { addr, len } => {
            if !(1..=64).contains(len) {
                return Err(AnalysisError::BadRequest(format!(
                    "the origin of 1 to 64 bytes can be traced, not {len}"
                )));
            }
            // The last byte must exist: addresses are never wrapped.
            let Some(last) = addr.checked_add(*len - 1) else {
                return Err(AnalysisError::BadRequest(format!(
                    "{len} bytes at {addr:#x} run past the end of the address space"
                )));
            };
            let pa = m.translate(*addr).ok_or(AnalysisError::NotMapped {
                vm: name.clone(),
                addr: *addr,
                icount: query.icount,
            })?;
            let mut bytes = vec![0u8; *len as usize];
            let read = m.read_virt(*addr, &mut bytes);
            if read != bytes.len() {
                // The first byte that could not be read (at most `last`).
                return Err(AnalysisError::NotMapped {
                    vm: name.clone(),
                    addr: addr.saturating_add(read as u64).min(last),
                    icount: query.icount,
                });
            }
            // Physical pages need not follow each other: the first page's part.
            let len = (*len).min(0x1000 - (addr & 0xfff));
            let label = data_name(images, trace, vm, *addr);
            (Loc::Mem { pa, len }, label, hex_value(&bytes))
        }
        OriginTarget::Register(r) => {
            let loc = flow::parse_reg(r).ok_or_else(|| {
                AnalysisError::BadRequest(format!(
                    "'{r}' is not a general register (rax, edx, dl, r8d, rflags...)"
                ))
            })?;
            let Loc::Reg { gpr, lo, hi } = loc else {
                return Err(AnalysisError::BadRequest(format!("'{r}' is not a register")));
            };
            let v = m.general_regs()[gpr];
            (loc, reg_name(gpr, lo, hi), hex_value(&reg_bytes(v, lo, hi)))
        }
    };
    let start_pos = Pos::new(query.vm, query.icount, m.vtime_ns());
    let mut tracer = Tracer {
        trace,
        images,
        opts,
        recordings: Vec::new(),
    };
    let (links, end) = tracer.follow(vm, query.icount, loc, query.max_links.max(1))?;
    Ok(Origin {
        start: start_pos,
        target: format!("{target} in {name}"),
        value,
        links,
        end,
    })
}

/// The place `l` is, with the guest-virtual address step `step` used for it.
fn place_of(rec: &SliceSteps, step: usize, l: &Loc) -> Place {
    match *l {
        Loc::Reg { gpr, lo, hi } => Place::Register(reg_name(gpr, lo, hi)),
        Loc::Mem { pa, len } => Place::Memory {
            pa,
            va: rec.steps[step].mem.iter().find_map(|m| {
                m.pa.filter(|p| *p <= pa && pa < p + m.len)
                    .map(|p| m.va + (pa - p))
            }),
            len,
        },
    }
}

/// How a person reads a data address: `0x10622c (store+0xc)`.
fn data_name(images: &Images, trace: &Trace, vm: usize, va: u64) -> String {
    match images.program(trace, vm).symbols().describe(va) {
        Some(s) => format!("{va:#x} ({s})"),
        None => format!("{va:#x}"),
    }
}

impl Tracer<'_> {
    fn vm_name(&self, vm: usize) -> String {
        self.trace
            .config()
            .vms
            .get(vm)
            .map(|v| v.name.clone())
            .unwrap_or_else(|| "?".into())
    }

    fn ctx(&self, vm: usize) -> FlowCtx {
        FlowCtx {
            ram_bytes: self.trace.config().vms[vm].config.mem_bytes,
        }
    }

    /// Follows the chain from `loc` of `vm` at position `at`.
    fn follow(
        &mut self,
        mut vm: usize,
        mut at: u64,
        mut loc: Loc,
        max: usize,
    ) -> Result<(Vec<OriginLink>, OriginEnd), AnalysisError> {
        let mut links = Vec::new();
        while links.len() < max {
            let Some(writer) = self.last_writer(vm, at, &loc)? else {
                let end = match loc {
                    Loc::Mem { pa, .. } => OriginEnd::Initial(format!(
                        "{} of {} was never written since the trace began: the image's data, or memory the VM started with",
                        links.last().map(|l: &OriginLink| l.from.clone()).unwrap_or_else(|| format!("physical {pa:#x}")),
                        self.vm_name(vm)
                    )),
                    Loc::Reg { gpr, lo, hi } => OriginEnd::Initial(format!(
                        "{} was not written in the {} slices searched back (its value at the start of the first)",
                        reg_name(gpr, lo, hi),
                        MAX_REGISTER_SLICES
                    )),
                };
                return Ok((links, end));
            };
            match writer {
                Writer::Step { rec, step, part } => {
                    let s = &rec.steps[step];
                    let src = flow::source(&rec, step, &part, &self.ctx(vm));
                    let (function, line) = self.images.place(self.trace, vm, s.regs.rip());
                    let value = match src {
                        Source::Copy(Loc::Reg { gpr, lo, hi }) => {
                            Some(hex_value(&reg_bytes(s.regs[gpr], lo, hi)))
                        }
                        _ => match part {
                            Loc::Reg { gpr, lo, hi } => {
                                Some(hex_value(&reg_bytes(rec.regs_after(step)[gpr], lo, hi)))
                            }
                            Loc::Mem { .. } => None,
                        },
                    };
                    let mut link = OriginLink {
                        pos: Pos::new(vm as VmId, s.icount, s.vtime),
                        vm_name: self.vm_name(vm),
                        rip: Some(s.regs.rip()),
                        function,
                        line,
                        kind: LinkKind::Write,
                        what: if s.interrupt.is_some() {
                            "interrupt entry".into()
                        } else {
                            s.instr.to_string()
                        },
                        dest: self.describe(vm, &rec, step, &part, &loc),
                        place: place_of(&rec, step, &part),
                        from: String::new(),
                        flow: String::new(),
                        value,
                        trivial: false,
                    };
                    let next = match &src {
                        Source::Copy(l) => {
                            link.flow = "copy".into();
                            link.trivial = matches!(part, Loc::Reg { .. })
                                || matches!(
                                    s.instr.mnemonic(),
                                    iced_x86::Mnemonic::Push | iced_x86::Mnemonic::Pop
                                );
                            Some(*l)
                        }
                        Source::Transform { from, op } => {
                            link.flow = format!("transform ({op})");
                            Some(*from)
                        }
                        _ => None,
                    };
                    match next {
                        Some(l) => {
                            link.from = self.describe(vm, &rec, step, &l, &l);
                            links.push(link);
                            at = s.icount;
                            loc = l;
                        }
                        None => {
                            let end = self.end_of(&rec, step, src);
                            link.flow = "end".into();
                            link.from = end.to_string();
                            links.push(link);
                            return Ok((links, end));
                        }
                    }
                }
                Writer::Card {
                    pos,
                    rip,
                    dma,
                    input,
                    part,
                } => match self.cross(vm, pos, rip, &dma, input, &part, &mut links)? {
                    net::Crossed::Next { vm: v, at: a, loc: l } => {
                        vm = v;
                        at = a;
                        loc = l;
                    }
                    net::Crossed::End(end) => return Ok((links, end)),
                },
            }
        }
        let n = links.len();
        Ok((links, OriginEnd::TooLong(n)))
    }

    /// A place as a person reads it, with the guest-virtual address the
    /// step used for it when it has one.
    fn describe(&self, vm: usize, rec: &SliceSteps, step: usize, l: &Loc, whole: &Loc) -> String {
        match *l {
            Loc::Reg { gpr, lo, hi } => reg_name(gpr, lo, hi),
            Loc::Mem { pa, len } => {
                let va = rec.steps[step].mem.iter().find_map(|m| {
                    m.pa.filter(|p| *p <= pa && pa < p + m.len)
                        .map(|p| m.va + (pa - p))
                });
                let narrowed = if l.len() < whole.len() { " (part)" } else { "" };
                match va {
                    Some(va) => format!(
                        "{}, {len} bytes{narrowed}",
                        data_name(self.images, self.trace, vm, va)
                    ),
                    None => format!("physical {pa:#x}, {len} bytes{narrowed}"),
                }
            }
        }
    }

    /// The end a final step's source makes.
    fn end_of(&self, rec: &SliceSteps, step: usize, src: Source) -> OriginEnd {
        let regs = &rec.steps[step].regs;
        let value_of = |l: &Loc| match *l {
            Loc::Reg { gpr, lo, hi } => {
                format!(
                    "{} = {}",
                    reg_name(gpr, lo, hi),
                    hex_value(&reg_bytes(regs[gpr], lo, hi))
                )
            }
            Loc::Mem { pa, len } => format!("memory at physical {pa:#x} ({len} bytes)"),
        };
        match src {
            Source::Const(s) => OriginEnd::Constant(s),
            Source::Input(s) => OriginEnd::Input(s),
            Source::Mix { from, op } => OriginEnd::Mix {
                op,
                sources: from.iter().map(value_of).collect(),
            },
            Source::Unknown(s) => OriginEnd::Unknown(s),
            Source::Copy(_) | Source::Transform { .. } => OriginEnd::Unknown("followed".into()),
        }
    }
}

mod net;
mod search;
mod store;
