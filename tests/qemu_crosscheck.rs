//! The same guest prints the same console text, and exits with the same
//! value, under QEMU (TCG, through `guests/run-qemu.sh`) and under vmrr.
//!
//! Needs qemu-system-x86_64 (scripts/install-deps.sh installs it) and
//! /dev/kvm; without either the tests fail saying what is missing.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{guest, require_kvm, run_with_timeout, vmrr, Outcome};

/// QEMU's own time limit (run-qemu.sh kills it after this many seconds).
const QEMU_TIMEOUT_S: u64 = 120;

fn run_qemu_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/run-qemu.sh"))
}

/// Fails unless the QEMU binary run-qemu.sh uses is installed.
fn require_qemu() {
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let found = if qemu.contains('/') {
        PathBuf::from(&qemu).is_file()
    } else {
        common::which(&qemu).is_some()
    };
    assert!(
        found,
        "{qemu} is not installed: the QEMU cross-check needs it. Run scripts/install-deps.sh (as root) to install it"
    );
}

/// Runs `image` under QEMU; returns the outcome (stdout = the console).
fn qemu(name: &str, cmdline: &str) -> Outcome {
    require_qemu();
    let script = run_qemu_script();
    assert!(script.is_file(), "{} is missing", script.display());
    run_with_timeout(
        Command::new(&script)
            .arg(guest(name))
            .arg(cmdline)
            .env("VMRR_QEMU_TIMEOUT", QEMU_TIMEOUT_S.to_string()),
        Duration::from_secs(QEMU_TIMEOUT_S + 30),
    )
}

/// The guest's exit value from vmrr's summary line (`guest exited with value N`).
fn vmrr_exit_value(out: &Outcome) -> u32 {
    let key = "guest exited with value ";
    let at = out
        .stderr
        .find(key)
        .unwrap_or_else(|| panic!("vmrr should report the guest's exit value\n{}", out.describe()))
        + key.len();
    let digits: String = out.stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().expect("exit value")
}

/// Runs `name` with `cmdline` under both; asserts identical console and exit
/// value, and that the console contains `expect` (so that two empty outputs
/// cannot pass). Returns the console.
fn crosscheck(name: &str, cmdline: &str, expect: &str) -> String {
    require_kvm();
    let q = qemu(name, cmdline);
    let v = vmrr([
        "run".as_ref(),
        guest(name).as_os_str(),
        "--cmdline".as_ref(),
        cmdline.as_ref(),
    ]);

    // run-qemu.sh: status = the guest's exit value; 124-126 are its own failures.
    let q_code = q
        .code()
        .unwrap_or_else(|| panic!("QEMU was killed\n{}", q.describe()));
    assert!(
        !(124..=126).contains(&q_code),
        "run-qemu.sh failed (124 timeout, 125 no guest exit, 126 QEMU error)\n{}",
        q.describe()
    );
    assert!(
        !v.stderr.contains("vmrr: error:"),
        "vmrr failed\n{}",
        v.describe()
    );
    let v_value = vmrr_exit_value(&v);
    assert_eq!(
        v_value as i32,
        q_code,
        "guest exit value differs: QEMU {q_code}, vmrr {v_value}\nQEMU:\n{}\nvmrr:\n{}",
        q.describe(),
        v.describe()
    );
    v.expect_code(if v_value == 0 { 0 } else { 3 });

    // run-qemu.sh prints nothing but the guest's serial output on stdout.
    assert_eq!(
        q.stdout,
        v.stdout,
        "console differs between QEMU and vmrr\nQEMU:\n{}\nvmrr:\n{}",
        q.describe(),
        v.describe()
    );
    assert!(
        v.stdout.contains(expect),
        "console should contain {expect:?}\n{}",
        v.describe()
    );
    v.stdout
}

#[test]
fn hello_same_console() {
    let text = crosscheck("hello", "crosscheck args", "cmdline: crosscheck args\n");
    assert_eq!(
        text,
        "hello from vmrr\ncmdline: crosscheck args\ntick 1\ntick 2\ntick 3\nbye\n"
    );
}

#[test]
fn compute_1000_same_console() {
    crosscheck("compute", "iters=1000", "compute: iters=1000 checksum=0x");
}

#[test]
fn compute_3000_same_console() {
    crosscheck("compute", "iters=3000", "compute: iters=3000 checksum=0x");
}

/// `rep movsb`/`rep stosq` over several of vmrr's 1024-iteration chunks
/// compute what QEMU computes.
#[test]
fn probe_rep_same_console() {
    crosscheck("probe", "test=rep", "rep: sum=");
}

/// A guest exception: same report (with its rip) and same non-zero exit value.
#[test]
fn probe_ud2_same_console_and_exit_value() {
    let text = crosscheck("probe", "test=ud2", "exception 6 error=0x0 rip=0x");
    assert!(text.starts_with("probe ud2\n"), "{text}");
}

/// Runs a cluster file's guests under QEMU microvm (virtio-net over
/// virtio-mmio, a loopback multicast hub) with guests/run-qemu-net.sh.
fn qemu_cluster(file: &str) -> Outcome {
    require_qemu();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("guests/run-qemu-net.sh"));
    cmd.arg(root.join("clusters").join(file));
    run_with_timeout(&mut cmd, Duration::from_secs(120))
}

/// The network guests' virtio driver works unchanged against QEMU's own
/// virtio-mmio net device: pingpong completes on both nodes, and kvstore
/// (whose bug needs vmrr's partition) reads consistently; so does tcpkv,
/// whose four VMs talk TCP through lwIP (its bug needs vmrr's faults).
#[test]
fn network_guests_run_under_qemu_microvm() {
    let out = qemu_cluster("pingpong.toml");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for line in [
        "[ping] pingpong: done",
        "[pong] pingpong: done",
        "[ping] node 0: recv \"pong 10\"",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}\n{}", out.describe());
    }
    let out = qemu_cluster("kvstore-ok.toml");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("kvstore: all 11 reads consistent"),
        "{}",
        out.describe()
    );
    let out = qemu_cluster("tcpkv-ok.toml");
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for line in [
        "[primary] primary: write #9 committed (both replicas have it)",
        "[replica2] replica2: BYE; store: k1=11(#3) k2=21(#4) k3=32(#8) k4=41(#9), applied #9",
        "[client] client: all 14 reads consistent",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?}\n{}", out.describe());
    }
}
