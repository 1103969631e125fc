//! The display differ: the bytes that turn a terminal showing one
//! framebuffer into one showing another (spec §12.3). Only constructs stock
//! mosh's emulator understands are emitted: BEL, OSC 0/1/2/52, CR, LF, BS,
//! CUP, DECSTBM, EL, ED, ECH, full-reset SGR and a few DEC private modes.
//! The one addition is faint, sent as `;2` inside the SGR: stock mosh's
//! emulator ignores that parameter, so a stock client shows such text at
//! normal intensity and nothing else changes.
//!
//! What the differ compares and prints is the part of each rendition its
//! [`Display::attributes`] profile can show. Without it (stock peers, and
//! the default), cells are compared and drawn as [`Renditions::stock`]
//! sees them, so extended attributes (strikethrough, underline styles and
//! colour, overline, hyperlinks) are dropped cleanly and a screen with them
//! gives exactly the bytes of the same screen without them. With it, SGR
//! also carries 9, 53, `4:n` and `58:…`, and OSC 8 opens and closes links
//! around exactly the linked cells (`ESC ] 8 ; id=ID ; URI ESC \`, closed
//! with `ESC ] 8 ; ; ESC \`). When the two screens' hyperlink tables hold
//! more than [`MAX_LINKS`] links together the frame is a full repaint, so
//! that the receiving emulator's table, of the same size, never overflows
//! on the way.
//!
//! The differ assumes the receiving emulator has the modes its own output
//! leaves (full scroll region, autowrap on, insert and origin modes off), as
//! a client's replica always has; see [`Framebuffer::replica`].

use std::io::Write;
use std::sync::Arc;

use crate::framebuffer::{
    Attrs, Cell, Color, Framebuffer, Hyperlink, LinkId, MAX_LINKS, Renditions, Row, UnderlineStyle,
};

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
    /// Extended attributes and OSC 8 hyperlinks may be sent (our own
    /// client, or a terminal that shows them); otherwise only what stock
    /// mosh carries.
    pub attributes: bool,
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
    cmp: Compare<'a>,
    new: &'a Framebuffer,
    out: Vec<u8>,
    cursor: Option<Cursor>,
    rend: Option<Renditions>,
    cursor_visible: bool,
}

impl Display {
    /// The terminal-independent profile the server uses for hostbytes: ECH
    /// allowed, BCE assumed, titles allowed, stock attributes only.
    pub fn server() -> Display {
        Display {
            has_ech: true,
            has_bce: true,
            has_title: true,
            keeps_scrollback: false,
            attributes: false,
        }
    }

    /// This profile with [`Display::attributes`] set to `on`.
    #[must_use]
    pub fn with_attributes(self, on: bool) -> Display {
        Display {
            attributes: on,
            ..self
        }
    }

