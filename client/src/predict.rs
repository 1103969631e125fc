//! The prediction engine (spec §11): typed characters are shown before the
//! server echoes them, and repaired within one round trip when the guess was
//! wrong.
//!
//! Every prediction belongs to an *epoch*. A new epoch starts after anything
//! whose effect cannot be guessed (control characters, escape sequences,
//! carriage return, a write into the last column); predictions of an epoch
//! are tentative, and not displayed, until one of them is confirmed by the
//! server's screen. That is what keeps password prompts from echoing.
//!
//! A prediction is checked once the server's echo acknowledgement covers the
//! client state that carried its keystroke: the server then promises that
//! whatever the application echoed is on the screen it sent.
//!
//! Pure: the caller passes the time, the network figures and the newest
//! server framebuffer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mosh_term::framebuffer::UnderlineStyle;
use mosh_term::width::wcwidth;
use mosh_term::{Cell, Framebuffer};

use crate::paint::Canvas;

/// When predictions are displayed (`MOSH_PREDICTION_DISPLAY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayMode {
    /// Always shown.
    Always,
    /// Never made.
    Never,
    /// Shown on a slow link or after glitches.
    Adaptive,
    /// Always shown; a wrong cell drops only itself.
    Experimental,
}

impl DisplayMode {
    /// Parses the value of `MOSH_PREDICTION_DISPLAY`.
    pub fn parse(value: &str) -> Option<DisplayMode> {
        match value {
            "always" => Some(DisplayMode::Always),
            "never" => Some(DisplayMode::Never),
            "adaptive" => Some(DisplayMode::Adaptive),
            "experimental" => Some(DisplayMode::Experimental),
            _ => None,
        }
    }
}

/// Send interval above which predictions are shown (adaptive mode).
const SHOW_ON: Duration = Duration::from_millis(30);
/// Send interval at or below which they stop being shown.
const SHOW_OFF: Duration = Duration::from_millis(20);
/// Send interval above which shown predictions are underlined.
const FLAG_ON: Duration = Duration::from_millis(80);
/// Send interval at or below which they are not.
const FLAG_OFF: Duration = Duration::from_millis(50);
/// A prediction unconfirmed this long is a glitch.
const GLITCH: Duration = Duration::from_millis(250);
/// A prediction unconfirmed this long is a big glitch.
const BIG_GLITCH: Duration = Duration::from_millis(5000);
/// Glitch counter after a glitch.
const GLITCH_COUNT: u32 = 10;
/// Glitch counter after a big glitch.
const BIG_GLITCH_COUNT: u32 = 20;
/// Quick confirmations lower the glitch counter at most this often.
const QUICK_CONFIRMATION_SPACING: Duration = Duration::from_millis(150);
/// How often to be woken while predictions are pending.
const WAKE: Duration = Duration::from_millis(50);
/// Longest CSI parameter string followed in input.
const MAX_CSI: usize = 16;

/// One predicted cell.
#[derive(Debug, Clone)]
struct CellPrediction {
    epoch: u64,
    frame: u64,
    time: Instant,
    /// What the cell will show; `None` when unknown (shifted out of view).
    replacement: Option<Cell>,
    /// What the cell held when predictions were made over it.
    original: Vec<Cell>,
}

/// A predicted cursor position.
#[derive(Debug, Clone, Copy)]
struct CursorPrediction {
    epoch: u64,
    frame: u64,
    row: usize,
    col: usize,
}

/// Where the input parser is.
#[derive(Debug, Clone, Default)]
enum InputState {
    #[default]
    Ground,
    Escape,
    Csi(Vec<u8>),
}

/// The outcome of checking one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pending,
    Correct,
    CorrectNoCredit,
    Incorrect,
}

/// The prediction engine.
#[derive(Debug, Clone)]
pub struct Predictor {
    mode: DisplayMode,
    overwrite: bool,
    cells: BTreeMap<(usize, usize), CellPrediction>,
    cursors: Vec<CursorPrediction>,
    prediction_epoch: u64,
    confirmed_epoch: u64,
    input: InputState,
    utf8: Vec<u8>,
    srtt_trigger: bool,
    flagging: bool,
    glitches: u32,
    last_quick_confirmation: Option<Instant>,
    send_interval: Duration,
    last_sent_frame: u64,
    echo_ack: u64,
    size: Option<(usize, usize)>,
}

