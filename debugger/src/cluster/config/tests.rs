//! Hostile and out-of-range cluster files: every value has a range, every
//! sum is checked, and each refusal names the line and field.

use std::path::{Path, PathBuf};

use super::{default_mac, ClusterConfig, MAX_VMS};

/// A folder holding `g.elf` (any bytes: parsing only checks it is a file).
fn folder(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vmrr-cfg-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("g.elf"), b"x").expect("image");
    dir
}

/// Parses `text` as `<folder>/c.toml`; the error text, if any.
fn parse(label: &str, text: &str) -> Result<ClusterConfig, String> {
    let dir = folder(label);
    let result = ClusterConfig::parse(&dir.join("c.toml"), text).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn refused(label: &str, text: &str) -> String {
    match parse(label, text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

const TWO: &str = "[[vm]]\nname = \"a\"\nimage = \"g.elf\"\n[[vm]]\nname = \"b\"\nimage = \"g.elf\"\n";

#[test]
fn a_vm_name_cannot_leave_the_trace() {
    let e = refused("name", "[[vm]]\nname = \"../../etc/evil\"\nimage = \"g.elf\"\n");
    assert!(e.contains(":2: vm[0].name: contains a path separator '/'"), "{e}");
    let e = refused("dots", "[[vm]]\nname = \"..\"\nimage = \"g.elf\"\n");
    assert!(e.contains("vm[0].name: starts with '.'"), "{e}");
    let e = refused("esc", "[[vm]]\nname = \"red\\u001b[31m\"\nimage = \"g.elf\"\n");
    assert!(
        e.contains("control character (U+001B)") && !e.contains('\x1b'),
        "{e:?}"
    );
}

#[test]
fn a_huge_latency_is_refused_not_wrapped() {
    let e = refused(
        "lat",
        &format!("[network]\nlatency_us = 9223372036854775807\n{TWO}"),
    );
    assert!(
        e.contains(":2: network.latency_us") && e.contains("above the maximum link latency"),
        "{e}"
    );
    let e = refused(
        "linklat",
        &format!("{TWO}[[link]]\nbetween = [\"a\", \"b\"]\nlatency_us = 3600000001\n"),
    );
    assert!(e.contains("link[0].latency_us") && e.contains("one hour"), "{e}");
    let ok = parse("lat-ok", &format!("[network]\nlatency_us = 3600000000\n{TWO}")).expect("one hour");
    assert_eq!(ok.default_latency_ns, 3_600_000_000_000);
}

#[test]
fn a_huge_delay_is_refused_not_wrapped() {
    let e = refused(
        "extra",
        &format!(
            "{TWO}[[fault]]\nat_us = 10\nkind = \"delay\"\nbetween = [\"a\", \"b\"]\nextra_us = 9223372036854775807\n"
        ),
    );
    assert!(
        e.contains("fault[0].extra_us") && e.contains("above the largest delay"),
        "{e}"
    );
}

#[test]
fn a_huge_until_is_named_as_out_of_range() {
    for until in ["9223372036854776", "9223372036854775807"] {
        let e = refused(
            "until",
            &format!(
                "{TWO}[[fault]]\nat_us = 10\nkind = \"drop\"\nbetween = [\"a\", \"b\"]\nuntil_us = {until}\n"
            ),
        );
        assert!(
            e.contains("fault[0].until_us")
                && e.contains("beyond the latest time")
                && !e.contains("not after"),
            "{e}"
        );
    }
    let e = refused(
        "at",
        &format!("{TWO}[[fault]]\nat_us = 9223372036854775807\nkind = \"heal\"\n"),
    );
    assert!(
        e.contains("fault[0].at_us") && e.contains("beyond the latest time"),
        "{e}"
    );
    let e = refused(
        "before",
        &format!("{TWO}[[fault]]\nat_us = 10\nkind = \"drop\"\nbetween = [\"a\", \"b\"]\nuntil_us = 10\n"),
    );
    assert!(e.contains("not after at_us = 10"), "{e}");
}

#[test]
fn bandwidth_has_a_range() {
    for bad in ["0", "1000001"] {
        let e = refused("bw", &format!("[network]\nbandwidth_mbps = {bad}\n{TWO}"));
        assert!(
            e.contains("network.bandwidth_mbps") && e.contains("between 1 and"),
            "{e}"
        );
    }
}

fn many_vms(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[vm]]\nname = \"n{i}\"\nimage = \"g.elf\"\n"))
        .collect()
}

