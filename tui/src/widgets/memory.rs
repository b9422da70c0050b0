//! A few rows of the focus VM's memory (at RSP by default, or where `M` says).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{dim, pane};
use crate::state::AppState;

/// The memory view.
pub struct MemoryPane<'a> {
    /// What to draw.
    pub state: &'a AppState,
}

impl Widget for MemoryPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let mem = &self.state.snapshot.memory;
        let block = pane(format!(" Memory {} = {:#x} ", mem.label, mem.addr));
        let inner = block.inner(area);
        block.render(area, buf);
        let wide_addr = mem.addr.saturating_add(mem.bytes.len() as u64) > u32::MAX as u64;
        let addr_w: u16 = if wide_addr { 16 } else { 8 };
        // Bytes per row: 16, 8 or 4, whatever fits "addr  hex  ascii".
        let per = [16u16, 8, 4]
            .into_iter()
            .find(|&p| addr_w + 2 + p * 3 + 1 + p <= inner.width)
            .unwrap_or(4) as usize;
        let lines: Vec<Line> = mem
            .bytes
            .chunks(per)
            .take(inner.height as usize)
            .enumerate()
            // Rows past the top of the address space do not exist.
            .map_while(|(r, row)| Some((mem.addr.checked_add((r * per) as u64)?, row)))
            .map(|(addr, row)| {
                let mut hex = String::new();
                let mut ascii = String::new();
                for b in row {
                    match b {
                        Some(b) => {
                            hex.push_str(&format!("{b:02x} "));
                            ascii.push(if b.is_ascii_graphic() || *b == b' ' {
                                *b as char
                            } else {
                                '.'
                            });
                        }
                        None => {
                            hex.push_str("?? ");
                            ascii.push(' ');
                        }
                    }
                }
                Line::from(vec![
                    Span::styled(format!("{addr:0width$x}  ", width = addr_w as usize), dim()),
                    Span::raw(hex),
                    Span::styled(ascii, Style::new().fg(Color::Gray)),
                ])
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }
}
