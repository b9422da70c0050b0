//! Fuzz targets for the parsers that take outside input (issue 12): the
//! cluster file, the ELF checks and loader, and checkpoint decoding (gdb
//! packets are fuzzed with the gdb bridge). Each runs as an ordinary test
//! for a bounded time, so CI runs them on every change.
//!
//! Why not `cargo fuzz`: it needs a nightly compiler, which these machines
//! cannot fetch. Why not proptest: its strength is generating structured
//! values, while what finds parser bugs is mutating real inputs, and it would
//! add a dependency tree for that. So this is a small libFuzzer-style
//! mutator (bit flips, interesting integers, insertions, deletions, splices,
//! dictionary tokens) over a committed corpus (`tests/fuzz_corpus/`),
//! seeded and therefore reproducible. Inputs a target accepts join the
//! in-memory corpus, a cheap stand-in for coverage feedback.
//!
//! Every target first runs its whole corpus (a regression test), then
//! mutates for `VMRR_FUZZ_SECS` seconds (default 4) from seed
//! `VMRR_FUZZ_SEED` (default fixed). An input that panics, or breaks a
//! property the target checks, is saved under `target/fuzz-failures/` and
//! the test fails naming the file and the seed; add the file to the corpus
//! once fixed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmrr_backend::boot::{inspect, load_image, KERNEL_MIN_ADDR};
use vmrr_backend::memory::create_ram;
use vmrr_backend::rng::SeededRng;
use vmrr_backend::{Machine, VmConfig};
use vmrr_debugger::cluster::config::{
    ClusterConfig, FaultKind, MAX_LATENCY_US, MAX_TIME_US, MAX_VMS, MIN_LATENCY_NS,
};
use vmrr_debugger::names::check_vm_name;
use vmrr_debugger::trace::checkpoint::{CheckpointFile, PageMap};
use vmrr_debugger::trace::pages::PageStore;

/// What a target says about one input: accepted (worth mutating further)
/// or refused cleanly; `Err` is a broken property.
type Verdict = Result<bool, String>;

fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(name)
}

fn read_corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(name))
        .unwrap_or_else(|e| panic!("corpus {name}: {e}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Integers that sit on the edges parsers get wrong.
const INTERESTING: [u64; 16] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x10_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
];

/// The same edges written as text, for text formats.
const INTERESTING_TEXT: [&str; 14] = [
    "0",
    "-1",
    "1",
    "255",
    "256",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854776",
    "18446744073709551615",
    "1e309",
    "nan",
    "0.5",
    "3600000001",
];

/// A seeded mutator.
struct Mutator {
    rng: SeededRng,
    dictionary: &'static [&'static str],
    max_len: usize,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1) as u64) as usize
    }

    fn mutate(&mut self, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            match self.below(9) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] = self.rng.next_u64() as u8;
                }
                2 => {
                    let at = self.below(out.len() + 1);
                    let n = 1 + self.below(8);
                    let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                    out.splice(at..at, bytes);
                }
                3 if !out.is_empty() => {
                    let at = self.below(out.len());
                    let n = 1 + self.below((out.len() - at).min(64));
                    out.drain(at..at + n);
                }
                4 if !out.is_empty() => {
                    let from = self.below(out.len());
                    let n = 1 + self.below((out.len() - from).min(64));
                    let chunk = out[from..from + n].to_vec();
                    let at = self.below(out.len() + 1);
                    out.splice(at..at, chunk);
                }
                5 if !out.is_empty() => {
                    let value = INTERESTING[self.below(INTERESTING.len())];
                    let width = [1usize, 2, 4, 8][self.below(4)];
                    let at = self.below(out.len());
                    let bytes = value.to_le_bytes();
                    for (k, b) in bytes.iter().take(width).enumerate() {
                        if let Some(slot) = out.get_mut(at + k) {
                            *slot = *b;
                        }
                    }
                }
                6 if !self.dictionary.is_empty() => {
                    let token = self.dictionary[self.below(self.dictionary.len())];
                    let at = self.below(out.len() + 1);
                    out.splice(at..at, token.bytes());
                }
                7 if !corpus.is_empty() => {
                    let other = &corpus[self.below(corpus.len())];
                    let cut = self.below(out.len() + 1);
                    let from = self.below(other.len() + 1);
                    out.truncate(cut);
                    out.extend_from_slice(&other[from..]);
                }
                _ => {
                    // A run of ASCII digits replaced by an edge value, so
                    // numbers in text formats reach their range checks.
                    let digits: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_ascii_digit()).collect();
                    if let Some(&start) = digits.get(self.below(digits.len())) {
                        let end = (start..out.len())
                            .find(|&i| !out[i].is_ascii_digit())
                            .unwrap_or(out.len());
                        let text = INTERESTING_TEXT[self.below(INTERESTING_TEXT.len())];
                        out.splice(start..end, text.bytes());
                    }
                }
            }
        }
        out.truncate(self.max_len);
        out
    }
}

