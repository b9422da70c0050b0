//! Shared helpers of the end-to-end tests: running commands with a time limit
//! and reporting everything on failure, temporary folders, the KVM and root
//! checks, and a tiny ELF writer for crafting guest images.
//!
//! Each test file includes this module with `mod common;` and uses only part
//! of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `vmrr` binary cargo built for these tests.
pub const VMRR: &str = env!("CARGO_BIN_EXE_vmrr");

/// Time limit for one `vmrr run` of a bundled guest (each takes well under a second).
pub const VMRR_TIMEOUT: Duration = Duration::from_secs(30);

/// Panics with a clear message unless `/dev/kvm` exists: the KVM tests must
/// fail loudly on a machine without it, never pass by skipping.
pub fn require_kvm() {
    if !Path::new("/dev/kvm").exists() {
        panic!(
            "/dev/kvm is missing: this test runs real guests under KVM and cannot run without it. \
             Enable hardware virtualization (or nested KVM) and load the kvm module."
        );
    }
}

/// The effective user id, from /proc (no libc needed).
pub fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid: line in /proc/self/status");
    // Uid: real effective saved filesystem
    line.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .expect("effective uid")
}

/// Panics unless running as root: `what` needs it (mount namespaces, changing user).
pub fn require_root(what: &str) {
    let uid = euid();
    if uid != 0 {
        panic!("{what} needs root (it runs vmrr in a private mount namespace or as another user), but this test runs as uid {uid}: run the tests as root");
    }
}

/// Path of a program on PATH, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// What a finished command did, with everything needed to explain a failure.
pub struct Outcome {
    /// The command as run, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The exit code (None if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// A description of the whole run, appended to every failure message.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit status {code}\n{}",
            self.describe()
        );
        self
    }

    /// Asserts that stderr contains every one of `needles`.
    pub fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr should contain {needle:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// Asserts that stdout contains every one of `needles`.
    pub fn expect_stdout(&self, needles: &[&str]) -> &Self {
        for needle in needles {
            assert!(
                self.stdout.contains(needle),
                "stdout should contain {needle:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// The one line of stderr that starts with `vmrr: error: `, asserting there is exactly one.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("vmrr: error: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one `vmrr: error:` line\n{}",
            self.describe()
        );
        lines[0]
    }
}

/// Runs `cmd` with stdin closed, collecting stdout and stderr; kills it and
/// panics if it takes longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Outcome {
    let command = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let mut out = child.stdout.take().expect("stdout pipe");
    let mut err = child.stderr.take().expect("stderr pipe");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
                let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
                panic!(
                    "timed out after {timeout:?} and killed: {command}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n---"
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    Outcome {
        command,
        status,
        stdout,
        stderr,
    }
}

/// Runs `vmrr` with `args` (within [`VMRR_TIMEOUT`]).
pub fn vmrr<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_timeout(Command::new(VMRR).args(args), VMRR_TIMEOUT)
}

/// A bundled guest image, checked to exist.
pub fn guest(name: &str) -> PathBuf {
    let path = vmrr_guests::image(name);
    assert!(
        path.is_file(),
        "guest image {} is missing: `cargo build` builds it (or run `make -C guests`)",
        path.display()
    );
    path
}

/// A fresh folder under the system temp dir, removed when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vmrr-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to `name` inside the folder and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A tiny ELF writer: just enough to craft the images a user might hand to
/// `vmrr run` by mistake, and a minimal bootable one to prove the writer right.
pub mod elf {
    pub const EM_386: u16 = 3;
    pub const EM_X86_64: u16 = 62;
    pub const EM_AARCH64: u16 = 183;
    pub const PT_LOAD: u32 = 1;
    pub const PT_NOTE: u32 = 4;
    const ET_EXEC: u16 = 2;
    const EHDR64: usize = 64;
    const PHDR64: usize = 56;
    const EHDR32: usize = 52;
    const PHDR32: usize = 32;
    /// File offsets of segment contents are aligned to this (and `p_align` says so).
    const ALIGN: usize = 16;

