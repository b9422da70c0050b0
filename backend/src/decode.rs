//! Looks at the next instruction before it runs, to catch the ones whose
//! results would come from the host (time, randomness, CPU identity) or that
//! this host cannot step (see `quirks`).

use iced_x86::{
    Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind, Register,
};

/// The next instruction, as far as the engine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextInstr {
    /// Anything KVM may simply execute.
    Plain,
    /// `hlt`: emulated (RIP past it), then the engine idles.
    Hlt,
    /// `sti`: emulated, with its one-instruction interrupt shadow.
    Sti,
    /// `rdtsc`: answered with virtual time.
    Rdtsc,
    /// `rdtscp`: answered with virtual time and TSC_AUX (the host cannot execute it).
    Rdtscp,
    /// `rdpid reg`: answered with TSC_AUX.
    Rdpid(Register),
    /// `rdrand reg` or `rdseed reg`: answered from the seeded generator.
    Random(Register),
    /// `cpuid`: answered from the fixed table.
    Cpuid,
    /// `rdmsr`: the TSC MSR is answered with virtual time, others run in KVM.
    Rdmsr,
    /// 64-bit `iretq`: emulated when it returns to the same privilege level
    /// (see `quirks`); its new CS is at `[rsp + 8]`.
    Iretq,
    /// An instruction that may lower the privilege level: `iret`, far `ret`
    /// (the new CS is at `[rsp + cs_offset]`) or `sysret`/`sysexit` (always
    /// to ring 3, `cs_offset` None).
    PrivilegeReturn {
        /// Where the new CS selector sits above RSP, if it comes from the stack.
        cs_offset: Option<u64>,
    },
}

/// A decoded instruction with its length.
#[derive(Debug, Clone, Copy)]
pub struct Peeked {
    /// What kind it is.
    pub kind: NextInstr,
    /// Length in bytes (RIP advances by this when the engine emulates it).
    pub len: u64,
}

/// Decodes the instruction in `bytes` (read at `rip`) for the given code size.
pub fn peek(bytes: &[u8], rip: u64, bitness: u32) -> Peeked {
    classify(&instruction(bytes, rip, bitness))
}

/// The instruction in `bytes` (read at `rip`), decoded; invalid if it is not one.
pub fn instruction(bytes: &[u8], rip: u64, bitness: u32) -> Instruction {
    decode(bytes, rip, bitness)
}

/// What a decoded instruction is, as far as the engine cares.
pub fn classify(instr: &Instruction) -> Peeked {
    let kind = match instr.mnemonic() {
        Mnemonic::Hlt => NextInstr::Hlt,
        Mnemonic::Sti => NextInstr::Sti,
        Mnemonic::Rdtsc => NextInstr::Rdtsc,
        Mnemonic::Rdtscp => NextInstr::Rdtscp,
        Mnemonic::Rdpid if instr.op0_kind() == OpKind::Register => NextInstr::Rdpid(instr.op0_register()),
        Mnemonic::Rdrand | Mnemonic::Rdseed if instr.op0_kind() == OpKind::Register => {
            NextInstr::Random(instr.op0_register())
        }
        Mnemonic::Cpuid => NextInstr::Cpuid,
        Mnemonic::Rdmsr => NextInstr::Rdmsr,
        Mnemonic::Iret | Mnemonic::Retf => NextInstr::PrivilegeReturn { cs_offset: Some(2) },
        Mnemonic::Iretd => NextInstr::PrivilegeReturn { cs_offset: Some(4) },
        Mnemonic::Iretq => NextInstr::Iretq,
        Mnemonic::Sysret | Mnemonic::Sysretq | Mnemonic::Sysexit | Mnemonic::Sysexitq => {
            NextInstr::PrivilegeReturn { cs_offset: None }
        }
        _ => NextInstr::Plain,
    };
    // A far return pops its offset with the operand size; CS sits right above it.
    let kind = match (kind, instr.mnemonic()) {
        (NextInstr::PrivilegeReturn { .. }, Mnemonic::Retf) => {
            let size = match instr.code() {
                Code::Retfq | Code::Retfq_imm16 => 8,
                Code::Retfw | Code::Retfw_imm16 => 2,
                _ => 4,
            };
            NextInstr::PrivilegeReturn {
                cs_offset: Some(size),
            }
        }
        (k, _) => k,
    };
    Peeked {
        kind,
        len: instr.len() as u64,
    }
}

fn decode(bytes: &[u8], rip: u64, bitness: u32) -> Instruction {
    let mut decoder = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE);
    decoder.decode()
}

/// Intel-syntax text of the instruction in `bytes`, for error messages and views.
pub fn disassemble(bytes: &[u8], rip: u64, bitness: u32) -> String {
    let instr = decode(bytes, rip, bitness);
    if instr.is_invalid() {
        return "(invalid instruction)".into();
    }
    let mut out = String::new();
    IntelFormatter::new().format(&instr, &mut out);
    out
}

/// Length of the instruction in `bytes` (0 if invalid).
pub fn length(bytes: &[u8], rip: u64, bitness: u32) -> usize {
    let instr = decode(bytes, rip, bitness);
    if instr.is_invalid() {
        0
    } else {
        instr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_intercepted_instructions() {
        assert_eq!(peek(&[0xf4], 0, 64).kind, NextInstr::Hlt);
        assert_eq!(peek(&[0xfb], 0, 64).kind, NextInstr::Sti);
        assert_eq!(peek(&[0x0f, 0x31], 0, 64).kind, NextInstr::Rdtsc);
        assert_eq!(peek(&[0x0f, 0x01, 0xf9], 0, 64).kind, NextInstr::Rdtscp);
        assert_eq!(peek(&[0x0f, 0xa2], 0, 32).kind, NextInstr::Cpuid);
        assert_eq!(
            peek(&[0x48, 0x0f, 0xc7, 0xf0], 0, 64).kind,
            NextInstr::Random(Register::RAX)
        );
        assert_eq!(
            peek(&[0x0f, 0xc7, 0xf9], 0, 64).kind,
            NextInstr::Random(Register::ECX)
        );
        assert_eq!(peek(&[0x90], 0, 64).kind, NextInstr::Plain);
        assert_eq!(peek(&[0x48, 0xcf], 0, 64).kind, NextInstr::Iretq);
        assert_eq!(
            peek(&[0x48, 0x0f, 0x07], 0, 64).kind,
            NextInstr::PrivilegeReturn { cs_offset: None }
        );
        assert_eq!(
            peek(&[0x48, 0xcb], 0, 64).kind,
            NextInstr::PrivilegeReturn { cs_offset: Some(8) }
        );
        assert_eq!(peek(&[0x0f, 0x31], 0, 64).len, 2);
        assert_eq!(
            disassemble(&[0xf3, 0x48, 0x0f, 0xb8, 0xc3], 0, 64),
            "popcnt rax,rbx"
        );
    }
}
