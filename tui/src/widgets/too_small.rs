//! The message shown instead of the layout when the terminal is too small.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Text};
use ratatui::widgets::{Paragraph, Widget, Wrap};

/// "Terminal too small" with the sizes, wrapped to whatever room there is.
pub struct TooSmall {
    /// The terminal's width.
    pub width: u16,
    /// Its height.
    pub height: u16,
    /// The smallest usable width.
    pub min_width: u16,
    /// The smallest usable height.
    pub min_height: u16,
}

impl Widget for TooSmall {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let text = Text::from(vec![
            Line::styled("Terminal too small", Style::new().fg(Color::Yellow)),
            Line::from(format!(
                "{}×{}: vmrr tui needs {}×{}.",
                self.width, self.height, self.min_width, self.min_height
            )),
            Line::from("Enlarge it, or press q to quit."),
        ]);
        Paragraph::new(text).wrap(Wrap { trim: true }).render(area, buf);
    }
}
