//! One VM under KVM: guest memory, PVH boot, devices (16550 serial, 8259 PIC,
//! 8254 PIT, debug-exit and marker ports), the exact single-stepping engine,
//! and state capture/restore.
//!
//! Nothing here knows about other VMs, traces or SQL. The entry point is
//! [`Machine`]: build one from an image, [`Machine::run`] it to a limit, take
//! its [`Event`]s, capture and restore its [`MachineState`].

pub mod boot;
pub mod config;
pub mod cpuid;
pub mod decode;
pub mod devices;
pub mod error;
pub mod events;
pub mod floor;
pub mod input;
pub mod machine;
pub mod memory;
pub mod quirks;
pub mod regs;
pub mod rng;
pub mod vclock;

pub use config::VmConfig;
pub use error::{Result, VmError};
pub use events::{Event, EventKind};
pub use machine::{state, ExecLog, Machine, RunLimit, Stop, WORD_BYTES};
pub use regs::{GeneralRegs, Gpr};
pub use state::MachineState;
