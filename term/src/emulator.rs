//! The emulator: applies parsed actions (printing, C0 controls, ESC, CSI and
//! OSC functions) to a [`Framebuffer`], and collects the answers to status
//! requests (DA, DSR, DECRQM) that must go back to the application.
//!
//! Semantics follow tmux (the reference of the differential tests) for what
//! applications send, and stock mosh 1.4 for everything the display differ
//! emits, so that hostbytes replayed by either emulator give the same screen
//! (a client must replay stock hostbytes exactly).
//!
//! Beyond stock mosh we implement the alternate screen (47, 1047, 1048,
//! 1049), faint (SGR 2), colon-form SGR colours, strikethrough (9/29),
//! double and styled underlines (21, `4:0` to `4:5`), underline colour
//! (58/59, colon and `;` forms), overline (53/55), OSC 8 hyperlinks, REP,
//! `CSI s`/`CSI u`, CNL/CPL, keypad mode and DECRQM. Stock mosh 1.4 reads
//! the `;` arguments of 58 as attributes of their own (`4;58;5;196` turns
//! on blink); we consume them as xterm and tmux do. Measured with stock mosh-server and
//! mosh-client 1.4.0 over the test corpus, stock also differs in: IL/DL
//! (stock moves the cursor to column 0, we keep the column as tmux does), ED
//! with a pending wrap (stock cancels the wrap, tmux and we keep it), SGR
//! with more than 32 parameters (stock applies them, tmux and we ignore the
//! sequence), and a narrow character written over the right half of a wide
//! one (stock keeps showing the wide character, tmux and we blank it). None
//! of these sequences is emitted by the differ.
//!
//! Where tmux 3.3a and xterm disagree (CHT, DECSTR, 1048, BS and CUB after a
//! write to the last column, invalid UTF-8, split wide characters) we follow
//! xterm and stock mosh. C1 controls arriving as UTF-8 code points (U+0080
//! to U+009F), and stray bytes 0x80 to 0x9F (which `vte` reports the same
//! way), are ignored, as xterm and tmux do in UTF-8 mode; stock mosh
//! executes the former and shows U+FFFD for the latter. Other invalid UTF-8
//! shows U+FFFD.
//!
//! Character widths are the C library's, as stock mosh measures them
//! ([`crate::width::wcwidth`]): a character of width 1 or 2 takes that many
//! cells, one of width 0 joins the previous cell, and one that `wcwidth`
//! calls not printable (-1: unassigned code points, surrogates, controls)
//! is dropped without moving the cursor, as stock does.

use crate::framebuffer::{Attrs, Color, Hyperlink, LinkId, Renditions, UnderlineStyle};
use crate::framebuffer::{
    Framebuffer, MAX_HEIGHT, MAX_WIDTH, MouseEncoding, MouseReporting, SavedCursor,
};
use crate::history::{HistoryBatch, HistoryLog};
use crate::parser::{CsiParams, Parser, new_parser};
use crate::width::wcwidth;

/// Most bytes of replies kept until drained; later replies are dropped.
pub const MAX_REPLY_BYTES: usize = 4096;

/// A terminal emulator: a parser feeding a framebuffer.
pub struct Emulator {
    parser: Box<Parser>,
    term: Terminal,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("framebuffer", &self.term.fb)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A blank terminal of the given size (clamped to
    /// `1..=MAX_WIDTH` × `1..=MAX_HEIGHT`).
    pub fn new(width: usize, height: usize) -> Emulator {
        Emulator::from_framebuffer(Framebuffer::new(width, height))
    }

    /// An emulator in the ground state showing `fb`.
    pub fn from_framebuffer(fb: Framebuffer) -> Emulator {
        Emulator {
            parser: new_parser(),
            term: Terminal {
                fb,
                replies: Vec::new(),
                last_char: None,
                run: [0; RUN_CAPACITY],
                run_len: 0,
                history: None,
            },
        }
    }

    /// Interprets bytes written by the application.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.advance(&mut self.term, bytes);
        self.term.flush_run();
        if let Some(batch) = &mut self.term.history {
            batch.flush();
        }
    }

