//! `vmrr run` given something it cannot run: each case must exit with status 2
//! and one `vmrr: error:` line naming the problem and the fix. The guest
//! behaviour cases check the other exit statuses (3: the guest exited with a
//! non-zero value, 4: it halted forever).
//!
//! The KVM cases fail loudly without /dev/kvm; the no-KVM and no-permission
//! cases need root (a private mount namespace, another user) and fail saying
//! so when not root. None is ever skipped.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::elf::{self, Segment};
use common::{guest, require_kvm, require_root, run_with_timeout, vmrr, Outcome, TempDir, VMRR_TIMEOUT};

/// The advice every "bad image" error ends with.
const IMAGE_FIX: &str = "build a 64-bit ELF kernel with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY)";
/// The advice every "the host cannot step this" error ends with.
const GUEST_FIX: &str = "build the guest for baseline x86-64 with general registers only";

/// `vmrr run PATH ARGS...`
fn run_image(path: &Path, args: &[&str]) -> Outcome {
    let mut all: Vec<&OsStr> = vec![OsStr::new("run"), path.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    vmrr(all)
}

/// Asserts a bad-input failure: status 2, nothing on stdout, exactly one
/// error line containing every needle.
fn expect_bad_input(out: &Outcome, needles: &[&str]) {
    out.expect_code(2);
    assert_eq!(out.stdout, "", "no guest output expected\n{}", out.describe());
    let line = out.error_line();
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error should contain {needle:?}\n{}",
            out.describe()
        );
    }
}

/// The program headers of a minimal kernel at 1 MiB that exits with value 5.
fn exit5_segments() -> Vec<Segment> {
    vec![
        Segment::load(0x10_0000, elf::exit5_code()),
        Segment::pvh_note(0x10_0000),
    ]
}

// ---------------------------------------------------------------- bad images

#[test]
fn missing_file() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("no-such-kernel.elf");
    let out = run_image(&path, &[]);
    expect_bad_input(
        &out,
        &[
            "cannot read guest image",
            &path.display().to_string(),
            "No such file or directory",
        ],
    );
}

#[test]
fn directory_instead_of_image() {
    let dir = TempDir::new("dir");
    let out = run_image(dir.path(), &[]);
    expect_bad_input(
        &out,
        &[
            "cannot use guest image",
            &dir.path().display().to_string(),
            "is a directory, not a regular file",
        ],
    );
}

#[test]
fn text_file_is_not_an_elf() {
    let dir = TempDir::new("text");
    let path = dir.write(
        "notes.txt",
        b"This is not a kernel, just some notes that happen to be long enough to look like a file.\n",
    );
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["not an ELF file", "notes.txt", IMAGE_FIX]);
}

/// A minimal valid ELF32 file: the 52-byte header alone (no program headers).
#[test]
fn elf32_minimal_header() {
    let dir = TempDir::new("elf32min");
    let image = elf::elf32(0x10_0000, &[]);
    assert_eq!(image.len(), 52, "an ELF32 header is 52 bytes");
    let path = dir.write("tiny32.elf", &image);
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["32-bit ELF", "ELF64", IMAGE_FIX]);
}

/// An ELF32 i386 kernel with a loadable segment and a PVH note, as a 32-bit
/// build of a PVH kernel would look.
#[test]
fn elf32_kernel_with_segments() {
    let dir = TempDir::new("elf32");
    let path = dir.write("kernel32.elf", &elf::elf32(0x10_0000, &exit5_segments()));
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["32-bit ELF", "ELF64", IMAGE_FIX]);
}

#[test]
fn elf64_for_another_machine() {
    let dir = TempDir::new("arm");
    let image = elf::elf64(elf::EM_AARCH64, 0x10_0000, &exit5_segments());
    let path = dir.write("arm64.elf", &image);
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["machine 183", "x86-64 (62)", IMAGE_FIX]);
}

#[test]
fn elf64_without_pvh_note() {
    let dir = TempDir::new("nonote");
    let image = elf::elf64(
        elf::EM_X86_64,
        0x10_0000,
        &[Segment::load(0x10_0000, elf::exit5_code())],
    );
    let path = dir.write("nonote.elf", &image);
    let out = run_image(&path, &[]);
    expect_bad_input(
        &out,
        &["no PVH entry note", "XEN_ELFNOTE_PHYS32_ENTRY", IMAGE_FIX],
    );
}

/// The control for the crafted images: the same writer, with a PVH note,
/// gives a kernel vmrr boots (it exits with value 5, so status 3). So the
/// failures above come from what each image lacks, not from the writer.
#[test]
fn crafted_elf64_with_pvh_note_boots() {
    require_kvm();
    let dir = TempDir::new("good");
    let image = elf::elf64(elf::EM_X86_64, 0x10_0000, &exit5_segments());
    let path = dir.write("good.elf", &image);
    let out = run_image(&path, &[]);
    out.expect_code(3).expect_stderr(&["guest exited with value 5"]);
    assert!(!out.stderr.contains("error"), "{}", out.describe());
}

