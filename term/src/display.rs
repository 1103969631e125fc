//! The display differ: the bytes that turn a terminal showing one
//! framebuffer into one showing another (spec §12.3). Only constructs stock
//! mosh's emulator understands are emitted: BEL, OSC 0/1/2/52, CR, LF, BS,
//! CUP, DECSTBM, EL, ED, ECH, full-reset SGR and a few DEC private modes.
//! The one addition is faint, sent as `;2` inside the SGR: stock mosh's
//! emulator ignores that parameter, so a stock client shows such text at
//! normal intensity and nothing else changes.
//!
//! The differ assumes the receiving emulator has the modes its own output
//! leaves (full scroll region, autowrap on, insert and origin modes off), as
//! a client's replica always has; see [`Framebuffer::replica`].

use std::io::Write;
use std::sync::Arc;

use crate::framebuffer::{Attrs, Cell, Color, Framebuffer, Renditions, Row};

/// What the target terminal can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Display {
    /// `CSI n X` (erase characters) is available.
    pub has_ech: bool,
    /// Erasing fills with the current background colour.
    pub has_bce: bool,
    /// Window titles may be set.
    pub has_title: bool,
    /// The terminal keeps the rows that scroll off its top in its own
    /// scrollback, which must receive only history lines: never scroll the
    /// whole screen or clear it (some terminals save a cleared screen),
    /// repaint rows in place instead.
    pub keeps_scrollback: bool,
}

impl Default for Display {
    fn default() -> Display {
        Display::server()
    }
}

/// The terminal's cursor as far as the differ knows it.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    row: usize,
    col: usize,
    /// The cursor may be in the deferred-wrap state, so relative moves and
    /// printing in place are unsafe.
    pending: bool,
}

struct Frame<'a> {
    display: Display,
    new: &'a Framebuffer,
    out: Vec<u8>,
    cursor: Option<Cursor>,
    rend: Option<Renditions>,
    cursor_visible: bool,
}

impl Display {
    /// The terminal-independent profile the server uses for hostbytes: ECH
    /// allowed, BCE assumed, titles allowed.
    pub fn server() -> Display {
        Display {
            has_ech: true,
            has_bce: true,
            has_title: true,
            keeps_scrollback: false,
        }
    }

    /// Bytes that turn a terminal showing `last` into one showing `new`.
    /// With `initialized == false` nothing is assumed about the terminal and
    /// everything is repainted.
    pub fn new_frame(&self, initialized: bool, last: &Framebuffer, new: &Framebuffer) -> Vec<u8> {
        let mut f = Frame {
            display: *self,
            new,
            out: Vec::with_capacity(64),
            cursor: None,
            rend: None,
            cursor_visible: last.ds.cursor_visible,
        };
        f.run(initialized, last);
        f.out
    }
}

