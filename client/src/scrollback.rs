//! Writing the server's history lines into the local terminal's own
//! scrollback.
//!
//! A terminal keeps in its scrollback the rows that a line feed on the
//! bottom row pushes off the top of the whole screen. So to add lines, the
//! client paints them over the top rows and then feeds as many lines at the
//! bottom: exactly those rows leave the screen, in order, and nothing else
//! does. The screen is then repainted from scratch (the caller's job), all
//! of it inside one synchronized update (DEC mode 2026), which terminals
//! that lack it ignore.
//!
//! Lines are re-encoded from the client's own parse of the server's bytes
//! ([`HistoryDecoder`]), so only SGR and text reach the terminal, cut to its
//! width.

use std::io::Write;

use mosh_term::history::{HistoryDecoder, HistoryEntry, gap_marker};

/// Begin a synchronized update.
pub const SYNC_BEGIN: &[u8] = b"\x1b[?2026h";
/// End a synchronized update.
pub const SYNC_END: &[u8] = b"\x1b[?2026l";

/// Appends to `out` the bytes that add `entries` to the scrollback of a
/// `width` × `height` terminal (on its main screen). Leaves the screen's
/// contents unknown: repaint everything afterwards.
pub fn push_history(entries: &[HistoryEntry], width: usize, height: usize, out: &mut Vec<u8>) {
    if entries.is_empty() {
        return;
    }
    let height = height.max(1);
    let mut decoder = HistoryDecoder::new(width);
    let lines: Vec<Vec<u8>> = entries
        .iter()
        .map(|entry| match entry {
            HistoryEntry::Line(bytes) => decoder.reencode(bytes),
            HistoryEntry::Gap(count) => decoder.reencode(gap_marker(*count).as_bytes()),
        })
        .collect();
    out.extend_from_slice(b"\x1b[?25l\x1b[r\x1b[0m");
    for chunk in lines.chunks(height) {
        for (row, line) in chunk.iter().enumerate() {
            let _ = write!(out, "\x1b[{};1H\x1b[2K", row + 1);
            out.extend_from_slice(line);
        }
        let _ = write!(out, "\x1b[0m\x1b[{height};1H");
        out.extend(std::iter::repeat_n(b'\n', chunk.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosh_term::Emulator;
    use std::sync::Arc;

    fn line(text: &str) -> HistoryEntry {
        HistoryEntry::Line(Arc::from(text.as_bytes()))
    }

    /// Feeds `bytes` to an emulator with history, as a terminal would keep
    /// it, and returns the recorded lines and the screen's first row.
    fn terminal_after(screen: &[u8], bytes: &[u8], width: usize, height: usize) -> Vec<String> {
        let log = mosh_term::history::HistoryLog::new(Default::default());
        let mut terminal = Emulator::new(width, height);
        terminal.feed(screen);
        terminal.set_history(log.clone());
        terminal.feed(bytes);
        log.span(0, log.end())
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn exactly_the_lines_enter_the_scrollback_in_order() {
        let entries: Vec<_> = (1..=7).map(|n| line(&format!("line {n}"))).collect();
        let mut out = Vec::new();
        push_history(&entries, 20, 3, &mut out);
        let kept = terminal_after(b"on screen 1\r\non screen 2\r\nprompt", &out, 20, 3);
        let expected: Vec<String> = (1..=7).map(|n| format!("line {n}")).collect();
        assert_eq!(kept, expected, "and none of the screen's own rows");
    }

    #[test]
    fn a_gap_shows_as_its_marker_and_wide_lines_are_cut() {
        let mut out = Vec::new();
        push_history(
            &[HistoryEntry::Gap(1_234), line("0123456789abcdef")],
            10,
            5,
            &mut out,
        );
        let kept = terminal_after(b"", &out, 10, 5);
        assert_eq!(kept, ["[mosh: 1,2", "0123456789"]);
    }

    #[test]
    fn only_sgr_and_text_of_the_servers_bytes_get_through() {
        let mut out = Vec::new();
        push_history(
            &[line("a\x1b]0;title\x07\x1b[5;5Hb\x1b[?1049h")],
            20,
            2,
            &mut out,
        );
        assert!(!out.windows(5).any(|w| w == b"title"));
        assert!(!out.windows(6).any(|w| w == b"\x1b[?104"));
        let kept = terminal_after(b"", &out, 20, 2);
        assert_eq!(kept, ["a   b"]);
    }

    #[test]
    fn nothing_to_add_writes_nothing() {
        let mut out = Vec::new();
        push_history(&[], 80, 24, &mut out);
        assert!(out.is_empty());
    }
}
