//! The cluster (scheduler, switch, links, faults), recording and replay,
//! checkpoints and the page store, and the time-travel `Session`.
//!
//! Nothing here knows about terminals or gdb packets.

pub mod analysis;
pub mod cluster;
pub mod describe;
pub mod dwarf;
pub mod fork;
pub mod names;
pub mod session;
pub mod symbols;
pub mod trace;
pub mod vtime;