    /// One program header and its file contents.
    pub struct Segment {
        pub kind: u32,
        /// Physical (and virtual) address.
        pub addr: u64,
        pub data: Vec<u8>,
        /// Size in memory (at least `data.len()`).
        pub memsz: u64,
    }

    impl Segment {
        /// A loadable segment holding `data` at `addr`.
        pub fn load(addr: u64, data: Vec<u8>) -> Segment {
            let memsz = data.len() as u64;
            Segment {
                kind: PT_LOAD,
                addr,
                data,
                memsz,
            }
        }

        /// A `PT_NOTE` holding the PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`, owner `Xen`).
        pub fn pvh_note(entry: u32) -> Segment {
            let mut d = Vec::new();
            d.extend_from_slice(&4u32.to_le_bytes()); // namesz: "Xen\0"
            d.extend_from_slice(&4u32.to_le_bytes()); // descsz
            d.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
            d.extend_from_slice(b"Xen\0");
            d.extend_from_slice(&entry.to_le_bytes());
            let memsz = d.len() as u64;
            Segment {
                kind: PT_NOTE,
                addr: 0,
                data: d,
                memsz,
            }
        }
    }

    /// 32-bit protected-mode code that writes 5 to the exit port 0xf4 (the
    /// guest "exits with value 5") and then halts.
    pub fn exit5_code() -> Vec<u8> {
        vec![
            0xb8, 0x05, 0x00, 0x00, 0x00, // mov eax, 5
            0x66, 0xba, 0xf4, 0x00, // mov dx, 0xf4
            0xef, // out dx, eax
            0xf4, // hlt
            0xeb, 0xfd, // jmp back to hlt
        ]
    }

    fn align_up(n: usize) -> usize {
        n.div_ceil(ALIGN) * ALIGN
    }

