//! Hostile and careless input, through the real `vmrr` binary (issue 12):
//! names that try to leave the trace, files that are not files, numbers
//! that wrap, images whose headers lie, and the messages of `record` and of
//! opening something that is not (or no longer) a trace. Each case asserts
//! the exit status and the words of the message, and that nothing was
//! written where it should not be. Every command runs under a time limit,
//! so a hang fails the test instead of blocking it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::elf::{self, Segment};
use common::{guest, require_kvm, require_root, vmrr, Outcome, TempDir};

/// `vmrr` with these arguments (paths as they are).
fn run<P: AsRef<std::ffi::OsStr>>(args: &[P]) -> Outcome {
    vmrr(args.iter().map(|a| a.as_ref().to_os_string()))
}

/// Asserts a refusal: status 2, one error line holding every needle.
fn refused(out: &Outcome, needles: &[&str]) {
    out.expect_code(2);
    let line = out.error_line();
    for n in needles {
        assert!(
            line.contains(n),
            "the error should contain {n:?}\n{}",
            out.describe()
        );
    }
}

/// A folder with `pingpong.elf` in it, for cluster files to name.
fn with_image(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    std::fs::copy(guest("pingpong"), dir.path().join("pingpong.elf")).expect("copy image");
    dir
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// Every file below `dir`, relative.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_below(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Records `input` into `out` (small: `--max-steps 30000`).
fn record(input: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let mut args = vec![
        "record".to_string(),
        input.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--max-steps".into(),
        "30000".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args)
}

/// Recomputes the index's checksums after a test edited rows by hand, as an
/// attacker who knows the scheme would: what the checksums would catch
/// first must also be caught by the checks behind them.
fn reseal(trace: &Path) {
    let mut index = vmrr_index::Index::open(trace.join("index.sqlite")).expect("open index");
    index.seal_checksums().expect("seal");
    index.close().expect("close");
}

// ------------------------------------------------------------------ names

#[test]
fn a_vm_name_with_dot_dot_never_writes_outside_the_trace() {
    let dir = with_image("evil-name");
    let cluster = dir.write(
        "evil.toml",
        b"[[vm]]\nname = \"../../etc/evil\"\nimage = \"pingpong.elf\"\n",
    );
    let out = dir.path().join("a/b/trace");
    let o = record(&cluster, &out, &[]);
    refused(&o, &["evil.toml:2: vm[0].name", "path separator"]);
    assert!(!dir.path().join("a").exists(), "no folder made");
    let stray: Vec<PathBuf> = files_below(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("evil.elf"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    assert!(!Path::new("/etc/evil.elf").exists());
}

#[test]
fn control_characters_in_a_vm_name_never_reach_the_terminal() {
    let dir = with_image("esc-name");
    let cluster = dir.write(
        "esc.toml",
        b"[[vm]]\nname = \"red\\u001b[31mX\"\nimage = \"pingpong.elf\"\n",
    );
    let o = run(&[Path::new("run"), cluster.as_path()]);
    refused(&o, &["vm[0].name", "control character (U+001B)"]);
    assert!(!o.stderr.contains('\x1b'), "{:?}", o.stderr);
}

/// A trace whose index was edited to hold escape sequences in a VM name:
/// `events` and the error of `events --vm` show them as text.
#[test]
fn control_characters_from_an_edited_index_are_shown_not_obeyed() {
    require_kvm();
    let dir = TempDir::new("esc-index");
    let trace = dir.path().join("t");
    record(&guest("hello"), &trace, &[]).expect_code(0);
    let conn = rusqlite::Connection::open(trace.join("index.sqlite")).expect("open index");
    conn.execute("UPDATE vms SET name = 'vm\x1b[2J0' WHERE id = 0", [])
        .expect("edit");
    drop(conn);
    reseal(&trace);
    let o = run(&[Path::new("events"), &trace, Path::new("--limit"), Path::new("3")]);
    o.expect_code(0);
    assert!(
        !o.stdout.contains('\x1b') && o.stdout.contains("vm·[2J0"),
        "{:?}",
        o.stdout
    );
    let o = run(&[Path::new("events"), &trace, Path::new("--vm"), Path::new("other")]);
    o.expect_code(2);
    assert!(!o.stderr.contains('\x1b'), "{:?}", o.stderr);
}

// ------------------------------------------------------------- not files

#[test]
fn a_fifo_as_image_or_cluster_file_is_named_and_never_blocks() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("kernel.elf");
    mkfifo(&fifo);
    refused(
        &run(&[Path::new("run"), fifo.as_path()]),
        &["kernel.elf is a named pipe (FIFO)"],
    );
    let out = dir.path().join("trace");
    refused(&record(&fifo, &out, &[]), &["named pipe (FIFO)"]);
    assert!(!out.exists(), "no folder left");
    let toml = dir.path().join("cluster.toml");
    mkfifo(&toml);
    refused(
        &run(&[Path::new("run"), toml.as_path()]),
        &["cluster.toml: file: cannot read it", "named pipe"],
    );
    refused(&record(&toml, &out, &[]), &["named pipe"]);
    // A cluster file naming a FIFO as an image.
    let named = dir.write("c.toml", b"[[vm]]\nname = \"a\"\nimage = \"kernel.elf\"\n");
    refused(
        &run(&[Path::new("run"), named.as_path()]),
        &["vm[0].image", "named pipe (FIFO)"],
    );
}

#[test]
fn dev_zero_as_image_or_cluster_file_is_refused_at_once() {
    let dir = TempDir::new("zero");
    refused(&run(&["run", "/dev/zero"]), &["/dev/zero is a character device"]);
    let link = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
    let o = run(&[Path::new("run"), link.as_path()]);
    refused(&o, &["zero.toml: file: cannot read it", "character device"]);
    let out = dir.path().join("trace");
    refused(&record(&link, &out, &[]), &["character device"]);
    refused(&record(Path::new("/dev/zero"), &out, &[]), &["character device"]);
    assert!(!out.exists());
}

#[test]
fn a_directory_as_image_never_says_no_such_file() {
    let dir = TempDir::new("dir-image");
    let out = dir.path().join("trace");
    let o = record(dir.path(), &out, &[]);
    refused(&o, &["is a directory"]);
    assert!(!o.stderr.contains("no such file"), "{}", o.describe());
    let named = dir.write(
        "c.toml",
        format!("[[vm]]\nname = \"a\"\nimage = \"{}\"\n", dir.path().display()).as_bytes(),
    );
    let o = run(&[Path::new("run"), named.as_path()]);
    refused(&o, &["vm[0].image", "is a directory"]);
    assert!(!o.stderr.contains("no such file"), "{}", o.describe());
}

#[test]
fn huge_files_are_refused_by_size_without_being_read() {
    let dir = TempDir::new("huge");
    // Sparse: the size is there, the disk blocks are not.
    let image = dir.path().join("huge.elf");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len((1 << 30) + 1))
        .expect("sparse image");
    refused(
        &run(&[Path::new("run"), image.as_path()]),
        &["larger than 1073741824 bytes, the limit for a guest image"],
    );
    let toml = dir.path().join("huge.toml");
    std::fs::File::create(&toml)
        .and_then(|f| f.set_len((1 << 20) + 1))
        .expect("sparse toml");
    refused(
        &run(&[Path::new("run"), toml.as_path()]),
        &["larger than 1048576 bytes, the limit for a cluster file"],
    );
}

// ---------------------------------------------------------- wrap-around

/// Runs `vmrr run` on a cluster file made of `text` (two VMs a and b first).
fn run_cluster(label: &str, text: &str) -> Outcome {
    let dir = with_image(label);
    let body = format!(
        "[[vm]]\nname = \"a\"\nimage = \"pingpong.elf\"\n[[vm]]\nname = \"b\"\nimage = \"pingpong.elf\"\n{text}"
    );
    let path = dir.write("c.toml", body.as_bytes());
    run(&[
        Path::new("run"),
        &path,
        Path::new("--max-steps"),
        Path::new("1000"),
    ])
}

#[test]
fn a_latency_of_i64_max_is_refused() {
    let o = run_cluster("lat", "[network]\nlatency_us = 9223372036854775807\n");
    refused(
        &o,
        &[
            "c.toml:8: network.latency_us",
            "above the maximum link latency of 3600000000 µs",
        ],
    );
}

#[test]
fn a_delay_of_i64_max_is_refused() {
    let o = run_cluster(
        "extra",
        "[[fault]]\nat_us = 10\nkind = \"delay\"\nbetween = [\"a\", \"b\"]\nextra_us = 9223372036854775807\n",
    );
    refused(&o, &["fault[0].extra_us", "above the largest delay"]);
}

#[test]
fn an_until_past_the_time_range_is_named_as_such() {
    let o = run_cluster(
        "until",
        "[[fault]]\nat_us = 10\nkind = \"drop\"\nbetween = [\"a\", \"b\"]\nuntil_us = 9223372036854776\n",
    );
    refused(
        &o,
        &["fault[0].until_us", "beyond the latest time a fault may name"],
    );
    assert!(!o.stderr.contains("not after"), "{}", o.describe());
}

#[test]
fn a_duplicate_link_is_an_error() {
    let o = run_cluster(
        "duplink",
        "[[link]]\nbetween = [\"a\", \"b\"]\nlatency_us = 100\n[[link]]\nbetween = [\"b\", \"a\"]\nlatency_us = 900\n",
    );
    refused(
        &o,
        &[
            "c.toml:11: link[1].between",
            "a second link between 'b' and 'a' (also link[0])",
        ],
    );
}

#[test]
fn three_hundred_vms_without_macs_run() {
    require_kvm();
    let dir = with_image("many");
    let text: String = (0..300)
        .map(|i| format!("[[vm]]\nname = \"n{i}\"\nimage = \"pingpong.elf\"\nmem = \"4M\"\n"))
        .collect();
    let path = dir.write("many.toml", text.as_bytes());
    let o = run(&[Path::new("run"), &path, Path::new("--max-steps"), Path::new("1")]);
    o.expect_code(0).expect_stderr(&["n299: 1 steps"]);
    assert!(!o.stderr.contains("duplicate MAC"), "{}", o.describe());
}

#[test]
fn command_line_numbers_have_ranges() {
    let hello = guest("hello");
    let h = hello.to_str().unwrap_or_default();
    for (args, needle) in [
        (
            vec!["replay", "/tmp", "--jobs", "0"],
            "0 is out of range: use 1 to 1024",
        ),
        (
            vec!["run", h, "--rate", "0"],
            "0 is out of range: use 1 to 1000000",
        ),
        (
            vec!["record", h, "-o", "/nonexistent/x", "--checkpoint-every", "0"],
            "0 is out of range",
        ),
        (
            vec!["run", h, "--max-steps", "9223372036854775808"],
            "out of range",
        ),
        (
            vec![
                "record",
                h,
                "-o",
                "/nonexistent/x",
                "--max-vtime-ms",
                "18446744073709551615",
            ],
            "out of range",
        ),
    ] {
        let o = run(&args);
        o.expect_code(2).expect_stderr(&[needle]);
    }
}

// --------------------------------------------------------------- images

/// Exit-5 code at 1 MiB; `memsz` and the note's entry vary per case.
fn image_with(dir: &TempDir, name: &str, segments: &[Segment]) -> PathBuf {
    dir.write(name, &elf::elf64(elf::EM_X86_64, 0x10_0000, segments))
}

#[test]
fn an_entry_outside_loaded_code_is_refused() {
    let dir = TempDir::new("entry");
    let code = || Segment::load(0x10_0000, elf::exit5_code());
    let mut bss = Segment::load(0x20_0000, vec![0; 16]);
    bss.memsz = 0x1000;
    for (name, segments, needle) in [
        (
            "zero.elf",
            vec![code(), Segment::pvh_note(0)],
            "PVH entry 0x0 lies outside every loaded segment",
        ),
        (
            "bss.elf",
            vec![code(), bss, Segment::pvh_note(0x20_0800)],
            "zero-filled part (.bss)",
        ),
        (
            "past.elf",
            vec![code(), Segment::pvh_note(0x30_0000)],
            "outside every loaded segment",
        ),
    ] {
        let path = image_with(&dir, name, &segments);
        refused(&run(&[Path::new("run"), path.as_path()]), &[name, needle]);
    }
}

#[test]
fn overlapping_segments_are_refused() {
    let dir = TempDir::new("overlap");
    let mut big = Segment::load(0x10_0000, elf::exit5_code());
    big.memsz = 0x2000;
    let path = image_with(
        &dir,
        "overlap.elf",
        &[
            big,
            Segment::load(0x10_1000, vec![0x90; 8]),
            Segment::pvh_note(0x10_0000),
        ],
    );
    refused(
        &run(&[Path::new("run"), path.as_path()]),
        &["overlap.elf", "overlap"],
    );
}

#[test]
fn a_code_segment_with_memsz_0_is_refused_without_blaming_the_host() {
    let dir = TempDir::new("memsz0");
    let mut code = Segment::load(0x10_0000, elf::exit5_code());
    code.memsz = 0;
    let path = image_with(
        &dir,
        "memsz0.elf",
        &[
            code,
            Segment::load(0x20_0000, vec![0x90; 8]),
            Segment::pvh_note(0x10_0000),
        ],
    );
    let o = run(&[Path::new("run"), path.as_path()]);
    refused(&o, &["memsz0.elf", "p_memsz 0x0"]);
    assert!(!o.stderr.contains("cannot execute"), "{}", o.describe());
}

#[test]
fn filesz_beyond_memsz_is_not_called_truncated() {
    let dir = TempDir::new("filesz");
    let mut code = Segment::load(0x10_0000, elf::exit5_code());
    code.memsz = 4;
    let path = image_with(&dir, "sizes.elf", &[code, Segment::pvh_note(0x10_0000)]);
    let o = run(&[Path::new("run"), path.as_path()]);
    refused(
        &o,
        &[
            "sizes.elf",
            "more bytes in the file (p_filesz 0xd) than in memory (p_memsz 0x4)",
        ],
    );
    assert!(!o.stderr.contains("truncated"), "{}", o.describe());
}

// ------------------------------------------------------ record's messages

#[test]
fn record_of_a_bad_image_names_the_source_and_leaves_nothing() {
    let dir = TempDir::new("bad-record");
    let path = image_with(
        &dir,
        "entry0.elf",
        &[Segment::load(0x10_0000, elf::exit5_code()), Segment::pvh_note(0)],
    );
    let out = dir.path().join("trace");
    let o = record(&path, &out, &[]);
    refused(&o, &[&path.display().to_string(), "outside every loaded segment"]);
    assert!(
        !o.stderr.contains("trace/images"),
        "names the copy: {}",
        o.describe()
    );
    assert!(!out.exists(), "no half-made folder");
    // The retry into the same -o is not refused as "already exists".
    require_kvm();
    record(&guest("hello"), &out, &[]).expect_code(0);
}

#[test]
fn force_replaces_a_trace_and_refuses_anything_else() {
    require_kvm();
    let dir = TempDir::new("force");
    let out = dir.path().join("trace");
    record(&guest("hello"), &out, &[]).expect_code(0);
    let o = record(&guest("hello"), &out, &[]);
    refused(&o, &["already exists and is not empty", "add --force"]);
    record(&guest("compute"), &out, &["--force"]).expect_code(0);
    let o = run(&[Path::new("sql"), &out, Path::new("SELECT image FROM vms")]);
    o.expect_code(0).expect_stdout(&["images/vm0.elf"]);
    let precious = dir.write("notes.txt", b"mine");
    let o = record(&guest("hello"), dir.path(), &["--force"]);
    refused(&o, &["--force replaces only a trace folder"]);
    assert_eq!(std::fs::read(&precious).expect("still there"), b"mine");
}

#[test]
fn a_dangling_symlink_as_output_is_named() {
    let dir = TempDir::new("dangling");
    let link = dir.path().join("out");
    std::os::unix::fs::symlink(dir.path().join("nowhere/at/all"), &link).expect("symlink");
    let o = record(&guest("hello"), &link, &[]);
    refused(
        &o,
        &["cannot record into", "symbolic link to", "which does not exist"],
    );
    assert!(!o.stderr.contains("File exists"), "{}", o.describe());
}

/// A small tmpfs fills while the image is copied: the error names the copy
/// in the trace (the destination), and the half-made folder is gone.
#[test]
fn a_full_disk_while_copying_images_names_the_destination() {
    require_root("mounting a small tmpfs");
    let dir = TempDir::new("full");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/pingpong.toml");
    let mut seen = Vec::new();
    // The index needs some room first: try sizes until the copy is what fails.
    for kib in (64..=512).step_by(16) {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&mnt)
            .status()
            .expect("mount");
        assert!(ok.success(), "mount tmpfs");
        let out = mnt.join("trace");
        let o = record(&cluster, &out, &[]);
        let left = files_below(&mnt);
        let _ = Command::new("umount").arg(&mnt).status();
        assert!(
            left.is_empty(),
            "{kib} KiB: a failed record left {left:?}\n{}",
            o.describe()
        );
        if o.code() == Some(0) {
            break;
        }
        let line = o.error_line().to_string();
        if line.contains("cannot copy guest image") {
            assert!(
                line.contains("mnt/trace/images/ping.elf") && line.contains("No space left"),
                "{line}"
            );
            return;
        }
        seen.push(line);
    }
    panic!("no size made the image copy fail: {seen:?}");
}

