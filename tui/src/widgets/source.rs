//! The code pane: the C source around the focus VM's current line, the
//! same with each line's instructions (mixed), or the disassembly alone.
//! Where there is no source (assembly, an image without `-g`) it shows
//! the disassembly and says why.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::disasm::DisasmView;
use super::{dim, fit, pane};
use crate::state::{AppState, CodeView};
use vmrr_debugger::describe::printable;

/// The code pane.
pub struct CodePane<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

/// The current line's style.
fn current() -> Style {
    Style::new()
        .fg(Color::LightGreen)
        .bg(Color::Rgb(30, 50, 30))
        .add_modifier(Modifier::BOLD)
}

/// The first of `h` rows to show so that row `cur` of `len` is a third
/// from the top.
fn window(cur: usize, len: usize, h: usize) -> usize {
    cur.saturating_sub(h / 3).min(len.saturating_sub(h))
}

/// The title's function: `kv_apply`, or `on_write ⊂ backup` when inlined.
fn function_title(state: &AppState) -> String {
    let stack = &state.snapshot.stack;
    match stack.first() {
        Some(f) if f.inlined => {
            let outer = stack
                .iter()
                .find(|s| !s.inlined)
                .map(|s| s.name.as_str())
                .unwrap_or("?");
            format!("{} (inlined in {outer})", printable(&f.name))
        }
        Some(f) => printable(&f.name),
        None => String::new(),
    }
}

impl Widget for CodePane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let snap = &st.snapshot;
        let source = snap
            .source
            .as_ref()
            .filter(|s| s.error.is_none() && !s.lines.is_empty());
        let view = match (st.code_view, source) {
            (CodeView::Disassembly, _) | (_, None) => CodeView::Disassembly,
            (v, Some(_)) => v,
        };
        if view == CodeView::Disassembly {
            let why = match (&snap.source, st.code_view) {
                (_, CodeView::Disassembly) => None,
                (Some(s), _) => s.error.clone(),
                (None, _) if snap.regs.is_some() => Some("no source line here".to_string()),
                (None, _) => None,
            };
            DisasmView { state: st, note: why }.render(area, buf);
            return;
        }
        let Some(src) = source else {
            return;
        };
        let hint = if view == CodeView::Source {
            " s: mixed "
        } else {
            " s: disassembly "
        };
        let title = Line::from(vec![
            Span::raw(" Source "),
            Span::styled(
                format!("{}:{} ", printable(&src.file_name), src.current),
                Style::new().fg(Color::Gray).remove_modifier(Modifier::BOLD),
            ),
            Span::styled(
                format!("{} ", function_title(st)),
                Style::new().fg(Color::Cyan).remove_modifier(Modifier::BOLD),
            ),
        ]);
        let title_w: usize = title.spans.iter().map(|s| s.content.chars().count()).sum();
        let mut block = pane(title);
        // The key hint only where it does not cut the title.
        if title_w + hint.len() + 4 <= area.width as usize {
            block = block.title(Line::styled(hint, dim()).right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);
        let h = inner.height as usize;
        let w = inner.width as usize;
        if h == 0 || w < 8 {
            return;
        }
        let num_w = src.lines.len().to_string().len().max(3);
        let source_line = |n: u32, text: &str, is_current: bool| -> Line<'static> {
            let bp = src.breakpoints.contains(&n);
            let text_w = w.saturating_sub(num_w + 3);
            let mut spans = vec![
                if bp {
                    Span::styled("●", Style::new().fg(Color::LightRed))
                } else {
                    Span::raw(" ")
                },
                if is_current {
                    Span::styled("▶", current())
                } else {
                    Span::raw(" ")
                },
                Span::styled(format!("{n:>num_w$} "), dim()),
                Span::raw(fit(text, text_w)),
            ];
            if is_current {
                spans[3].style = current();
                // The whole row, so the mark reads at a glance.
                let pad = text_w.saturating_sub(text.chars().count());
                spans.push(Span::styled(" ".repeat(pad), current()));
            }
            Line::from(spans)
        };
        let (lines, cur): (Vec<Line>, usize) = match view {
            CodeView::Mixed => {
                let mut lines = Vec::new();
                let mut cur = 0;
                for d in &snap.disasm {
                    if let Some((_, n, text)) = &d.source {
                        lines.push(source_line(*n, text, false).style(Style::new().fg(Color::LightYellow)));
                    }
                    if d.current {
                        cur = lines.len();
                    }
                    let style = if d.current { current() } else { Style::new() };
                    lines.push(Line::from(vec![
                        Span::raw(if d.breakpoint { "●" } else { " " }),
                        Span::styled(if d.current { "▶" } else { " " }, style),
                        Span::styled(format!("{:>w$x} ", d.addr, w = num_w.max(6)), dim()),
                        Span::styled(fit(&d.text, w.saturating_sub(num_w.max(6) + 3)), style),
                    ]));
                }
                (lines, cur)
            }
            _ => {
                let lines = src
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, text)| source_line(i as u32 + 1, text, i as u32 + 1 == src.current))
                    .collect();
                (lines, (src.current as usize).saturating_sub(1))
            }
        };
        let first = window(cur, lines.len(), h);
        let shown: Vec<Line> = lines.into_iter().skip(first).take(h).collect();
        Paragraph::new(shown).render(inner, buf);
    }
}