#[test]
fn hundreds_of_vms_without_macs_get_distinct_macs() {
    let config = parse("many", &many_vms(300)).expect("300 VMs");
    let mut macs: Vec<[u8; 6]> = config.vms.iter().map(|v| v.mac).collect();
    assert_eq!(macs[0], [0x52, 0x54, 0, 0x12, 0x34, 1], "the kit's default");
    assert_eq!(macs[253], [0x52, 0x54, 0, 0x12, 0x34, 254]);
    macs.sort_unstable();
    macs.dedup();
    assert_eq!(macs.len(), 300);
    let all: std::collections::BTreeSet<[u8; 6]> = (0..MAX_VMS).map(default_mac).collect();
    assert_eq!(all.len(), MAX_VMS, "every default MAC up to MAX_VMS is distinct");
    assert!(all.iter().all(|m| m[0] & 1 == 0), "all unicast");
    // Written back and read again, the file gives the same configuration.
    let dir = folder("many-rt");
    let path = dir.join("c.toml");
    let again = ClusterConfig::parse(&path, &config.to_toml(|_| "g.elf".into())).expect("round trip");
    assert_eq!(again.vms.len(), 300);
    assert_eq!(again.vms[299].mac, config.vms[299].mac);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_default_mac_colliding_with_an_explicit_one_says_so() {
    let text = TWO.replace("name = \"a\"", "name = \"a\"\nmac = \"52:54:00:12:34:02\"");
    let e = refused("collide", &text);
    assert!(
        e.contains("vm[1].mac") && e.contains("this VM has no mac line"),
        "{e}"
    );
    let e = refused(
        "plus",
        &TWO.replace("name = \"a\"", "name = \"a\"\nmac = \"52:54:00:12:34:+f\""),
    );
    assert!(e.contains("vm[0].mac") && e.contains("six hex bytes"), "{e}");
}

#[test]
fn too_many_vms_are_refused() {
    let e = refused("toomany", &many_vms(MAX_VMS + 1));
    assert!(
        e.contains(&format!("vm[{MAX_VMS}]")) && e.contains("at most 1024 VMs"),
        "{e}"
    );
}

#[test]
fn a_second_link_for_the_same_pair_is_an_error() {
    for second in ["[\"a\", \"b\"]", "[\"b\", \"a\"]"] {
        let e = refused(
            "dup",
            &format!(
                "{TWO}[[link]]\nbetween = [\"a\", \"b\"]\nlatency_us = 100\n[[link]]\nbetween = {second}\nlatency_us = 200\n"
            ),
        );
        assert!(
            e.contains(":11: link[1].between") && e.contains("also link[0]"),
            "{e}"
        );
    }
}

#[test]
fn special_files_as_images_are_named_for_what_they_are() {
    let e = refused("dev", "[[vm]]\nname = \"a\"\nimage = \"/dev/zero\"\n");
    assert!(
        e.contains("vm[0].image") && e.contains("character device") && !e.contains("no such file"),
        "{e}"
    );
    let e = refused("dir", "[[vm]]\nname = \"a\"\nimage = \"/tmp\"\n");
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn a_cluster_file_must_be_a_small_regular_text_file() {
    for (path, needle) in [("/dev/zero", "is a character device"), ("/tmp", "is a directory")] {
        let e = ClusterConfig::load(Path::new(path)).expect_err(path).to_string();
        assert!(
            e.contains(needle) && e.starts_with(&format!("{path}: file: ")),
            "{e}"
        );
    }
    let dir = folder("big");
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; (super::MAX_CLUSTER_FILE_BYTES + 1) as usize]).expect("write");
    let e = ClusterConfig::load(&big).expect_err("too big").to_string();
    assert!(
        e.contains("larger than 1048576 bytes, the limit for a cluster file"),
        "{e}"
    );
    std::fs::write(&big, b"seed = 1\n\xff\n").expect("write");
    let e = ClusterConfig::load(&big).expect_err("binary").to_string();
    assert!(e.contains("not UTF-8 text"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
