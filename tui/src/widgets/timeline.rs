//! The timeline: one lane per VM along virtual time, a glyph per cell for
//! what happened there, frames as links from the sender's lane to the
//! receiver's, faults and bookmarks, and the cursor as a vertical line.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{dim, fit, pane, vm_color};
use crate::format;
use crate::state::{AppState, MarkKind};

/// The timeline view.
pub struct TimelineView<'a> {
    /// What to draw.
    pub state: &'a AppState,
    /// Whether lanes have a spacer row between them for the links.
    pub gaps: bool,
}

/// Axis tick spacings to choose from, in ns (1-2-5 steps).
fn tick_step(span: u64, cols: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            // A label every 14 columns or more.
            if s.saturating_mul(cols) / span.max(1) >= 14 || s >= span {
                return s.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn mark_style(kind: MarkKind, vm: usize) -> Style {
    match kind {
        MarkKind::Interrupt => dim(),
        MarkKind::Console => Style::new().fg(Color::White),
        MarkKind::FrameRecv | MarkKind::FrameSent => Style::new().fg(vm_color(vm)),
        MarkKind::Marker => Style::new().fg(vm_color(vm)).add_modifier(Modifier::BOLD),
        MarkKind::Exit => Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD),
        MarkKind::Fault => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        MarkKind::Bookmark => Style::new().fg(Color::LightYellow).add_modifier(Modifier::BOLD),
    }
}

impl Widget for TimelineView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let tl = &st.timeline;
        let span = tl.span.max(1);
        let start = tl.start;
        let end = start.saturating_add(span);
        let cursor = st.snapshot.cursor_vtime.max(st.snapshot.vtime);
        let title = Line::from(vec![
            Span::raw(" Timeline "),
            Span::styled(
                format!(
                    "{} – {} ({}) ",
                    format::vtime(start),
                    format::vtime(end),
                    format::span(span)
                ),
                Style::new().fg(Color::Gray).remove_modifier(Modifier::BOLD),
            ),
        ]);
        let mut legend = Vec::new();
        for k in [
            MarkKind::FrameSent,
            MarkKind::FrameRecv,
            MarkKind::Marker,
            MarkKind::Console,
            MarkKind::Interrupt,
            MarkKind::Fault,
            MarkKind::Bookmark,
        ] {
            legend.push(Span::styled(format!(" {}", k.glyph()), mark_style(k, 0)));
            legend.push(Span::styled(format!(" {}", k.name()), dim()));
        }
        legend.push(Span::raw(" "));
        let legend_w: usize = legend.iter().map(|s| s.content.chars().count()).sum();
        let cursor_title = Line::from(Span::styled(
            format!(" cursor {} ", format::vtime(cursor)),
            Style::new().fg(Color::LightGreen),
        ));
        let mut block = pane(title).title(cursor_title.right_aligned());
        if legend_w + 4 <= area.width as usize {
            block = block.title_bottom(Line::from(legend).right_aligned());
        }
        let inner = block.inner(area);
        block.render(area, buf);
        let n = st.vms.len();
        let step_rows: u16 = if self.gaps { 2 } else { 1 };
        if n == 0 || inner.width < 16 || inner.height < (n as u16 - 1) * step_rows + 2 {
            return;
        }
        let label_w = st
            .vms
            .iter()
            .map(|v| v.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 10) as u16
            + 2;
        let plot_x = inner.x + label_w;
        let w = (inner.width - label_w) as u64;
        let axis_y = inner.y + inner.height - 1;
        let row_of = |vm: usize| inner.y + vm as u16 * step_rows;
        let col = |t: u64| -> Option<u16> {
            (t >= start && t < end).then(|| ((t - start) as u128 * w as u128 / span as u128) as u16)
        };
        // Fractional column, for links whose ends are outside the window.
        let colf = |t: u64| -> f64 { (t as f64 - start as f64) * w as f64 / span as f64 };

        // Lane labels and base lines (drawn while the VM was recorded).
        for (vm, info) in st.vms.iter().enumerate() {
            let y = row_of(vm);
            let focus = vm == st.snapshot.focus;
            let mut style = Style::new().fg(vm_color(vm));
            if focus {
                style = Style::new()
                    .fg(Color::Black)
                    .bg(vm_color(vm))
                    .add_modifier(Modifier::BOLD);
            }
            let label = fit(&info.name, label_w as usize - 2);
            buf.set_string(
                inner.x,
                y,
                format!("{label:<width$}", width = label_w as usize - 2),
                style,
            );
            for c in 0..w {
                let t = start + (c as u128 * span as u128 / w as u128) as u64;
                if t <= info.end_vtime {
                    buf.set_string(
                        plot_x + c as u16,
                        y,
                        "─",
                        Style::new().fg(vm_color(vm)).add_modifier(Modifier::DIM),
                    );
                }
            }
        }

        // Links: in the spacer rows, a line from the send to the receipt.
        for link in &tl.links {
            let (src, dst) = (link.src, link.dst);
            if src >= n || dst >= n || src == dst {
                continue;
            }
            let (c1, c2) = (colf(link.sent), colf(link.recv));
            let (y1, y2) = (row_of(src) as f64, row_of(dst) as f64);
            let selected = tl.selected_frame == Some(link.id);
            let style = if selected {
                Style::new().fg(Color::White).add_modifier(Modifier::BOLD)
            } else if link.lost {
                Style::new().fg(Color::Red)
            } else {
                Style::new().fg(vm_color(src))
            };
            let (lo, hi) = (row_of(src.min(dst)), row_of(src.max(dst)));
            for y in lo + 1..hi {
                let frac = (y as f64 - y1) / (y2 - y1);
                let c = c1 + (c2 - c1) * frac;
                if c < 0.0 || c >= w as f64 {
                    continue;
                }
                let x = plot_x + c as u16;
                let is_lane = (y - inner.y) % step_rows == 0;
                let ch = if is_lane {
                    // Crossing another lane: only over its base line.
                    if buf[(x, y)].symbol() != "─" && buf[(x, y)].symbol() != " " {
                        continue;
                    }
                    "┼"
                } else if c1.floor() == c2.floor() {
                    "│"
                } else if (y2 > y1) == (c2 > c1) {
                    "╲"
                } else {
                    "╱"
                };
                buf.set_string(x, y, ch, style);
            }
            if link.lost {
                if let Some(c) = col(link.recv) {
                    buf.set_string(
                        plot_x + c,
                        row_of(dst),
                        "×",
                        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                    );
                }
            }
        }

        // Marks: the most telling kind wins a cell.
        let mut grid: Vec<Option<MarkKind>> = vec![None; n * w as usize];
        for m in &tl.marks {
            if let (Some(c), true) = (col(m.vtime), m.vm < n) {
                let cell = &mut grid[m.vm * w as usize + c as usize];
                if cell.is_none_or(|k| m.kind > k) {
                    *cell = Some(m.kind);
                }
            }
        }
        for vm in 0..n {
            for c in 0..w as usize {
                if let Some(kind) = grid[vm * w as usize + c] {
                    let mut s = mark_style(kind, vm);
                    let sel = tl.selected_frame.is_some()
                        && matches!(kind, MarkKind::FrameSent | MarkKind::FrameRecv)
                        && tl.links.iter().any(|l| {
                            Some(l.id) == tl.selected_frame
                                && ((l.src == vm && col(l.sent) == Some(c as u16))
                                    || (l.dst == vm && col(l.recv) == Some(c as u16)))
                        });
                    if sel {
                        s = s.fg(Color::White).add_modifier(Modifier::BOLD);
                    }
                    buf.set_string(plot_x + c as u16, row_of(vm), kind.glyph().to_string(), s);
                }
            }
        }

        // The cursor: a highlighted column through every lane.
        if let Some(c) = col(cursor) {
            let x = plot_x + c;
            for y in inner.y..axis_y {
                let cell = &mut buf[(x, y)];
                if cell.symbol() == " " {
                    cell.set_symbol("│");
                    cell.set_fg(Color::LightGreen);
                }
                cell.set_bg(Color::Rgb(40, 70, 40));
            }
            buf.set_string(
                x,
                axis_y,
                "▲",
                Style::new().fg(Color::LightGreen).add_modifier(Modifier::BOLD),
            );
        }

        // The axis: ticks at round times, labels where they fit.
        let step = tick_step(span, w);
        let mut t = start.div_ceil(step) * step;
        let mut free_from = 0u16;
        while t < end {
            if let Some(c) = col(t) {
                let label = format::axis_time(t, span);
                let len = label.chars().count() as u16 + 1;
                if c >= free_from && c as u64 + len as u64 <= w {
                    if buf[(plot_x + c, axis_y)].symbol() == " " {
                        buf.set_string(plot_x + c, axis_y, "╵", dim());
                    }
                    buf.set_string(plot_x + c + 1, axis_y, &label, dim());
                    free_from = c + len + 1;
                }
            }
            t = match t.checked_add(step) {
                Some(t) => t,
                None => break,
            };
        }
    }
}
