//! The focus VM's registers; those changed by the last move are highlighted.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::{dim, focus_title, pane};
use vmrr_backend::regs::Gpr;

use crate::state::AppState;

/// Width of one register cell, `rflags 0000000000000246`, and the gap after it.
pub const CELL: u16 = 24;
/// The same on narrow screens: `rfl 0000000000000246`.
pub const NARROW_CELL: u16 = 21;

/// The registers view.
pub struct RegistersView<'a> {
    /// What to draw.
    pub state: &'a AppState,
    /// Short names (`rfl`), for narrow screens.
    pub narrow: bool,
}

/// The set flags of RFLAGS, by their usual names.
fn flags(v: u64) -> String {
    let names = [
        (0, "CF"),
        (2, "PF"),
        (4, "AF"),
        (6, "ZF"),
        (7, "SF"),
        (8, "TF"),
        (9, "IF"),
        (10, "DF"),
        (11, "OF"),
    ];
    names
        .iter()
        .filter(|(bit, _)| v & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Widget for RegistersView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let snap = &st.snapshot;
        let block = pane(focus_title("Registers", st));
        let inner = block.inner(area);
        block.render(area, buf);
        let Some(regs) = snap.regs else {
            let text = snap.error.clone().unwrap_or_else(|| "loading…".into());
            Paragraph::new(text).wrap(Wrap { trim: true }).render(inner, buf);
            return;
        };
        let rows = inner.height.max(1) as usize;
        let (cell, name_w) = if self.narrow { (NARROW_CELL, 3) } else { (CELL, 6) };
        let cols = ((inner.width + 1) / cell).max(1) as usize;
        for (i, gpr) in Gpr::DISPLAY_ORDER.iter().enumerate() {
            let (c, r) = (i / rows, i % rows);
            if c >= cols {
                break;
            }
            let v = regs[*gpr];
            let changed = st.prev_regs.is_some_and(|p| p[*gpr] != v);
            let style = if changed {
                Style::new()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            let x = inner.x + c as u16 * cell;
            let y = inner.y + r as u16;
            let name: String = gpr.name().chars().take(name_w).collect();
            buf.set_string(x, y, format!("{name:<name_w$} "), dim());
            buf.set_string(x + name_w as u16 + 1, y, format!("{v:016x}"), style);
        }
        // A spare cell shows the flags by name.
        let i = Gpr::DISPLAY_ORDER.len();
        if i / rows < cols {
            let (c, r) = (i / rows, i % rows);
            let text = flags(regs[Gpr::Rflags]);
            let x = inner.x + c as u16 * cell + name_w as u16 + 1;
            buf.set_string(x, inner.y + r as u16, text, Style::new().fg(Color::Gray));
        }
    }
}