/// Runs `target` on the corpus, then on mutations for the time budget.
fn fuzz(
    name: &str,
    seeds: Vec<(String, Vec<u8>)>,
    dictionary: &'static [&'static str],
    max_len: usize,
    target: &dyn Fn(&[u8]) -> Verdict,
) {
    let seed = env_u64("VMRR_FUZZ_SEED", 0x5eed_f022);
    let budget = Duration::from_secs(env_u64("VMRR_FUZZ_SECS", 4));
    let fail = |input: &[u8], what: String| -> ! {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{name}-{}", blake3::hash(input).to_hex()));
        let _ = std::fs::write(&file, input);
        panic!(
            "fuzz target {name}: {what}\ninput saved as {} (seed {seed:#x}; rerun with VMRR_FUZZ_SEED={seed})",
            file.display()
        );
    };
    let check = |input: &[u8]| -> bool {
        match catch_unwind(AssertUnwindSafe(|| target(input))) {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(broken)) => fail(input, broken),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                fail(input, format!("panicked: {text}"))
            }
        }
    };
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut accepted_seeds = 0;
    for (file, bytes) in &seeds {
        let _ = file;
        if check(bytes) {
            accepted_seeds += 1;
        }
        corpus.push(bytes.clone());
    }
    let mut mutator = Mutator {
        rng: SeededRng::new(seed ^ blake3::hash(name.as_bytes()).as_bytes()[0] as u64),
        dictionary,
        max_len,
    };
    let started = Instant::now();
    let (mut runs, mut accepted) = (0u64, 0u64);
    while started.elapsed() < budget && runs < 2_000_000 {
        let base = corpus[mutator.below(corpus.len())].clone();
        let input = mutator.mutate(&base, &corpus);
        runs += 1;
        if check(&input) {
            accepted += 1;
            // Accepted inputs are the interesting ones: keep mutating them.
            if corpus.len() < 2_000 {
                corpus.push(input);
            }
        }
    }
    eprintln!(
        "fuzz {name}: {} seeds ({accepted_seeds} accepted), {runs} mutated inputs ({accepted} accepted) in {:.1} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(accepted_seeds > 0, "{name}: no seed of the corpus is accepted");
    assert!(runs > 0, "{name}: no mutation ran");
}

// ------------------------------------------------------------ cluster.toml

const TOML_WORDS: &[&str] = &[
    "[[vm]]\n",
    "[[link]]\n",
    "[[fault]]\n",
    "[network]\n",
    "name = \"x\"\n",
    "image = \"g.elf\"\n",
    "mac = \"52:54:00:12:34:01\"\n",
    "mem = \"4M\"\n",
    "rate = ",
    "latency_us = ",
    "bandwidth_mbps = ",
    "between = [\"a\", \"b\"]\n",
    "kind = \"delay\"\n",
    "kind = \"drop\"\n",
    "kind = \"partition\"\n",
    "vms = [\"a\"]\n",
    "at_us = ",
    "until_us = ",
    "extra_us = ",
    "fraction = ",
    "\"..\"",
    "\"../x\"",
    "\\u001b",
    "\"",
    "=",
    "\n",
];