#[test]
fn sigint_during_record_exits_130_and_the_trace_replays() {
    require_kvm();
    let dir = TempDir::new("sigint");
    let out = dir.path().join("trace");
    let cluster = Path::new(env!("CARGO_MANIFEST_DIR")).join("clusters/kvstore-bug.toml");
    let child = Command::new(common::VMRR)
        .arg("record")
        .arg(&cluster)
        .arg("-o")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start record");
    let started = std::time::Instant::now();
    while !out.join("checkpoints/vm0").is_dir() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let o = run(&[Path::new("replay"), &out, Path::new("--verify")]);
    o.expect_code(0).expect_stderr(&["did not finish", "verified"]);
}

// ------------------------------------------------------ opening a trace

#[test]
fn a_folder_that_is_not_a_trace_says_so() {
    let dir = TempDir::new("not-trace");
    dir.write("notes.txt", b"hello");
    for cmd in ["replay", "events", "sql"] {
        let mut args = vec![cmd.to_string(), dir.path().display().to_string()];
        match cmd {
            "sql" => args.push("SELECT 1".into()),
            "replay" => args.push("--verify".into()),
            _ => {}
        }
        let o = run(&args);
        refused(&o, &["not a vmrr trace"]);
        assert!(!o.stderr.contains("damaged"), "{}", o.describe());
    }
}

