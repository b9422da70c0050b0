//! The engine's edge cases, driven through the library (`Machine`) with the
//! probe guest: seeded randomness, the fixed CPUID, the emulated TSC, `rep`
//! string instructions stepped in chunks (and captured in the middle of
//! one), capture/restore at many points, and virtual idle time.
//!
//! These run real guests under KVM and fail loudly without /dev/kvm.

mod common;

use vmrr_backend::rng::SeededRng;
use vmrr_backend::{Event, EventKind, Machine, MachineState, RunLimit, Stop, VmConfig};

/// Far more steps than any of these runs needs (probe rep is about 90,000).
const MAX_STEPS: u64 = 5_000_000;

fn config(cmdline: &str, seed: u64) -> VmConfig {
    VmConfig {
        cmdline: cmdline.into(),
        seed,
        ..VmConfig::default()
    }
}

fn boot(name: &str, config: VmConfig) -> Machine {
    common::require_kvm();
    let image = common::guest(name);
    Machine::new(&image, config).unwrap_or_else(|e| panic!("cannot start {}: {e}", image.display()))
}

/// A run to the end: every event, why it stopped, the final hash.
struct Run {
    events: Vec<Event>,
    stop: Stop,
    hash: [u8; 32],
}

impl Run {
    fn console(&self) -> String {
        console(&self.events)
    }
}

fn run_to_end(vm: &mut Machine) -> Run {
    let stop = vm
        .run(RunLimit::icount(MAX_STEPS))
        .unwrap_or_else(|e| panic!("guest failed at icount {}: {e}", vm.icount()));
    assert!(stop.is_final(), "guest still running after {MAX_STEPS} steps");
    Run {
        events: vm.take_events(),
        stop,
        hash: vm.state_hash().expect("state hash"),
    }
}

fn probe(test: &str, seed: u64) -> Run {
    let mut vm = boot("probe", config(&format!("test={test}"), seed));
    let run = run_to_end(&mut vm);
    assert_eq!(
        run.stop,
        Stop::Exited(0),
        "probe {test} should exit 0; console:\n{}",
        run.console()
    );
    run
}

fn console(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Console(b) => Some(b as char),
            _ => None,
        })
        .collect()
}

/// The console line starting with `prefix`.
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

fn random_reads(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RandomRead(v) => Some(v),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- rdrand / rdseed

#[test]
fn rdrand_and_rdseed_answer_from_the_seed() {
    let a = probe("rdrand", 1);
    let b = probe("rdrand", 1);
    let c = probe("rdrand", 2);

    assert_eq!(a.console(), b.console(), "same seed, different console");
    assert_eq!(a.events, b.events, "same seed, different events");
    assert_eq!(a.hash, b.hash, "same seed, different final state");

    let (va, vc) = (random_reads(&a.events), random_reads(&c.events));
    assert_eq!(va.len(), 3, "two rdrand and one rdseed: {:?}", a.events);
    assert_eq!(vc.len(), 3, "two rdrand and one rdseed: {:?}", c.events);
    for (x, y) in va.iter().zip(&vc) {
        assert_ne!(x, y, "seeds 1 and 2 gave the same value {x:#x}");
    }

    // The values are the seeded generator's, not the host's.
    for (seed, values) in [(1, &va), (2, &vc)] {
        let mut rng = SeededRng::new(seed);
        let expected: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            *values, expected,
            "seed {seed}: not the seeded generator's values"
        );
    }

    // What the guest saw is what the events say, each with CF = 1.
    for (run, v) in [(&a, &va), (&c, &vc)] {
        let line = line_starting(&run.console(), "rdrand:").to_string();
        assert_eq!(
            line,
            format!("rdrand: {:x} 1 {:x} 1 rdseed: {:x} 1", v[0], v[1], v[2]),
            "console line vs RandomRead events"
        );
    }
}

// ---------------------------------------------------------------- cpuid

#[test]
fn cpuid_presents_the_fixed_cpu() {
    let run = probe("cpuid", 0);
    let text = run.console();
    assert!(
        line_starting(&text, "cpuid: ").ends_with("vendor=AuthenticAMD"),
        "{text}"
    );
    let leaf1 = line_starting(&text, "cpuid 1: ");
    let ecx_hex = leaf1
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ecx="))
        .unwrap_or_else(|| panic!("no ecx= in {leaf1:?}"));
    let ecx = u32::from_str_radix(ecx_hex, 16).expect("ecx is hex");
    assert_eq!(ecx & (1 << 30), 0, "RDRAND must be hidden: {leaf1}");
    assert_eq!(ecx & (1 << 26), 0, "XSAVE must be hidden: {leaf1}");
    assert_eq!(ecx & (1 << 23), 0, "POPCNT must be hidden: {leaf1}");
    assert_eq!(
        ecx, 0x8000_0000,
        "leaf 1 ECX should be only the hypervisor bit: {leaf1}"
    );
}

