//! The bookmarks list.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::events::scroll_offset;
use super::{dim, fit, pane, vm_color};
use crate::format;
use crate::state::AppState;

/// The bookmarks list.
pub struct BookmarksView<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

impl Widget for BookmarksView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let bm = &st.bookmarks;
        let block = pane(" Bookmarks ")
            .title(Line::styled(" Enter go · r rename · d delete · B events ", dim()).right_aligned());
        let inner = block.inner(area);
        block.render(area, buf);
        let h = inner.height as usize;
        let w = inner.width as usize;
        if bm.rows.is_empty() {
            Paragraph::new(Line::styled("(no bookmarks: m marks the cursor)", dim())).render(inner, buf);
            return;
        }
        let name_w = bm
            .rows
            .iter()
            .map(|b| b.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 20);
        let offset = scroll_offset(bm.selected, bm.rows.len(), h);
        let lines: Vec<Line> = bm
            .rows
            .iter()
            .enumerate()
            .skip(offset)
            .take(h)
            .map(|(i, b)| {
                let vm = b.vm as usize;
                let mut spans = vec![
                    Span::styled(
                        format!("★ {:<name_w$} ", fit(&b.name, name_w)),
                        Style::new().add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(st.vm_name(vm).to_string(), Style::new().fg(vm_color(vm))),
                    Span::raw(format!(" @ {}  ", b.icount)),
                    Span::styled(format::vtime(b.vtime_ns), dim()),
                ];
                if !b.note.is_empty() {
                    spans.push(Span::raw(format!("  {}", b.note)));
                }
                let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
                if used > w {
                    spans.truncate(3);
                }
                if bm.selected == Some(i) {
                    for s in &mut spans {
                        s.style = s.style.patch(super::selected());
                    }
                }
                Line::from(spans)
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }
}
