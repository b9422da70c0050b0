//! The events list: filtered by VM and kind, narrowed by the incremental
//! search; events after the cursor are dimmed, the selected one reversed.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};
use vmrr_index::EventKind;

use super::{dim, fit, pane, vm_color};
use crate::format;
use crate::state::{AppState, MarkKind, KIND_PRESETS};

/// The events list.
pub struct EventsView<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

/// First row to show so that `selected` sits in view (a third from the top when possible).
pub fn scroll_offset(selected: Option<usize>, len: usize, height: usize) -> usize {
    let sel = selected.unwrap_or(0);
    sel.saturating_sub(height / 3).min(len.saturating_sub(height))
}

impl Widget for EventsView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let ev = &st.events;
        let vm = match ev.vm_filter {
            Some(v) => st.vm_name(v).to_string(),
            None => "all".into(),
        };
        let mut title = vec![
            Span::raw(" Events "),
            Span::styled(
                format!("v:{vm} k:{} ", KIND_PRESETS[ev.preset].name),
                Style::new().fg(Color::Gray),
            ),
        ];
        if !ev.search.is_empty() {
            title.push(Span::styled(
                format!("/{} ", ev.search),
                Style::new().fg(Color::LightYellow),
            ));
        }
        let count = match ev.selected {
            Some(s) => format!(" {}/{} ", s + 1, ev.visible.len()),
            None => format!(" {} ", ev.visible.len()),
        };
        let block = pane(Line::from(title)).title(Line::styled(count, dim()).right_aligned());
        let inner = block.inner(area);
        block.render(area, buf);
        let h = inner.height as usize;
        let w = inner.width as usize;
        let name_w = st
            .vms
            .iter()
            .map(|v| v.name.chars().count())
            .max()
            .unwrap_or(4)
            .min(10);
        let offset = scroll_offset(ev.selected, ev.visible.len(), h);
        let wide = w >= 60;
        let lines: Vec<Line> = ev
            .visible
            .iter()
            .enumerate()
            .skip(offset)
            .take(h)
            .filter_map(|(row, &i)| {
                let l = ev.lines.get(i)?;
                let e = &l.event;
                let past = e.happened_at(st.snapshot.cursor);
                let selected = ev.selected == Some(row);
                let base = if past { Style::new() } else { dim() };
                let time = format!("{:>11} ", format::vtime_column(e.vtime_ns));
                let name = fit(st.vm_name(e.vm as usize), name_w);
                let kind_style = match e.kind {
                    EventKind::Marker => base.add_modifier(Modifier::BOLD),
                    EventKind::Fault | EventKind::Exit | EventKind::Stop => base.fg(Color::LightRed),
                    _ => base,
                };
                let vm_style = if past {
                    Style::new().fg(vm_color(e.vm as usize))
                } else {
                    dim()
                };
                // A narrow list drops the icount and shows the kind as the
                // timeline's glyph, so the detail (what the event is about)
                // keeps its room.
                let mut spans = vec![
                    Span::styled(time, base),
                    Span::styled(format!("{name:<name_w$} "), vm_style),
                ];
                if wide {
                    spans.push(Span::styled(
                        format!("{:>7} ", e.icount),
                        base.add_modifier(Modifier::DIM),
                    ));
                    spans.push(Span::styled(format!("{:<7} ", format::kind(e.kind)), kind_style));
                } else {
                    let glyph = MarkKind::of(e.kind).map(|k| k.glyph()).unwrap_or(' ');
                    spans.push(Span::styled(format!("{glyph} "), kind_style));
                }
                let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
                spans.push(Span::styled(fit(&l.detail, w.saturating_sub(used)), base));
                if selected {
                    for s in &mut spans {
                        s.style = s.style.patch(super::selected());
                    }
                }
                Some(Line::from(spans))
            })
            .collect();
        if lines.is_empty() {
            let text = if ev.search.is_empty() {
                "(no events of these kinds)".to_string()
            } else {
                format!("(nothing matches '{}')", ev.search)
            };
            Paragraph::new(Line::styled(text, dim())).render(inner, buf);
        } else {
            Paragraph::new(lines).render(inner, buf);
        }
    }
}