// ---------------------------------------------------------------- rdtscp / rdmsr(TSC)

#[test]
fn rdtscp_and_rdmsr_tsc_read_virtual_time() {
    let run = probe("rdtscp", 0);
    let text = run.console();
    assert_eq!(line_starting(&text, "rdtscp:"), "rdtscp: aux=0 later=1", "{text}");

    let reads: Vec<&Event> = run
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TscRead(_)))
        .collect();
    assert_eq!(reads.len(), 2, "rdtscp and rdmsr(TSC) each read once: {reads:?}");
    for e in &reads {
        assert_eq!(
            e.kind,
            EventKind::TscRead(e.vtime_ns),
            "the TSC must equal virtual time"
        );
    }
    assert!(reads[0].icount < reads[1].icount, "{reads:?}");

    // The guest's marker carries the low half of what rdtscp returned.
    let marker = run
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Marker { name, value } if name == "rdtscp" => Some(*value),
            _ => None,
        })
        .expect("marker rdtscp");
    assert_eq!(u64::from(marker), reads[0].vtime_ns & 0xffff_ffff);
}

// ---------------------------------------------------------------- rep string instructions

#[test]
fn rep_runs_identically_twice() {
    let a = probe("rep", 0);
    let b = probe("rep", 0);
    assert!(a.console().contains("rep: sum="), "{}", a.console());
    assert_eq!(a.events, b.events, "rep: event streams differ");
    assert_eq!(a.hash, b.hash, "rep: final state hashes differ");
}

/// The steps at which rip sat on one `rep` instruction, with rcx at each.
struct RepSteps {
    what: &'static str,
    rip: Option<u64>,
    /// (icount, rcx) with rip at the instruction, in order.
    points: Vec<(u64, u64)>,
    initial_rcx: u64,
}

impl RepSteps {
    fn new(what: &'static str, initial_rcx: u64) -> Self {
        RepSteps {
            what,
            rip: None,
            points: Vec::new(),
            initial_rcx,
        }
    }

    /// Records this step if rip is at the instruction: the first time it is
    /// recognised by its opcode and its starting count; afterwards by its rip.
    fn observe(&mut self, icount: u64, rip: u64, rcx: u64, is_this_op: bool) {
        match self.rip {
            None if is_this_op && rcx == self.initial_rcx => {
                self.rip = Some(rip);
                self.points.push((icount, rcx));
            }
            Some(r) if r == rip => self.points.push((icount, rcx)),
            _ => {}
        }
    }

    /// The steps inside the instruction: some iterations done, some left.
    fn middle(&self) -> Vec<(u64, u64)> {
        let mid: Vec<(u64, u64)> = self
            .points
            .iter()
            .copied()
            .filter(|&(_, rcx)| rcx > 0 && rcx < self.initial_rcx)
            .collect();
        assert!(
            !mid.is_empty(),
            "{}: the engine should stop inside it (one step per chunk of at most 1024 iterations), \
             but rip was there only at (icount, rcx) {:?}",
            self.what,
            self.points
        );
        mid
    }

    fn check_chunks(&self) {
        assert!(self.rip.is_some(), "{} never reached", self.what);
        assert_eq!(self.points[0].1, self.initial_rcx, "{}", self.what);
        for w in self.points.windows(2) {
            assert_eq!(
                w[1].0,
                w[0].0 + 1,
                "{}: not consecutive steps {:?}",
                self.what,
                self.points
            );
            let done = w[0].1 - w[1].1;
            assert!(
                (1..=1024).contains(&done),
                "{}: a step did {done} iterations (expected 1..=1024): {:?}",
                self.what,
                self.points
            );
        }
    }
}