    /// The screen.
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.term.fb
    }

    /// The screen, for direct changes.
    pub fn framebuffer_mut(&mut self) -> &mut Framebuffer {
        &mut self.term.fb
    }

    /// Takes the screen out, leaving this emulator's parser state behind.
    pub fn into_framebuffer(self) -> Framebuffer {
        self.term.fb
    }

    /// Changes the terminal size (clamped like [`Emulator::new`]).
    pub fn resize(&mut self, width: usize, height: usize) {
        self.term.fb.resize(width, height);
    }

    /// From now on, lines that scroll off the top of the main screen (scroll
    /// region starting at the top row, alternate screen not shown) are
    /// appended to `log`.
    pub fn set_history(&mut self, log: HistoryLog) {
        self.term.history = Some(HistoryBatch::new(log));
    }

    /// The log lines are appended to, if any.
    pub fn history(&self) -> Option<&HistoryLog> {
        self.term.history.as_ref().map(HistoryBatch::log)
    }

    /// Whether answers to status requests are waiting.
    pub fn has_replies(&self) -> bool {
        !self.term.replies.is_empty()
    }

    /// Takes the answers to status requests, to be written to the
    /// application.
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.term.replies)
    }
}

/// Printable ASCII collected before being written as one run.
const RUN_CAPACITY: usize = 256;

#[derive(Debug)]
struct Terminal {
    fb: Framebuffer,
    replies: Vec<u8>,
    last_char: Option<char>,
    run: [u8; RUN_CAPACITY],
    run_len: usize,
    /// Lines scrolled off during the current feed, for the history log.
    history: Option<HistoryBatch>,
}

impl Terminal {
    /// Writes the collected run of printable ASCII: one row access per row
    /// touched instead of one per character.
    fn flush_run(&mut self) {
        let len = std::mem::take(&mut self.run_len);
        if len == 0 {
            return;
        }
        let run = self.run;
        self.last_char = Some(char::from(run[len - 1]));
        let mut i = 0;
        while i < len {
            if self.fb.ds.insert_mode {
                for &b in &run[i..len] {
                    self.print_char(char::from(b));
                }
                return;
            }
            self.wrap_if_pending();
            let (row, col, width) = (self.fb.ds.cursor_row, self.fb.ds.cursor_col, self.width());
            let n = (width - col).min(len - i);
            self.fb.put_ascii(row, col, &run[i..i + n]);
            i += n;
            if col + n >= width {
                self.fb.ds.cursor_col = width - 1;
                self.fb.ds.pending_wrap = true;
            } else {
                self.fb.ds.cursor_col = col + n;
                self.fb.ds.pending_wrap = false;
            }
        }
    }

    /// Performs a deferred autowrap, if one is pending and autowrap is on.
    fn wrap_if_pending(&mut self) {
        if self.fb.ds.pending_wrap && self.fb.ds.autowrap {
            let row = self.fb.ds.cursor_row;
            if row == self.fb.ds.scroll_bottom || row + 1 < self.height() {
                self.fb.row_mut(row).wrap = true;
            }
            self.fb.ds.cursor_col = 0;
            self.index();
        }
    }

    fn reply(&mut self, bytes: &[u8]) {
        if self.replies.len() + bytes.len() <= MAX_REPLY_BYTES {
            self.replies.extend_from_slice(bytes);
        }
    }

    fn width(&self) -> usize {
        self.fb.ds.width
    }

    fn height(&self) -> usize {
        self.fb.ds.height
    }

    /// Scrolls the region up by `n`; rows leaving the top of the main screen
    /// go to the history log first.
    fn scroll_up(&mut self, top: usize, bottom: usize, n: usize) {
        if let Some(batch) = &mut self.history
            && top == 0
            && !self.fb.alternate_screen()
        {
            for row in &self.fb.rows()[..n.min(bottom + 1)] {
                batch.record(row);
            }
        }
        self.fb.scroll_up_region(top, bottom, n);
    }

    /// Line feed: down one row, scrolling at the bottom of the region.
    fn index(&mut self) {
        let ds = &self.fb.ds;
        let (row, bottom, top) = (ds.cursor_row, ds.scroll_bottom, ds.scroll_top);
        if row == bottom {
            self.scroll_up(top, bottom, 1);
        } else if row + 1 < self.height() {
            self.fb.ds.cursor_row += 1;
        }
        self.fb.ds.pending_wrap = false;
    }

