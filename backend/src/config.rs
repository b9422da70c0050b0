//! What a VM is built from: memory size, command line, CPU rate, seed.

use crate::error::{Result, VmError};

/// Smallest guest memory vmrr accepts: room for the boot structures and a 1 MiB kernel.
pub const MIN_MEM_BYTES: u64 = 4 << 20;
/// Largest guest memory: RAM is one slot below the 3 GiB PCI hole.
pub const MAX_MEM_BYTES: u64 = 3 << 30;

/// The parameters of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest RAM in bytes (a multiple of 4 KiB).
    pub mem_bytes: u64,
    /// Kernel command line handed over in `hvm_start_info`.
    pub cmdline: String,
    /// Virtual CPU rate: retired instructions per virtual microsecond. Virtual
    /// time advances by `1000 / rate` ns per instruction (integer math, see
    /// [`crate::vclock`]).
    pub instr_per_us: u64,
    /// Seed of the generator that answers `rdrand`/`rdseed`.
    pub seed: u64,
    /// MAC of a virtio-net NIC, if the VM has one (cluster members do). The
    /// device is announced on the command line (`virtio_mmio.device=...`).
    pub nic_mac: Option<[u8; 6]>,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            mem_bytes: 64 << 20,
            cmdline: String::new(),
            // 100 instructions per µs: a 1 kHz timer tick is 100k instructions,
            // which keeps timer-driven guests responsive at this host's
            // ~150k single steps per second.
            instr_per_us: 100,
            seed: 0,
            nic_mac: None,
        }
    }
}

impl VmConfig {
    /// Checks ranges; the message says which value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.mem_bytes < MIN_MEM_BYTES || self.mem_bytes > MAX_MEM_BYTES {
            return Err(VmError::Config(format!(
                "memory size {} is out of range: use between 4M and 3G",
                self.mem_bytes
            )));
        }
        if !self.mem_bytes.is_multiple_of(4096) {
            return Err(VmError::Config(format!(
                "memory size {} is not a multiple of 4 KiB",
                self.mem_bytes
            )));
        }
        if self.instr_per_us == 0 || self.instr_per_us > 1_000_000 {
            return Err(VmError::Config(format!(
                "CPU rate {} instructions/µs is out of range: use 1 to 1000000",
                self.instr_per_us
            )));
        }
        if self.cmdline.len() > 4000 || self.cmdline.contains('\0') {
            return Err(VmError::Config(
                "command line must be under 4000 bytes and contain no NUL".into(),
            ));
        }
        Ok(())
    }
}

/// Parses a memory size such as `64M`, `1G`, `4096K` or a plain byte count.
pub fn parse_mem_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size: write e.g. 64M, 1G or a byte count"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_mem_size("64M"), Ok(64 << 20));
        assert_eq!(parse_mem_size("1g"), Ok(1 << 30));
        assert_eq!(parse_mem_size("4096"), Ok(4096));
        assert!(parse_mem_size("lots").is_err());
        assert!(parse_mem_size("99999999999999G").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let mut c = VmConfig::default();
        assert!(c.validate().is_ok());
        c.mem_bytes = 1 << 20;
        assert!(c.validate().is_err());
        c = VmConfig {
            instr_per_us: 0,
            ..VmConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
