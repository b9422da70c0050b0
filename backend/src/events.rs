//! What a VM did that the index cares about, each stamped with its position.

use serde::{Deserialize, Serialize};

/// One event at an exact position of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Instruction count at which it happened (the instruction that caused it
    /// is number `icount`, counting from 0).
    pub icount: u64,
    /// Virtual time at that instruction.
    pub vtime_ns: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event a single VM produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A byte written to the serial console.
    Console(u8),
    /// An interrupt vector delivered to the vCPU; the handler's first
    /// instruction is instruction `icount`.
    Interrupt(u8),
    /// `rdtsc`/`rdtscp`/`rdmsr(TSC)` answered with this virtual TSC value.
    TscRead(u64),
    /// `rdrand`/`rdseed` answered with this value from the seeded generator.
    RandomRead(u64),
    /// A named marker the guest emitted through the marker port.
    Marker {
        /// Name written byte by byte to port 0xf9.
        name: String,
        /// Value written to port 0xf8.
        value: u32,
    },
    /// The guest halted; virtual time skips to the next interrupt.
    Halt,
    /// The halted guest was woken by an interrupt after `idle_ns` of idle time.
    Wake {
        /// Virtual nanoseconds skipped.
        idle_ns: u64,
    },
    /// The guest asked to exit through the debug-exit port.
    Exit(u32),
    /// The guest's NIC transmitted this Ethernet frame (the step is the
    /// queue notification that handed it over).
    FrameSent(Vec<u8>),
    /// This Ethernet frame was handed to the guest's NIC before instruction `icount`.
    FrameReceived(Vec<u8>),
}
