//! The cluster (scheduler, switch, links, faults); later recording and
//! replay, checkpoints and the time-travel `Session`.
//!
//! Nothing here knows about terminals or gdb packets.

pub mod cluster;
pub mod session;
pub mod symbols;
pub mod trace;
pub mod vtime;