    /// Where each segment's contents go, after the headers.
    fn layout(headers_end: usize, segments: &[Segment]) -> (Vec<usize>, usize) {
        let mut offsets = Vec::new();
        let mut at = align_up(headers_end);
        for s in segments {
            offsets.push(at);
            at = align_up(at + s.data.len());
        }
        (offsets, at)
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A little-endian ELF64 executable for `machine` with the given segments.
    pub fn elf64(machine: u16, entry: u64, segments: &[Segment]) -> Vec<u8> {
        let ph_end = EHDR64 + PHDR64 * segments.len();
        let (offsets, total) = layout(ph_end, segments);
        let mut b = vec![0u8; total.max(EHDR64)];
        put(&mut b, 0, b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[6] = 1; // EV_CURRENT
        put(&mut b, 16, &ET_EXEC.to_le_bytes());
        put(&mut b, 18, &machine.to_le_bytes());
        put(&mut b, 20, &1u32.to_le_bytes()); // e_version
        put(&mut b, 24, &entry.to_le_bytes());
        put(&mut b, 32, &(EHDR64 as u64).to_le_bytes()); // e_phoff
        put(&mut b, 40, &0u64.to_le_bytes()); // e_shoff: no sections
        put(&mut b, 52, &(EHDR64 as u16).to_le_bytes()); // e_ehsize
        put(&mut b, 54, &(PHDR64 as u16).to_le_bytes()); // e_phentsize
        put(&mut b, 56, &(segments.len() as u16).to_le_bytes()); // e_phnum
        put(&mut b, 58, &64u16.to_le_bytes()); // e_shentsize
        for (i, (s, &off)) in segments.iter().zip(&offsets).enumerate() {
            let p = EHDR64 + i * PHDR64;
            let flags: u32 = if s.kind == PT_LOAD { 7 } else { 4 }; // RWX / R
            let align: u64 = if s.kind == PT_LOAD { ALIGN as u64 } else { 4 };
            put(&mut b, p, &s.kind.to_le_bytes());
            put(&mut b, p + 4, &flags.to_le_bytes());
            put(&mut b, p + 8, &(off as u64).to_le_bytes());
            put(&mut b, p + 16, &s.addr.to_le_bytes()); // p_vaddr
            put(&mut b, p + 24, &s.addr.to_le_bytes()); // p_paddr
            put(&mut b, p + 32, &(s.data.len() as u64).to_le_bytes());
            put(&mut b, p + 40, &s.memsz.to_le_bytes());
            put(&mut b, p + 48, &align.to_le_bytes());
            put(&mut b, off, &s.data);
        }
        b
    }

    /// A little-endian ELF32 i386 executable with the given segments (none
    /// gives the bare 52-byte header).
    pub fn elf32(entry: u32, segments: &[Segment]) -> Vec<u8> {
        let ph_end = EHDR32 + PHDR32 * segments.len();
        let (offsets, total) = if segments.is_empty() {
            (Vec::new(), EHDR32)
        } else {
            layout(ph_end, segments)
        };
        let mut b = vec![0u8; total];
        put(&mut b, 0, b"\x7fELF");
        b[4] = 1; // ELFCLASS32
        b[5] = 1; // little-endian
        b[6] = 1; // EV_CURRENT
        put(&mut b, 16, &ET_EXEC.to_le_bytes());
        put(&mut b, 18, &EM_386.to_le_bytes());
        put(&mut b, 20, &1u32.to_le_bytes()); // e_version
        put(&mut b, 24, &entry.to_le_bytes());
        let phoff = if segments.is_empty() { 0 } else { EHDR32 as u32 };
        put(&mut b, 28, &phoff.to_le_bytes());
        put(&mut b, 32, &0u32.to_le_bytes()); // e_shoff
        put(&mut b, 40, &(EHDR32 as u16).to_le_bytes()); // e_ehsize
        put(&mut b, 42, &(PHDR32 as u16).to_le_bytes()); // e_phentsize
        put(&mut b, 44, &(segments.len() as u16).to_le_bytes()); // e_phnum
        put(&mut b, 46, &40u16.to_le_bytes()); // e_shentsize
        for (i, (s, &off)) in segments.iter().zip(&offsets).enumerate() {
            let p = EHDR32 + i * PHDR32;
            put(&mut b, p, &s.kind.to_le_bytes());
            put(&mut b, p + 4, &(off as u32).to_le_bytes());
            put(&mut b, p + 8, &(s.addr as u32).to_le_bytes()); // p_vaddr
            put(&mut b, p + 12, &(s.addr as u32).to_le_bytes()); // p_paddr
            put(&mut b, p + 16, &(s.data.len() as u32).to_le_bytes());
            put(&mut b, p + 20, &(s.memsz as u32).to_le_bytes());
            put(&mut b, p + 24, &7u32.to_le_bytes()); // RWX
            put(&mut b, p + 28, &(ALIGN as u32).to_le_bytes());
            put(&mut b, off, &s.data);
        }
        b
    }

    /// The file bytes that an ELF64 image loads at virtual address `va`
    /// (`len` of them), if a `PT_LOAD` segment holds them in the file.
    pub fn bytes_at(image: &[u8], va: u64, len: usize) -> Option<Vec<u8>> {
        let u16_at = |o: usize| u16::from_le_bytes([image[o], image[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(image[o..o + 8].try_into().unwrap());
        let phoff = u64_at(32) as usize;
        let phentsize = u16_at(54) as usize;
        for i in 0..u16_at(56) as usize {
            let p = phoff + i * phentsize;
            if u32_at(p) != PT_LOAD {
                continue;
            }
            let (off, vaddr, filesz) = (u64_at(p + 8), u64_at(p + 16), u64_at(p + 32));
            if va >= vaddr && va + len as u64 <= vaddr + filesz {
                let start = (off + (va - vaddr)) as usize;
                return Some(image[start..start + len].to_vec());
            }
        }
        None
    }
}

/// Copies a folder (a trace) recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy to {}: {e}", target.display()));
        }
    }
}