#[test]
fn an_image_deleted_from_a_trace_says_so() {
    require_kvm();
    let dir = TempDir::new("deleted");
    let trace = dir.path().join("t");
    record(&guest("hello"), &trace, &[]).expect_code(0);
    std::fs::remove_file(trace.join("images/vm0.elf")).expect("delete");
    let o = run(&[Path::new("replay"), &trace, Path::new("--verify")]);
    o.expect_code(6);
    let line = o.error_line();
    assert!(
        line.contains("images/vm0.elf") && line.contains("was deleted from the trace"),
        "{line}"
    );
    assert!(!o.stderr.contains("cargo build"), "{}", o.describe());
}

#[test]
fn an_unknown_event_kind_is_not_damage() {
    require_kvm();
    let dir = TempDir::new("kind");
    let trace = dir.path().join("t");
    record(&guest("hello"), &trace, &[]).expect_code(0);
    let conn = rusqlite::Connection::open(trace.join("index.sqlite")).expect("open index");
    conn.execute(
        "INSERT INTO events(vm, icount, vtime_ns, kind, value) VALUES (0, 10, 100, 'gpu_irq', 1)",
        [],
    )
    .expect("insert");
    drop(conn);
    let o = run(&[Path::new("events"), &trace, Path::new("--limit"), Path::new("5")]);
    o.expect_code(0)
        .expect_stderr(&["kinds this vmrr does not know", "gpu_irq (1)"]);
    assert!(!o.stdout.contains("gpu_irq"));
    let o = run(&[Path::new("replay"), &trace, Path::new("--verify")]);
    o.expect_code(0).expect_stderr(&["verified"]);
    let o = run(&[
        Path::new("sql"),
        &trace,
        Path::new("SELECT kind FROM events WHERE kind = 'gpu_irq'"),
    ]);
    o.expect_code(0).expect_stdout(&["gpu_irq"]);
}

