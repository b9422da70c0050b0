//! The focus VM's call stack and variables: a strip of the functions from
//! the innermost outwards (inlined ones marked), then the arguments and
//! locals of the innermost function and, room permitting, its callers'.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};
use vmrr_debugger::describe::printable;
use vmrr_debugger::dwarf::{FunctionScope, VariableKind};

use super::{dim, fit, focus_title, pane};
use crate::state::AppState;

/// The locals pane.
pub struct LocalsView<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

/// `kv_apply ← on_write⁺ ← backup⁺ ← kmain`: `⁺` marks a function inlined
/// into the next.
fn strip(stack: &[FunctionScope]) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, f) in stack.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" ← ", dim()));
        }
        let style = if i == 0 {
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Cyan)
        };
        spans.push(Span::styled(printable(&f.name), style));
        if f.inlined {
            spans.push(Span::styled("⁺", dim()));
        }
    }
    Line::from(spans)
}

impl Widget for LocalsView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let snap = &st.snapshot;
        let block = pane(focus_title("Locals", st));
        let inner = block.inner(area);
        block.render(area, buf);
        if snap.stack.is_empty() {
            let text = match (&snap.error, &snap.regs) {
                (Some(e), _) => e.clone(),
                (None, None) => "loading…".into(),
                (None, Some(_)) => "no debugging information here".into(),
            };
            Paragraph::new(Line::styled(text, dim()))
                .wrap(Wrap { trim: true })
                .render(inner, buf);
            return;
        }
        let w = inner.width as usize;
        let h = inner.height as usize;
        let mut lines: Vec<Line> = vec![strip(&snap.stack)];
        // The strip may wrap; count its rows.
        let strip_w: usize = lines[0].spans.iter().map(|s| s.content.chars().count()).sum();
        let strip_rows = strip_w.div_ceil(w.max(1)).max(1);
        let name_w = snap
            .stack
            .iter()
            .flat_map(|s| s.vars.iter())
            .map(|v| v.name.chars().count())
            .max()
            .unwrap_or(1)
            .min(12);
        let mut rows = strip_rows;
        for (i, scope) in snap.stack.iter().enumerate() {
            if rows >= h {
                break;
            }
            if i > 0 {
                let what = if scope.inlined { " (inlined)" } else { "" };
                let line = scope
                    .line
                    .as_ref()
                    .map(|l| format!(":{}", l.line))
                    .unwrap_or_default();
                lines.push(Line::styled(
                    fit(&format!("── {}{line}{what} ", printable(&scope.name)), w),
                    dim(),
                ));
                rows += 1;
            }
            for v in &scope.vars {
                if rows >= h {
                    break;
                }
                let value_style = if !v.available {
                    dim()
                } else if v.kind == VariableKind::Argument {
                    Style::new().fg(Color::LightYellow)
                } else {
                    Style::new().fg(Color::White)
                };
                let name = fit(&printable(&v.name), name_w);
                let value_w = w.saturating_sub(name_w + 3);
                let value = fit(&printable(&v.value), value_w);
                let used = name_w + 3 + value.chars().count();
                let mut spans = vec![
                    Span::styled(
                        format!("{name:>name_w$}", name = name),
                        Style::new().fg(Color::Gray),
                    ),
                    Span::styled(" = ", dim()),
                    Span::styled(value, value_style),
                ];
                // The type, when there is room for it.
                let ty = printable(&v.type_name);
                if used + 2 + ty.chars().count() <= w {
                    spans.push(Span::styled(
                        format!("{:>pad$}", ty, pad = w - used),
                        Style::new().fg(Color::DarkGray).add_modifier(Modifier::ITALIC),
                    ));
                }
                lines.push(Line::from(spans));
                rows += 1;
            }
        }
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .render(inner, buf);
    }
}
