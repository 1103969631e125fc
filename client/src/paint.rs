//! Writing overlay cells (predictions, the status bar, the title prefix)
//! into a copy of a framebuffer. `term` keeps cell mutation private to its
//! emulator, so the overlay is written by feeding the emulator cursor moves,
//! SGR and characters, and the drawing state is put back afterwards: only
//! cell contents change (plus, for titles, the title). Overlay cells get
//! only what [`sgr`] selects: stock colours and attributes, never an
//! underline style or colour, strikethrough, overline or hyperlink.

use mosh_term::display::sgr;
use mosh_term::framebuffer::Attrs;
use mosh_term::{Cell, Color, Emulator, Framebuffer, Renditions};

/// Prefix of window titles shown by the client.
pub const TITLE_PREFIX: &str = "[mosh] ";

/// A framebuffer being painted on.
pub struct Canvas {
    emulator: Emulator,
    saved: mosh_term::framebuffer::DrawState,
}

impl Canvas {
    /// Starts painting on `fb`.
    pub fn new(fb: Framebuffer) -> Canvas {
        let saved = fb.ds.clone();
        let mut emulator = Emulator::from_framebuffer(fb);
        let ds = &mut emulator.framebuffer_mut().ds;
        ds.insert_mode = false;
        ds.origin_mode = false;
        ds.autowrap = false;
        ds.scroll_top = 0;
        ds.scroll_bottom = ds.height.saturating_sub(1);
        ds.rend = Renditions::default();
        Canvas { emulator, saved }
    }

    /// The picture so far.
    pub fn framebuffer(&self) -> &Framebuffer {
        self.emulator.framebuffer()
    }

    /// Writes `cell`'s contents with its rendition at (`row`, `col`); a
    /// blank cell is written as a space. Out-of-range positions are ignored.
    pub fn put(&mut self, row: usize, col: usize, cell: &Cell) {
        let fb = self.emulator.framebuffer();
        if row >= fb.height() || col >= fb.width() {
            return;
        }
        let text = if cell.is_blank() || cell.contents().is_empty() {
            " "
        } else {
            cell.contents()
        };
        self.put_str(row, col, text, &cell.rend);
    }

    /// Writes `text` from (`row`, `col`) with `rend`, cut at the right edge.
    pub fn put_str(&mut self, row: usize, col: usize, text: &str, rend: &Renditions) {
        let width = self.emulator.framebuffer().width();
        let room = width.saturating_sub(col);
        let text: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(room)
            .collect();
        let mut bytes = format!("\x1b[{};{}H", row + 1, col + 1).into_bytes();
        sgr(rend, &mut bytes);
        bytes.extend_from_slice(text.as_bytes());
        self.emulator.feed(&bytes);
    }

    /// Sets the window title (and the icon name, when it equals the title)
    /// to the framebuffer's own with [`TITLE_PREFIX`] in front, if an
    /// application set one.
    pub fn prefix_title(&mut self) {
        let fb = self.emulator.framebuffer();
        if !fb.title_initialized() {
            return;
        }
        let title: String = fb.title().chars().filter(|&c| c != '\x07').collect();
        let icon: String = fb.icon_name().chars().filter(|&c| c != '\x07').collect();
        let bytes = if icon == title {
            format!("\x1b]0;{TITLE_PREFIX}{title}\x07")
        } else {
            format!("\x1b]2;{TITLE_PREFIX}{title}\x07")
        };
        self.emulator.feed(bytes.as_bytes());
    }

    /// Finishes painting: the drawing state (cursor, modes) is the original
    /// one again.
    pub fn finish(self) -> Framebuffer {
        let mut fb = self.emulator.into_framebuffer();
        fb.ds = self.saved;
        fb
    }
}

/// The rendition of status bar text: bold white on blue.
pub fn status_text_rendition() -> Renditions {
    let mut rend = status_padding_rendition();
    rend.attrs.set(Attrs::BOLD, true);
    rend
}

