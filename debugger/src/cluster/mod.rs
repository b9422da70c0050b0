//! A cluster of VMs on one virtual switch, run as a conservative parallel
//! simulation: every VM runs alone for a window no longer than the smallest
//! link latency, and frames move between VMs only at the barriers between
//! windows. Nothing sent inside a window can arrive inside it, so each VM
//! has every frame it needs before it starts a window, and the result is the
//! same whatever the host's thread timing.

pub mod config;
pub mod faults;
pub mod scheduler;
pub mod switch;

pub use config::{ClusterConfig, ConfigError};
pub use scheduler::{
    Cluster, ClusterError, ClusterEvent, ClusterOptions, ClusterStop, FrameFate, FrameRecord,
};
