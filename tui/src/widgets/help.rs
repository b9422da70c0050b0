//! The help overlay: every key, in groups, in one or two columns.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget};

use super::{dim, pane};
use crate::keys::{help_rows, Binding};

/// The help overlay.
pub struct HelpOverlay;

const KEYS_W: usize = 14;

impl Widget for HelpOverlay {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Clear.render(area, buf);
        let block = pane(" vmrr tui — keys ").title(Line::styled(" any key closes ", dim()).right_aligned());
        let inner = block.inner(area);
        block.render(area, buf);
        let h = inner.height as usize;
        let rows: Vec<&Binding> = help_rows().collect();
        let one_column = rows.len() <= h;
        let lines: Vec<Line> = rows
            .iter()
            .map(|k| {
                if k.action.is_none() {
                    Line::styled(
                        k.help,
                        Style::new().fg(Color::LightYellow).add_modifier(Modifier::BOLD),
                    )
                } else {
                    Line::from(vec![
                        Span::styled(
                            format!(" {:<KEYS_W$}", k.label),
                            Style::new().fg(Color::LightGreen),
                        ),
                        Span::raw(if one_column { k.help } else { k.short }),
                    ])
                }
            })
            .collect();
        if one_column {
            Paragraph::new(lines).render(inner, buf);
        } else {
            // Two columns, split at a group heading near the middle.
            let half = lines.len().div_ceil(2);
            let split = (half..lines.len())
                .find(|&i| rows[i].action.is_none())
                .filter(|&i| i <= h)
                .unwrap_or(half.min(h));
            let col_w = inner.width / 2;
            let left = Rect {
                width: col_w,
                ..inner
            };
            let right = Rect {
                x: inner.x + col_w,
                width: inner.width - col_w,
                ..inner
            };
            let mut lines = lines;
            let rest = lines.split_off(split);
            Paragraph::new(lines).render(left, buf);
            Paragraph::new(rest).render(right, buf);
        }
    }
}
