//! `cluster.toml`: the VMs, the network, the seed and the fault schedule.
//!
//! Every error names the file, the line and the field, and says what to write
//! instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use vmrr_backend::config::parse_mem_size;
use vmrr_backend::VmConfig;

/// Links faster than this are refused: the window scheduler runs every VM
/// for one minimum latency between barriers, and shorter windows would make
/// the barrier overhead dominate.
pub const MIN_LATENCY_NS: u64 = 1_000;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    seed: Option<Spanned<u64>>,
    network: Option<RawNetwork>,
    #[serde(default)]
    vm: Vec<RawVm>,
    #[serde(default)]
    link: Vec<RawLink>,
    #[serde(default)]
    fault: Vec<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    latency_us: Option<Spanned<u64>>,
    bandwidth_mbps: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Spanned<String>,
    image: Spanned<String>,
    #[serde(default)]
    cmdline: String,
    mem: Option<Spanned<String>>,
    rate: Option<Spanned<u64>>,
    mac: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    between: Spanned<Vec<Spanned<String>>>,
    latency_us: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    at_us: Spanned<i64>,
    kind: Spanned<String>,
    vms: Option<Spanned<Vec<Spanned<String>>>>,
    between: Option<Spanned<Vec<Spanned<String>>>>,
    fraction: Option<Spanned<f64>>,
    extra_us: Option<Spanned<u64>>,
    until_us: Option<Spanned<i64>>,
}

/// Turns byte offsets into 1-based line numbers.
struct Lines<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Lines<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_path_buf(),
            line: self.line_of(span.start),
            field: field.into(),
            message: message.into(),
        })
    }
}

/// Parses a MAC written `52:54:00:12:34:01`.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The default MAC of VM number `index`: 52:54:00:12:34:<index+1>, as the guest kit expects.
pub fn default_mac(index: usize) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x12, 0x34, (index as u8).wrapping_add(1)]
}