#[test]
fn segment_outside_guest_memory() {
    let dir = TempDir::new("high");
    let high = 0x1000_0000u64; // 256 MiB
    let image = elf::elf64(
        elf::EM_X86_64,
        high,
        &[
            Segment::load(high, elf::exit5_code()),
            Segment::pvh_note(high as u32),
        ],
    );
    let path = dir.write("high.elf", &image);
    let out = run_image(&path, &[]);
    expect_bad_input(
        &out,
        &["segment [0x10000000", "outside guest memory", "64 MiB", "--mem"],
    );

    // The advice works: with enough memory the same image boots.
    require_kvm();
    let out = run_image(&path, &["--mem", "512M"]);
    out.expect_code(3).expect_stderr(&["guest exited with value 5"]);
}

#[test]
fn truncated_real_image() {
    let dir = TempDir::new("trunc");
    let full = std::fs::read(guest("hello")).expect("read hello.elf");
    let path = dir.write("hello-truncated.elf", &full[..200]);
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["hello-truncated.elf", "truncated", IMAGE_FIX]);
}

/// A file cut inside the ELF header itself (40 of its 64 bytes): the magic
/// is there, so the message must not claim it is missing.
#[test]
fn truncated_inside_elf_header() {
    let dir = TempDir::new("trunc40");
    let full = std::fs::read(guest("hello")).expect("read hello.elf");
    let path = dir.write("hello-40-bytes.elf", &full[..40]);
    let out = run_image(&path, &[]);
    expect_bad_input(&out, &["hello-40-bytes.elf", "truncated", IMAGE_FIX]);
}

// ---------------------------------------------------------------- bad options

#[test]
fn mem_value_not_a_size() {
    let out = run_image(&guest("hello"), &["--mem", "lots"]);
    out.expect_code(2);
    assert_eq!(out.stdout, "", "{}", out.describe());
    out.expect_stderr(&["--mem", "'lots' is not a size", "64M, 1G"]);
}

#[test]
fn mem_value_out_of_range() {
    let out = run_image(&guest("hello"), &["--mem", "1M"]);
    out.expect_code(2);
    assert_eq!(out.stdout, "", "{}", out.describe());
    out.expect_stderr(&["--mem", "'1M' is out of range", "between 4M and 3G"]);
}

// ---------------------------------------------------------------- no KVM

/// `vmrr run` in a private mount namespace whose /dev is an empty tmpfs.
#[test]
fn no_dev_kvm() {
    require_root("the no-/dev/kvm test");
    let unshare = common::which("unshare").expect("unshare (util-linux) is needed for this test");
    let out = run_with_timeout(
        Command::new(unshare)
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount -t tmpfs tmpfs /dev && exec "$0" run "$1""#)
            .arg(common::VMRR)
            .arg(guest("hello")),
        VMRR_TIMEOUT,
    );
    expect_bad_input(
        &out,
        &[
            "cannot open /dev/kvm",
            "No such file or directory",
            "enable hardware virtualization (or nested KVM) and load the kvm module",
        ],
    );
}

/// `vmrr run` as user nobody, facing a /dev/kvm only root may open. The
/// device node is made afresh (mode 0600, the real /dev/kvm's numbers) in a
/// private mount namespace, so the result does not depend on this host's
/// permissions on /dev/kvm.
#[test]
fn no_permission_on_dev_kvm() {
    require_root("the /dev/kvm permission test");
    require_kvm();
    let unshare = common::which("unshare").expect("unshare (util-linux) is needed for this test");
    assert!(
        common::which("setpriv").is_some(),
        "setpriv (util-linux) is needed for this test"
    );
    let rdev = std::fs::metadata("/dev/kvm").expect("stat /dev/kvm").rdev();
    let (major, minor) = (
        ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff),
        (rdev & 0xff) | ((rdev >> 12) & !0xff),
    );

    // Everything nobody needs must be reachable by nobody.
    let dir = TempDir::new("nobody");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let bin = dir.path().join("vmrr");
    std::fs::copy(common::VMRR, &bin).expect("copy vmrr");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod vmrr");
    let image = dir.path().join("hello.elf");
    std::fs::copy(guest("hello"), &image).expect("copy hello.elf");
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o644)).expect("chmod image");

    let script = format!(
        "mount -t tmpfs tmpfs /dev && mknod -m 600 /dev/kvm c {major} {minor} && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" run \"$1\""
    );
    let out = run_with_timeout(
        Command::new(unshare)
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(&bin)
            .arg(&image),
        VMRR_TIMEOUT,
    );
    expect_bad_input(
        &out,
        &[
            "cannot open /dev/kvm",
            "Permission denied",
            "add your user to the 'kvm' group",
            "run as root",
        ],
    );
}

