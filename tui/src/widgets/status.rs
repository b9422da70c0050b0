//! The status bar: the prompt being typed, the progress of a long
//! operation, or the last message; the cursor's position on the right.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{dim, fit, vm_color};
use crate::format;
use crate::state::{AppState, ListPane, SidePane};
use vmrr_index::EventKind;

/// The status bar.
pub struct StatusBar<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

const HINTS: &str = "? keys  ←→ step  n/p event  f follow  c/C continue  g go to  b break  q quit";

/// The next move this screen suggests: going to where the focus VM differs
/// from the trace this one is opened beside, following the selected frame,
/// continuing to the breakpoints, the general keys otherwise.
pub fn hint(state: &AppState) -> String {
    match state.list_pane {
        ListPane::Calls => {
            return "Enter: go to the selected call's entry  a: another function  Esc: events  ? keys".into()
        }
        ListPane::Origin => {
            return "Enter: go to the selected link  Y: another value  Esc: events  ? keys".into()
        }
        ListPane::Events | ListPane::Bookmarks => {}
    }
    let ev = &state.events;
    let line = ev
        .selected
        .and_then(|s| ev.visible.get(s))
        .and_then(|&i| ev.lines.get(i));
    let mut parts: Vec<String> = Vec::new();
    if let Some(c) = &state.compare {
        let focus = state.snapshot.focus;
        parts.push(match c.divergence(focus) {
            Some(d) => format!(
                "D: to where {} differs from {} ({}, {})",
                state.vm_name(focus),
                c.other,
                d.what,
                format::vtime(d.vtime_ns)
            ),
            None => format!("{} runs as in {}", state.vm_name(focus), c.other),
        });
    }
    if let Some(l) = line.filter(|l| matches!(l.event.kind, EventKind::FrameSent | EventKind::FrameRecv)) {
        let id = l.event.value.unwrap_or(0);
        // The peers end the line (`frame #3 → b`, `TCP a → b [ACK] … (#3 → b)`):
        // after its last arrow.
        let peers = l
            .detail
            .rsplit_once(['→', '←'])
            .map(|(_, p)| p.trim().trim_end_matches(')'))
            .unwrap_or("");
        parts.push(match l.event.kind {
            EventKind::FrameSent if peers.contains(',') => format!("f: follow frame #{id} (to {peers})"),
            EventKind::FrameSent => format!("f: follow frame #{id} to {peers}"),
            _ => format!("f: back to frame #{id}'s send in {peers}"),
        });
        if state.side_pane != SidePane::Payload {
            parts.push("t: its payload".into());
        }
        if l.detail.starts_with("TCP ") {
            parts.push("R/O/A: its retransmission/first copy/ACK".into());
        }
    }
    if !state.breakpoints.is_empty() {
        parts.push("c/C: continue/reverse to a breakpoint".into());
    }
    if parts.is_empty() {
        HINTS.to_string()
    } else {
        parts.push("? keys".into());
        parts.join("  ")
    }
}

impl StatusBar<'_> {
    /// Where the terminal cursor goes while a prompt is open.
    pub fn cursor_position(state: &AppState, area: Rect) -> Option<Position> {
        let p = state.prompt.as_ref()?;
        let len = p.kind.question().chars().count() + p.input.chars().count();
        Some(Position::new(
            area.x + (len as u16).min(area.width.saturating_sub(1)),
            area.y,
        ))
    }

    fn right(state: &AppState) -> Vec<Span<'static>> {
        let snap = &state.snapshot;
        let mut spans = vec![
            Span::styled(
                state.vm_name(snap.focus).to_string(),
                Style::new().fg(vm_color(snap.focus)).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(" @ {} · {}", snap.icount, format::vtime(snap.vtime))),
        ];
        if !state.breakpoints.is_empty() {
            spans.push(Span::styled(
                format!(" · {} bp", state.breakpoints.len()),
                Style::new().fg(Color::LightRed),
            ));
        }
        if let Some(port) = state.gdb_port {
            spans.push(Span::styled(
                format!(" · gdb :{port}"),
                Style::new().fg(Color::LightBlue),
            ));
        }
        spans.push(Span::raw(" "));
        spans
    }
}

impl Widget for StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        // While a line is typed it has the whole bar: the position can wait.
        let right = if st.prompt.is_some() {
            Vec::new()
        } else {
            Self::right(st)
        };
        let right_w: usize = right.iter().map(|s| s.content.chars().count()).sum();
        let w = area.width as usize;
        let left_w = w.saturating_sub(right_w + 1);
        let left: Line = if let Some(p) = &st.prompt {
            Line::from(vec![
                Span::styled(p.kind.question(), Style::new().fg(Color::LightYellow)),
                Span::raw(p.input.clone()),
            ])
        } else if let Some(b) = &st.busy {
            let mut spans = vec![Span::styled(
                format!("» {} ", b.label),
                Style::new().fg(Color::LightYellow),
            )];
            if let Some(p) = b.progress {
                let cells = 20usize;
                let done = ((p * cells as f64) as usize).min(cells);
                spans.push(Span::styled("█".repeat(done), Style::new().fg(Color::LightGreen)));
                spans.push(Span::styled("░".repeat(cells - done), dim()));
                spans.push(Span::raw(format!(" {:>3.0}%", p * 100.0)));
            }
            spans.push(Span::styled("  Esc cancels", dim()));
            if b.queued > 0 {
                spans.push(Span::styled(format!(" (+{} queued)", b.queued), dim()));
            }
            Line::from(spans)
        } else if let Some(m) = &st.message {
            let style = if m.error {
                Style::new().fg(Color::LightRed)
            } else {
                Style::new().fg(Color::White)
            };
            Line::styled(fit(&m.text, left_w), style)
        } else {
            Line::styled(fit(&hint(st), left_w), Style::new().fg(Color::Gray))
        };
        let bar = Style::new().bg(Color::Rgb(30, 30, 46));
        buf.set_style(area, bar);
        Paragraph::new(left).render(
            Rect {
                width: left_w as u16,
                ..area
            },
            buf,
        );
        if right_w < w {
            let x = area.x + (w - right_w) as u16;
            Paragraph::new(Line::from(right)).render(
                Rect {
                    x,
                    width: right_w as u16,
                    ..area
                },
                buf,
            );
        }
    }
}
