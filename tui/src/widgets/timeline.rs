//! The timeline: one lane per VM along virtual time. Frames are drawn from
//! their ends: `▲` on the sender's lane, `▼` on the receiver's, both in the
//! sender's colour, `✕` where a lost frame would have arrived; several in
//! one column become a count. With room between lanes, a frame's path runs
//! through the spacer rows only (never over another lane) and ends in an
//! arrowhead next to the receiver, so direction and endpoints read at any
//! zoom. Faults are bands on the lanes they affect; interrupts are hidden
//! unless asked for (`i`); the bottom border is the legend. Opened beside
//! another trace (`--beside`), `≠` marks where each VM first differs from
//! it and `⋔` on the axis the fork point.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::{dim, fit, pane, vm_color};
use crate::format;
use crate::state::{AppState, BandKind, MarkKind};

/// The timeline view.
pub struct TimelineView<'a> {
    /// What to draw.
    pub state: &'a AppState,
    /// Whether lanes have a spacer row between them for the frames' paths.
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
        MarkKind::Call => Style::new().fg(Color::LightGreen).add_modifier(Modifier::BOLD),
        MarkKind::Exit => Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD),
        MarkKind::Fault => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        MarkKind::Bookmark => Style::new().fg(Color::LightYellow).add_modifier(Modifier::BOLD),
    }
}

/// The style of `≠`, where a VM's run first differs from the other trace's.
fn divergence_style() -> Style {
    Style::new()
        .fg(Color::Black)
        .bg(Color::LightMagenta)
        .add_modifier(Modifier::BOLD)
}

/// The style of `⋔`, the fork point on the axis.
fn fork_point_style() -> Style {
    Style::new().fg(Color::LightMagenta).add_modifier(Modifier::BOLD)
}

fn band_bg(kind: BandKind) -> Color {
    match kind {
        BandKind::Partition => Color::Rgb(110, 30, 30),
        BandKind::Drop => Color::Rgb(100, 30, 80),
        BandKind::Delay => Color::Rgb(100, 80, 20),
    }
}

/// `2`..`9`, then `+`: how many frames share a cell.
fn count_glyph(n: usize) -> char {
    match n {
        0 | 1 => ' ',
        2..=9 => char::from(b'0' + n as u8),
        _ => '+',
    }
}

/// One frame end in a cell: how many, and the colour of the last sender.
#[derive(Clone, Copy, Default)]
struct Ends {
    sent: usize,
    recv: usize,
    lost: usize,
    color: Option<Color>,
    selected: bool,
}

