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
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};

use vmrr_backend::VmConfig;

/// Links faster than this are refused: the window scheduler runs every VM
/// for one minimum latency between barriers, and shorter windows would make
/// the barrier overhead dominate.
pub const MIN_LATENCY_NS: u64 = 1_000;

/// Latency of the links a file does not give one, and of a one-VM cluster.
const DEFAULT_LATENCY_NS: u64 = 50_000;

/// Longest link latency (`latency_us`) and largest extra delay of a `delay`
/// fault (`extra_us`): one hour of virtual time. Far beyond any network, and
/// small enough that send time + latency + every delay cannot wrap.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latest time a fault may name (`at_us`, `until_us`): 10^12 µs, about
/// 11.6 days of virtual time (in ns it stays far below 2^63, the largest
/// time the index stores).
pub const MAX_TIME_US: u64 = 1_000_000_000_000;

/// Largest bandwidth (`bandwidth_mbps`): 1 Tbit/s.
pub const MAX_BANDWIDTH_MBPS: u64 = 1_000_000;

/// Most VMs in one cluster (each is a KVM VM with its own memory).
pub const MAX_VMS: usize = 1024;

/// Largest cluster file read: a thousand VMs with faults fit many times.
pub const MAX_CLUSTER_FILE_BYTES: u64 = 1 << 20;

/// A configuration error with its position.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {field}: {message}", file.display(), at_line(*line))]
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

/// `:N` for a known line, nothing for a problem with the whole file.
fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
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

/// The default MAC of VM number `index`: 52:54:00:12:34:<index+1> for the
/// first 254 VMs, as the guest kit expects (it reads its node number from
/// the last byte, 1 to 254); 52:54:00:13:<index as 16 bits> beyond, so that
/// no two VMs of up to [`MAX_VMS`] share one.
pub fn default_mac(index: usize) -> [u8; 6] {
    match u8::try_from(index + 1) {
        Ok(last) if last < 0xff => [0x52, 0x54, 0x00, 0x12, 0x34, last],
        _ => {
            let [hi, lo] = (index as u16).to_be_bytes();
            [0x52, 0x54, 0x00, 0x13, hi, lo]
        }
    }
}

impl ClusterConfig {
    /// A one-VM cluster for `vmrr record image.elf`: the VM is called `vm0`.
    pub fn single(image: &Path, config: VmConfig) -> Result<ClusterConfig, ConfigError> {
        if let Err(e) = vmrr_backend::input::check_regular(image) {
            return Err(ConfigError {
                file: image.to_path_buf(),
                line: 0,
                field: "image".into(),
                message: format!(
                    "{} {}: give the path of an ELF64 guest image",
                    image.display(),
                    e.problem()
                ),
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
