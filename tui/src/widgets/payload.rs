//! The selected frame's payload: decoded fields where the format is known,
//! then every byte in hex with its ASCII.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::{dim, pane};
use crate::payload::{ascii, decode_with};
use crate::state::AppState;

/// The payload pane.
pub struct PayloadPane<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

impl Widget for PayloadPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some(p) = &self.state.payload else {
            let block = pane(" Payload ");
            let inner = block.inner(area);
            block.render(area, buf);
            Paragraph::new(Line::styled("select a frame event (k: frames)", dim()))
                .wrap(Wrap { trim: true })
                .render(inner, buf);
            return;
        };
        let block = pane(format!(" Payload #{} ", p.frame));
        let inner = block.inner(area);
        block.render(area, buf);
        let mut lines: Vec<Line> = vec![Line::from(vec![
            Span::styled(p.route.clone(), Style::new().fg(Color::White)),
            Span::styled(format!(", {} bytes", p.bytes.len()), dim()),
        ])];
        if let Some(why) = &p.missing {
            lines.push(Line::styled(why.clone(), dim()));
        }
        // Fields: as many per row as fit.
        let w = inner.width as usize;
        let mut row: Vec<Span> = Vec::new();
        let mut used = 0;
        for f in decode_with(&p.bytes, p.isns) {
            let len = f.name.chars().count() + f.value.chars().count() + 2;
            if used > 0 && used + len > w {
                lines.push(Line::from(std::mem::take(&mut row)));
                used = 0;
            }
            row.push(Span::styled(format!("{} ", f.name), dim()));
            row.push(Span::styled(f.value, Style::new().fg(Color::LightCyan)));
            row.push(Span::raw(" "));
            used += len;
        }
        if !row.is_empty() {
            lines.push(Line::from(row));
        }
        // Hex: 16 bytes a row on a wide pane, 8 on a narrow one.
        let per_row = if w >= 4 + 16 * 3 + 16 { 16 } else { 8 };
        for (i, chunk) in p.bytes.chunks(per_row).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            lines.push(Line::from(vec![
                Span::styled(format!("{:03x} ", i * per_row), dim()),
                Span::raw(format!("{:<width$} ", hex.join(" "), width = per_row * 3 - 1)),
                Span::styled(ascii(chunk), Style::new().fg(Color::Gray)),
            ]));
        }
        Paragraph::new(lines).render(inner, buf);
    }
}