#[test]
fn replay_reports_the_threads_it_used() {
    require_kvm();
    let dir = TempDir::new("jobs");
    let trace = dir.path().join("t");
    record(&guest("hello"), &trace, &[]).expect_code(0);
    let o = run(&[
        Path::new("replay"),
        &trace,
        Path::new("--verify"),
        Path::new("--jobs"),
        Path::new("64"),
    ]);
    o.expect_code(0);
    assert!(!o.stderr.contains("on 64 threads"), "{}", o.describe());
}

/// An index edited to put a VM's image outside the trace: damage, and the
/// path is never read.
#[test]
fn an_image_path_outside_the_trace_is_damage() {
    require_kvm();
    let dir = TempDir::new("image-path");
    let trace = dir.path().join("t");
    record(&guest("hello"), &trace, &[]).expect_code(0);
    let conn = rusqlite::Connection::open(trace.join("index.sqlite")).expect("open index");
    conn.execute("UPDATE vms SET image = '../../../../etc/passwd' WHERE id = 0", [])
        .expect("edit");
    drop(conn);
    reseal(&trace);
    let o = run(&[Path::new("replay"), &trace, Path::new("--verify")]);
    o.expect_code(6);
    assert!(
        o.error_line().contains("which is not inside the trace"),
        "{}",
        o.describe()
    );
}

/// `record` called as a library with a configuration built in code (no
/// cluster file to check the names): the name is checked again before
/// anything is written.
#[test]
fn record_checks_names_of_a_configuration_built_in_code() {
    use std::sync::atomic::AtomicBool;
    use vmrr_debugger::cluster::ClusterConfig;
    use vmrr_debugger::trace::record::{record as record_trace, RecordOptions};
    let dir = TempDir::new("lib-name");
    let mut config =
        ClusterConfig::single(&guest("hello"), vmrr_backend::VmConfig::default()).expect("config");
    config.vms[0].name = "../escape".into();
    let out = dir.path().join("t");
    let e = record_trace(
        &config,
        &out,
        &RecordOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("VM name '../escape'") && e.contains("path separator"),
        "{e}"
    );
    assert!(!out.exists() && !dir.path().join("escape.elf").exists());
}