impl ClusterConfig {
    /// Reads and checks a cluster file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            field: "file".into(),
            message: format!("cannot read it: {e}"),
        })?;
        ClusterConfig::parse(path, &text)
    }

    /// Checks a cluster file's text; `path` locates relative image paths and names errors.
    pub fn parse(path: &Path, text: &str) -> Result<ClusterConfig, ConfigError> {
        let lines = Lines { text, file: path };
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: e.span().map(|s| lines.line_of(s.start)).unwrap_or(0),
            field: "syntax".into(),
            message: e.message().trim().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let seed = raw.seed.map(|s| *s.get_ref()).unwrap_or(0);

        let (default_latency_ns, bandwidth_bps) = match &raw.network {
            Some(n) => {
                let lat = match &n.latency_us {
                    Some(l) => {
                        let ns = l.get_ref().saturating_mul(1000);
                        if ns < MIN_LATENCY_NS {
                            return lines.err(
                                l.span(),
                                "network.latency_us",
                                format!(
                                    "{} µs is below the minimum link latency of {} µs",
                                    l.get_ref(),
                                    MIN_LATENCY_NS / 1000
                                ),
                            );
                        }
                        ns
                    }
                    None => 50_000,
                };
                let bw = match &n.bandwidth_mbps {
                    Some(b) if *b.get_ref() == 0 => {
                        return lines.err(
                            b.span(),
                            "network.bandwidth_mbps",
                            "must be positive (or omitted for unlimited)",
                        )
                    }
                    Some(b) => Some(b.get_ref().saturating_mul(1_000_000)),
                    None => None,
                };
                (lat, bw)
            }
            None => (50_000, None),
        };

        if raw.vm.is_empty() {
            return lines.err(
                0..0,
                "vm",
                "the cluster has no VM: add at least one [[vm]] table with name and image",
            );
        }
        let mut vms: Vec<VmSpec> = Vec::new();
        for (i, v) in raw.vm.iter().enumerate() {
            let name = v.name.get_ref().trim().to_string();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return lines.err(
                    v.name.span(),
                    format!("vm[{i}].name"),
                    "must be a non-empty word without spaces",
                );
            }
            if let Some(j) = vms.iter().position(|o| o.name == name) {
                return lines.err(
                    v.name.span(),
                    format!("vm[{i}].name"),
                    format!("duplicate name '{name}' (also vm[{j}])"),
                );
            }
            let image = base.join(v.image.get_ref());
            if !image.is_file() {
                return lines.err(v.image.span(), format!("vm[{i}].image"), format!(
                    "no such file: {} (paths are relative to the cluster file; build the guests with `cargo build`)",
                    image.display()));
            }
            let mut config = VmConfig {
                cmdline: v.cmdline.clone(),
                seed: seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                ..VmConfig::default()
            };
            if let Some(m) = &v.mem {
                config.mem_bytes = match parse_mem_size(m.get_ref()) {
                    Ok(b) => b,
                    Err(e) => return lines.err(m.span(), format!("vm[{i}].mem"), e),
                };
            }
            if let Some(r) = &v.rate {
                config.instr_per_us = *r.get_ref();
            }
            if let Err(e) = config.validate() {
                let span = v.mem.as_ref().map(|m| m.span()).unwrap_or(v.name.span());
                return lines.err(span, format!("vm[{i}]"), e.to_string());
            }
            let mac = match &v.mac {
                Some(m) => match parse_mac(m.get_ref()) {
                    Some(mac) if mac[0] & 1 == 0 => mac,
                    Some(_) => {
                        return lines.err(
                            m.span(),
                            format!("vm[{i}].mac"),
                            "is a multicast address; the first byte must be even",
                        )
                    }
                    None => {
                        return lines.err(
                            m.span(),
                            format!("vm[{i}].mac"),
                            "write six hex bytes like 52:54:00:12:34:01",
                        )
                    }
                },
                None => default_mac(i),
            };
            if let Some(j) = vms.iter().position(|o| o.mac == mac) {
                let span = v.mac.as_ref().map(|m| m.span()).unwrap_or(v.name.span());
                return lines.err(
                    span,
                    format!("vm[{i}].mac"),
                    format!("duplicate MAC (also vm[{j}] '{}')", vms[j].name),
                );
            }
            vms.push(VmSpec {
                name,
                image,
                config,
                mac,
            });
        }

        let find = |name: &Spanned<String>, field: &str| -> Result<usize, ConfigError> {
            match vms.iter().position(|v| v.name == *name.get_ref()) {
                Some(i) => Ok(i),
                None => {
                    let known: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
                    lines.err(
                        name.span(),
                        field,
                        format!(
                            "unknown VM '{}' (the VMs are: {})",
                            name.get_ref(),
                            known.join(", ")
                        ),
                    )
                }
            }
        };
        let pair =
            |list: &Spanned<Vec<Spanned<String>>>, field: &str| -> Result<(usize, usize), ConfigError> {
                if list.get_ref().len() != 2 {
                    return lines.err(list.span(), field, "name exactly two VMs, e.g. [\"a\", \"b\"]");
                }
                let a = find(&list.get_ref()[0], field)?;
                let b = find(&list.get_ref()[1], field)?;
                if a == b {
                    return lines.err(list.span(), field, "a link joins two different VMs");
                }
                Ok((a, b))
            };

        let mut links = Vec::new();
        for (i, l) in raw.link.iter().enumerate() {
            let field = format!("link[{i}].between");
            let between = pair(&l.between, &field)?;
            let ns = l.latency_us.get_ref().saturating_mul(1000);
            if ns < MIN_LATENCY_NS {
                return lines.err(
                    l.latency_us.span(),
                    format!("link[{i}].latency_us"),
                    format!(
                        "{} µs is below the minimum link latency of {} µs",
                        l.latency_us.get_ref(),
                        MIN_LATENCY_NS / 1000
                    ),
                );
            }
            links.push(LinkSpec {
                between,
                latency_ns: ns,
            });
        }

        let mut faults = Vec::new();
        let mut last_at = 0;
        for (i, f) in raw.fault.iter().enumerate() {
            let at = *f.at_us.get_ref();
            if at < 0 {
                return lines.err(
                    f.at_us.span(),
                    format!("fault[{i}].at_us"),
                    "is in the past: virtual time starts at 0",
                );
            }
            let at_ns = (at as u64).saturating_mul(1000);
            if at_ns < last_at {
                return lines.err(
                    f.at_us.span(),
                    format!("fault[{i}].at_us"),
                    format!(
                        "{at} µs is before the previous fault at {} µs: list faults in time order",
                        last_at / 1000
                    ),
                );
            }
            last_at = at_ns;
            let until = |field: &str| -> Result<u64, ConfigError> {
                match &f.until_us {
                    Some(u) if *u.get_ref() * 1000 <= at_ns as i64 => lines.err(
                        u.span(),
                        format!("fault[{i}].{field}"),
                        format!("{} µs is not after at_us = {at} µs", u.get_ref()),
                    ),
                    Some(u) => Ok((*u.get_ref() as u64).saturating_mul(1000)),
                    None => Ok(u64::MAX),
                }
            };
            let need_between = |kind: &str| -> Result<(usize, usize), ConfigError> {
                match &f.between {
                    Some(b) => pair(b, &format!("fault[{i}].between")),
                    None => lines.err(
                        f.kind.span(),
                        format!("fault[{i}].between"),
                        format!("a {kind} fault needs between = [\"a\", \"b\"]"),
                    ),
                }
            };
            let kind = match f.kind.get_ref().as_str() {
                "partition" => {
                    let Some(list) = &f.vms else {
                        return lines.err(
                            f.kind.span(),
                            format!("fault[{i}].vms"),
                            "a partition needs vms = [\"name\", ...], the VMs to cut off",
                        );
                    };
                    let mut set = BTreeSet::new();
                    for n in list.get_ref() {
                        set.insert(find(n, &format!("fault[{i}].vms"))?);
                    }
                    if set.is_empty() || set.len() == vms.len() {
                        return lines.err(
                            list.span(),
                            format!("fault[{i}].vms"),
                            "name some but not all VMs",
                        );
                    }
                    FaultKind::Partition(set.into_iter().collect())
                }
                "heal" => FaultKind::Heal,
                "drop" => {
                    let between = need_between("drop")?;
                    let fraction = match &f.fraction {
                        Some(fr) if (0.0..=1.0).contains(fr.get_ref()) => *fr.get_ref(),
                        Some(fr) => {
                            return lines.err(
                                fr.span(),
                                format!("fault[{i}].fraction"),
                                "must be between 0.0 and 1.0",
                            )
                        }
                        None => 1.0,
                    };
                    FaultKind::Drop {
                        between,
                        fraction,
                        until_ns: until("until_us")?,
                    }
                }
                "delay" => {
                    let between = need_between("delay")?;
                    let Some(extra) = &f.extra_us else {
                        return lines.err(
                            f.kind.span(),
                            format!("fault[{i}].extra_us"),
                            "a delay fault needs extra_us = N",
                        );
                    };
                    FaultKind::Delay {
                        between,
                        extra_ns: extra.get_ref().saturating_mul(1000),
                        until_ns: until("until_us")?,
                    }
                }
                other => {
                    return lines.err(
                        f.kind.span(),
                        format!("fault[{i}].kind"),
                        format!("unknown kind '{other}': use partition, heal, drop or delay"),
                    )
                }
            };
            faults.push(FaultSpec { at_ns, kind });
        }

        Ok(ClusterConfig {
            file: path.to_path_buf(),
            seed,
            default_latency_ns,
            bandwidth_bps,
            vms,
            links,
            faults,
        })
    }

    /// The configuration as a cluster file, with each VM's image path given
    /// by `image_of(index)`. Reading it back gives an equal configuration.
    pub fn to_toml(&self, image_of: impl Fn(usize) -> String) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let names =
            |pair: (usize, usize)| format!("[{}, {}]", q(&self.vms[pair.0].name), q(&self.vms[pair.1].name));
        let mut out = format!(
            "seed = {}\n\n[network]\nlatency_us = {}\n",
            self.seed,
            self.default_latency_ns / 1000
        );
        if let Some(bps) = self.bandwidth_bps {
            out += &format!("bandwidth_mbps = {}\n", bps / 1_000_000);
        }
        for (i, v) in self.vms.iter().enumerate() {
            let mac: Vec<String> = v.mac.iter().map(|b| format!("{b:02x}")).collect();
            out += &format!(
                "\n[[vm]]\nname = {}\nimage = {}\ncmdline = {}\nmem = \"{}K\"\nrate = {}\nmac = \"{}\"\n",
                q(&v.name),
                q(&image_of(i)),
                q(&v.config.cmdline),
                v.config.mem_bytes / 1024,
                v.config.instr_per_us,
                mac.join(":")
            );
        }
        for l in &self.links {
            out += &format!(
                "\n[[link]]\nbetween = {}\nlatency_us = {}\n",
                names(l.between),
                l.latency_ns / 1000
            );
        }
        let until = |ns: u64| {
            if ns == u64::MAX {
                String::new()
            } else {
                format!("until_us = {}\n", ns / 1000)
            }
        };
        for f in &self.faults {
            out += &format!("\n[[fault]]\nat_us = {}\n", f.at_ns / 1000);
            out += &match &f.kind {
                FaultKind::Partition(vms) => {
                    let list: Vec<String> = vms.iter().map(|&i| q(&self.vms[i].name)).collect();
                    format!("kind = \"partition\"\nvms = [{}]\n", list.join(", "))
                }
                FaultKind::Heal => "kind = \"heal\"\n".to_string(),
                FaultKind::Drop {
                    between,
                    fraction,
                    until_ns,
                } => {
                    format!(
                        "kind = \"drop\"\nbetween = {}\nfraction = {fraction:?}\n{}",
                        names(*between),
                        until(*until_ns)
                    )
                }
                FaultKind::Delay {
                    between,
                    extra_ns,
                    until_ns,
                } => format!(
                    "kind = \"delay\"\nbetween = {}\nextra_us = {}\n{}",
                    names(*between),
                    extra_ns / 1000,
                    until(*until_ns)
                ),
            };
        }
        out
    }

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
            default_latency_ns: 50_000,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_toml_round_trips() {
        let dir = std::env::temp_dir().join(format!("vmrr-cfg-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("g.elf"), b"x").unwrap();
        let text = r#"seed = 7
[network]
latency_us = 60
bandwidth_mbps = 100
[[vm]]
name = "a"
image = "g.elf"
cmdline = "id=0 \"quoted\""
[[vm]]
name = "b"
image = "g.elf"
mem = "32M"
rate = 50
[[link]]
between = ["a", "b"]
latency_us = 300
[[fault]]
at_us = 10
kind = "partition"
vms = ["b"]
[[fault]]
at_us = 20
kind = "heal"
[[fault]]
at_us = 30
kind = "drop"
between = ["a", "b"]
fraction = 0.25
until_us = 40
[[fault]]
at_us = 35
kind = "delay"
between = ["b", "a"]
extra_us = 5
"#;
        let path = dir.join("c.toml");
        let a = ClusterConfig::parse(&path, text).unwrap();
        let again = a.to_toml(|_| "g.elf".into());
        let b = ClusterConfig::parse(&path, &again).unwrap();
        assert_eq!(a, b, "{again}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
