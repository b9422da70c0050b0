//! The one mapping between the engine's events and the index's rows. The
//! recorder writes rows with it; verification regenerates the rows of a
//! replayed slice with it and compares them with the recorded ones.

use vmrr_backend::{Event, EventKind as VmEvent};
use vmrr_index::{EventKind, EventRow, VmId};

/// Console bytes are stored in runs: a run ends at a newline, at this many
/// bytes, or at a checkpoint of its VM (so every slice starts a new run and
/// a replayed slice regroups its bytes exactly as the recording did).
pub const CONSOLE_RUN_BYTES: usize = 256;

/// Turns one VM's engine events into index rows, gathering console bytes
/// into runs.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    vm: VmId,
    /// The run being gathered: its first byte's icount and vtime, its bytes.
    console: Option<(u64, u64, Vec<u8>)>,
}

impl RowEncoder {
    /// An encoder for VM `vm`.
    pub fn new(vm: VmId) -> RowEncoder {
        RowEncoder { vm, console: None }
    }

    /// Adds `event` (with its frame id, for frames, when known) and appends
    /// the rows it completes to `out`.
    pub fn push(&mut self, event: &Event, frame: Option<u64>, out: &mut Vec<EventRow>) {
        let (icount, vtime) = (event.icount, event.vtime_ns);
        if let VmEvent::Console(b) = event.kind {
            let run = self.console.get_or_insert_with(|| (icount, vtime, Vec::new()));
            run.2.push(b);
            if b == b'\n' || run.2.len() >= CONSOLE_RUN_BYTES {
                out.extend(self.flush());
            }
            return;
        }
        let row = |kind| EventRow::new(self.vm, icount, vtime, kind);
        out.push(match &event.kind {
            VmEvent::Console(_) => return,
            VmEvent::Interrupt(v) => row(EventKind::Interrupt).with_value(u64::from(*v)),
            VmEvent::TscRead(v) => row(EventKind::Tsc).with_value(*v),
            VmEvent::RandomRead(v) => row(EventKind::Rand).with_value(*v),
            VmEvent::Marker { name, value } => row(EventKind::Marker)
                .with_text(name.clone())
                .with_value(u64::from(*value)),
            VmEvent::Halt => row(EventKind::Halt),
            VmEvent::Wake { idle_ns } => row(EventKind::Wake).with_value(*idle_ns),
            VmEvent::Exit(v) => row(EventKind::Exit).with_value(u64::from(*v)),
            VmEvent::FrameSent(_) => row(EventKind::FrameSent).with_value(frame.unwrap_or(u64::MAX)),
            // The bytes are the replay input; they stay with the event.
            VmEvent::FrameReceived(bytes) => row(EventKind::FrameRecv)
                .with_value(frame.unwrap_or(u64::MAX))
                .with_payload(bytes.clone()),
        });
    }

    /// Ends the console run being gathered, if any: its row.
    pub fn flush(&mut self) -> Option<EventRow> {
        let (icount, vtime, bytes) = self.console.take()?;
        let row = EventRow::new(self.vm, icount, vtime, EventKind::Console);
        Some(match String::from_utf8(bytes) {
            Ok(text) => row.with_text(text),
            Err(e) => {
                // Invalid UTF-8: readable text, and the exact bytes beside it.
                let bytes = e.into_bytes();
                row.with_text(String::from_utf8_lossy(&bytes).into_owned())
                    .with_payload(bytes)
            }
        })
    }
}

/// Whether rows of this kind come from the engine (replay regenerates them);
/// the others (checkpoint, fault, stop) are the recorder's own.
pub fn regenerable(kind: EventKind) -> bool {
    !matches!(kind, EventKind::Checkpoint | EventKind::Fault | EventKind::Stop)
}

/// Whether a recorded row and a replayed one say the same thing. Ids are
/// the index's, and a frame's id is the switch's, which a VM replaying
/// alone cannot know (verification checks frames against the frames table).
pub fn same(recorded: &EventRow, replayed: &EventRow) -> bool {
    let value = |r: &EventRow| match r.kind {
        EventKind::FrameSent | EventKind::FrameRecv => None,
        _ => r.value,
    };
    (recorded.vm, recorded.icount, recorded.vtime_ns, recorded.kind)
        == (replayed.vm, replayed.icount, replayed.vtime_ns, replayed.kind)
        && value(recorded) == value(replayed)
        && recorded.text == replayed.text
        && recorded.payload == replayed.payload
}

/// A row as a person reads it in a divergence report:
/// `marker apply = 4 at icount 24502`.
pub fn describe(row: &EventRow) -> String {
    let what = match row.kind {
        EventKind::Console => format!(
            "console {:?}",
            row.text.as_deref().unwrap_or_default().trim_end_matches('\n')
        ),
        EventKind::Marker => format!(
            "marker {} = {}",
            row.text.as_deref().unwrap_or("?"),
            row.value.unwrap_or(0)
        ),
        EventKind::FrameSent => "frame sent".into(),
        EventKind::FrameRecv => format!(
            "frame received ({} bytes)",
            row.payload.as_ref().map_or(0, Vec::len)
        ),
        kind => match row.value {
            Some(v) => format!("{kind} {v:#x}"),
            None => kind.to_string(),
        },
    };
    format!("{what} at icount {}", row.icount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(icount: u64, kind: VmEvent) -> Event {
        Event {
            icount,
            vtime_ns: icount * 10,
            kind,
        }
    }

    #[test]
    fn console_bytes_gather_into_runs() {
        let mut enc = RowEncoder::new(2);
        let mut rows = Vec::new();
        for (i, b) in b"hi\nyo".iter().enumerate() {
            enc.push(&ev(i as u64, VmEvent::Console(*b)), None, &mut rows);
        }
        enc.push(
            &ev(
                9,
                VmEvent::Marker {
                    name: "m".into(),
                    value: 7,
                },
            ),
            None,
            &mut rows,
        );
        rows.extend(enc.flush());
        let text: Vec<_> = rows.iter().map(|r| (r.kind, r.icount, r.text.clone())).collect();
        assert_eq!(
            text,
            vec![
                (EventKind::Console, 0, Some("hi\n".into())),
                (EventKind::Marker, 9, Some("m".into())),
                (EventKind::Console, 3, Some("yo".into())),
            ]
        );
        let mut bad = RowEncoder::new(0);
        let mut rows = Vec::new();
        bad.push(&ev(1, VmEvent::Console(0xff)), None, &mut rows);
        let row = bad.flush().expect("a run");
        assert_eq!(row.payload, Some(vec![0xff]));
        assert!(same(&row, &row.clone()));
        let mut other = row.clone();
        other.payload = Some(vec![0xfe]);
        assert!(!same(&row, &other));
        assert_eq!(describe(&row), "console \"\u{fffd}\" at icount 1");
    }
}
