//! Virtual times as people write and read them: `122.2ms`, `300us`, `2s`
//! in, `122.219691 ms` out. One spelling for the CLI, the TUI and gdb.

/// Units a time may be written in, with their size in nanoseconds. "ms"
/// and "ns" come before "s", since both end with it.
const UNITS: [(&str, u64); 5] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
];

/// Whether `text` is written as a time (digits, at most one point, a
/// unit) whether or not [`parse`] can hold it: a time too large is then
/// named as such, not taken for a bookmark's name.
pub fn looks_like_time(text: &str) -> bool {
    let t = text.trim();
    UNITS.iter().any(|(unit, _)| {
        t.strip_suffix(unit).is_some_and(|n| {
            let n = n.trim();
            !n.is_empty()
                && n.chars().filter(|c| *c == '.').count() <= 1
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                && n.chars().any(|c| c.is_ascii_digit())
        })
    })
}

/// Parses a virtual time with a unit (`ns`, `us`, `µs`, `ms`, `s`), exactly
/// (decimal digits, no floating point) and without wrapping: a time beyond
/// about 584 years of virtual time, a negative one or a fraction of a
/// nanosecond is not a time. A bare number has no unit and is not a time
/// (views read it as an icount).
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n.trim(), *scale)))?;
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut ns = whole.checked_mul(scale)?;
    // Each fractional digit is worth a tenth of the one before.
    let mut place = scale;
    for c in frac.chars() {
        place /= 10;
        let d = u64::from(c.to_digit(10)?);
        if place == 0 {
            if d != 0 {
                return None; // finer than a nanosecond
            }
            continue;
        }
        ns = ns.checked_add(d * place)?;
    }
    Some(ns)
}

/// A virtual time in milliseconds with nanosecond digits: `122.219691 ms`.
pub fn format_ms(ns: u64) -> String {
    format!("{}.{:06} ms", ns / 1_000_000, ns % 1_000_000)
}

/// A virtual time as short as it can be written exactly, in a form
/// [`parse`] reads back: `12ms`, `12.5ms`, `122.219691ms`.
pub fn format_exact(ns: u64) -> String {
    let frac = format!("{:06}", ns % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}.{frac}ms", ns / 1_000_000)
    }
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
        assert_eq!(parse(".5ms"), Some(500_000));
        assert_eq!(parse("1.000000001s"), Some(1_000_000_001));
        assert_eq!(parse("1.5ns"), None, "finer than a nanosecond");
        assert_eq!(parse("1.50ns"), None);
        assert_eq!(parse("1.0ns"), Some(1));
        assert_eq!(parse("12345"), None);
        assert_eq!(parse("xms"), None);
        assert_eq!(parse("-1ms"), None);
        assert_eq!(parse("ms"), None);
        assert_eq!(parse("1e3ms"), None);
        assert_eq!(parse("18446744073709551615ns"), Some(u64::MAX));
        assert_eq!(parse("18446744073709551616ns"), None, "no wrap-around");
        assert_eq!(parse("99999999999s"), None, "no wrap-around");
        assert_eq!(format_ms(122_219_691), "122.219691 ms");
        assert_eq!(format_ms(0), "0.000000 ms");
        for ns in [0, 1, 12_500_000, 122_219_691, 7_000_000, u64::MAX] {
            assert_eq!(parse(&format_exact(ns)), Some(ns), "{}", format_exact(ns));
        }
        assert_eq!(format_exact(12_500_000), "12.5ms");
        assert_eq!(format_exact(7_000_000), "7ms");
    }
}