/// The rendition of the rest of the status bar row: white on blue.
pub fn status_padding_rendition() -> Renditions {
    Renditions {
        fg: Color::Indexed(7),
        bg: Color::Indexed(4),
        attrs: Attrs::default(),
        ..Renditions::default()
    }
}

/// Paints the status bar `text` over row 0 of `fb`; the cursor is hidden if
/// it sits on that row.
pub fn status_bar(fb: Framebuffer, text: &str) -> Framebuffer {
    let width = fb.width();
    let mut canvas = Canvas::new(fb);
    canvas.put_str(0, 0, &" ".repeat(width), &status_padding_rendition());
    canvas.put_str(0, 0, text, &status_text_rendition());
    let mut fb = canvas.finish();
    if fb.ds.cursor_row == 0 {
        fb.ds.cursor_visible = false;
    }
    fb
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(text: &[u8]) -> Framebuffer {
        let mut emulator = Emulator::new(20, 4);
        emulator.feed(text);
        emulator.into_framebuffer()
    }

    #[test]
    fn status_bar_covers_row_zero_and_keeps_the_rest() {
        let fb = screen(b"hello\r\nworld\x1b[1;3H");
        let painted = status_bar(fb.clone(), "mosh: Last contact 7 seconds ago. [To quit]");
        let row: String = (0..20)
            .map(|c| painted.cell(0, c).contents().to_owned())
            .collect();
        assert_eq!(row, "mosh:Lastcontact7");
        assert_eq!(painted.cell(0, 0).rend, status_text_rendition());
        assert_eq!(painted.cell(1, 0).contents(), "w");
        assert_eq!(painted.ds.cursor_row, 0);
        assert_eq!(painted.ds.cursor_col, 2);
        assert!(!painted.ds.cursor_visible);
        let short = status_bar(fb, "hi");
        assert!(short.cell(0, 5).is_blank());
        assert_eq!(short.cell(0, 5).rend, status_padding_rendition());
    }

    #[test]
    fn status_bar_over_linked_and_styled_text_looks_as_ever() {
        let styled = b"\x1b]8;id=l;http://e.com/\x1b\\\x1b[4:3;58;5;196;9;53mlinked words\r\nx";
        let fb = screen(styled);
        assert!(!fb.ds.rend.link.is_none(), "the link is still open");
        let painted = status_bar(fb.clone(), "mosh: Last contact 7 seconds ago.");
        for col in 0..20 {
            let expected = if col < "mosh: Last contact 7 seconds ago.".len() {
                status_text_rendition()
            } else {
                status_padding_rendition()
            };
            assert_eq!(painted.cell(0, col).rend, expected, "column {col}");
        }
        assert_eq!(painted.ds.rend, fb.ds.rend, "the drawing state is kept");
        assert_eq!(painted.cell(1, 0), fb.cell(1, 0));
    }

    #[test]
    fn put_keeps_the_drawing_state() {
        let fb = screen(b"ab\x1b[4m");
        let before = fb.ds.clone();
        let mut canvas = Canvas::new(fb);
        let mut cell = Cell::blank(Renditions::default());
        cell.set_char('x');
        canvas.put(3, 19, &cell);
        canvas.put(9, 0, &cell);
        let after = canvas.finish();
        assert_eq!(after.cell(3, 19).contents(), "x");
        assert_eq!(after.ds.cursor_col, before.cursor_col);
        assert_eq!(after.ds.rend, before.rend);
    }

    #[test]
    fn title_prefix() {
        let mut canvas = Canvas::new(screen(b"\x1b]0;vim\x07"));
        canvas.prefix_title();
        let fb = canvas.finish();
        assert_eq!(fb.title(), "[mosh] vim");
        assert_eq!(fb.icon_name(), "[mosh] vim");
        let mut untitled = Canvas::new(screen(b""));
        untitled.prefix_title();
        assert!(!untitled.finish().title_initialized());
    }
}
