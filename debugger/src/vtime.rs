//! Virtual times as people write and read them: `122.2ms`, `300us`, `2s`
//! in, `122.219691 ms` out. One spelling for the CLI, the TUI and gdb.

/// Parses a virtual time with a unit (`ns`, `us`, `µs`, `ms`, `s`). A bare
/// number has no unit and is not a time (views read it as an icount).
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    // "ms" and "ns" before "s", since both end with it.
    let (num, scale) = [("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))?;
    let v: f64 = num.trim().parse().ok()?;
    let ns = v * scale;
    (v.is_finite() && (0.0..1.8e19).contains(&ns)).then_some(ns.round() as u64)
}

/// A virtual time in milliseconds with nanosecond digits: `122.219691 ms`.
pub fn format_ms(ns: u64) -> String {
    format!("{}.{:06} ms", ns / 1_000_000, ns % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        assert_eq!(parse("12.5ms"), Some(12_500_000));
        assert_eq!(parse("300us"), Some(300_000));
        assert_eq!(parse("300µs"), Some(300_000));
        assert_eq!(parse("2s"), Some(2_000_000_000));
        assert_eq!(parse("800ns"), Some(800));
        assert_eq!(parse("12345"), None);
        assert_eq!(parse("xms"), None);
        assert_eq!(parse("-1ms"), None);
        assert_eq!(format_ms(122_219_691), "122.219691 ms");
        assert_eq!(format_ms(0), "0.000000 ms");
    }
}