/// Steps probe rep one instruction at a time to find where rip sits on
/// `rep movsb` and `rep stosq`; captures in the middle of each, and checks
/// that running on, restoring, and running on again (in the same VM and in
/// a fresh one) give the same events and hash as the uninterrupted run.
#[test]
fn rep_capture_restore_mid_instruction() {
    let cfg = config("test=rep", 0);
    let reference = probe("rep", 0);

    let mut vm = boot("probe", cfg.clone());
    let mut movsb = RepSteps::new("rep movsb", 5000);
    let mut stosq = RepSteps::new("rep stosq", 3000);
    let mut stepped_events = Vec::new();
    let stop = loop {
        let n = vm.icount();
        let stop = vm
            .run(RunLimit::icount(n + 1))
            .unwrap_or_else(|e| panic!("step at icount {n}: {e}"));
        stepped_events.extend(vm.take_events());
        if stop.is_final() {
            break stop;
        }
        assert!(n < MAX_STEPS, "probe rep did not finish");
        let r = vm.regs();
        let mut bytes = [0u8; 3];
        let got = vm.read_virt(r.rip, &mut bytes);
        let is_movsb = got >= 2 && bytes[..2] == [0xf3, 0xa4];
        let is_stosq = got >= 3 && bytes == [0xf3, 0x48, 0xab] && r.rax == 0x0123_4567_89ab_cdef;
        movsb.observe(vm.icount(), r.rip, r.rcx, is_movsb);
        stosq.observe(vm.icount(), r.rip, r.rcx, is_stosq);
    };
    assert_eq!(stop, reference.stop);
    assert_eq!(
        stepped_events, reference.events,
        "stepping one instruction at a time changed the events"
    );
    assert_eq!(
        vm.state_hash().expect("hash"),
        reference.hash,
        "stepping one at a time changed the final state"
    );

    for section in [&movsb, &stosq] {
        section.check_chunks();
        let mid = section.middle();
        let (at, rcx) = mid[mid.len() / 2];
        let rip = section.rip.expect("found");

        let mut vm = boot("probe", cfg.clone());
        assert_eq!(vm.run(RunLimit::icount(at)).expect("run"), Stop::Limit);
        vm.take_events();
        let r = vm.regs();
        assert_eq!(
            (r.rip, r.rcx),
            (rip, rcx),
            "{}: not at the same point",
            section.what
        );
        let mut prefix = [0u8; 1];
        assert_eq!(vm.read_virt(r.rip, &mut prefix), 1);
        assert_eq!(prefix[0], 0xf3, "{}: rip is not at a rep prefix", section.what);

        let snapshot = vm.capture().expect("capture");
        let hash_at = vm.state_hash().expect("hash");
        let first = run_to_end(&mut vm);

        vm.restore(&snapshot).expect("restore into the same VM");
        assert_eq!(vm.icount(), at);
        assert_eq!(
            vm.state_hash().expect("hash"),
            hash_at,
            "{}: restored hash",
            section.what
        );
        let again = run_to_end(&mut vm);

        let mut fresh = Machine::from_state(cfg.clone(), &snapshot).expect("restore into a fresh VM");
        assert_eq!(
            fresh.state_hash().expect("hash"),
            hash_at,
            "{}: fresh hash",
            section.what
        );
        let fresh_run = run_to_end(&mut fresh);

        let tail: Vec<Event> = reference
            .events
            .iter()
            .filter(|e| e.icount >= at)
            .cloned()
            .collect();
        for (label, run) in [
            ("run on", &first),
            ("same-VM restore", &again),
            ("fresh-VM restore", &fresh_run),
        ] {
            assert_eq!(
                run.stop, reference.stop,
                "{} at icount {at} (rcx {rcx}): {label}",
                section.what
            );
            assert_eq!(
                run.events, tail,
                "{} at icount {at} (rcx {rcx}): {label}: events differ from the uninterrupted run",
                section.what
            );
            assert_eq!(
                run.hash, reference.hash,
                "{} at icount {at} (rcx {rcx}): {label}: final hash differs",
                section.what
            );
        }
    }
}

// ---------------------------------------------------------------- capture/restore at many points

