//! gdb's remote serial protocol, with nothing of vmrr in it: framing and
//! checksums ([`framing`]), numbers ([`hex`]), thread ids ([`thread_id`]),
//! packets ([`packet`], [`vcont`]) and replies ([`reply`]).

pub mod framing;
pub mod hex;
pub mod packet;
pub mod reply;
pub mod thread_id;
pub mod vcont;
