//! How events read, the same in every view: `vmrr events`, gdb's
//! `monitor events`, the TUI's events list.

use vmrr_index::{EventKind, EventRow, VmId};

use crate::vtime::format_ms;

/// The short name of an event kind in lists (`sent`, `recv`, `irq`, …).
pub fn kind_label(k: EventKind) -> &'static str {
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

/// Text made printable on one line: newlines as `⏎`, other control
/// characters (a guest's or a hostile name's) as `·`, so nothing reaches
/// the terminal raw.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '⏎',
            c if c.is_control() => '·',
            c => c,
        })
        .collect()
}

/// A duration for people: `20 ms`, `1.50 ms`, `500 µs`, `800 ns`.
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

/// What an event is about, in a few words: `read-stale = 3`,
/// `frame #49 → backup2`, `frame #0 → backup1, backup2`, `idle 1 ms`.
/// `name` names a VM; `peers` are the other ends of a frame event when the
/// caller knows them (every receiver of a flooded frame).
pub fn event_detail(e: &EventRow, name: &dyn Fn(VmId) -> String, peers: &[VmId]) -> String {
    let frame = |arrow: &str| {
        let id = e.value.unwrap_or(0);
        if peers.is_empty() {
            format!("frame #{id}")
        } else {
            let names: Vec<String> = peers.iter().map(|&p| name(p)).collect();
            format!("frame #{id} {arrow} {}", names.join(", "))
        }
    };
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
            printable(e.text.as_deref().unwrap_or("?")),
            e.value.map(|v| v as i64).unwrap_or(0)
        ),
        EventKind::FrameSent => frame("→"),
        EventKind::FrameRecv => frame("←"),
        EventKind::Interrupt => format!("vector {:#04x}", e.value.unwrap_or(0)),
        EventKind::Wake => format!("idle {}", span(e.value.unwrap_or(0))),
        EventKind::Exit => format!("exit value {}", e.value.unwrap_or(0)),
        EventKind::Tsc | EventKind::Rand => format!("{:#x}", e.value.unwrap_or(0)),
        _ => e
            .text
            .as_deref()
            .map(printable)
            .or_else(|| e.value.map(|v| v.to_string()))
            .unwrap_or_default(),
    }
}

/// One event on one line, for terminals and gdb's console, with the kind
/// as it is stored and typed in filters:
/// `#123      122.219691 ms  backup2       24456  marker      read-stale = 3`.
/// `width` is the width of the VM name column.
pub fn event_line(e: &EventRow, name: &dyn Fn(VmId) -> String, peers: &[VmId], width: usize) -> String {
    format!(
        "#{:<7} {:>17}  {:<width$}  {:>10}  {:<10}  {}",
        e.id,
        format_ms(e.vtime_ns),
        printable(&name(e.vm)),
        e.icount,
        e.kind.as_str(),
        event_detail(e, name, peers)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_the_same_everywhere() {
        let names = |vm: VmId| ["primary", "backup1", "backup2"][vm as usize].to_string();
        let e = EventRow::new(2, 24_456, 122_219_691, EventKind::Marker)
            .with_text("read-stale")
            .with_value(3);
        assert_eq!(event_detail(&e, &names, &[]), "read-stale = 3");
        let mut sent = EventRow::new(0, 10, 1000, EventKind::FrameSent).with_value(49);
        sent.id = 7;
        assert_eq!(event_detail(&sent, &names, &[2]), "frame #49 → backup2");
        assert_eq!(
            event_detail(&sent, &names, &[1, 2]),
            "frame #49 → backup1, backup2"
        );
        let line = event_line(&sent, &names, &[2], 8);
        assert!(line.starts_with("#7 "), "{line}");
        assert!(
            line.contains("0.001000 ms  primary") && line.ends_with("frame #49 → backup2"),
            "{line}"
        );
        let hostile = EventRow::new(0, 1, 1, EventKind::Console).with_text("a\u{1b}[2Jb\n");
        assert_eq!(event_detail(&hostile, &names, &[]), "a·[2Jb");
        assert_eq!(span(1_500_000), "1.50 ms");
    }
}
