//! Reading a cluster file and checking it, one section at a time, in the
//! order of the file's meaning: the network, the VMs (whose names the rest
//! refers to), the links, the faults. The first problem found is the error.

use std::collections::BTreeSet;
use std::path::Path;

use toml::Spanned;
use vmrr_backend::config::parse_mem_size;
use vmrr_backend::VmConfig;

use super::raw::{RawFault, RawFile, RawLink, RawNetwork, RawVm};
use super::{
    default_mac, ClusterConfig, ConfigError, FaultKind, FaultSpec, LinkSpec, VmSpec, DEFAULT_LATENCY_NS,
    MAX_BANDWIDTH_MBPS, MAX_CLUSTER_FILE_BYTES, MAX_LATENCY_US, MAX_TIME_US, MAX_VMS, MIN_LATENCY_NS,
};
use crate::names::check_vm_name;

impl ClusterConfig {
    /// Reads and checks a cluster file: a regular file of at most
    /// [`MAX_CLUSTER_FILE_BYTES`] of UTF-8 text.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let file_error = |message: String| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            field: "file".into(),
            message,
        };
        let bytes = vmrr_backend::input::read_limited(path, "a cluster file", MAX_CLUSTER_FILE_BYTES)
            .map_err(|e| file_error(format!("cannot read it: it {}", e.problem())))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            file_error(format!(
                "is not UTF-8 text (invalid byte at offset {}): a cluster file is TOML",
                e.utf8_error().valid_up_to()
            ))
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
        let (default_latency_ns, bandwidth_bps) = network(&lines, raw.network.as_ref())?;
        let vms = vms(&lines, base, seed, &raw.vm)?;
        let names = VmNames {
            lines: &lines,
            vms: &vms,
        };
        let links = links(&names, &raw.link)?;
        let faults = faults(&names, &raw.fault)?;
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

/// A link latency given in µs, in ns: at least [`MIN_LATENCY_NS`], at most
/// [`MAX_LATENCY_US`].
fn latency_ns(lines: &Lines, latency_us: &Spanned<u64>, field: &str) -> Result<u64, ConfigError> {
    let us = *latency_us.get_ref();
    if us > MAX_LATENCY_US {
        return lines.err(
            latency_us.span(),
            field,
            format!("{us} µs is above the maximum link latency of {MAX_LATENCY_US} µs (one hour)"),
        );
    }
    let ns = us * 1000; // cannot overflow below MAX_LATENCY_US
    if ns < MIN_LATENCY_NS {
        return lines.err(
            latency_us.span(),
            field,
            format!(
                "{us} µs is below the minimum link latency of {} µs",
                MIN_LATENCY_NS / 1000
            ),
        );
    }
    Ok(ns)
}

/// A time of the fault schedule given in µs (`at_us`, `until_us`), in ns:
/// from 0 to [`MAX_TIME_US`].
fn time_ns(lines: &Lines, us: &Spanned<i64>, field: &str) -> Result<u64, ConfigError> {
    let value = *us.get_ref();
    match u64::try_from(value) {
        Err(_) => lines.err(us.span(), field, "is in the past: virtual time starts at 0"),
        Ok(v) if v > MAX_TIME_US => lines.err(
            us.span(),
            field,
            format!("{v} µs is beyond the latest time a fault may name, {MAX_TIME_US} µs (about 11.6 days)"),
        ),
        Ok(v) => Ok(v * 1000), // cannot overflow below MAX_TIME_US
    }
}

