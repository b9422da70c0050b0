//! Text for the views: virtual times, event lines, user input parsing.

use vmrr_index::{EventKind, EventRow};

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

/// A duration for titles: `20 ms`, `500 µs`, `800 ns`.
pub fn span(ns: u64) -> String {
    if ns >= 1_000_000 && ns.is_multiple_of(1_000_000) {
        format!("{} ms", ns / 1_000_000)
    } else if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.0} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Short name of an event kind for the events list.
pub fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Console => "console",
        EventKind::FrameSent => "sent",
        EventKind::FrameRecv => "recv",
        EventKind::Interrupt => "irq",
        EventKind::Marker => "marker",
        EventKind::Halt => "halt",
        EventKind::Wake => "wake",
        EventKind::Tsc => "tsc",
        EventKind::Rand => "rand",
        EventKind::Fault => "fault",
        EventKind::Checkpoint => "checkpt",
        EventKind::Stop => "stop",
        EventKind::Exit => "exit",
    }
}

/// Console text made printable on one line (newlines shown as `⏎`).
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('⏎'),
            c if c.is_control() => out.push('·'),
            c => out.push(c),
        }
    }
    out
}

/// What an event is about, in a few words: `read-stale = 3`, `frame #49 → backup2`.
pub fn detail(e: &EventRow, vm_names: &[String], peer: Option<usize>) -> String {
    let name = |vm: usize| vm_names.get(vm).cloned().unwrap_or_else(|| format!("vm{vm}"));
    match e.kind {
        EventKind::Console => {
            let text = match (&e.text, &e.payload) {
                (Some(t), _) => t.clone(),
                (None, Some(p)) => String::from_utf8_lossy(p).into_owned(),
                _ => String::new(),
            };
            printable(text.trim_end_matches('\n'))
        }
        EventKind::Marker => format!(
            "{} = {}",
            e.text.as_deref().unwrap_or("?"),
            e.value.map(|v| v as i64).unwrap_or(0)
        ),
        EventKind::FrameSent => match peer {
            Some(p) => format!("frame #{} → {}", e.value.unwrap_or(0), name(p)),
            None => format!("frame #{}", e.value.unwrap_or(0)),
        },
        EventKind::FrameRecv => match peer {
            Some(p) => format!("frame #{} ← {}", e.value.unwrap_or(0), name(p)),
            None => format!("frame #{}", e.value.unwrap_or(0)),
        },
        EventKind::Interrupt => format!("vector {:#04x}", e.value.unwrap_or(0)),
        EventKind::Wake => format!("idle {}", span(e.value.unwrap_or(0))),
        EventKind::Exit => format!("exit value {}", e.value.unwrap_or(0)),
        _ => e
            .text
            .clone()
            .or_else(|| e.value.map(|v| v.to_string()))
            .unwrap_or_default(),
    }
}

/// Parses a virtual time typed by a user: `122.2ms`, `500us`, `2s`, `800ns`.
/// A bare number is not a time (it is an icount).
pub fn parse_vtime(text: &str) -> Option<u64> {
    vmrr_debugger::vtime::parse(text)
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
        assert_eq!(parse_vtime("122.2ms"), Some(122_200_000));
        assert_eq!(parse_vtime("500us"), Some(500_000));
        assert_eq!(parse_vtime("12345"), None);
        assert_eq!(parse_vtime("xms"), None);
    }
}
