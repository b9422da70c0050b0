//! The focus VM's console output up to the cursor.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{dim, fit, pane, vm_color};
use crate::state::AppState;

/// The console view.
pub struct ConsoleView<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

impl Widget for ConsoleView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let vm = st.snapshot.focus;
        let title = Line::from(vec![
            Span::raw(" Console "),
            Span::styled(st.vm_name(vm).to_string(), Style::new().fg(vm_color(vm))),
            Span::styled(
                if area.width >= 40 {
                    " up to the cursor "
                } else {
                    " "
                },
                dim(),
            ),
        ]);
        let block = pane(title);
        let inner = block.inner(area);
        block.render(area, buf);
        let h = inner.height as usize;
        let w = inner.width as usize;
        let skip = st.console.len().saturating_sub(h);
        let last = st.console.len().saturating_sub(1);
        let lines: Vec<Line> = st.console[skip..]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if skip + i == last && st.console_partial {
                    Line::from(vec![
                        Span::raw(fit(l, w.saturating_sub(1))),
                        Span::styled("▌", Style::new().fg(Color::LightGreen)),
                    ])
                } else {
                    Line::from(fit(l, w))
                }
            })
            .collect();
        if lines.is_empty() {
            Paragraph::new(Line::styled("(no output yet)", dim())).render(inner, buf);
        } else {
            Paragraph::new(lines).render(inner, buf);
        }
    }
}
