//! The analyses' lists in the lower left pane: every call of a function
//! ([`CallsList`]) and the origin chain of a value ([`OriginList`]).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::events::scroll_offset;
use super::{dim, fit, pane, selected, vm_color};
use crate::format;
use crate::state::{AppState, CallLine};

/// Every call of the function asked for with `a`.
pub struct CallsList<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

/// Paints a row's spans as the selected row.
fn highlight(spans: &mut [Span<'_>]) {
    for s in spans {
        s.style = s.style.patch(selected());
    }
}

impl Widget for CallsList<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let Some(calls) = &st.calls else {
            return;
        };
        let count = match calls.selected {
            Some(s) => format!(" {}/{} ", s + 1, calls.rows.len()),
            None => format!(" {} ", calls.rows.len()),
        };
        let title = Line::from(vec![
            Span::raw(" Calls "),
            Span::styled(
                format!("{} ", calls.function),
                Style::new().fg(Color::LightYellow),
            ),
            Span::styled(count, dim()),
        ]);
        let mut block = pane(title);
        // The keys only where they leave the title the function's name.
        if area.width >= 64 {
            block = block.title(Line::styled(" Enter go · a again · Esc events ", dim()).right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);
        let w = inner.width as usize;
        let mut lines = vec![Line::styled(fit(&calls.signature, w), dim())];
        if calls.rows.is_empty() {
            lines.push(Line::styled("(no calls in this recording)", dim()));
            Paragraph::new(lines).render(inner, buf);
            return;
        }
        let h = (inner.height as usize).saturating_sub(1);
        let name_w = calls
            .rows
            .iter()
            .map(|c| st.vm_name(c.vm).chars().count())
            .max()
            .unwrap_or(4)
            .min(12);
        let args_w = calls
            .rows
            .iter()
            .map(|c| c.args.chars().count())
            .max()
            .unwrap_or(0)
            .min(48);
        let ret_of = |c: &CallLine| {
            if c.ret == "-" {
                "  never returned".to_string()
            } else if c.value.is_empty() || c.value == "void" {
                format!("  → {}", c.ret)
            } else {
                format!("  → {} = {}", c.ret, c.value)
            }
        };
        let ret_w = calls
            .rows
            .iter()
            .map(|c| ret_of(c).chars().count())
            .max()
            .unwrap_or(0);
        // The arguments are what the list is for: the entry's time and the
        // return make room for them on a narrow pane.
        let icount_w = 8;
        let time_w = 12;
        let fixed = name_w + icount_w + 2;
        let show_ret = fixed + args_w + ret_w <= w;
        let show_time = show_ret && fixed + time_w + args_w + ret_w <= w;
        let offset = scroll_offset(calls.selected, calls.rows.len(), h);
        for (i, c) in calls.rows.iter().enumerate().skip(offset).take(h) {
            let mut head = format!(" {:>7} ", c.entry.icount);
            if show_time {
                head.push_str(&format!("{:>11} ", format::vtime_column(c.entry.vtime_ns)));
            }
            head.push(' ');
            let room = w.saturating_sub(name_w + head.chars().count());
            let mut spans = vec![
                Span::styled(
                    format!("{:<name_w$}", fit(st.vm_name(c.vm), name_w)),
                    Style::new().fg(vm_color(c.vm)),
                ),
                Span::styled(head, dim()),
                Span::raw(format!("{:<args_w$}", fit(&c.args, room.min(args_w).max(1)))),
            ];
            if show_ret {
                spans.push(Span::styled(ret_of(c), Style::new().fg(Color::Gray)));
            }
            if calls.selected == Some(i) {
                highlight(&mut spans);
            }
            lines.push(Line::from(spans));
        }
        Paragraph::new(lines).render(inner, buf);
    }
}

/// The origin chain of the value asked about with `Y`, newest link first.
pub struct OriginList<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

impl Widget for OriginList<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Some(o) = &self.state.origin else {
            return;
        };
        let count = match o.selected {
            Some(s) => format!(" {}/{} ", s + 1, o.links.len()),
            None => format!(" {} ", o.links.len()),
        };
        let mut block = pane(Line::from(vec![
            Span::raw(" Origin "),
            Span::styled(count, dim()),
        ]));
        if area.width >= 48 {
            block = block.title(Line::styled(" Enter go · Esc events ", dim()).right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);
        let w = inner.width as usize;
        // The question, then two lines a link, then how the chain ends.
        let mut lines = vec![Line::styled(fit(&o.header, w), dim())];
        let h = (inner.height as usize).saturating_sub(2) / 2;
        let offset = scroll_offset(o.selected, o.links.len(), h);
        for (i, l) in o.links.iter().enumerate().skip(offset).take(h) {
            let vm = l.pos.vm as usize;
            let head = format!("{:>2}. ", i + 1);
            let time = format!(" {}  ", format::vtime_column(l.pos.vtime_ns));
            let used = head.chars().count() + l.place.chars().count() + time.chars().count();
            let at = fit(&l.at, w.saturating_sub(used));
            let mut first = vec![
                Span::raw(head),
                Span::styled(l.place.clone(), Style::new().fg(vm_color(vm))),
                Span::styled(time, dim()),
                Span::styled(at, Style::new().add_modifier(Modifier::BOLD)),
            ];
            let mut second = vec![Span::styled(
                format!("    {}", fit(&l.description, w.saturating_sub(4))),
                Style::new().fg(Color::Gray),
            )];
            if o.selected == Some(i) {
                highlight(&mut first);
                highlight(&mut second);
            }
            lines.push(Line::from(first));
            lines.push(Line::from(second));
        }
        let mut end = format!("end: {}", o.end);
        if o.hidden > 0 {
            end.push_str(&format!(
                " ({} through registers or the stack not shown)",
                o.hidden
            ));
        }
        lines.push(Line::styled(fit(&end, w), Style::new().fg(Color::LightYellow)));
        Paragraph::new(lines).render(inner, buf);
    }
}
