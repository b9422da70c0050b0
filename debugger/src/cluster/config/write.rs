//! Writing a configuration back as a cluster file (a trace stores its own
//! copy, with the image paths pointing into the trace).

use super::{ClusterConfig, FaultKind};

impl ClusterConfig {
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