impl Predictor {
    /// An engine with nothing predicted. `overwrite` predicts typing as
    /// overwriting rather than inserting.
    pub fn new(mode: DisplayMode, overwrite: bool) -> Predictor {
        Predictor {
            mode,
            overwrite,
            cells: BTreeMap::new(),
            cursors: Vec::new(),
            prediction_epoch: 1,
            confirmed_epoch: 0,
            input: InputState::Ground,
            utf8: Vec::new(),
            srtt_trigger: false,
            flagging: false,
            glitches: 0,
            last_quick_confirmation: None,
            send_interval: Duration::ZERO,
            last_sent_frame: 0,
            echo_ack: 0,
            size: None,
        }
    }

    /// Updates the network figures: the SSP send interval, the number of
    /// the newest client state sent and the server's echo acknowledgement.
    pub fn set_network(&mut self, send_interval: Duration, last_sent_frame: u64, echo_ack: u64) {
        self.send_interval = send_interval;
        self.last_sent_frame = last_sent_frame;
        self.echo_ack = echo_ack;
    }

    /// Whether predictions are displayed now.
    pub fn showing(&self) -> bool {
        match self.mode {
            DisplayMode::Never => false,
            DisplayMode::Always | DisplayMode::Experimental => true,
            DisplayMode::Adaptive => self.srtt_trigger || self.glitches > 0,
        }
    }

    /// Whether displayed predictions are underlined.
    pub fn flagging(&self) -> bool {
        self.flagging || self.glitches > GLITCH_COUNT
    }

    /// Whether any prediction waits for confirmation.
    pub fn pending(&self) -> bool {
        !self.cells.is_empty() || !self.cursors.is_empty()
    }

