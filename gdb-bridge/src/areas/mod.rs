//! vmrr as a gdb target, one file per area of the protocol. Each file is an
//! `impl Target` block over the connection's state (`crate::state`) and
//! uses the protocol layer (`crate::proto`); none uses another, except the
//! message every refused write shares (`registers::WHY_NO_WRITES`).

mod analyses;
mod connect;
mod fork;
mod memory;
mod monitor;
mod points;
mod processes;
mod registers;
pub(crate) mod resume;
mod threads;
mod xfer;

pub use monitor::HELP;