/// The SGR sequence that selects `rend` from scratch.
pub fn sgr(rend: &Renditions, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x1b[0");
    for (attr, code) in Attrs::ALL {
        if rend.attrs.contains(attr) {
            out.push(b';');
            push_num(out, usize::from(code));
        }
    }
    color(out, rend.fg, 30);
    color(out, rend.bg, 40);
    out.push(b'm');
}

fn color(out: &mut Vec<u8>, c: Color, base: usize) {
    match c {
        Color::Default => {}
        Color::Indexed(n) if n < 8 => {
            out.push(b';');
            push_num(out, base + usize::from(n));
        }
        Color::Indexed(n) => {
            let _ = write!(out, ";{};5;{}", base + 8, n);
        }
        Color::Rgb(r, g, b) => {
            let _ = write!(out, ";{};2;{};{};{}", base + 8, r, g, b);
        }
    }
}

fn push_num(out: &mut Vec<u8>, n: usize) {
    if n >= 10 {
        push_num(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

/// Two rows show the same logical line with the same content.
fn rows_equal(a: &Arc<Row>, b: &Arc<Row>) -> bool {
    Arc::ptr_eq(a, b) || (a.generation() == b.generation() && a.same_content(b))
}

impl Frame<'_> {
    fn width(&self) -> usize {
        self.new.width()
    }

    fn height(&self) -> usize {
        self.new.height()
    }

    fn run(&mut self, mut initialized: bool, last: &Framebuffer) {
        let new = self.new;
        if new.bell_count() != last.bell_count() {
            self.out.push(0x07);
        }
        let title_changed = new.title() != last.title() || new.icon_name() != last.icon_name();
        if self.display.has_title && ((!initialized && new.title_initialized()) || title_changed) {
            if new.icon_name() == new.title() {
                let _ = write!(self.out, "\x1b]0;{}\x07", new.title());
            } else {
                let _ = write!(
                    self.out,
                    "\x1b]1;{}\x07\x1b]2;{}\x07",
                    new.icon_name(),
                    new.title()
                );
            }
        }
        if new.clipboard() != last.clipboard() {
            self.out.extend_from_slice(b"\x1b]52;c;");
            self.out.extend_from_slice(new.clipboard());
            self.out.push(0x07);
        }
        if !initialized || new.ds.reverse_video != last.ds.reverse_video {
            self.out.extend_from_slice(if new.ds.reverse_video {
                b"\x1b[?5h"
            } else {
                b"\x1b[?5l"
            });
        }
        if !initialized || new.width() != last.width() || new.height() != last.height() {
            self.out
                .extend_from_slice(if self.display.keeps_scrollback {
                    b"\x1b[r\x1b[0m\x1b[H"
                } else {
                    b"\x1b[r\x1b[0m\x1b[H\x1b[2J"
                });
            initialized = false;
            self.cursor = Some(Cursor {
                row: 0,
                col: 0,
                pending: false,
            });
            self.rend = Some(Renditions::default());
        } else {
            self.cursor = Some(Cursor {
                row: last.ds.cursor_row,
                col: last.ds.cursor_col,
                pending: last.ds.pending_wrap || last.ds.cursor_col + 1 >= last.width(),
            });
            self.rend = Some(last.ds.rend);
        }
        if !initialized {
            self.out.extend_from_slice(b"\x1b[?25l");
            self.cursor_visible = false;
        }

        let mut shown: Vec<Option<Arc<Row>>> = if initialized {
            last.rows().iter().cloned().map(Some).collect()
        } else {
            vec![None; self.height()]
        };
        if initialized && !self.display.keeps_scrollback {
            self.scroll(last, &mut shown);
        }

        let mut wrap = false;
        for (y, old) in shown.iter().enumerate() {
            wrap = self.put_row(initialized, y, old.as_ref(), wrap);
        }

        let ds = &new.ds;
        let at_cursor = matches!(self.cursor,
            Some(c) if !c.pending && c.row == ds.cursor_row && c.col == ds.cursor_col);
        if !initialized || !at_cursor {
            self.move_to(ds.cursor_row, ds.cursor_col, false);
        }
        if !initialized || self.cursor_visible != ds.cursor_visible {
            self.out.extend_from_slice(if ds.cursor_visible {
                b"\x1b[?25h"
            } else {
                b"\x1b[?25l"
            });
            self.cursor_visible = ds.cursor_visible;
        }
        if !initialized || self.rend != Some(ds.rend) {
            sgr(&ds.rend, &mut self.out);
            self.rend = Some(ds.rend);
        }
        let old = &last.ds;
        if !initialized || ds.bracketed_paste != old.bracketed_paste {
            self.out.extend_from_slice(if ds.bracketed_paste {
                b"\x1b[?2004h"
            } else {
                b"\x1b[?2004l"
            });
        }
        if !initialized || ds.mouse_reporting != old.mouse_reporting {
            match ds.mouse_reporting.mode() {
                None => self
                    .out
                    .extend_from_slice(b"\x1b[?1003l\x1b[?1002l\x1b[?1001l\x1b[?1000l"),
                Some(mode) => {
                    if let Some(prev) = old.mouse_reporting.mode() {
                        let _ = write!(self.out, "\x1b[?{prev}l");
                    }
                    let _ = write!(self.out, "\x1b[?{mode}h");
                }
            }
        }
        if !initialized || ds.mouse_focus_event != old.mouse_focus_event {
            self.out.extend_from_slice(if ds.mouse_focus_event {
                b"\x1b[?1004h"
            } else {
                b"\x1b[?1004l"
            });
        }
        if !initialized || ds.mouse_encoding != old.mouse_encoding {
            match ds.mouse_encoding.mode() {
                None => self
                    .out
                    .extend_from_slice(b"\x1b[?1015l\x1b[?1006l\x1b[?1005l"),
                Some(mode) => {
                    if let Some(prev) = old.mouse_encoding.mode() {
                        let _ = write!(self.out, "\x1b[?{prev}l");
                    }
                    let _ = write!(self.out, "\x1b[?{mode}h");
                }
            }
        }
    }

    /// Recognises the new screen's top rows further down the old screen and
    /// scrolls them into place, updating `shown` to what the terminal then
    /// displays.
    fn scroll(&mut self, last: &Framebuffer, shown: &mut [Option<Arc<Row>>]) {
        let new_rows = self.new.rows();
        let old_rows = last.rows();
        let h = self.height();
        let Some(r) = (1..h).find(|&r| rows_equal(&old_rows[r], &new_rows[0])) else {
            return;
        };
        let k = (0..h - r)
            .take_while(|&i| rows_equal(&old_rows[r + i], &new_rows[i]))
            .count();
        self.out.extend_from_slice(b"\x1b[0m");
        self.rend = Some(Renditions::default());
        let on_last_row = matches!(self.cursor, Some(c) if c.row == h - 1);
        if r + k == h && on_last_row {
            self.hide_cursor();
            self.out.push(b'\r');
            self.out.extend(std::iter::repeat_n(b'\n', r));
            self.cursor = Some(Cursor {
                row: h - 1,
                col: 0,
                pending: false,
            });
        } else {
            let _ = write!(self.out, "\x1b[1;{}r", r + k);
            self.move_to(r + k - 1, 0, true);
            self.out.extend(std::iter::repeat_n(b'\n', r));
            self.out.extend_from_slice(b"\x1b[r");
            self.cursor = None;
        }
        let blank = Arc::new(Row::new(self.width(), Renditions::default()));
        for (i, slot) in shown[..r + k].iter_mut().enumerate() {
            *slot = Some(if i < k {
                old_rows[i + r].clone()
            } else {
                blank.clone()
            });
        }
    }

    fn hide_cursor(&mut self) {
        if self.cursor_visible {
            self.out.extend_from_slice(b"\x1b[?25l");
            self.cursor_visible = false;
        }
    }

    /// Moves the cursor, preferring short relative moves when the position is
    /// known: printing again the cells being passed over (which needs no
    /// hidden cursor), CR/LF or BS. Only used where every cell between the
    /// cursor and the target on its row is already correct on the terminal.
    fn move_to(&mut self, row: usize, col: usize, force: bool) {
        if !force && matches!(self.cursor, Some(c) if !c.pending && c.row == row && c.col == col) {
            return;
        }
        let reprint = match self.cursor {
            Some(c) if !force && !c.pending && row == c.row => self.can_reprint(row, c.col, col),
            _ => false,
        };
        if reprint {
            let from = self.cursor.map_or(col, |c| c.col);
            for cell in &self.new.rows()[row].cells()[from..col] {
                let text = cell.contents();
                self.out.extend_from_slice(if text.is_empty() {
                    b" "
                } else {
                    text.as_bytes()
                });
            }
        } else {
            self.hide_cursor();
            match self.cursor {
                Some(c) if !force && col == 0 && row >= c.row && row - c.row <= 4 => {
                    if c.col != 0 || c.pending {
                        self.out.push(b'\r');
                    }
                    self.out.extend(std::iter::repeat_n(b'\n', row - c.row));
                }
                Some(c)
                    if !force && !c.pending && row == c.row && col < c.col && c.col - col <= 4 =>
                {
                    self.out.extend(std::iter::repeat_n(0x08, c.col - col));
                }
                _ => {
                    let _ = write!(self.out, "\x1b[{};{}H", row + 1, col + 1);
                }
            }
        }
        self.cursor = Some(Cursor {
            row,
            col,
            pending: false,
        });
    }

    /// Whether moving right from `from` to `to` on `row` can be done by
    /// printing the (already correct) cells in between again: at most four
    /// narrow cells in the current rendition.
    fn can_reprint(&self, row: usize, from: usize, to: usize) -> bool {
        to > from
            && to - from <= 4
            && self.new.rows()[row].cells()[from..to]
                .iter()
                .all(|c| !c.wide && !c.spacer && Some(c.rend) == self.rend)
    }

    fn set_rend(&mut self, rend: Renditions) {
        if self.rend != Some(rend) {
            sgr(&rend, &mut self.out);
            self.rend = Some(rend);
        }
    }

    /// Prints one cell at the cursor and advances the tracked cursor.
    fn print_cell(&mut self, cell: &Cell) {
        self.set_rend(cell.rend);
        let text = cell.contents();
        if text.is_empty() {
            self.out.push(b' ');
        } else {
            self.out.extend_from_slice(text.as_bytes());
        }
        let span = if cell.wide { 2 } else { 1 };
        let width = self.width();
        if let Some(c) = &mut self.cursor {
            if c.col + span >= width {
                c.col = width - 1;
                c.pending = true;
            } else {
                c.col += span;
            }
        }
    }

    /// Whether a run of blanks in `rend` may be produced by erasing.
    fn can_erase(&self, rend: Renditions) -> bool {
        rend == rend.erased() && (self.display.has_bce || rend == Renditions::default())
    }

    /// Paints row `y`. `wrap` says the previous row's last column was just
    /// written and that row wraps, so the terminal is about to continue on
    /// this row by itself. Returns the same for this row.
    fn put_row(&mut self, initialized: bool, y: usize, old: Option<&Arc<Row>>, wrap: bool) -> bool {
        let new = self.new;
        let row = &new.rows()[y];
        let cells = row.cells();
        let width = self.width();
        let mut x = 0;
        if wrap {
            self.print_cell(&cells[0]);
            x = if cells[0].wide { 2 } else { 1 };
            self.cursor = Some(Cursor {
                row: y,
                col: x.min(width - 1),
                pending: x >= width,
            });
        } else if initialized && old.is_some_and(|o| Arc::ptr_eq(o, row) || (o.same_content(row))) {
            return false;
        }
        let old_cells = old.map(|o| o.cells());
        let wrap_changed = old.is_some_and(|o| o.wrap != row.wrap);
        let unchanged = |x: usize, span: usize| -> bool {
            let Some(oc) = old_cells else { return false };
            if x + span >= width && wrap_changed {
                return false;
            }
            oc[x..x + span] == cells[x..x + span]
        };
        let mut wrote_last = x >= width;
        let mut run: Option<(usize, Renditions)> = None;
        while x < width {
            let cell = &cells[x];
            let span = if cell.wide { 2 } else { 1 };
            if initialized && unchanged(x, span) {
                if let Some((start, rend)) = run.take() {
                    self.flush_run(y, start, x, rend, row.wrap);
                }
                x += span;
                continue;
            }
            if cell.is_blank() {
                match run {
                    Some((_, rend)) if rend == cell.rend => {}
                    Some((start, rend)) => {
                        self.flush_run(y, start, x, rend, row.wrap);
                        run = Some((x, cell.rend));
                    }
                    None => run = Some((x, cell.rend)),
                }
                x += 1;
                continue;
            }
            if let Some((start, rend)) = run.take() {
                self.flush_run(y, start, x, rend, row.wrap);
            }
            let last_cell = x + span >= width;
            self.move_to(y, x, last_cell && row.wrap);
            self.print_cell(cell);
            if last_cell {
                wrote_last = true;
            }
            x += span;
        }
        if let Some((start, rend)) = run.take() {
            wrote_last |= self.flush_run(y, start, width, rend, row.wrap);
        }
        if wrote_last && y + 1 < self.height() {
            if row.wrap {
                return true;
            }
            self.out.extend_from_slice(b"\r\n");
            self.cursor = Some(Cursor {
                row: y + 1,
                col: 0,
                pending: false,
            });
        }
        false
    }

    /// Produces blanks in `rend` at columns `start..end` of row `y`. Returns
    /// whether the last column was written with spaces.
    fn flush_run(
        &mut self,
        y: usize,
        start: usize,
        end: usize,
        rend: Renditions,
        wraps: bool,
    ) -> bool {
        let width = self.width();
        let n = end - start;
        self.move_to(y, start, false);
        self.set_rend(rend);
        if end == width && !wraps && self.can_erase(rend) {
            self.out.extend_from_slice(b"\x1b[K");
            return false;
        }
        if n > 4 && self.display.has_ech && self.can_erase(rend) && end < width {
            let _ = write!(self.out, "\x1b[{n}X");
            return false;
        }
        self.out.extend(std::iter::repeat_n(b' ', n));
        let cursor = self.cursor.as_mut();
        if let Some(c) = cursor {
            if end >= width {
                c.col = width - 1;
                c.pending = true;
            } else {
                c.col = end;
            }
        }
        end == width
    }
}