    /// Reverse index: up one row, scrolling at the top of the region.
    fn reverse_index(&mut self) {
        let ds = &self.fb.ds;
        let (row, bottom, top) = (ds.cursor_row, ds.scroll_bottom, ds.scroll_top);
        if row == top {
            self.fb.scroll_down_region(top, bottom, 1);
        } else if row > 0 {
            self.fb.ds.cursor_row -= 1;
        }
        self.fb.ds.pending_wrap = false;
    }

    /// Moves to an absolute position; the row is relative to the region in
    /// origin mode.
    fn goto(&mut self, row: usize, col: usize) {
        let ds = &mut self.fb.ds;
        let (min_row, max_row) = if ds.origin_mode {
            (ds.scroll_top, ds.scroll_bottom)
        } else {
            (0, ds.height - 1)
        };
        ds.cursor_row = (min_row + row).min(max_row);
        ds.cursor_col = col.min(ds.width - 1);
        ds.pending_wrap = false;
    }

    fn set_col(&mut self, col: usize) {
        let ds = &mut self.fb.ds;
        ds.cursor_col = col.min(ds.width - 1);
        ds.pending_wrap = false;
    }

    fn cursor_up(&mut self, n: usize) {
        let ds = &mut self.fb.ds;
        let limit = if ds.cursor_row >= ds.scroll_top {
            ds.scroll_top
        } else {
            0
        };
        ds.cursor_row = ds.cursor_row.saturating_sub(n).max(limit);
        ds.pending_wrap = false;
    }

    fn cursor_down(&mut self, n: usize) {
        let ds = &mut self.fb.ds;
        let limit = if ds.cursor_row <= ds.scroll_bottom {
            ds.scroll_bottom
        } else {
            ds.height - 1
        };
        ds.cursor_row = (ds.cursor_row + n).min(limit);
        ds.pending_wrap = false;
    }

    fn save_cursor(&mut self) {
        let ds = &mut self.fb.ds;
        ds.saved_cursor = Some(SavedCursor {
            row: ds.cursor_row,
            col: ds.cursor_col,
            rend: ds.rend,
            autowrap: ds.autowrap,
            origin_mode: ds.origin_mode,
        });
    }

    fn restore_cursor(&mut self) {
        let ds = &mut self.fb.ds;
        let saved = ds.saved_cursor.unwrap_or_default();
        ds.cursor_row = saved.row.min(ds.height - 1);
        ds.cursor_col = saved.col.min(ds.width - 1);
        ds.rend = saved.rend;
        if ds.saved_cursor.is_some() {
            ds.autowrap = saved.autowrap;
            ds.origin_mode = saved.origin_mode;
        }
        ds.pending_wrap = false;
    }

    fn tab_forward(&mut self, n: usize) {
        for _ in 0..n {
            let ds = &self.fb.ds;
            let next = (ds.cursor_col + 1..ds.width).find(|&c| ds.tabs[c]);
            self.fb.ds.cursor_col = next.unwrap_or(ds.width - 1);
        }
    }

    fn tab_backward(&mut self, n: usize) {
        for _ in 0..n {
            let ds = &self.fb.ds;
            let prev = (0..ds.cursor_col).rev().find(|&c| ds.tabs[c]);
            self.fb.ds.cursor_col = prev.unwrap_or(0);
        }
        self.fb.ds.pending_wrap = false;
    }

    fn print_char(&mut self, c: char) {
        let cw = if (' '..='~').contains(&c) {
            1
        } else {
            match wcwidth(u32::from(c)) {
                Some(w) => w,
                None => return,
            }
        };
        if cw == 0 {
            self.combine(c);
            return;
        }
        let wide = cw == 2;
        if wide && self.width() < 2 {
            return;
        }
        self.last_char = Some(c);
        self.place(wide, |fb, row, col| fb.put_char(row, col, c, wide));
    }