/// The legend, as many entries as fit in `width`.
fn legend(width: usize, irq: bool, calls: bool, compare: bool, bands: &[BandKind]) -> Line<'static> {
    let mut entries: Vec<(String, Style, &'static str)> = vec![
        ("▲".into(), Style::new().fg(Color::Cyan), "sent"),
        ("▼".into(), Style::new().fg(Color::Cyan), "recv (sender's colour)"),
        ("✕".into(), Style::new().fg(Color::Red), "lost"),
        ("2".into(), Style::new().fg(Color::Cyan), "count"),
        (
            "◆".into(),
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            "marker",
        ),
        ("≡".into(), Style::new().fg(Color::White), "console"),
        ("■".into(), mark_style(MarkKind::Exit, 0), "exit"),
        ("★".into(), mark_style(MarkKind::Bookmark, 0), "bookmark"),
    ];
    for b in bands {
        entries.insert(3, ("▒".into(), Style::new().fg(band_bg(*b)), b.name()));
    }
    if calls {
        // Before the others: what the user just asked for.
        entries.insert(0, ("ƒ".into(), mark_style(MarkKind::Call, 0), "call"));
    }
    if compare {
        // First: what the screen was opened to show.
        entries.insert(0, ("⋔".into(), fork_point_style(), "fork"));
        entries.insert(0, ("≠".into(), divergence_style(), "differs"));
    }
    if irq {
        entries.push(("·".into(), dim(), "irq"));
    }
    let mut spans = Vec::new();
    let mut used = 0;
    for (glyph, style, name) in entries {
        let len = glyph.chars().count() + name.chars().count() + 2;
        if used + len + 10 > width {
            break;
        }
        spans.push(Span::styled(format!(" {glyph}"), style));
        spans.push(Span::styled(format!(" {name}"), dim()));
        used += len;
    }
    let irq_hint = if irq { " i: hide irq " } else { " i: irq " };
    if used + irq_hint.len() + 4 <= width {
        spans.push(Span::styled(irq_hint, dim()));
    } else {
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
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
        let mut band_kinds: Vec<BandKind> = Vec::new();
        for b in tl.bands.iter().filter(|b| b.from < end && b.to > start) {
            if !band_kinds.contains(&b.kind) {
                band_kinds.push(b.kind);
            }
        }
        let cursor_title = Line::from(Span::styled(
            format!(" cursor {} ", format::vtime(cursor)),
            Style::new().fg(Color::LightGreen),
        ));
        let block = pane(title).title(cursor_title.right_aligned()).title_bottom(
            legend(
                area.width as usize,
                tl.show_interrupts,
                tl.marks.iter().any(|m| m.kind == MarkKind::Call),
                st.compare.is_some(),
                &band_kinds,
            )
            .right_aligned(),
        );
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
        // Fractional column, for paths whose ends are outside the window.
        let colf = |t: u64| -> f64 { (t as f64 - start as f64) * w as f64 / span as f64 };
        let time_of = |c: u64| start + (c as u128 * span as u128 / w as u128) as u64;

        // Lane labels, base lines (while the VM was recorded), fault bands.
        for (vm, info) in st.vms.iter().enumerate() {
            let y = row_of(vm);
            let mut style = Style::new().fg(vm_color(vm));
            if vm == st.snapshot.focus {
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
                let t = time_of(c);
                let next = time_of(c + 1);
                if t <= info.end_vtime {
                    buf.set_string(
                        plot_x + c as u16,
                        y,
                        "─",
                        Style::new().fg(vm_color(vm)).add_modifier(Modifier::DIM),
                    );
                }
                if let Some(b) = tl.bands.iter().find(|b| b.vm == vm && b.from < next && b.to > t) {
                    buf[(plot_x + c as u16, y)].set_bg(band_bg(b.kind));
                }
            }
        }

        // Frame paths in the spacer rows, an arrowhead next to the receiver.
        if self.gaps {
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
                let down = dst > src;
                let last_gap = if down { row_of(dst) - 1 } else { row_of(dst) + 1 };
                let (lo, hi) = (row_of(src.min(dst)), row_of(src.max(dst)));
                for y in lo + 1..hi {
                    if (y - inner.y) % step_rows == 0 {
                        continue; // another lane: the path passes under it
                    }
                    let c = c1 + (c2 - c1) * (y as f64 - y1) / (y2 - y1);
                    if c < 0.0 || c >= w as f64 {
                        continue;
                    }
                    let x = plot_x + c as u16;
                    let cell = buf[(x, y)].symbol().to_string();
                    // The selected frame wins a cell; then arrowheads.
                    if !selected && (cell == "▼" || cell == "▲") && y != last_gap {
                        continue;
                    }
                    let ch = if y == last_gap {
                        if down {
                            "▼"
                        } else {
                            "▲"
                        }
                    } else if c1.floor() == c2.floor() {
                        "│"
                    } else if (y2 > y1) == (c2 > c1) {
                        "╲"
                    } else {
                        "╱"
                    };
                    buf.set_string(x, y, ch, style);
                }
            }
        }

        // Frame ends on the lanes, counted per cell.
        let cols = w as usize;
        let mut ends = vec![Ends::default(); n * cols];
        for link in &tl.links {
            let selected = tl.selected_frame == Some(link.id);
            if let (Some(c), true) = (col(link.sent), link.src < n) {
                let e = &mut ends[link.src * cols + c as usize];
                e.sent += 1;
                e.color = Some(vm_color(link.src));
                e.selected |= selected;
            }
            if let (Some(c), true) = (col(link.recv), link.dst < n) {
                let e = &mut ends[link.dst * cols + c as usize];
                if link.lost {
                    e.lost += 1;
                } else {
                    e.recv += 1;
                    e.color = Some(vm_color(link.src));
                }
                e.selected |= selected;
            }
        }
        // Other marks: the most telling kind wins a cell.
        let mut grid: Vec<Option<MarkKind>> = vec![None; n * cols];
        for m in &tl.marks {
            if matches!(m.kind, MarkKind::FrameSent | MarkKind::FrameRecv) {
                continue;
            }
            if let (Some(c), true) = (col(m.vtime), m.vm < n) {
                let cell = &mut grid[m.vm * cols + c as usize];
                if cell.is_none_or(|k| m.kind > k) {
                    *cell = Some(m.kind);
                }
            }
        }
        for vm in 0..n {
            for c in 0..cols {
                let x = plot_x + c as u16;
                let y = row_of(vm);
                let e = ends[vm * cols + c];
                let mark = grid[vm * cols + c];
                // Markers, exits and bookmarks outrank frames; frames outrank console and irq.
                let frames = e.sent + e.recv + e.lost;
                let mark_first = mark.is_some_and(|k| k >= MarkKind::Marker);
                if frames > 0 && !mark_first {
                    let (glyph, color) = if frames > 1 {
                        (count_glyph(frames), e.color.unwrap_or(Color::Red))
                    } else if e.lost > 0 {
                        ('✕', Color::Red)
                    } else if e.sent > 0 {
                        ('▲', e.color.unwrap_or(Color::White))
                    } else {
                        ('▼', e.color.unwrap_or(Color::White))
                    };
                    let mut s = Style::new().fg(color);
                    if e.selected {
                        s = s
                            .fg(Color::White)
                            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
                    }
                    buf[(x, y)].set_char(glyph).set_style(s);
                } else if let Some(kind) = mark {
                    buf[(x, y)].set_char(kind.glyph()).set_style(mark_style(kind, vm));
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

        // Where each VM first differs from the trace this one is beside (over
        // the cursor's column: the cursor lands there after `D`).
        if let Some(cmp) = &st.compare {
            for vm in 0..n {
                if let Some(c) = cmp.divergence(vm).and_then(|d| col(d.vtime_ns)) {
                    buf[(plot_x + c, row_of(vm))]
                        .set_char('≠')
                        .set_style(divergence_style());
                }
            }
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
        // The fork point, over the axis's labels.
        if let Some(c) = st.compare.as_ref().and_then(|cmp| col(cmp.from_ns)) {
            buf.set_string(plot_x + c, axis_y, "⋔", fork_point_style());
        }
    }
}