/// `[network]`: the default link latency and the optional bandwidth (bits per second).
fn network(lines: &Lines, raw: Option<&RawNetwork>) -> Result<(u64, Option<u64>), ConfigError> {
    let Some(n) = raw else {
        return Ok((DEFAULT_LATENCY_NS, None));
    };
    let latency = match &n.latency_us {
        Some(l) => latency_ns(lines, l, "network.latency_us")?,
        None => DEFAULT_LATENCY_NS,
    };
    let bandwidth = match &n.bandwidth_mbps {
        Some(b) if !(1..=MAX_BANDWIDTH_MBPS).contains(b.get_ref()) => {
            return lines.err(
                b.span(),
                "network.bandwidth_mbps",
                format!("must be between 1 and {MAX_BANDWIDTH_MBPS} (1 Tbit/s), or omitted for unlimited"),
            )
        }
        Some(b) => Some(b.get_ref() * 1_000_000),
        None => None,
    };
    Ok((latency, bandwidth))
}

/// Every `[[vm]]`, in file order: at least one, names and MACs unique.
fn vms(lines: &Lines, base: &Path, seed: u64, raw: &[RawVm]) -> Result<Vec<VmSpec>, ConfigError> {
    if raw.is_empty() {
        return lines.err(
            0..0,
            "vm",
            "the cluster has no VM: add at least one [[vm]] table with name and image",
        );
    }
    if raw.len() > MAX_VMS {
        return lines.err(
            raw[MAX_VMS].name.span(),
            format!("vm[{MAX_VMS}]"),
            format!("a cluster has at most {MAX_VMS} VMs; this file has {}", raw.len()),
        );
    }
    let mut vms: Vec<VmSpec> = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let spec = vm(lines, base, seed, i, v, &vms)?;
        vms.push(spec);
    }
    Ok(vms)
}

/// `[[vm]]` number `i`, checked against the VMs before it.
fn vm(
    lines: &Lines,
    base: &Path,
    seed: u64,
    i: usize,
    v: &RawVm,
    earlier: &[VmSpec],
) -> Result<VmSpec, ConfigError> {
    let name = v.name.get_ref().trim().to_string();
    if let Err(e) = check_vm_name(&name) {
        return lines.err(v.name.span(), format!("vm[{i}].name"), e.to_string());
    }
    if let Some(j) = earlier.iter().position(|o| o.name == name) {
        return lines.err(
            v.name.span(),
            format!("vm[{i}].name"),
            format!("duplicate name '{name}' (also vm[{j}])"),
        );
    }
    let image = base.join(v.image.get_ref());
    match vmrr_backend::input::check_regular(&image) {
        Ok(_) => {}
        Err(e) if e.is_missing() => {
            return lines.err(
                v.image.span(),
                format!("vm[{i}].image"),
                format!(
                    "no such file: {} (paths are relative to the cluster file; build the guests with `cargo build`)",
                    image.display()
                ),
            )
        }
        Err(e) => {
            return lines.err(
                v.image.span(),
                format!("vm[{i}].image"),
                format!("{} {}: give an ELF64 guest image", image.display(), e.problem()),
            )
        }
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
    if let Some(j) = earlier.iter().position(|o| o.mac == mac) {
        let span = v.mac.as_ref().map(|m| m.span()).unwrap_or(v.name.span());
        let whose = if v.mac.is_some() {
            String::new()
        } else {
            " (this VM has no mac line: its default collides; give it a mac)".to_string()
        };
        return lines.err(
            span,
            format!("vm[{i}].mac"),
            format!("duplicate MAC (also vm[{j}] '{}'){whose}", earlier[j].name),
        );
    }
    Ok(VmSpec {
        name,
        image,
        config,
        mac,
    })
}

/// Parses a MAC written `52:54:00:12:34:01`.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        // from_str_radix alone would take "+f".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *slot = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// The VMs by name, for the sections that refer to them.
struct VmNames<'a> {
    lines: &'a Lines<'a>,
    vms: &'a [VmSpec],
}