/// Captures hello every 250 steps (and just after each `hlt`, while the VM
/// is halted), keeps every state, then restores a sample into fresh VMs:
/// each must finish exactly as the uninterrupted run did.
#[test]
fn hello_capture_restore_at_many_points() {
    // 16 MiB rather than the default 64: every captured state holds all of RAM.
    let cfg = VmConfig {
        mem_bytes: 16 << 20,
        ..config("capture points", 7)
    };
    let mut vm = boot("hello", cfg.clone());
    let reference = run_to_end(&mut vm);
    let total = vm.icount();
    assert_eq!(reference.stop, Stop::Exited(0), "{}", reference.console());
    assert!(total > 5000, "hello ran only {total} steps");

    let halt_points: Vec<u64> = reference
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Halt)
        .map(|e| e.icount + 1)
        .collect();
    assert_eq!(halt_points.len(), 3, "hello sleeps three times");
    let grid: Vec<u64> = (250..total).step_by(250).collect();
    let mut points: Vec<u64> = grid.iter().chain(&halt_points).copied().collect();
    points.sort_unstable();
    points.dedup();

    struct Capture {
        at: u64,
        state: MachineState,
        hash: [u8; 32],
    }
    let mut vm = boot("hello", cfg.clone());
    let mut captures: Vec<Capture> = Vec::new();
    let mut events = Vec::new();
    for &at in &points {
        assert_eq!(vm.run(RunLimit::icount(at)).expect("run"), Stop::Limit);
        assert_eq!(vm.icount(), at);
        events.extend(vm.take_events());
        if halt_points.contains(&at) {
            assert!(
                vm.is_halted(),
                "icount {at} follows a hlt: the VM should be halted"
            );
        }
        captures.push(Capture {
            at,
            state: vm.capture().expect("capture"),
            hash: vm.state_hash().expect("hash"),
        });
    }
    let rest = run_to_end(&mut vm);
    events.extend(rest.events);
    assert_eq!(
        events, reference.events,
        "running in pieces (and capturing) changed the events"
    );
    assert_eq!(
        rest.hash, reference.hash,
        "running in pieces changed the final state"
    );

    // Six spread over the grid, plus the three captured while halted.
    let grid_captures: Vec<&Capture> = captures.iter().filter(|c| grid.contains(&c.at)).collect();
    let mut sample: Vec<&Capture> = (0..6)
        .map(|i| grid_captures[i * (grid_captures.len() - 1) / 5])
        .collect();
    sample.extend(captures.iter().filter(|c| halt_points.contains(&c.at)));

    for c in sample {
        let mut fresh = Machine::from_state(cfg.clone(), &c.state)
            .unwrap_or_else(|e| panic!("restore of icount {} into a fresh VM: {e}", c.at));
        assert_eq!(fresh.icount(), c.at);
        assert_eq!(
            fresh.state_hash().expect("hash"),
            c.hash,
            "icount {}: restored hash",
            c.at
        );
        let run = run_to_end(&mut fresh);
        let tail: Vec<Event> = reference
            .events
            .iter()
            .filter(|e| e.icount >= c.at)
            .cloned()
            .collect();
        assert_eq!(run.stop, reference.stop, "restored at icount {}", c.at);
        assert_eq!(
            run.events, tail,
            "restored at icount {}: events differ from the uninterrupted run",
            c.at
        );
        assert_eq!(
            run.hash, reference.hash,
            "restored at icount {}: final hash differs",
            c.at
        );
    }
}

// ---------------------------------------------------------------- virtual time and idle

#[test]
fn hello_halts_then_wakes_after_idle_time() {
    let cfg = config("", 0);
    let rate = cfg.instr_per_us;
    let mut vm = boot("hello", cfg);
    let run = run_to_end(&mut vm);
    assert_eq!(run.stop, Stop::Exited(0), "{}", run.console());

    let halts: Vec<usize> = run
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EventKind::Halt)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(halts.len(), 3, "hello halts once per sleep_ticks(1)");
    let mut idle_total = 0;
    for &i in &halts {
        let halt = &run.events[i];
        let wake = run.events.get(i + 1).expect("an event after the halt");
        let EventKind::Wake { idle_ns } = wake.kind else {
            panic!("the halt {halt:?} is followed by {wake:?}, not a Wake");
        };
        assert!(idle_ns > 0, "no idle time skipped: {wake:?}");
        assert_eq!(wake.icount, halt.icount + 1, "the wake comes right after the hlt");
        assert!(
            wake.vtime_ns >= halt.vtime_ns + idle_ns,
            "virtual time must cover the idle time: {halt:?} then {wake:?}"
        );
        // The timer woke it: its interrupt (IRQ 0 = vector 0x20) is taken next.
        let next = run.events.get(i + 2).expect("an event after the wake");
        assert_eq!(
            (next.icount, &next.kind),
            (wake.icount, &EventKind::Interrupt(0x20)),
            "the timer interrupt should follow the wake"
        );
        idle_total += idle_ns;
    }
    assert!(vm.vtime_ns() >= 3_000_000, "final vtime {} ns", vm.vtime_ns());
    // Virtual time is busy time plus the idle time skipped, nothing else.
    assert_eq!(
        vm.vtime_ns(),
        vm.icount() * 1000 / rate + idle_total,
        "vtime = icount x 1000 / rate + idle"
    );
}
