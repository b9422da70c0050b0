//! One widget per view. Each borrows the [`AppState`](crate::state::AppState)
//! and draws itself; none changes anything.

pub mod analysis;
pub mod bookmarks;
pub mod console;
pub mod disasm;
pub mod events;
pub mod help;
pub mod locals;
pub mod memory;
pub mod payload;
pub mod registers;
pub mod source;
pub mod status;
pub mod timeline;
pub mod too_small;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::state::AppState;
use ratatui::widgets::{Block, BorderType, Borders};

/// The colour of VM `vm`'s lane and name.
pub fn vm_color(vm: usize) -> Color {
    const COLORS: [Color; 6] = [
        Color::Cyan,
        Color::Magenta,
        Color::Yellow,
        Color::Green,
        Color::LightBlue,
        Color::LightRed,
    ];
    COLORS[vm % COLORS.len()]
}

/// A bordered pane with a bold title.
pub fn pane<'a>(title: impl Into<Line<'a>>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(title.into().style(Style::new().add_modifier(Modifier::BOLD)))
}

/// A pane's title naming what it shows of the focus VM where it stands:
/// ` Registers backup2 @ 38711 `.
pub fn focus_title(label: &str, st: &AppState) -> Line<'static> {
    let snap = &st.snapshot;
    Line::from(vec![
        Span::raw(format!(" {label} ")),
        Span::styled(
            st.vm_name(snap.focus).to_string(),
            Style::new().fg(vm_color(snap.focus)),
        ),
        Span::styled(format!(" @ {} ", snap.icount), Style::new().fg(Color::Gray)),
    ])
}

/// The selected row of a list: explicit colours, not reverse video, so it
/// reads the same in every terminal and in HTML captures.
pub fn selected() -> Style {
    Style::new()
        .fg(Color::White)
        .bg(Color::Rgb(52, 60, 110))
        .add_modifier(Modifier::BOLD)
}

/// Dim text.
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// Cuts `s` to at most `width` characters (with an ellipsis when cut).
pub fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        s.to_string()
    } else if width == 0 {
        String::new()
    } else {
        let mut out: String = s.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}