    /// Handles autowrap, insert mode and cursor advance around writing one
    /// character of width 1 or 2 with `write`.
    fn place(&mut self, wide: bool, write: impl FnOnce(&mut Framebuffer, usize, usize)) {
        let span = if wide { 2 } else { 1 };
        let width = self.width();
        self.wrap_if_pending();
        if wide && self.fb.ds.cursor_col + 2 > width {
            if !self.fb.ds.autowrap {
                return;
            }
            self.fb.ds.cursor_col = 0;
            self.index();
        }
        let (row, col) = (self.fb.ds.cursor_row, self.fb.ds.cursor_col);
        if self.fb.ds.insert_mode {
            self.fb.insert_cells(row, col, span);
        }
        write(&mut self.fb, row, col);
        if col + span >= width {
            self.fb.ds.cursor_col = width - 1;
            self.fb.ds.pending_wrap = true;
        } else {
            self.fb.ds.cursor_col = col + span;
            self.fb.ds.pending_wrap = false;
        }
    }

    /// A zero-width character joins the previous cell, or starts a fallback
    /// cell when there is nothing to join.
    fn combine(&mut self, c: char) {
        let ds = &self.fb.ds;
        let (row, col) = (ds.cursor_row, ds.cursor_col);
        let target = if ds.pending_wrap {
            Some(col)
        } else {
            col.checked_sub(1)
        };
        let target = target.map(|t| {
            if self.fb.cell(row, t).spacer && t > 0 {
                t - 1
            } else {
                t
            }
        });
        match target {
            Some(t) if !self.fb.cell(row, t).contents().is_empty() => self.fb.combine(row, t, c),
            _ => self.place(false, |fb, row, col| fb.put_fallback(row, col, c)),
        }
    }

    /// The column erase and insert/delete functions start at: as in tmux, a
    /// cursor waiting to wrap counts as being past the last column.
    fn edit_col(&self) -> usize {
        let ds = &self.fb.ds;
        if ds.pending_wrap {
            ds.width
        } else {
            ds.cursor_col
        }
    }

    /// ED, EL, ECH, ICH and DCH. They leave a pending wrap in place.
    fn edit_in_line(&mut self, action: char, mode: u16, n: usize) {
        let (row, col) = (self.fb.ds.cursor_row, self.edit_col());
        let width = self.width();
        match action {
            'J' => self.erase_display(mode),
            'K' => self.erase_line(mode),
            'X' => self.fb.erase_cells(row, col, col.saturating_add(n)),
            '@' if col < width => self.fb.insert_cells(row, col, n),
            'P' if col < width => self.fb.delete_cells(row, col, n),
            _ => {}
        }
    }

    fn erase_display(&mut self, mode: u16) {
        let ds = &self.fb.ds;
        let (row, col, height, width) = (ds.cursor_row, self.edit_col(), ds.height, ds.width);
        match mode {
            0 => {
                if col == 0 {
                    self.fb.clear_row(row);
                } else {
                    self.fb.erase_cells(row, col, width);
                }
                for r in row + 1..height {
                    self.fb.clear_row(r);
                }
            }
            1 => {
                for r in 0..row {
                    self.fb.clear_row(r);
                }
                self.fb.erase_cells(row, 0, col + 1);
            }
            2 => {
                for r in 0..height {
                    self.fb.clear_row(r);
                }
            }
            _ => {}
        }
    }

    fn erase_line(&mut self, mode: u16) {
        let ds = &self.fb.ds;
        let (row, col, width) = (ds.cursor_row, self.edit_col(), ds.width);
        match mode {
            0 => self.fb.erase_cells(row, col, width),
            1 => self.fb.erase_cells(row, 0, col + 1),
            2 => self.fb.erase_cells(row, 0, width),
            _ => {}
        }
    }

    fn insert_lines(&mut self, n: usize, insert: bool) {
        let ds = &self.fb.ds;
        let (row, top, bottom) = (ds.cursor_row, ds.scroll_top, ds.scroll_bottom);
        if row < top || row > bottom {
            return;
        }
        if insert {
            self.fb.scroll_down_region(row, bottom, n);
        } else {
            self.fb.scroll_up_region(row, bottom, n);
        }
        self.fb.ds.pending_wrap = false;
    }

    fn set_scroll_region(&mut self, params: &CsiParams) {
        let height = self.height();
        let top = usize::from(params.get(0, 1));
        let bottom = usize::from(params.get(1, height as u16)).min(height);
        if top >= bottom {
            return;
        }
        self.fb.ds.scroll_top = top - 1;
        self.fb.ds.scroll_bottom = bottom - 1;
        self.goto(0, 0);
    }