/// Properties of an accepted configuration: every value in its range, names
/// safe, MACs and links distinct, faults in order, and writing it back as a
/// file gives the same configuration.
fn cluster_properties(c: &ClusterConfig, path: &Path) -> Result<(), String> {
    let latency = MIN_LATENCY_NS..=MAX_LATENCY_US * 1000;
    if c.vms.is_empty() || c.vms.len() > MAX_VMS {
        return Err(format!("{} VMs accepted", c.vms.len()));
    }
    for v in &c.vms {
        check_vm_name(&v.name).map_err(|e| format!("name {:?} accepted: {e}", v.name))?;
        if v.mac[0] & 1 != 0 {
            return Err(format!("multicast MAC accepted for {}", v.name));
        }
    }
    let mut macs: Vec<[u8; 6]> = c.vms.iter().map(|v| v.mac).collect();
    macs.sort_unstable();
    macs.dedup();
    if macs.len() != c.vms.len() {
        return Err("two VMs share a MAC".into());
    }
    if !latency.contains(&c.default_latency_ns) {
        return Err(format!("default latency {} ns accepted", c.default_latency_ns));
    }
    for (i, l) in c.links.iter().enumerate() {
        if !latency.contains(&l.latency_ns) || l.between.0 == l.between.1 {
            return Err(format!("link {l:?} accepted"));
        }
        let (a, b) = l.between;
        if c.links[..i]
            .iter()
            .any(|o| o.between == (a, b) || o.between == (b, a))
        {
            return Err(format!("duplicate link {l:?} accepted"));
        }
    }
    let max_time = MAX_TIME_US * 1000;
    let mut last = 0;
    for f in &c.faults {
        if f.at_ns < last || f.at_ns > max_time {
            return Err(format!("fault at {} ns accepted", f.at_ns));
        }
        last = f.at_ns;
        let until = match &f.kind {
            FaultKind::Drop {
                until_ns, fraction, ..
            } => {
                if !(0.0..=1.0).contains(fraction) {
                    return Err(format!("fraction {fraction} accepted"));
                }
                *until_ns
            }
            FaultKind::Delay {
                until_ns, extra_ns, ..
            } => {
                if *extra_ns > MAX_LATENCY_US * 1000 {
                    return Err(format!("delay {extra_ns} ns accepted"));
                }
                *until_ns
            }
            _ => u64::MAX,
        };
        if until != u64::MAX && (until <= f.at_ns || until > max_time) {
            return Err(format!("until {until} ns with at {} ns accepted", f.at_ns));
        }
    }
    let text = c.to_toml(|i| c.vms[i].image.display().to_string());
    match ClusterConfig::parse(path, &text) {
        Ok(again) if again == *c => Ok(()),
        Ok(again) => Err(format!("written back, it reads differently:\n{text}\n{again:?}")),
        Err(e) => Err(format!("written back, it is refused: {e}\n{text}")),
    }
}