    /// Bytes that turn a terminal showing `last` into one showing `new`.
    /// With `initialized == false` nothing is assumed about the terminal
    /// but whether a hyperlink is open (as in `last`'s drawing state), and
    /// everything is repainted.
    pub fn new_frame(&self, initialized: bool, last: &Framebuffer, new: &Framebuffer) -> Vec<u8> {
        let mut f = Frame {
            display: *self,
            cmp: Compare {
                attributes: self.attributes,
                old: last,
                new,
            },
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

/// The SGR sequence that selects `rend` from scratch, as stock mosh can
/// show it (see [`Renditions::stock`]).
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

/// The SGR sequence that selects all of `rend` but its hyperlink from
/// scratch: [`sgr`]'s, with a styled underline as `4:n`, then 9 and 53,
/// and the underline colour as `58:5:n` or `58:2::r:g:b`.
pub fn sgr_extended(rend: &Renditions, out: &mut Vec<u8>) {
    out.extend_from_slice(b"\x1b[0");
    for (attr, code) in Attrs::ALL.iter().chain(&Attrs::EXTENDED) {
        if rend.attrs.contains(*attr) {
            out.push(b';');
            push_num(out, usize::from(*code));
            if *attr == Attrs::UNDERLINE && rend.underline != UnderlineStyle::Single {
                out.push(b':');
                push_num(out, usize::from(rend.underline.code()));
            }
        }
    }
    color(out, rend.fg, 30);
    color(out, rend.bg, 40);
    match rend.underline_color {
        Color::Default => {}
        Color::Indexed(n) => {
            let _ = write!(out, ";58:5:{n}");
        }
        Color::Rgb(r, g, b) => {
            let _ = write!(out, ";58:2::{r}:{g}:{b}");
        }
    }
    out.push(b'm');
}

/// The OSC 8 sequence that makes later text link to `link`, or to nothing.
pub fn osc8(link: Option<&Hyperlink>, out: &mut Vec<u8>) {
    match link {
        Some(link) if link.id.is_empty() => {
            let _ = write!(out, "\x1b]8;;{}\x1b\\", link.uri);
        }
        Some(link) => {
            let _ = write!(out, "\x1b]8;id={};{}\x1b\\", link.id, link.uri);
        }
        None => out.extend_from_slice(b"\x1b]8;;\x1b\\"),
    }
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

/// How the differ compares the old screen with the new one.
#[derive(Clone, Copy)]
struct Compare<'a> {
    /// [`Display::attributes`].
    attributes: bool,
    old: &'a Framebuffer,
    new: &'a Framebuffer,
}

impl Compare<'_> {
    /// Whether cell `a` of the old screen looks like cell `b` of the new
    /// one in this profile.
    fn same_cell(&self, a: &Cell, b: &Cell) -> bool {
        if !self.attributes {
            a.same_stock(b)
        } else if self.old.shares_links(self.new) {
            a == b
        } else {
            self.old.same_cell(a, self.new, b)
        }
    }

    /// Whether old row `a` looks like new row `b` (wrap flag included).
    fn same_row(&self, a: &Arc<Row>, b: &Arc<Row>) -> bool {
        if Arc::ptr_eq(a, b) {
            return true;
        }
        if a.wrap != b.wrap {
            return false;
        }
        if self.attributes && self.old.shares_links(self.new) {
            return a.same_content(b);
        }
        a.cells()
            .iter()
            .zip(b.cells())
            .all(|(x, y)| self.same_cell(x, y))
    }

    /// Two rows show the same logical line with the same content.
    fn rows_equal(&self, a: &Arc<Row>, b: &Arc<Row>) -> bool {
        Arc::ptr_eq(a, b) || (a.generation() == b.generation() && self.same_row(a, b))
    }
}

impl Frame<'_> {
    /// What of `rend` this profile shows.
    fn view(&self, rend: Renditions) -> Renditions {
        if self.display.attributes {
            rend
        } else {
            rend.stock()
        }
    }

    /// The rendition the terminal has after showing `last`, in the new
    /// screen's terms; `None` when its hyperlink has no id there.
    fn rend_after(&self, last: &Framebuffer) -> Option<Renditions> {
        let rend = self.view(last.ds.rend);
        if rend.link.is_none() || last.shares_links(self.new) {
            return Some(rend);
        }
        let link = self.new.link_id(last.hyperlink(rend.link)?)?;
        Some(Renditions { link, ..rend })
    }

    /// Sets the terminal's rendition; with `force`, its SGR is sent even
    /// when it seems unchanged.
    fn select(&mut self, rend: Renditions, force: bool) {
        if !force && self.rend == Some(rend) {
            return;
        }
        if self.display.attributes {
            if self.rend.map(|r| r.link) != Some(rend.link) {
                osc8(self.new.hyperlink(rend.link), &mut self.out);
            }
            let unlinked = |r: Renditions| Renditions {
                link: LinkId::NONE,
                ..r
            };
            if force || self.rend.map(unlinked) != Some(unlinked(rend)) {
                sgr_extended(&rend, &mut self.out);
            }
        } else {
            sgr(&rend, &mut self.out);
        }
        self.rend = Some(rend);
    }

    /// `ESC [ 0 m`, closing an open hyperlink too (before the scroll that
    /// follows, whose new lines some terminals would link).
    fn reset_rend(&mut self) {
        self.out.extend_from_slice(b"\x1b[0m");
        if self.display.attributes && self.rend.map(|r| r.link) != Some(LinkId::NONE) {
            osc8(None, &mut self.out);
        }
        self.rend = Some(Renditions::default());
    }

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
        if self.display.attributes && initialized && new.links_with(last) > MAX_LINKS {
            // Taken cell by cell, the terminal could refer to more links at
            // once than its table holds; from a blank screen it never does.
            initialized = false;
        }
        if !initialized || new.width() != last.width() || new.height() != last.height() {
            if self.display.attributes && !last.ds.rend.link.is_none() {
                // Closed before erasing, which some terminals would link.
                osc8(None, &mut self.out);
            }
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
            self.rend = self.rend_after(last);
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
        self.select(self.view(ds.rend), !initialized);
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
        let Some(r) = (1..h).find(|&r| self.cmp.rows_equal(&old_rows[r], &new_rows[0])) else {
            return;
        };
        let k = (0..h - r)
            .take_while(|&i| self.cmp.rows_equal(&old_rows[r + i], &new_rows[i]))
            .count();
        self.reset_rend();
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
                .all(|c| !c.wide && !c.spacer && Some(self.view(c.rend)) == self.rend)
    }

    /// Prints one cell at the cursor and advances the tracked cursor.
    fn print_cell(&mut self, cell: &Cell) {
        self.select(self.view(cell.rend), false);
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
        } else if initialized && old.is_some_and(|o| self.cmp.same_row(o, row)) {
            return false;
        }
        let old_cells = old.map(|o| o.cells());
        let wrap_changed = old.is_some_and(|o| o.wrap != row.wrap);
        let cmp = self.cmp;
        let unchanged = |x: usize, span: usize| -> bool {
            let Some(oc) = old_cells else { return false };
            if x + span >= width && wrap_changed {
                return false;
            }
            oc[x..x + span]
                .iter()
                .zip(&cells[x..x + span])
                .all(|(a, b)| cmp.same_cell(a, b))
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
                let shown = self.view(cell.rend);
                match run {
                    Some((_, rend)) if rend == shown => {}
                    Some((start, rend)) => {
                        self.flush_run(y, start, x, rend, row.wrap);
                        run = Some((x, shown));
                    }
                    None => run = Some((x, shown)),
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
        self.select(rend, false);
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
