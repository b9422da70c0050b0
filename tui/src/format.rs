//! Text for the views: virtual times; event text comes from
//! `vmrr_debugger::describe`, the same as in every other view.

/// A virtual time in milliseconds with nanosecond precision: `122.219691 ms`.
pub fn vtime(ns: u64) -> String {
    vmrr_debugger::vtime::format_ms(ns)
}

/// A virtual time rounded for an axis label, with a unit that suits `span`
/// (the width of the visible window): `120 ms`, `122.5 ms`, `350 µs`.
pub fn axis_time(ns: u64, span: u64) -> String {
    if span >= 20_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else if span >= 2_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else if span >= 200_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else if span >= 20_000 {
        format!("{:.3}ms", ns as f64 / 1e6)
    } else {
        format!("{}ns", ns)
    }
}

pub use vmrr_debugger::describe::{event_detail, event_detail_with, kind_label as kind, span};
use vmrr_debugger::dwarf::Program;

/// A virtual time for a list column: `138.139451` (ms, no unit), the
/// same digits as [`vtime`].
pub fn vtime_column(ns: u64) -> String {
    vtime(ns).trim_end_matches(" ms").to_string()
}

/// A code address for people: `kvstore.c:369 (kv_apply+0x6)`, or
/// `kv_apply+0x6` without debugging information, or the address.
pub fn code_place(program: &Program, addr: u64) -> String {
    let sym = program.symbols().describe(addr);
    let line = program.line_at(addr).map(|l| {
        let file = l.file_name.rsplit('/').next().unwrap_or_default().to_string();
        format!("{file}:{}", l.line)
    });
    match (line, sym) {
        (Some(l), Some(s)) => format!("{l} ({s})"),
        (Some(l), None) => l,
        (None, Some(s)) => s,
        (None, None) => format!("{addr:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_like_vmrr_events() {
        assert_eq!(vtime(122_219_691), "122.219691 ms");
        assert_eq!(vtime(0), "0.000000 ms");
        assert_eq!(span(20_000_000), "20 ms");
        assert_eq!(span(500_000), "500 µs");
    }
}