    /// When the engine wants to be woken to re-check its timers.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.pending().then_some(now + WAKE)
    }

    /// Forgets every prediction; the next ones start tentative.
    pub fn reset(&mut self) {
        self.cells.clear();
        self.cursors.clear();
        self.become_tentative();
    }

    fn become_tentative(&mut self) {
        if self.mode != DisplayMode::Experimental {
            self.prediction_epoch += 1;
        }
    }

    /// Predicts the effect of typed `bytes` on `fb` (the newest server
    /// screen).
    pub fn input(&mut self, bytes: &[u8], fb: &Framebuffer, now: Instant) {
        if self.mode == DisplayMode::Never {
            return;
        }
        self.check_size(fb);
        for &byte in bytes {
            self.input_byte(byte, fb, now);
        }
    }

    fn input_byte(&mut self, byte: u8, fb: &Framebuffer, now: Instant) {
        match std::mem::take(&mut self.input) {
            InputState::Ground => self.ground_byte(byte, fb, now),
            InputState::Escape => match byte {
                b'[' | b'O' => self.input = InputState::Csi(Vec::new()),
                0x1b => {
                    self.become_tentative();
                    self.input = InputState::Escape;
                }
                _ => self.become_tentative(),
            },
            InputState::Csi(mut params) => match byte {
                0x40..=0x7e => match (params.is_empty(), byte) {
                    (true, b'C') => self.move_cursor(fb, 1),
                    (true, b'D') => self.move_cursor(fb, -1),
                    _ => self.become_tentative(),
                },
                0x20..=0x3f if params.len() < MAX_CSI => {
                    params.push(byte);
                    self.input = InputState::Csi(params);
                }
                _ => self.become_tentative(),
            },
        }
    }

    fn ground_byte(&mut self, byte: u8, fb: &Framebuffer, now: Instant) {
        if !self.utf8.is_empty() || byte >= 0x80 {
            self.utf8.push(byte);
            let expected = match self.utf8[0] {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            if self.utf8.len() < expected {
                return;
            }
            let bytes = std::mem::take(&mut self.utf8);
            match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.chars().next())
            {
                Some(c) => self.print(c, fb, now),
                None => self.become_tentative(),
            }
            return;
        }
        match byte {
            0x1b => self.input = InputState::Escape,
            0x7f => self.backspace(fb, now),
            b'\r' => {
                self.become_tentative();
                self.carriage_return(fb, now);
            }
            0x00..=0x1f => self.become_tentative(),
            _ => self.print(char::from(byte), fb, now),
        }
    }

    /// The predicted cursor of the current epoch, created from the newest
    /// one (or the real cursor) when needed.
    fn cursor(&mut self, fb: &Framebuffer) -> &mut CursorPrediction {
        let frame = self.last_sent_frame + 1;
        let epoch = self.prediction_epoch;
        match self.cursors.last() {
            Some(last) if last.epoch == epoch => {}
            Some(&last) => self.cursors.push(CursorPrediction {
                epoch,
                frame,
                ..last
            }),
            None => self.cursors.push(CursorPrediction {
                epoch,
                frame,
                row: fb.ds.cursor_row.min(fb.height() - 1),
                col: fb.ds.cursor_col.min(fb.width() - 1),
            }),
        }
        let cursor = self.cursors.last_mut().expect("a cursor was just ensured");
        cursor.frame = frame;
        cursor
    }

    /// What a cell shows with the predictions so far (`None`: unknown).
    fn predicted_cell(&self, fb: &Framebuffer, row: usize, col: usize) -> Option<Cell> {
        match self.cells.get(&(row, col)) {
            Some(prediction) => prediction.replacement,
            None => {
                let cell = *fb.cell(row, col);
                (!cell.wide && !cell.spacer).then_some(cell)
            }
        }
    }

    fn predict_cell(
        &mut self,
        fb: &Framebuffer,
        now: Instant,
        (row, col): (usize, usize),
        replacement: Option<Cell>,
    ) {
        let actual = *fb.cell(row, col);
        let epoch = self.prediction_epoch;
        let frame = self.last_sent_frame + 1;
        let prediction = self
            .cells
            .entry((row, col))
            .or_insert_with(|| CellPrediction {
                epoch,
                frame,
                time: now,
                replacement: None,
                original: Vec::new(),
            });
        prediction.epoch = epoch;
        prediction.frame = frame;
        prediction.time = now;
        prediction.replacement = replacement;
        prediction.original.push(actual);
    }

    fn print(&mut self, c: char, fb: &Framebuffer, now: Instant) {
        if wcwidth(u32::from(c)) != Some(1) {
            self.become_tentative();
            return;
        }
        let (width, height) = (fb.width(), fb.height());
        let (row, col) = {
            let cursor = self.cursor(fb);
            (cursor.row, cursor.col)
        };
        if row >= height || col >= width {
            return;
        }
        if !self.overwrite {
            for i in (col + 1..width).rev() {
                let shifted = if i == width - 1 {
                    None
                } else {
                    self.predicted_cell(fb, row, i - 1)
                };
                self.predict_cell(fb, now, (row, i), shifted);
            }
        }
        let rend = if col > 0 {
            self.predicted_cell(fb, row, col - 1)
                .map_or(fb.cell(row, col - 1).rend, |cell| cell.rend)
        } else {
            fb.ds.rend
        };
        let mut cell = Cell::blank(rend);
        cell.set_char(c);
        self.predict_cell(fb, now, (row, col), Some(cell));
        if col + 1 < width {
            self.cursor(fb).col = col + 1;
        } else {
            self.become_tentative();
            self.carriage_return(fb, now);
        }
    }

    fn backspace(&mut self, fb: &Framebuffer, now: Instant) {
        let width = fb.width();
        let (row, col) = {
            let cursor = self.cursor(fb);
            (cursor.row, cursor.col)
        };
        if col == 0 || row >= fb.height() || col >= width {
            return;
        }
        let col = col - 1;
        self.cursor(fb).col = col;
        if self.overwrite {
            let rend = fb.cell(row, col).rend;
            self.predict_cell(fb, now, (row, col), Some(Cell::blank(rend)));
        } else {
            for i in col..width {
                let shifted = if i == width - 1 {
                    None
                } else {
                    self.predicted_cell(fb, row, i + 1)
                };
                self.predict_cell(fb, now, (row, i), shifted);
            }
        }
    }

    fn move_cursor(&mut self, fb: &Framebuffer, delta: isize) {
        let width = fb.width();
        let cursor = self.cursor(fb);
        match delta {
            1 if cursor.col + 1 < width => cursor.col += 1,
            -1 if cursor.col > 0 => cursor.col -= 1,
            _ => {}
        }
    }

    fn carriage_return(&mut self, fb: &Framebuffer, now: Instant) {
        let height = fb.height();
        let row = self.cursor(fb).row;
        if row + 1 < height {
            let cursor = self.cursor(fb);
            cursor.row = row + 1;
            cursor.col = 0;
        } else {
            for col in 0..fb.width() {
                let rend = fb.cell(row, col).rend.erased();
                self.predict_cell(fb, now, (row, col), Some(Cell::blank(rend)));
            }
            self.cursor(fb).col = 0;
        }
    }

    fn check_size(&mut self, fb: &Framebuffer) {
        let size = (fb.width(), fb.height());
        if self.size != Some(size) {
            if self.size.is_some() {
                self.reset();
            }
            self.size = Some(size);
        }
    }

    fn update_triggers(&mut self) {
        let interval = self.send_interval;
        if interval > SHOW_ON {
            self.srtt_trigger = true;
        } else if interval <= SHOW_OFF && !self.pending() {
            self.srtt_trigger = false;
        }
        if interval > FLAG_ON {
            self.flagging = true;
        } else if interval <= FLAG_OFF {
            self.flagging = false;
        }
    }

    fn cell_verdict(
        &self,
        prediction: &CellPrediction,
        fb: &Framebuffer,
        pos: (usize, usize),
    ) -> Verdict {
        if prediction.frame > self.echo_ack {
            return Verdict::Pending;
        }
        let (row, col) = pos;
        if row >= fb.height() || col >= fb.width() {
            return Verdict::Incorrect;
        }
        let Some(replacement) = prediction.replacement else {
            return Verdict::CorrectNoCredit;
        };
        if replacement.is_blank() {
            return Verdict::CorrectNoCredit;
        }
        let actual = fb.cell(row, col);
        if actual.contents() != replacement.contents() || actual.wide != replacement.wide {
            return Verdict::Incorrect;
        }
        if prediction
            .original
            .iter()
            .any(|before| before.contents() == actual.contents())
        {
            Verdict::CorrectNoCredit
        } else {
            Verdict::Correct
        }
    }

    /// Checks predictions against `fb`, the newest server screen: confirms,
    /// retires or kills them, and updates the display triggers.
    pub fn cull(&mut self, fb: &Framebuffer, now: Instant) {
        if self.mode == DisplayMode::Never {
            return;
        }
        self.check_size(fb);
        self.update_triggers();
        let mut kill: Option<u64> = None;
        let mut confirmed_rows = Vec::new();
        let positions: Vec<(usize, usize)> = self.cells.keys().copied().collect();
        for pos in positions {
            let prediction = &self.cells[&pos];
            let verdict = self.cell_verdict(prediction, fb, pos);
            let (epoch, age) = (
                prediction.epoch,
                now.saturating_duration_since(prediction.time),
            );
            match verdict {
                Verdict::Pending => {
                    if age >= BIG_GLITCH {
                        self.glitches = self.glitches.max(BIG_GLITCH_COUNT);
                    } else if age >= GLITCH {
                        self.glitches = self.glitches.max(GLITCH_COUNT);
                    }
                }
                Verdict::Correct => {
                    self.confirmed_epoch = self.confirmed_epoch.max(epoch);
                    let spaced = self.last_quick_confirmation.is_none_or(|at| {
                        now.saturating_duration_since(at) >= QUICK_CONFIRMATION_SPACING
                    });
                    if age < GLITCH && self.glitches > 0 && spaced {
                        self.glitches -= 1;
                        self.last_quick_confirmation = Some(now);
                    }
                    confirmed_rows.push(pos.0);
                    self.cells.remove(&pos);
                }
                Verdict::CorrectNoCredit => {
                    self.cells.remove(&pos);
                }
                Verdict::Incorrect => {
                    if epoch > self.confirmed_epoch {
                        kill = Some(kill.map_or(epoch, |k| k.min(epoch)));
                    } else if self.mode == DisplayMode::Experimental {
                        self.cells.remove(&pos);
                    } else {
                        self.reset();
                        return;
                    }
                }
            }
        }
        for ((row, col), prediction) in &mut self.cells {
            if confirmed_rows.contains(row)
                && let Some(cell) = prediction.replacement.as_mut()
                && *row < fb.height()
                && *col < fb.width()
            {
                cell.rend = fb.cell(*row, *col).rend;
            }
        }
        if let Some(epoch) = kill {
            self.kill_epoch(epoch, fb);
        }
        self.cull_cursors(fb);
    }

    fn cull_cursors(&mut self, fb: &Framebuffer) {
        let Some(&newest) = self.cursors.last() else {
            return;
        };
        if newest.frame <= self.echo_ack {
            let matches = newest.row == fb.ds.cursor_row && newest.col == fb.ds.cursor_col;
            if !matches {
                if newest.epoch > self.confirmed_epoch {
                    self.kill_epoch(newest.epoch, fb);
                } else {
                    self.reset();
                    return;
                }
            }
        }
        let echo_ack = self.echo_ack;
        self.cursors.retain(|cursor| cursor.frame > echo_ack);
    }

    fn kill_epoch(&mut self, epoch: u64, fb: &Framebuffer) {
        self.cells.retain(|_, prediction| prediction.epoch < epoch);
        self.cursors.retain(|cursor| cursor.epoch < epoch);
        self.cursors.push(CursorPrediction {
            epoch: self.prediction_epoch,
            frame: self.last_sent_frame + 1,
            row: fb.ds.cursor_row.min(fb.height() - 1),
            col: fb.ds.cursor_col.min(fb.width() - 1),
        });
    }

    /// `fb` with the displayable predictions drawn over it.
    pub fn overlay(&self, fb: Framebuffer) -> Framebuffer {
        if !self.showing() || !self.pending() {
            return fb;
        }
        let flag = self.flagging();
        let mut canvas = Canvas::new(fb);
        for (&(row, col), prediction) in &self.cells {
            if prediction.epoch > self.confirmed_epoch {
                continue;
            }
            let Some(mut cell) = prediction.replacement else {
                continue;
            };
            let fb = canvas.framebuffer();
            if row >= fb.height() || col >= fb.width() {
                continue;
            }
            let actual = fb.cell(row, col);
            if flag && !(cell.is_blank() && actual.is_blank()) {
                cell.rend.set_underline(Some(UnderlineStyle::Single));
            }
            if cell != *actual {
                canvas.put(row, col, &cell);
            }
        }
        let mut fb = canvas.finish();
        let cursor = self
            .cursors
            .iter()
            .rev()
            .find(|cursor| cursor.epoch <= self.confirmed_epoch);
        if let Some(cursor) = cursor
            && cursor.row < fb.height()
            && cursor.col < fb.width()
        {
            fb.ds.cursor_row = cursor.row;
            fb.ds.cursor_col = cursor.col;
            fb.ds.pending_wrap = false;
        }
        fb
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosh_term::Emulator;
    use mosh_term::framebuffer::Attrs;

    const SLOW: Duration = Duration::from_millis(300);
    const FAST: Duration = Duration::from_millis(20);

    fn screen(text: &[u8]) -> Framebuffer {
        let mut emulator = Emulator::new(20, 5);
        emulator.feed(text);
        emulator.into_framebuffer()
    }

    fn row(fb: &Framebuffer, r: usize) -> String {
        (0..fb.width())
            .map(|c| match fb.cell(r, c).contents() {
                "" => " ".to_owned(),
                s => s.to_owned(),
            })
            .collect::<String>()
            .trim_end()
            .to_owned()
    }

    fn underlined(fb: &Framebuffer, r: usize, c: usize) -> bool {
        fb.cell(r, c).rend.attrs.contains(Attrs::UNDERLINE)
    }

    /// An engine whose first epoch was confirmed by typing `e` at `$ `.
    fn confirmed(mode: DisplayMode) -> (Predictor, Instant) {
        let start = Instant::now();
        let mut engine = Predictor::new(mode, false);
        engine.set_network(SLOW, 0, 0);
        let prompt = screen(b"$ ");
        engine.input(b"e", &prompt, start);
        assert_eq!(
            row(&engine.overlay(prompt.clone()), 0),
            "$",
            "the first epoch is tentative"
        );
        engine.set_network(SLOW, 1, 1);
        engine.cull(&screen(b"$ e"), start + SLOW);
        assert!(
            !engine.pending()
                || engine
                    .cells
                    .values()
                    .all(|p| p.replacement.is_none_or(|c| c.is_blank()))
        );
        (engine, start + SLOW)
    }

    #[test]
    fn confirmed_epoch_shows_typing_underlined_with_the_cursor() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        let server = screen(b"$ e");
        engine.input(b"ch", &server, now);
        let shown = engine.overlay(server.clone());
        assert_eq!(row(&shown, 0), "$ ech");
        assert!(underlined(&shown, 0, 3) && underlined(&shown, 0, 4));
        assert!(
            !underlined(&shown, 0, 2),
            "the server's own cell is untouched"
        );
        assert_eq!((shown.ds.cursor_row, shown.ds.cursor_col), (0, 5));
    }

    #[test]
    fn predictions_after_linked_curly_text_get_a_plain_underline_only() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        let styled = b"$ \x1b]8;id=l;http://e.com/\x1b\\\x1b[4:3;58;5;196;9;53;31me";
        let server = screen(styled);
        assert!(!server.cell(0, 2).rend.link.is_none());
        engine.input(b"ch", &server, now);
        let shown = engine.overlay(server.clone());
        assert_eq!(row(&shown, 0), "$ ech");
        let predicted = shown.cell(0, 3).rend;
        let mut expected = server.cell(0, 2).rend.stock();
        expected.set_underline(Some(UnderlineStyle::Single));
        assert_eq!(
            predicted, expected,
            "a plain underline in the stock colours, no link, style or underline colour"
        );
        assert_eq!(shown.cell(0, 2), server.cell(0, 2), "the server's cell");
    }

    #[test]
    fn only_characters_the_c_library_makes_one_column_wide_are_predicted() {
        // The soft hyphen and U+2630 take one column in the C library
        // (unicode-width: 0 and 2), so they are predicted, as stock does.
        let (mut engine, now) = confirmed(DisplayMode::Always);
        let server = screen(b"$ e");
        engine.input("\u{ad}\u{2630}".as_bytes(), &server, now);
        let shown = engine.overlay(server.clone());
        assert_eq!(row(&shown, 0), "$ e\u{ad}\u{2630}");
        assert_eq!(shown.ds.cursor_col, 5);
        // A wide or a combining character starts a tentative epoch: what
        // follows is not shown.
        for text in ["漢x", "\u{301}x"] {
            let (mut engine, now) = confirmed(DisplayMode::Always);
            engine.input(text.as_bytes(), &server, now);
            assert_eq!(row(&engine.overlay(server.clone()), 0), "$ e", "{text}");
        }
    }

    #[test]
    fn echo_confirms_and_the_overlay_goes_away() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        engine.input(b"ch", &screen(b"$ e"), now);
        engine.set_network(SLOW, 2, 2);
        let echoed = screen(b"$ ech");
        engine.cull(&echoed, now + SLOW);
        let shown = engine.overlay(echoed.clone());
        assert_eq!(row(&shown, 0), "$ ech");
        assert!(!underlined(&shown, 0, 3) && !underlined(&shown, 0, 4));
        assert_eq!(shown.ds.cursor_col, 5);
    }

    #[test]
    fn unconfirmed_predictions_wait_for_the_echo_ack() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        engine.input(b"x", &screen(b"$ e"), now);
        engine.set_network(SLOW, 2, 1);
        engine.cull(&screen(b"$ e"), now + Duration::from_millis(10));
        assert_eq!(
            row(&engine.overlay(screen(b"$ e")), 0),
            "$ ex",
            "not acked yet"
        );
    }

    #[test]
    fn a_wrong_prediction_disappears_with_the_servers_frame() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        engine.input(b"x", &screen(b"$ e"), now);
        engine.set_network(SLOW, 2, 2);
        let server = screen(b"$ e\r\nbeep");
        engine.cull(&server, now + SLOW);
        let shown = engine.overlay(server.clone());
        assert_eq!(row(&shown, 0), "$ e");
        assert_eq!(shown.ds.cursor_col, server.ds.cursor_col);
        assert!(!engine.pending());
    }

    #[test]
    fn password_prompts_never_show_predictions() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        engine.input(b"\r", &screen(b"$ e"), now);
        let prompt = screen(b"$ e\r\nPassword: ");
        engine.set_network(SLOW, 2, 2);
        engine.cull(&prompt, now + SLOW);
        engine.input(b"secret", &prompt, now + SLOW);
        assert_eq!(row(&engine.overlay(prompt.clone()), 1), "Password:");
        engine.set_network(SLOW, 3, 3);
        engine.cull(&prompt, now + SLOW * 2);
        assert_eq!(row(&engine.overlay(prompt.clone()), 1), "Password:");
        engine.input(b"more", &prompt, now + SLOW * 2);
        assert_eq!(row(&engine.overlay(prompt), 1), "Password:");
    }

    #[test]
    fn backspace_and_arrows_move_the_predicted_cursor() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        let server = screen(b"$ e");
        engine.input(b"cho\x7f", &server, now);
        let shown = engine.overlay(server.clone());
        assert_eq!(row(&shown, 0), "$ ech");
        assert_eq!(shown.ds.cursor_col, 5);
        engine.input(b"\x1bOD\x1bOD", &server, now);
        assert_eq!(engine.overlay(server.clone()).ds.cursor_col, 3);
        engine.input(b"\x1b[C", &server, now);
        assert_eq!(engine.overlay(server.clone()).ds.cursor_col, 4);
        engine.input(b"X", &server, now);
        assert_eq!(row(&engine.overlay(server), 0), "$ ecXh", "typing inserts");
    }

    #[test]
    fn overwrite_mode_replaces() {
        let start = Instant::now();
        let mut engine = Predictor::new(DisplayMode::Always, true);
        engine.set_network(SLOW, 0, 0);
        let before = screen(b"$ xbc\x1b[1;3H");
        engine.input(b"a", &before, start);
        engine.set_network(SLOW, 1, 1);
        let echoed = screen(b"$ abc\x1b[1;4H");
        engine.cull(&echoed, start + SLOW);
        engine.input(b"X", &echoed, start + SLOW);
        assert_eq!(row(&engine.overlay(echoed), 0), "$ aXc");
    }

    #[test]
    fn adaptive_shows_only_on_slow_links_and_flags_above_80_ms() {
        let now = Instant::now();
        let mut engine = Predictor::new(DisplayMode::Adaptive, false);
        let server = screen(b"$ e");
        engine.set_network(FAST, 0, 0);
        engine.cull(&server, now);
        assert!(!engine.showing(), "interval 20 ms: no display");
        engine.set_network(Duration::from_millis(40), 0, 0);
        engine.cull(&server, now);
        assert!(engine.showing() && !engine.flagging());
        engine.set_network(Duration::from_millis(100), 0, 0);
        engine.cull(&server, now);
        assert!(engine.flagging());
        engine.set_network(Duration::from_millis(50), 0, 0);
        engine.cull(&server, now);
        assert!(!engine.flagging() && engine.showing());
        engine.set_network(FAST, 0, 0);
        engine.cull(&server, now);
        assert!(!engine.showing(), "off again with nothing pending");
    }

    #[test]
    fn glitches_turn_adaptive_display_on() {
        let start = Instant::now();
        let mut engine = Predictor::new(DisplayMode::Adaptive, false);
        engine.set_network(FAST, 0, 0);
        let server = screen(b"$ ");
        engine.input(b"a", &server, start);
        engine.cull(&server, start + Duration::from_millis(100));
        assert!(!engine.showing());
        engine.cull(&server, start + Duration::from_millis(300));
        assert!(engine.showing(), "pending 250 ms is a glitch");
        assert!(!engine.flagging());
        engine.cull(&server, start + Duration::from_millis(5000));
        assert!(engine.flagging(), "a big glitch underlines");
    }

    #[test]
    fn never_predicts_nothing_and_resize_resets() {
        let mut never = Predictor::new(DisplayMode::Never, false);
        never.input(b"abc", &screen(b"$ "), Instant::now());
        assert!(!never.pending());
        let (mut engine, now) = confirmed(DisplayMode::Always);
        engine.input(b"x", &screen(b"$ e"), now);
        let mut emulator = Emulator::new(30, 5);
        emulator.feed(b"$ e");
        engine.cull(emulator.framebuffer(), now);
        assert!(!engine.pending());
    }

    #[test]
    fn carriage_return_at_the_bottom_predicts_a_blank_row() {
        let (mut engine, now) = confirmed(DisplayMode::Always);
        let bottom = screen(b"\x1b[5;1Hlast");
        engine.input(b"\r", &bottom, now);
        assert!(engine.cells.keys().all(|&(r, _)| r == 4));
        assert_eq!(engine.cursors.last().map(|c| (c.row, c.col)), Some((4, 0)));
    }
}
