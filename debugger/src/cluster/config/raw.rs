//! The schema of a cluster file as serde reads it: every field as written,
//! with its position ([`Spanned`]) so errors can name the line. Unknown
//! fields are refused. Nothing here is checked yet; `parse` does that.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) seed: Option<Spanned<u64>>,
    pub(super) network: Option<RawNetwork>,
    #[serde(default)]
    pub(super) vm: Vec<RawVm>,
    #[serde(default)]
    pub(super) link: Vec<RawLink>,
    #[serde(default)]
    pub(super) fault: Vec<RawFault>,
}

/// `[network]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) latency_us: Option<Spanned<u64>>,
    pub(super) bandwidth_mbps: Option<Spanned<u64>>,
}

/// One `[[vm]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVm {
    pub(super) name: Spanned<String>,
    pub(super) image: Spanned<String>,
    #[serde(default)]
    pub(super) cmdline: String,
    pub(super) mem: Option<Spanned<String>>,
    pub(super) rate: Option<Spanned<u64>>,
    pub(super) mac: Option<Spanned<String>>,
}

/// One `[[link]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) between: Spanned<Vec<Spanned<String>>>,
    pub(super) latency_us: Spanned<u64>,
}

/// One `[[fault]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub(super) at_us: Spanned<i64>,
    pub(super) kind: Spanned<String>,
    pub(super) vms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) between: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) fraction: Option<Spanned<f64>>,
    pub(super) extra_us: Option<Spanned<u64>>,
    pub(super) until_us: Option<Spanned<i64>>,
}