#[test]
fn fuzz_cluster_toml() {
    let dir = std::env::temp_dir().join(format!("vmrr-fuzz-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("g.elf"), b"an image").expect("image");
    let path = dir.join("c.toml");
    let target = |bytes: &[u8]| -> Verdict {
        // load() refuses what is not UTF-8 before parse() sees it.
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(false);
        };
        match ClusterConfig::parse(&path, text) {
            Ok(c) => cluster_properties(&c, &path).map(|()| true),
            Err(_) => Ok(false),
        }
    };
    fuzz(
        "cluster_toml",
        read_corpus("cluster_toml"),
        TOML_WORDS,
        64 << 10,
        &target,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// -------------------------------------------------------------------- ELF

/// Guest memory of the ELF target: small, so each load is cheap.
const ELF_MEM: u64 = 8 << 20;

#[test]
fn fuzz_elf_loading() {
    let ram = create_ram(ELF_MEM).expect("guest RAM");
    let path = Path::new("fuzzed.elf");
    let target = |bytes: &[u8]| -> Verdict {
        let entry = match inspect(path, bytes, ELF_MEM) {
            Ok(entry) => entry,
            Err(_) => return Ok(false),
        };
        if !(KERNEL_MIN_ADDR..ELF_MEM).contains(&entry) {
            return Err(format!("entry {entry:#x} accepted"));
        }
        // What inspect() accepts, the loader loads: an error would be a
        // check inspect() lacks (with a worse message).
        let info =
            load_image(&ram, path, bytes, ELF_MEM, "fuzz").map_err(|e| format!("inspected, then: {e}"))?;
        if info.entry != entry || info.kernel_end > ELF_MEM {
            return Err(format!("loaded {info:?}, inspected entry {entry:#x}"));
        }
        Ok(true)
    };
    let mut seeds = read_corpus("elf");
    // The real guests too (built by cargo; not committed).
    for name in ["hello", "pingpong"] {
        let image = vmrr_guests::image(name);
        if let Ok(bytes) = std::fs::read(&image) {
            seeds.push((format!("{name}.elf"), bytes));
        }
    }
    fuzz("elf", seeds, &[], 256 << 10, &target);
}

// ------------------------------------------------------------- checkpoints

/// Applies a decoded checkpoint as replay would (page map, RAM image from
/// an empty page store): errors are fine, panics and huge allocations not.
fn use_checkpoint(file: &CheckpointFile, store: &PageStore) {
    let mut map = PageMap::default();
    map.apply(file);
    let _ = map.materialise(store, 4 << 20);
}

#[test]
fn fuzz_checkpoint_files() {
    let dir = std::env::temp_dir().join(format!("vmrr-fuzz-cp-{}", std::process::id()));
    let store = PageStore::open(&dir.join("pages")).expect("page store");
    let path = dir.join("checkpoint.json.zst");
    let target = |bytes: &[u8]| -> Verdict {
        match CheckpointFile::decode(&path, bytes) {
            Ok(file) => {
                use_checkpoint(&file, &store);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    };
    fuzz(
        "checkpoint_file",
        read_corpus("checkpoint"),
        &[],
        64 << 10,
        &target,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const JSON_WORDS: &[&str] = &[
    "\"changed\":[[18446744073709551615,\"00\"]]",
    "\"zeroed\":[18446744073709551615]",
    "[[4503599627370496,\"../../../etc/passwd\"]]",
    "null",
    "[]",
    "{}",
    "\"",
    ",",
    "-1",
    "1e400",
];

/// Restores of decoded states into a real VM per run: each builds a KVM VM
/// (about a millisecond), so they are counted, not timed.
const MAX_RESTORES: u32 = 300;

/// The same decoder, with the mutations made to the JSON inside (most byte
/// changes to a zstd stream only reach its checksum). Decoded states are
/// also restored into a fresh VM (not run): a state from a file must give
/// an error there, never a panic.
#[test]
fn fuzz_checkpoint_json() {
    let dir = std::env::temp_dir().join(format!("vmrr-fuzz-cpj-{}", std::process::id()));
    let store = PageStore::open(&dir.join("pages")).expect("page store");
    let path = dir.join("checkpoint.json.zst");
    let restores = std::cell::Cell::new(0u32);
    let target = |json: &[u8]| -> Verdict {
        let packed = zstd::encode_all(json, 1).map_err(|e| format!("zstd: {e}"))?;
        match CheckpointFile::decode(&path, &packed) {
            Ok(file) => {
                use_checkpoint(&file, &store);
                if restores.get() < MAX_RESTORES {
                    restores.set(restores.get() + 1);
                    let config = VmConfig {
                        mem_bytes: 4 << 20,
                        nic_mac: Some([0x52, 0x54, 0, 0x12, 0x34, 1]),
                        ..VmConfig::default()
                    };
                    let _ = Machine::from_parts(config, &file.state, &vec![0u8; 4 << 20]);
                }
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    };
    let seeds = read_corpus("checkpoint")
        .into_iter()
        .map(|(name, packed)| {
            let json = zstd::decode_all(&packed[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect();
    fuzz("checkpoint_json", seeds, JSON_WORDS, 256 << 10, &target);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zstd bomb: a few KB that unpack to a gigabyte are refused without
/// allocating the gigabyte.
#[test]
fn a_checkpoint_that_unpacks_without_bound_is_refused() {
    let zeros = vec![0u8; 8 << 20];
    let mut frame = zstd::encode_all(&zeros[..], 19).expect("compress");
    // 40 frames of 8 MiB each: 320 MiB once unpacked, beyond the limit.
    let one = frame.clone();
    for _ in 0..39 {
        frame.extend_from_slice(&one);
    }
    assert!(frame.len() < 1 << 20, "the bomb is small: {}", frame.len());
    let e = CheckpointFile::decode(Path::new("bomb.json.zst"), &frame)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("unpacks to more than"), "{e}");
}

/// The corpus holds real checkpoints: each decodes and restores into a VM,
/// so the fuzzed restores above start from states that reach the devices.
#[test]
fn the_corpus_checkpoints_restore() {
    for (name, packed) in read_corpus("checkpoint") {
        let file =
            CheckpointFile::decode(Path::new(&name), &packed).unwrap_or_else(|e| panic!("{name}: {e}"));
        let config = VmConfig {
            mem_bytes: 4 << 20,
            nic_mac: Some([0x52, 0x54, 0, 0x12, 0x34, 1]),
            ..VmConfig::default()
        };
        if let Err(e) = Machine::from_parts(config, &file.state, &vec![0u8; 4 << 20]) {
            panic!("{name}: {e}");
        }
    }
}

/// A page "hash" from a checkpoint never becomes a path.
#[test]
fn a_page_hash_that_is_a_path_is_refused() {
    let dir = std::env::temp_dir().join(format!("vmrr-fuzz-hash-{}", std::process::id()));
    let store = PageStore::open(&dir.join("pages")).expect("page store");
    for hash in ["../../../etc/passwd", "00/../../x", "", &"g".repeat(64)] {
        let e = store.get(hash).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("not a page address"), "{hash:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
