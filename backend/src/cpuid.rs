//! The fixed CPUID table: every guest on every host sees the same CPU.
//!
//! It is handed to KVM once (`KVM_SET_CPUID2`, which KVM also consults for
//! EFER and paging checks) and the engine answers the `cpuid` instruction from
//! it directly, so no host bit can leak into the guest. It advertises only
//! what this host can single-step: baseline x86-64, no RDRAND/RDSEED, no
//! XSAVE/AVX, no POPCNT/CMPXCHG16B, no TSC-deadline timer.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::error::{Result, VmError};

/// One CPUID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidLeaf {
    /// EAX input.
    pub function: u32,
    /// ECX input, when it matters for this leaf.
    pub index: Option<u32>,
    /// The four output registers.
    pub regs: [u32; 4],
}

const fn bits(list: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < list.len() {
        v |= 1 << list[i];
        i += 1;
    }
    v
}

fn str_regs(s: &[u8; 16]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// The table vmrr presents.
pub fn table() -> Vec<CpuidLeaf> {
    // "AuthenticAMD" in EBX, EDX, ECX order.
    let vendor = |f: u32, max: u32| CpuidLeaf {
        function: f,
        index: None,
        regs: [max, 0x6874_7541, 0x444d_4163, 0x6974_6e65],
    };
    // Leaf 1 EDX: FPU PSE TSC MSR PAE CX8 SEP PGE CMOV PAT PSE36 CLFSH MMX FXSR SSE SSE2.
    let edx1 = bits(&[0, 3, 4, 5, 6, 8, 11, 13, 15, 16, 17, 19, 23, 24, 25, 26]);
    // Leaf 1 ECX: only the hypervisor bit.
    let ecx1 = bits(&[31]);
    // 0x8000_0001 EDX: SYSCALL NX LM; ECX: LAHF/SAHF in long mode.
    let edx81 = bits(&[11, 20, 29]);
    let brand = b"vmrr virtual CPU";
    let mut leaves = vec![
        vendor(0, 7),
        CpuidLeaf {
            function: 1,
            index: None,
            // Family 15 model 1 stepping 0; CLFLUSH line 8 qwords, one logical CPU, APIC id 0.
            regs: [0x0000_0f10, 0x0001_0800, ecx1, edx1],
        },
        CpuidLeaf {
            function: 7,
            index: Some(0),
            regs: [0; 4],
        },
        CpuidLeaf {
            function: 0x8000_0000,
            index: None,
            regs: [0x8000_0008, 0, 0, 0],
        },
        CpuidLeaf {
            function: 0x8000_0001,
            index: None,
            regs: [0, 0, 1, edx81],
        },
    ];
    leaves.push(CpuidLeaf {
        function: 0x8000_0002,
        index: None,
        regs: str_regs(brand),
    });
    leaves.push(CpuidLeaf {
        function: 0x8000_0003,
        index: None,
        regs: [0; 4],
    });
    leaves.push(CpuidLeaf {
        function: 0x8000_0004,
        index: None,
        regs: [0; 4],
    });
    // 40-bit physical, 48-bit virtual addresses.
    leaves.push(CpuidLeaf {
        function: 0x8000_0008,
        index: None,
        regs: [0x3028, 0, 0, 0],
    });
    leaves
}

/// What `cpuid` returns for EAX=`function`, ECX=`index`: the table's entry, or zeros.
pub fn lookup(table: &[CpuidLeaf], function: u32, index: u32) -> [u32; 4] {
    table
        .iter()
        .find(|l| l.function == function && l.index.is_none_or(|i| i == index))
        .map(|l| l.regs)
        .unwrap_or([0; 4])
}

/// The table in the form `KVM_SET_CPUID2` takes.
pub fn to_kvm(table: &[CpuidLeaf]) -> Result<CpuId> {
    let entries: Vec<kvm_cpuid_entry2> = table
        .iter()
        .map(|l| kvm_cpuid_entry2 {
            function: l.function,
            index: l.index.unwrap_or(0),
            flags: if l.index.is_some() {
                KVM_CPUID_FLAG_SIGNIFCANT_INDEX
            } else {
                0
            },
            eax: l.regs[0],
            ebx: l.regs[1],
            ecx: l.regs[2],
            edx: l.regs[3],
            ..Default::default()
        })
        .collect();
    CpuId::from_entries(&entries).map_err(|source| VmError::KvmList {
        context: "invalid VM configuration: CPUID table",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_what_the_host_cannot_step() {
        let t = table();
        let l1 = lookup(&t, 1, 0);
        assert_eq!(l1[2] & (1 << 30), 0, "RDRAND hidden");
        assert_eq!(l1[2] & (1 << 26), 0, "XSAVE hidden");
        assert_eq!(l1[2] & (1 << 23), 0, "POPCNT hidden");
        assert_eq!(lookup(&t, 7, 0)[1] & (1 << 18), 0, "RDSEED hidden");
        assert_ne!(lookup(&t, 0x8000_0001, 0)[3] & (1 << 29), 0, "long mode present");
        assert_eq!(lookup(&t, 0x4000_0000, 0), [0; 4]);
    }
}