    /// SGR. Each parameter is read with its colon sub-parameters, and the
    /// `;`-separated forms of 38, 48 and 58 (`5;n`, `2;r;g;b`) consume
    /// their arguments, so that no colour value is read as an attribute.
    /// SGR 0 leaves the hyperlink (OSC 8) open, as terminals do.
    fn sgr(&mut self, params: &vte::Params) {
        let rend = &mut self.fb.ds.rend;
        let reset = Renditions {
            link: rend.link,
            ..Renditions::default()
        };
        if params.is_empty() {
            *rend = reset;
            return;
        }
        let mut iter = params.iter();
        while let Some(p) = iter.next() {
            let code = p[0];
            if p.len() > 1 {
                match code {
                    38 | 48 | 58 => {
                        if let Some(color) = colon_color(&p[1..]) {
                            set_color(rend, code, color);
                        }
                    }
                    4 if p[1] == 0 => rend.set_underline(None),
                    4 => {
                        if let Some(style) = UnderlineStyle::from_code(p[1]) {
                            rend.set_underline(Some(style));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match code {
                0 => *rend = reset,
                1 => rend.attrs.set(Attrs::BOLD, true),
                2 => rend.attrs.set(Attrs::FAINT, true),
                3 => rend.attrs.set(Attrs::ITALIC, true),
                4 => rend.set_underline(Some(UnderlineStyle::Single)),
                5 | 6 => rend.attrs.set(Attrs::BLINK, true),
                7 => rend.attrs.set(Attrs::INVERSE, true),
                8 => rend.attrs.set(Attrs::INVISIBLE, true),
                9 => rend.attrs.set(Attrs::STRIKE, true),
                21 => rend.set_underline(Some(UnderlineStyle::Double)),
                22 => {
                    rend.attrs.set(Attrs::BOLD, false);
                    rend.attrs.set(Attrs::FAINT, false);
                }
                23 => rend.attrs.set(Attrs::ITALIC, false),
                24 => rend.set_underline(None),
                25 => rend.attrs.set(Attrs::BLINK, false),
                27 => rend.attrs.set(Attrs::INVERSE, false),
                28 => rend.attrs.set(Attrs::INVISIBLE, false),
                29 => rend.attrs.set(Attrs::STRIKE, false),
                30..=37 => rend.fg = Color::Indexed((code - 30) as u8),
                39 => rend.fg = Color::Default,
                40..=47 => rend.bg = Color::Indexed((code - 40) as u8),
                49 => rend.bg = Color::Default,
                53 => rend.attrs.set(Attrs::OVERLINE, true),
                55 => rend.attrs.set(Attrs::OVERLINE, false),
                59 => rend.underline_color = Color::Default,
                90..=97 => rend.fg = Color::Indexed((code - 90 + 8) as u8),
                100..=107 => rend.bg = Color::Indexed((code - 100 + 8) as u8),
                38 | 48 | 58 => {
                    let kind = iter.next().map(|p| p[0]);
                    let color = match kind {
                        Some(5) => iter
                            .next()
                            .and_then(|n| u8::try_from(n[0]).ok())
                            .map(Color::Indexed),
                        Some(2) => {
                            let mut rgb = [0u8; 3];
                            let mut ok = true;
                            for v in &mut rgb {
                                match iter.next().and_then(|n| u8::try_from(n[0]).ok()) {
                                    Some(x) => *v = x,
                                    None => ok = false,
                                }
                            }
                            ok.then(|| Color::Rgb(rgb[0], rgb[1], rgb[2]))
                        }
                        _ => None,
                    };
                    if let Some(color) = color {
                        set_color(rend, code, color);
                    }
                }
                _ => {}
            }
        }
    }

    fn set_private_mode(&mut self, mode: u16, on: bool) {
        let ds = &mut self.fb.ds;
        match mode {
            1 => ds.application_cursor_keys = on,
            3 => {
                self.erase_display(2);
                self.fb.ds.scroll_top = 0;
                self.fb.ds.scroll_bottom = self.height() - 1;
                self.goto(0, 0);
            }
            5 => ds.reverse_video = on,
            6 => {
                ds.origin_mode = on;
                self.goto(0, 0);
            }
            7 => ds.autowrap = on,
            25 => ds.cursor_visible = on,
            9 | 1000..=1003 => {
                ds.mouse_reporting = if !on {
                    MouseReporting::None
                } else {
                    match mode {
                        9 => MouseReporting::X10,
                        1000 => MouseReporting::Normal,
                        1001 => MouseReporting::Highlight,
                        1002 => MouseReporting::ButtonEvent,
                        _ => MouseReporting::AnyEvent,
                    }
                }
            }
            1004 => ds.mouse_focus_event = on,
            1005 | 1006 | 1015 => {
                ds.mouse_encoding = if !on {
                    MouseEncoding::Default
                } else {
                    match mode {
                        1005 => MouseEncoding::Utf8,
                        1006 => MouseEncoding::Sgr,
                        _ => MouseEncoding::Urxvt,
                    }
                }
            }
            1007 => ds.mouse_alternate_scroll = on,
            2004 => ds.bracketed_paste = on,
            47 | 1047 => {
                if on {
                    self.fb.enter_alternate();
                } else {
                    self.fb.leave_alternate();
                }
            }
            1048 => {
                if on {
                    self.save_cursor();
                } else {
                    self.restore_cursor();
                }
            }
            1049 => {
                if on {
                    if !self.fb.alternate_screen() {
                        self.save_cursor();
                        self.fb.enter_alternate();
                    }
                } else if self.fb.alternate_screen() {
                    self.fb.leave_alternate();
                    self.restore_cursor();
                }
            }
            _ => {}
        }
    }

    /// DECRQM answer: 1 set, 2 reset, 0 unknown.
    fn private_mode_status(&self, mode: u16) -> u8 {
        let ds = &self.fb.ds;
        let on = match mode {
            1 => ds.application_cursor_keys,
            5 => ds.reverse_video,
            6 => ds.origin_mode,
            7 => ds.autowrap,
            25 => ds.cursor_visible,
            9 | 1000..=1003 => ds.mouse_reporting.mode() == Some(mode),
            1004 => ds.mouse_focus_event,
            1005 | 1006 | 1015 => ds.mouse_encoding.mode() == Some(mode),
            1007 => ds.mouse_alternate_scroll,
            2004 => ds.bracketed_paste,
            47 | 1047 | 1049 => self.fb.alternate_screen(),
            _ => return 0,
        };
        if on { 1 } else { 2 }
    }

    fn soft_reset(&mut self) {
        let height = self.height();
        let ds = &mut self.fb.ds;
        ds.insert_mode = false;
        ds.origin_mode = false;
        ds.autowrap = true;
        ds.application_cursor_keys = false;
        ds.application_keypad = false;
        ds.cursor_visible = true;
        ds.scroll_top = 0;
        ds.scroll_bottom = height - 1;
        ds.rend = Renditions::default();
        ds.saved_cursor = None;
        ds.pending_wrap = false;
    }

    /// REP: repeats the last printed character, like tmux only up to the
    /// right margin.
    fn repeat_last(&mut self, n: usize) {
        if let Some(c) = self.last_char {
            let ds = &self.fb.ds;
            let room = if ds.pending_wrap {
                0
            } else {
                ds.width - ds.cursor_col
            };
            let n = n.min(room);
            for _ in 0..n {
                self.print_char(c);
            }
        }
    }

    fn csi(&mut self, params: &vte::Params, intermediates: &[u8], action: char) {
        let p = CsiParams::new(params);
        let n = usize::from(p.get(0, 1));
        match (intermediates, action) {
            (_, 'm') if intermediates.is_empty() => {
                self.sgr(params);
                return;
            }
            _ if p.has_subparams() => {}
            ([], 'A') => self.cursor_up(n),
            ([], 'B' | 'e') => self.cursor_down(n),
            ([], 'C' | 'a') => {
                let col = self.fb.ds.cursor_col + n;
                self.set_col(col);
            }
            ([], 'D') => {
                let col = self.fb.ds.cursor_col.saturating_sub(n);
                self.set_col(col);
            }
            ([], 'E') => {
                self.cursor_down(n);
                self.set_col(0);
            }
            ([], 'F') => {
                self.cursor_up(n);
                self.set_col(0);
            }
            ([], 'G' | '`') => self.set_col(n - 1),
            ([], 'H' | 'f') => {
                let row = usize::from(p.get(0, 1)) - 1;
                let col = usize::from(p.get(1, 1)) - 1;
                self.goto(row, col);
            }
            ([], 'd') => {
                let col = self.fb.ds.cursor_col;
                self.goto(n - 1, col);
            }
            ([], 'J' | 'K' | 'X' | '@' | 'P') => {
                self.edit_in_line(action, p.raw(0), n);
                return;
            }
            ([], 'L') => self.insert_lines(n, true),
            ([], 'M') => self.insert_lines(n, false),
            ([], 'S') => {
                let (top, bottom) = (self.fb.ds.scroll_top, self.fb.ds.scroll_bottom);
                self.scroll_up(top, bottom, n);
            }
            ([], 'T') if p.len() <= 1 => {
                let (top, bottom) = (self.fb.ds.scroll_top, self.fb.ds.scroll_bottom);
                self.fb.scroll_down_region(top, bottom, n);
            }
            ([], 'r') => self.set_scroll_region(&p),
            ([], 'I') => self.tab_forward(n),
            ([], 'Z') => self.tab_backward(n),
            ([], 'g') => match p.raw(0) {
                0 => {
                    let col = self.fb.ds.cursor_col;
                    self.fb.ds.tabs[col] = false;
                }
                3 => self.fb.ds.tabs.iter_mut().for_each(|t| *t = false),
                _ => {}
            },
            ([], 'b') => self.repeat_last(n),
            ([], 's') => self.save_cursor(),
            ([], 'u') => self.restore_cursor(),
            ([], 'h' | 'l') => {
                for &mode in p.as_slice() {
                    if mode == 4 {
                        self.fb.ds.insert_mode = action == 'h';
                    }
                }
                return;
            }
            ([b'?'], 'h' | 'l') => {
                for &mode in p.as_slice() {
                    self.set_private_mode(mode, action == 'h');
                }
                return;
            }
            ([], 'c') if p.raw(0) == 0 => self.reply(b"\x1b[?62c"),
            ([b'>'], 'c') if p.raw(0) == 0 => self.reply(b"\x1b[>1;10;0c"),
            ([], 'n') => match p.raw(0) {
                5 => self.reply(b"\x1b[0n"),
                6 => {
                    let ds = &self.fb.ds;
                    let answer = format!("\x1b[{};{}R", ds.cursor_row + 1, ds.cursor_col + 1);
                    self.reply(answer.as_bytes());
                }
                _ => {}
            },
            ([b'?', b'$'], 'p') => {
                let mode = p.raw(0);
                let answer = format!("\x1b[?{};{}$y", mode, self.private_mode_status(mode));
                self.reply(answer.as_bytes());
            }
            ([b'$'], 'p') => {
                let mode = p.raw(0);
                let status = match mode {
                    4 if self.fb.ds.insert_mode => 1,
                    4 => 2,
                    _ => 0,
                };
                let answer = format!("\x1b[{mode};{status}$y");
                self.reply(answer.as_bytes());
            }
            ([b'!'], 'p') => self.soft_reset(),
            _ => return,
        }
        self.fb.ds.pending_wrap = false;
    }

    /// OSC 8 `;params;URI`: later printing is linked to URI, or to nothing
    /// when the URI is empty, too long, not printable ASCII or the table is
    /// full (see [`Hyperlink::new`] and [`crate::framebuffer::MAX_LINKS`]).
    fn open_link(&mut self, params: &[&[u8]]) {
        let uri = params.get(2..).unwrap_or_default().join(&b';');
        let id = link_id(params.get(1).copied().unwrap_or_default());
        self.fb.ds.rend.link = match Hyperlink::new(id, &uri) {
            Some(link) => self.fb.intern_link(link),
            None => LinkId::NONE,
        };
    }

    fn osc(&mut self, params: &[&[u8]]) {
        let Some(&command) = params.first() else {
            return;
        };
        let text = || {
            let mut s = String::new();
            for (i, part) in params[1..].iter().enumerate() {
                if i > 0 {
                    s.push(';');
                }
                s.extend(
                    String::from_utf8_lossy(part)
                        .chars()
                        .filter(|&c| c >= ' ' && !('\u{7f}'..'\u{a0}').contains(&c)),
                );
            }
            s
        };
        match command {
            b"0" | b"" => {
                let t = text();
                self.fb.set_icon_name(&t);
                self.fb.set_title(&t);
            }
            b"1" => self.fb.set_icon_name(&text()),
            b"2" => self.fb.set_title(&text()),
            b"8" => self.open_link(params),
            b"52" if params.len() >= 3 => {
                let data = params[2];
                if data != b"?" {
                    self.fb.set_clipboard(data);
                }
            }
            _ => {}
        }
    }
}

/// The `id=` value in OSC 8's colon-separated `key=value` parameters.
fn link_id(params: &[u8]) -> &[u8] {
    params
        .split(|&b| b == b':')
        .find_map(|kv| kv.strip_prefix(b"id="))
        .unwrap_or(b"")
}

fn set_color(rend: &mut Renditions, code: u16, color: Color) {
    match code {
        38 => rend.fg = color,
        48 => rend.bg = color,
        _ => rend.underline_color = color,
    }
}

/// Colour from the colon form after `38`/`48`/`58`: `5:n`, `2:r:g:b` or
/// `2:colourspace:r:g:b`.
fn colon_color(rest: &[u16]) -> Option<Color> {
    let byte = |v: u16| u8::try_from(v).ok();
    match rest {
        [5, n] => byte(*n).map(Color::Indexed),
        [2, r, g, b] | [2, _, r, g, b] => Some(Color::Rgb(byte(*r)?, byte(*g)?, byte(*b)?)),
        _ => None,
    }
}

impl vte::Perform for Terminal {
    fn print(&mut self, c: char) {
        if (' '..='~').contains(&c) {
            if self.run_len == RUN_CAPACITY {
                self.flush_run();
            }
            self.run[self.run_len] = c as u8;
            self.run_len += 1;
        } else {
            self.flush_run();
            self.print_char(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        self.flush_run();
        match byte {
            0x07 => self.fb.ring_bell(),
            0x08 => {
                let ds = &mut self.fb.ds;
                ds.pending_wrap = false;
                ds.cursor_col = ds.cursor_col.saturating_sub(1);
            }
            0x09 => self.tab_forward(1),
            0x0a..=0x0c => self.index(),
            0x0d => {
                self.fb.ds.cursor_col = 0;
                self.fb.ds.pending_wrap = false;
            }
            0x80.. => {}
            _ => self.fb.ds.pending_wrap = false,
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        ignore: bool,
        action: char,
    ) {
        self.flush_run();
        if !ignore {
            self.csi(params, intermediates, action);
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], ignore: bool, byte: u8) {
        self.flush_run();
        if ignore {
            return;
        }
        match (intermediates, byte) {
            ([], b'7') => self.save_cursor(),
            ([], b'8') => self.restore_cursor(),
            ([], b'c') => {
                self.fb.reset();
                self.last_char = None;
            }
            ([], b'D') => self.index(),
            ([], b'E') => {
                self.fb.ds.cursor_col = 0;
                self.index();
            }
            ([], b'H') => {
                let col = self.fb.ds.cursor_col;
                self.fb.ds.tabs[col] = true;
            }
            ([], b'M') => self.reverse_index(),
            ([], b'=') => self.fb.ds.application_keypad = true,
            ([], b'>') => self.fb.ds.application_keypad = false,
            ([b'#'], b'8') => {
                self.fb.fill_e();
                let height = self.height();
                self.fb.ds.scroll_top = 0;
                self.fb.ds.scroll_bottom = height - 1;
                self.goto(0, 0);
            }
            _ => {}
        }
    }

    fn osc_dispatch(&mut self, params: &[&[u8]], _bell_terminated: bool) {
        self.flush_run();
        self.osc(params);
    }
}

/// Clamps a size received from the network to what the framebuffer supports.
pub fn clamp_size(width: i64, height: i64) -> (usize, usize) {
    (
        crate::framebuffer::clamp_dimension(width, MAX_WIDTH),
        crate::framebuffer::clamp_dimension(height, MAX_HEIGHT),
    )
}