// ---------------------------------------------------------------- instructions the host cannot step

/// Parses `rip 0x...` and `(bytes .. .. ..)` out of an error line.
fn rip_and_bytes(line: &str) -> (u64, Vec<u8>) {
    let at = line.find("rip 0x").expect("error names the rip") + "rip 0x".len();
    let hex: String = line[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    let rip = u64::from_str_radix(&hex, 16).expect("rip is hex");
    let at = line.find("(bytes ").expect("error shows the bytes") + "(bytes ".len();
    let end = at + line[at..].find(')').expect("closing parenthesis");
    let bytes = line[at..end]
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).expect("bytes are hex"))
        .collect();
    (rip, bytes)
}

/// Runs probe with `test=NAME`, expects the "cannot execute" error, and
/// checks that the rip and bytes it names really are that instruction in
/// the image. Returns the error line.
fn expect_cannot_execute(test: &str, disassembly: &str) -> String {
    require_kvm();
    let image = guest("probe");
    let out = run_image(&image, &["--cmdline", &format!("test={test}")]);
    out.expect_code(2);
    out.expect_stdout(&[&format!("probe {test}\n")]);
    let line = out.error_line().to_string();
    for needle in [
        "the host cannot execute the guest instruction at rip 0x",
        disassembly,
        "(bytes ",
        "Fix: ",
        GUEST_FIX,
    ] {
        assert!(
            line.contains(needle),
            "error should contain {needle:?}\n{}",
            out.describe()
        );
    }
    let (rip, bytes) = rip_and_bytes(&line);
    let file = std::fs::read(&image).expect("read probe.elf");
    let in_image = elf::bytes_at(&file, rip, bytes.len()).unwrap_or_else(|| {
        panic!(
            "rip {rip:#x} is not in a loaded segment of probe.elf\n{}",
            out.describe()
        )
    });
    assert_eq!(
        in_image,
        bytes,
        "the bytes shown are not those at rip {rip:#x} in probe.elf\n{}",
        out.describe()
    );
    line
}

#[test]
fn unsupported_popcnt() {
    let line = expect_cannot_execute("popcnt", "popcnt ");
    // popcnt is F3 (REX) 0F B8 /r.
    let (_, bytes) = rip_and_bytes(&line);
    assert_eq!(bytes[0], 0xf3, "{line}");
    assert!(bytes.windows(2).any(|w| w == [0x0f, 0xb8]), "{line}");
}

#[test]
fn unsupported_int3() {
    let line = expect_cannot_execute("int3", "`int3`");
    let (_, bytes) = rip_and_bytes(&line);
    assert_eq!(bytes, [0xcc], "{line}");
    assert!(line.contains("avoid int3/int n"), "{line}");
}

#[test]
fn unsupported_ring3() {
    require_kvm();
    let out = run_image(&guest("probe"), &["--cmdline", "test=ring3"]);
    expect_bad_input_with_console(&out, "probe ring3\n");
    let line = out.error_line();
    for needle in [
        "enter ring 3 at rip 0x",
        "cannot single-step ring-3 code",
        "Fix: ",
        "keep all code in ring 0",
    ] {
        assert!(
            line.contains(needle),
            "error should contain {needle:?}\n{}",
            out.describe()
        );
    }
}

/// Status 2 after the guest printed `console`.
fn expect_bad_input_with_console(out: &Outcome, console: &str) {
    out.expect_code(2);
    assert_eq!(out.stdout, console, "{}", out.describe());
}

// ---------------------------------------------------------------- guest behaviour

#[test]
fn guest_exception_exits_3() {
    require_kvm();
    let out = run_image(&guest("probe"), &["--cmdline", "test=ud2"]);
    out.expect_code(3);
    out.expect_stdout(&["probe ud2\n", "exception 6 error=0x0 rip=0x"]);
    // The kit exits with 0x40 + the exception number.
    out.expect_stderr(&["guest exited with value 70"]);
    assert!(!out.stderr.contains("error:"), "{}", out.describe());
}

#[test]
fn cli_hlt_exits_4() {
    require_kvm();
    let out = run_image(&guest("probe"), &["--cmdline", "test=clihlt"]);
    out.expect_code(4);
    assert_eq!(out.stdout, "probe clihlt\n", "{}", out.describe());
    out.expect_stderr(&["guest halted with interrupts disabled"]);
    assert!(!out.stderr.contains("error:"), "{}", out.describe());
}
