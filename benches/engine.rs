//! Engine speed against the floor: a bare KVM single-step loop.
//!
//! Both run the `compute` guest for the same number of steps in the same
//! process, alternating, several rounds; the figure is the ratio of median
//! rates. Run with `cargo bench --bench engine`; it rewrites its section of
//! BENCHMARKS.md.

mod report;

use std::time::Instant;

use vmrr_backend::floor::bare_single_steps;
use vmrr_backend::{Machine, RunLimit, Stop, VmConfig};

/// Steps per measurement: compute with iters=10000 runs ~225k steps, so the
/// floor loop never reaches the guest's exit (which it would not honour).
const STEPS: u64 = 200_000;
const ROUNDS: usize = 5;
const TARGET_RATIO: f64 = 0.85;

fn fresh() -> Machine {
    let config = VmConfig {
        cmdline: "iters=10000".into(),
        ..VmConfig::default()
    };
    match Machine::new(&vmrr_guests::image("compute"), config) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("engine benchmark: cannot start the compute guest: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let mut floor_rates = Vec::new();
    let mut engine_rates = Vec::new();
    for round in 0..ROUNDS {
        let mut vm = fresh();
        let floor = match bare_single_steps(&mut vm, STEPS) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("engine benchmark: floor loop failed: {e}");
                std::process::exit(1);
            }
        };
        floor_rates.push(floor.rate());

        let mut vm = fresh();
        let started = Instant::now();
        match vm.run(RunLimit::icount(STEPS)) {
            Ok(Stop::Limit) => {}
            other => {
                eprintln!("engine benchmark: the engine stopped early: {other:?}");
                std::process::exit(1);
            }
        }
        let rate = vm.icount() as f64 / started.elapsed().as_secs_f64();
        engine_rates.push(rate);
        println!(
            "round {}: floor {:.0} steps/s, engine {:.0} steps/s, ratio {:.3}",
            round + 1,
            floor.rate(),
            rate,
            rate / floor.rate()
        );
    }
    let floor = report::median(&floor_rates);
    let engine = report::median(&engine_rates);
    let ratio = engine / floor;
    let verdict = if ratio >= TARGET_RATIO { "meets" } else { "MISSES" };
    println!("median: floor {floor:.0} steps/s, engine {engine:.0} steps/s, ratio {ratio:.3} ({verdict} target {TARGET_RATIO})");
    let body = format!(
        "## Engine vs. bare KVM single-step loop\n\n\
         `cargo bench --bench engine` — `compute` guest, {STEPS} steps per run, {ROUNDS} alternating rounds, \
         medians. Host: {host}.\n\n\
         | loop | steps/s (median) | µs/step |\n|---|---|---|\n\
         | floor: bare `KVM_RUN` single-step, RIP read from sync regs | {floor:.0} | {fus:.2} |\n\
         | engine: decode, emulation checks, devices, interrupts, events | {engine:.0} | {eus:.2} |\n\n\
         **Ratio engine / floor: {ratio:.3}** (target ≥ {TARGET_RATIO}: {verdict}).\n",
        host = report::host_line(),
        fus = 1e6 / floor,
        eus = 1e6 / engine,
    );
    if let Err(e) = report::write_section("engine", &body) {
        eprintln!("engine benchmark: cannot write BENCHMARKS.md: {e}");
        std::process::exit(1);
    }
}
