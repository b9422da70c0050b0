//! `cluster.toml`: the VMs, the network, the seed and the fault schedule.
//!
//! Every error names the file, the line and the field, and says what to write
//! instead.
//!
//! * this file: the resolved configuration the rest of vmrr uses;
//! * `raw`: the file's schema as serde reads it, positions included;
//! * `parse`: reading a file and checking it section by section;
//! * `write`: writing a configuration back as a cluster file.

mod parse;
mod raw;
mod write;

use std::path::{Path, PathBuf};

use vmrr_backend::VmConfig;

/// Links faster than this are refused: the window scheduler runs every VM
/// for one minimum latency between barriers, and shorter windows would make
/// the barrier overhead dominate.
pub const MIN_LATENCY_NS: u64 = 1_000;

/// Latency of the links a file does not give one, and of a one-VM cluster.
const DEFAULT_LATENCY_NS: u64 = 50_000;

/// A configuration error with its position.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line of the offending value (0 when unknown).
    pub line: usize,
    /// The field, e.g. `vm[2].name`.
    pub field: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// One VM of the cluster, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Unique name, used in output and by links and faults.
    pub name: String,
    /// Absolute path of the guest image.
    pub image: PathBuf,
    /// Memory, command line, rate, seed.
    pub config: VmConfig,
    /// The NIC's MAC address.
    pub mac: [u8; 6],
}

/// A link whose latency differs from the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// Indices of the two VMs (in `ClusterConfig::vms`), in either direction.
    pub between: (usize, usize),
    /// One-way latency in virtual ns.
    pub latency_ns: u64,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Cut these VMs off from all others until a heal.
    Partition(Vec<usize>),
    /// Remove all partitions.
    Heal,
    /// Drop this fraction of frames on a link (both directions) until `until_ns`.
    Drop {
        /// The two VMs.
        between: (usize, usize),
        /// 0.0 ..= 1.0, decided per frame from the seed.
        fraction: f64,
        /// End of the fault (exclusive), virtual ns.
        until_ns: u64,
    },
    /// Add latency on a link until `until_ns`.
    Delay {
        /// The two VMs.
        between: (usize, usize),
        /// Extra one-way latency, ns.
        extra_ns: u64,
        /// End of the fault (exclusive), virtual ns.
        until_ns: u64,
    },
}

/// A fault taking effect at a virtual time.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// When it takes effect (applies to frames sent at or after this time).
    pub at_ns: u64,
    /// What it does.
    pub kind: FaultKind,
}

/// The whole cluster, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Where it was read from.
    pub file: PathBuf,
    /// Seed of fault decisions (and each VM's rdrand seed, mixed with its index).
    pub seed: u64,
    /// Latency of every link without an override, ns.
    pub default_latency_ns: u64,
    /// Optional bandwidth of every link, bits per second (adds len*8/bw to each frame).
    pub bandwidth_bps: Option<u64>,
    /// The VMs, in file order (their index is their id).
    pub vms: Vec<VmSpec>,
    /// Per-link latency overrides.
    pub links: Vec<LinkSpec>,
    /// The fault schedule, sorted by time.
    pub faults: Vec<FaultSpec>,
}

/// The default MAC of VM number `index`: 52:54:00:12:34:<index+1>, as the guest kit expects.
pub fn default_mac(index: usize) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x12, 0x34, (index as u8).wrapping_add(1)]
}

impl ClusterConfig {
    /// A one-VM cluster for `vmrr record image.elf`: the VM is called `vm0`.
    pub fn single(image: &Path, config: VmConfig) -> Result<ClusterConfig, ConfigError> {
        if !image.is_file() {
            return Err(ConfigError {
                file: image.to_path_buf(),
                line: 0,
                field: "image".into(),
                message: "no such file".into(),
            });
        }
        Ok(ClusterConfig {
            file: image.to_path_buf(),
            seed: config.seed,
            default_latency_ns: DEFAULT_LATENCY_NS,
            bandwidth_bps: None,
            vms: vec![VmSpec {
                name: "vm0".into(),
                image: image.to_path_buf(),
                config,
                mac: default_mac(0),
            }],
            links: Vec::new(),
            faults: Vec::new(),
        })
    }

    /// One-way latency from VM `a` to VM `b` without faults.
    pub fn latency_ns(&self, a: usize, b: usize) -> u64 {
        self.links
            .iter()
            .find(|l| l.between == (a, b) || l.between == (b, a))
            .map(|l| l.latency_ns)
            .unwrap_or(self.default_latency_ns)
    }

    /// The smallest latency of any link: the scheduler's window length.
    pub fn min_latency_ns(&self) -> u64 {
        self.links
            .iter()
            .map(|l| l.latency_ns)
            .fold(self.default_latency_ns, u64::min)
    }
}
