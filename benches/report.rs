//! Shared by the benchmarks: statistics and writing results into BENCHMARKS.md.
//! Each benchmark owns one section, delimited by HTML comments, so running one
//! benchmark updates its figures and leaves the others as they were.

use std::path::Path;

/// Median of the samples (they need not be sorted).
pub fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Replaces (or appends) the section `name` of BENCHMARKS.md with `body`.
pub fn write_section(name: &str, body: &str) -> std::io::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEach section is written by the benchmark named in it; the command to \
         reproduce it is given there. Figures are ratios against a floor measured in the same \
         run, because absolute speed on this nested-KVM host varies up to 2x between runs.\n"
            .to_string()
    });
    let start = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &existing[..s], section, &existing[e + end.len()..]),
        _ => format!("{}\n{}\n", existing.trim_end(), section),
    };
    std::fs::write(&path, updated)
}

/// A one-line description of the host, for the record.
pub fn host_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}
