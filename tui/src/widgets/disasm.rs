//! Disassembly around RIP (Intel syntax), with `function+offset` labels and breakpoints.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{dim, fit, pane};
use crate::state::AppState;

/// The disassembly view.
pub struct DisasmView<'a> {
    /// What to draw.
    pub state: &'a AppState,
    /// Why the source is not shown instead, if it was asked for.
    pub note: Option<String>,
}

impl Widget for DisasmView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let snap = &self.state.snapshot;
        let here = snap.disasm.iter().find(|l| l.current);
        let title = match here {
            Some(l) if !l.label.is_empty() => format!(" Disassembly {} ", l.label),
            Some(l) => format!(" Disassembly {:#x} ", l.addr),
            None => " Disassembly ".to_string(),
        };
        let title_w = title.chars().count();
        let hint = match &self.note {
            Some(why) => format!(" {why} "),
            None => " s: source ".to_string(),
        };
        let block = pane(title).title(
            Line::styled(
                fit(&hint, (area.width as usize).saturating_sub(title_w + 4)),
                dim(),
            )
            .right_aligned(),
        );
        let inner = block.inner(area);
        block.render(area, buf);
        if snap.disasm.is_empty() || inner.height == 0 {
            return;
        }
        let h = inner.height as usize;
        let cur = snap.disasm.iter().position(|l| l.current).unwrap_or(0);
        // A third of the view before RIP, the rest after.
        let first = cur.saturating_sub(h / 3).min(snap.disasm.len().saturating_sub(h));
        let shown = &snap.disasm[first..(first + h).min(snap.disasm.len())];
        let with_addr = inner.width >= 64;
        // Narrow: a label is written in full where its function starts, and
        // as `+0x1f` on the lines after, in the same function.
        let labels: Vec<String> = if inner.width >= 56 {
            shown.iter().map(|l| l.label.clone()).collect()
        } else {
            let mut prev = "";
            shown
                .iter()
                .map(|l| {
                    let (func, off) = l.label.split_once('+').unwrap_or((&l.label, ""));
                    let same = func == prev && !off.is_empty();
                    prev = func;
                    if same {
                        format!("+{off}")
                    } else {
                        l.label.clone()
                    }
                })
                .collect()
        };
        let label_w = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .min(inner.width as usize / 3);
        let lines: Vec<Line> = shown
            .iter()
            .zip(&labels)
            .map(|(l, label)| {
                let mut spans = vec![
                    if l.breakpoint {
                        Span::styled("●", Style::new().fg(Color::LightRed))
                    } else {
                        Span::raw(" ")
                    },
                    if l.current {
                        Span::styled(
                            "▶ ",
                            Style::new().fg(Color::LightGreen).add_modifier(Modifier::BOLD),
                        )
                    } else {
                        Span::raw("  ")
                    },
                ];
                if with_addr {
                    spans.push(Span::styled(format!("{:08x} ", l.addr), dim()));
                }
                if label_w > 0 {
                    spans.push(Span::styled(
                        format!("{:<label_w$}  ", fit(label, label_w)),
                        Style::new().fg(Color::Cyan),
                    ));
                }
                let text_style = if l.current {
                    Style::new().fg(Color::LightGreen).add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                };
                spans.push(Span::styled(l.text.clone(), text_style));
                Line::from(spans)
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }
}
