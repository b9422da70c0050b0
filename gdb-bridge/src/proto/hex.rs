//! Hexadecimal numbers and byte strings as the remote protocol writes them.

/// Lower-case hex of `bytes`, two digits each.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The bytes of a hex string; `None` for an odd length or a non-hex digit.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}

/// A hexadecimal number of at most 64 bits (leading zeros allowed).
pub fn number(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    if text.is_empty() || text.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_limits() {
        assert_eq!(encode(b"\x00\xab"), "00ab");
        assert_eq!(decode(b"00aB"), Some(vec![0, 0xab]));
        assert_eq!(decode(b"0"), None);
        assert_eq!(decode(b"zz"), None);
        assert_eq!(number(b"00ff"), Some(255));
        assert_eq!(number(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(number(b"10000000000000000"), None);
        assert_eq!(number(b"-1"), None);
        assert_eq!(number(b"+1"), None);
        assert_eq!(number(b""), None);
    }
}