impl VmNames<'_> {
    /// The index of the VM called `name`.
    fn find(&self, name: &Spanned<String>, field: &str) -> Result<usize, ConfigError> {
        match self.vms.iter().position(|v| v.name == *name.get_ref()) {
            Some(i) => Ok(i),
            None => {
                let known: Vec<&str> = self.vms.iter().map(|v| v.name.as_str()).collect();
                self.lines.err(
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
    }

    /// Two different VMs, as `between = ["a", "b"]` names them.
    fn pair(&self, list: &Spanned<Vec<Spanned<String>>>, field: &str) -> Result<(usize, usize), ConfigError> {
        if list.get_ref().len() != 2 {
            return self
                .lines
                .err(list.span(), field, "name exactly two VMs, e.g. [\"a\", \"b\"]");
        }
        let a = self.find(&list.get_ref()[0], field)?;
        let b = self.find(&list.get_ref()[1], field)?;
        if a == b {
            return self
                .lines
                .err(list.span(), field, "a link joins two different VMs");
        }
        Ok((a, b))
    }
}

/// Every `[[link]]`: a latency override between two VMs.
fn links(names: &VmNames, raw: &[RawLink]) -> Result<Vec<LinkSpec>, ConfigError> {
    let mut links: Vec<LinkSpec> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let field = format!("link[{i}].between");
        let between = names.pair(&l.between, &field)?;
        let (a, b) = between;
        // Only the first link of a pair would ever be used: a second one is a mistake.
        if let Some(j) = links
            .iter()
            .position(|o| o.between == (a, b) || o.between == (b, a))
        {
            return names.lines.err(
                l.between.span(),
                field,
                format!(
                    "a second link between '{}' and '{}' (also link[{j}]): give each pair one [[link]]",
                    names.vms[a].name, names.vms[b].name
                ),
            );
        }
        let latency_ns = latency_ns(names.lines, &l.latency_us, &format!("link[{i}].latency_us"))?;
        links.push(LinkSpec { between, latency_ns });
    }
    Ok(links)
}

/// Every `[[fault]]`, which must come in time order.
fn faults(names: &VmNames, raw: &[RawFault]) -> Result<Vec<FaultSpec>, ConfigError> {
    let lines = names.lines;
    let mut faults = Vec::new();
    let mut last_at = 0;
    for (i, f) in raw.iter().enumerate() {
        let at = *f.at_us.get_ref();
        let at_ns = time_ns(lines, &f.at_us, &format!("fault[{i}].at_us"))?;
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
        let kind = fault_kind(names, i, f)?;
        faults.push(FaultSpec { at_ns, kind });
    }
    Ok(faults)
}

/// What `[[fault]]` number `i` does.
fn fault_kind(names: &VmNames, i: usize, f: &RawFault) -> Result<FaultKind, ConfigError> {
    let lines = names.lines;
    let at = *f.at_us.get_ref();
    let until = |field: &str| -> Result<u64, ConfigError> {
        let Some(u) = &f.until_us else {
            return Ok(u64::MAX);
        };
        let field = format!("fault[{i}].{field}");
        if *u.get_ref() <= at {
            return lines.err(
                u.span(),
                field,
                format!("{} µs is not after at_us = {at} µs", u.get_ref()),
            );
        }
        time_ns(lines, u, &field)
    };
    let need_between = |kind: &str| -> Result<(usize, usize), ConfigError> {
        match &f.between {
            Some(b) => names.pair(b, &format!("fault[{i}].between")),
            None => lines.err(
                f.kind.span(),
                format!("fault[{i}].between"),
                format!("a {kind} fault needs between = [\"a\", \"b\"]"),
            ),
        }
    };
    Ok(match f.kind.get_ref().as_str() {
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
                set.insert(names.find(n, &format!("fault[{i}].vms"))?);
            }
            if set.is_empty() || set.len() == names.vms.len() {
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
            if *extra.get_ref() > MAX_LATENCY_US {
                return lines.err(
                    extra.span(),
                    format!("fault[{i}].extra_us"),
                    format!(
                        "{} µs is above the largest delay of {MAX_LATENCY_US} µs (one hour)",
                        extra.get_ref()
                    ),
                );
            }
            FaultKind::Delay {
                between,
                extra_ns: extra.get_ref() * 1000, // cannot overflow below MAX_LATENCY_US
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
    })
}
