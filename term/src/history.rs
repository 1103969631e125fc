//! Scrollback history: the lines that leave the top of the main screen,
//! numbered from 0 in the order they left, kept as compact bytes and bounded
//! in lines and in bytes.
//!
//! A line is stored as the bytes that draw it on a blank row from the left
//! margin: SGR sequences and text, trailing blanks cut, ending in SGR 0
//! ([`encode_row`]); a client turns them back into cells with its own
//! emulator ([`decode_line`]), so nothing the server sends reaches the local
//! terminal unparsed.
//!
//! [`HistoryLog`] is the server's store: the emulator appends to it, and the
//! terminal states SSP sends refer to it by line number only, so a state
//! costs nothing to copy. Lines never change once written, so every state
//! sees the same text for the same number, however old it is; only lines
//! evicted by the bounds are gone, and a diff says how many.
//!
//! [`HistoryInbox`] is the client's: lines arrive in the diffs of whichever
//! states the network delivers, possibly more than once and out of order,
//! and are filed by number until the client has written them out.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::display::sgr_extended;
use crate::emulator::Emulator;
use crate::framebuffer::{MAX_WIDTH, Renditions, Row};

/// Lines kept by default (`scrollback` in the configuration).
pub const DEFAULT_LINES: usize = 10_000;
/// Bytes of encoded lines kept at most, whatever the line limit.
pub const MAX_BYTES: usize = 8 << 20;
/// Bytes of history lines a server state may add beyond what the client
/// has acknowledged, so that history never delays the screen by more than
/// about this much per round trip.
pub const HISTORY_BUDGET: usize = 8 << 10;
/// Longest encoded line accepted from a server; longer ones are cut.
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// How long the log must stop growing before a client a flood left far
/// behind is sent more: lines sent while the flood still runs would be
/// overtaken again, each time behind another marker, so such a client gets
/// one marker and then the newest lines once the flood ends.
pub const FLOOD_QUIET: Duration = Duration::from_millis(100);

/// How much history a log keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Lines kept; 0 turns history off.
    pub lines: usize,
    /// Bytes of encoded lines kept.
    pub bytes: usize,
}

impl HistoryLimits {
    /// `lines` lines (0: none), within [`MAX_BYTES`].
    pub fn lines(lines: usize) -> HistoryLimits {
        HistoryLimits {
            lines,
            bytes: MAX_BYTES,
        }
    }
}

impl Default for HistoryLimits {
    fn default() -> HistoryLimits {
        HistoryLimits::lines(DEFAULT_LINES)
    }
}

/// Lines `first..first + lines.len()` of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpan {
    /// Number of the first line given; lines below it (down to where the
    /// request started) are no longer kept.
    pub first: u64,
    /// The encoded lines.
    pub lines: Vec<Vec<u8>>,
}

/// The kept lines, back to back in one ring of bytes (no allocation per
/// line: a flood scrolls millions of lines through here).
#[derive(Debug)]
struct LogLines {
    limits: HistoryLimits,
    data: VecDeque<u8>,
    lens: VecDeque<u32>,
    /// Where each kept line starts, counted in bytes ever appended.
    starts: VecDeque<u64>,
    /// Bytes ever evicted: where `data` starts in that count.
    evicted_bytes: u64,
    first: u64,
    /// The end seen by the last [`HistoryLog::advance`] (0 before the
    /// first), and since when.
    seen_end: u64,
    seen_since: Option<Instant>,
}

impl LogLines {
    fn end(&self) -> u64 {
        self.first + self.lens.len() as u64
    }

    /// Appends lines `lens` cuts `bytes` into, in order, then evicts the
    /// oldest beyond the limits: the same as appending them one by one and
    /// evicting after each (what is kept is the longest run of newest lines
    /// within both limits either way), with one pass of eviction.
    fn append(&mut self, bytes: &[u8], lens: &[u32]) {
        let limits = self.limits;
        // Lines older than the newest `limits.lines` would be evicted at
        // once: only counted.
        let skip = lens.len().saturating_sub(limits.lines);
        self.first += skip as u64;
        let mut at: usize = lens[..skip].iter().map(|&len| len as usize).sum();
        let cut = MAX_LINE_BYTES.min(limits.bytes);
        let lens = &lens[skip..];
        if lens.iter().all(|&len| len as usize <= cut) {
            // Nothing to cut (always so under the default byte limit): the
            // lines go in as one copy.
            let mut start = self.evicted_bytes + self.data.len() as u64;
            self.starts.extend(lens.iter().map(|&len| {
                let at = start;
                start += u64::from(len);
                at
            }));
            self.lens.extend(lens);
            self.data.extend(&bytes[at..]);
        } else {
            for &len in lens {
                let line = &bytes[at..at + len as usize];
                at += len as usize;
                let line = &line[..line.len().min(cut)];
                self.starts
                    .push_back(self.evicted_bytes + self.data.len() as u64);
                self.data.extend(line);
                self.lens.push_back(line.len() as u32);
            }
        }
        let (mut lines, mut bytes) = (0, 0);
        while self.lens.len() - lines > limits.lines || self.data.len() - bytes > limits.bytes {
            let Some(&old) = self.lens.get(lines) else {
                break;
            };
            lines += 1;
            bytes += old as usize;
        }
        self.lens.drain(..lines);
        self.starts.drain(..lines);
        self.data.drain(..bytes);
        self.evicted_bytes += bytes as u64;
        self.first += lines as u64;
    }

    /// Byte offset of line `n` (kept) in `data`.
    fn offset(&self, n: u64) -> usize {
        self.starts
            .get((n - self.first) as usize)
            .map_or(self.data.len(), |&start| {
                (start - self.evicted_bytes) as usize
            })
    }

    /// A copy of `data[at..at + len]`.
    fn copy(&self, at: usize, len: usize) -> Vec<u8> {
        let (front, back) = self.data.as_slices();
        let mut out = Vec::with_capacity(len);
        let end = at + len;
        if at < front.len() {
            out.extend_from_slice(&front[at..end.min(front.len())]);
        }
        if end > front.len() {
            out.extend_from_slice(&back[at.max(front.len()) - front.len()..end - front.len()]);
        }
        out
    }
}

/// The server's bounded, append-only history, shared by the emulator that
/// writes it and the states that read it.
#[derive(Debug, Clone)]
pub struct HistoryLog(Arc<Mutex<LogLines>>);

impl HistoryLog {
    /// An empty log keeping at most `limits`.
    pub fn new(limits: HistoryLimits) -> HistoryLog {
        HistoryLog(Arc::new(Mutex::new(LogLines {
            limits,
            data: VecDeque::new(),
            lens: VecDeque::new(),
            starts: VecDeque::new(),
            evicted_bytes: 0,
            first: 0,
            seen_end: 0,
            seen_since: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, LogLines> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one encoded line (cut at [`MAX_LINE_BYTES`]), evicting the
    /// oldest beyond the limits. With a line limit of 0 it is only counted.
    pub fn push(&self, line: &[u8]) {
        let line = &line[..line.len().min(MAX_LINE_BYTES)];
        self.lock().append(line, &[line.len() as u32]);
    }

    /// The number the next line will get: how many lines ever left the
    /// screen.
    pub fn end(&self) -> u64 {
        self.lock().end()
    }

    /// The oldest line still kept.
    pub fn first_held(&self) -> u64 {
        self.lock().first
    }

    /// Lines kept and their bytes.
    pub fn held(&self) -> (usize, usize) {
        let log = self.lock();
        (log.lens.len(), log.data.len())
    }

    /// The kept lines of `from..to`.
    pub fn span(&self, from: u64, to: u64) -> HistorySpan {
        let log = self.lock();
        let to = to.min(log.end());
        let first = from.max(log.first).min(to.max(from));
        let mut lines = Vec::new();
        if first < to {
            let mut at = log.offset(first);
            let skip = (first - log.first) as usize;
            let take = (to - first) as usize;
            for &len in log.lens.iter().skip(skip).take(take) {
                lines.push(log.copy(at, len as usize));
                at += len as usize;
            }
        }
        HistorySpan { first, lines }
    }

    /// How far past `from` a state may reach at `now` so that the lines it
    /// adds come to at most `budget` bytes (at least one line when there is
    /// any): what keeps history from delaying the screen. While the log grows
    /// (it grew in the last [`FLOOD_QUIET`]) and a client at `from` already
    /// lost lines to the bounds or is more than half the held lines behind,
    /// so that what it would be sent now is about to be evicted, it stays at
    /// `from` and also returns when to ask again.
    pub fn advance(&self, from: u64, budget: usize, now: Instant) -> (u64, Option<Instant>) {
        let mut log = self.lock();
        let log_end = log.end();
        if log.seen_end != log_end {
            log.seen_end = log_end;
            log.seen_since = Some(now);
        }
        let quiet_at = log.seen_since.map(|since| since + FLOOD_QUIET);
        let overrun = from < log.first || log_end - from > (log.lens.len() / 2) as u64;
        if overrun && let Some(at) = quiet_at.filter(|&at| now < at) {
            return (from, Some(at));
        }
        let start = from.max(log.first);
        let mut end = start;
        let mut spent = 0;
        let skip = start.saturating_sub(log.first) as usize;
        for &len in log.lens.iter().skip(skip) {
            let len = len as usize;
            if end > start && spent + len > budget {
                break;
            }
            spent += len;
            end += 1;
        }
        (end.max(from.min(log.end())), None)
    }
}

/// Most bytes of lines a [`HistoryBatch`] holds before it appends them.
const BATCH_BYTES: usize = 64 << 10;
/// Most lines a [`HistoryBatch`] holds before it appends them (blank lines
/// take no bytes).
const BATCH_LINES: usize = 16 << 10;

/// Lines an emulator scrolled off and has not yet appended to its log:
/// encoded back to back into one buffer and appended under one lock, once
/// per [`Emulator::feed`](crate::emulator::Emulator::feed) (a flood scrolls
/// thousands of lines per read, and a lock per line was most of what
/// recording them cost). Empty between feeds, so the log is never behind
/// what a caller of the emulator sees.
#[derive(Debug)]
pub(crate) struct HistoryBatch {
    log: HistoryLog,
    bytes: Vec<u8>,
    lens: Vec<u32>,
}

impl HistoryBatch {
    /// An empty batch for `log`.
    pub(crate) fn new(log: HistoryLog) -> HistoryBatch {
        HistoryBatch {
            log,
            bytes: Vec::new(),
            lens: Vec::new(),
        }
    }

    /// The log the lines go to.
    pub(crate) fn log(&self) -> &HistoryLog {
        &self.log
    }

    /// Adds `row`, encoded as [`encode_row`] does and cut at
    /// [`MAX_LINE_BYTES`]; appends the batch once it holds
    /// [`BATCH_BYTES`] or [`BATCH_LINES`].
    pub(crate) fn record(&mut self, row: &Row) {
        let start = self.bytes.len();
        encode_row_into(row, row.cells().len(), &mut self.bytes);
        self.bytes.truncate(start + MAX_LINE_BYTES);
        self.lens.push((self.bytes.len() - start) as u32);
        if self.bytes.len() >= BATCH_BYTES || self.lens.len() >= BATCH_LINES {
            self.flush();
        }
    }

    /// Appends the lines held to the log.
    pub(crate) fn flush(&mut self) {
        if !self.lens.is_empty() {
            self.log.lock().append(&self.bytes, &self.lens);
            self.bytes.clear();
            self.lens.clear();
        }
    }
}

/// One entry of what the client takes from its inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryEntry {
    /// A line, as its encoded bytes.
    Line(Arc<[u8]>),
    /// This many lines the server no longer kept when they were due.
    Gap(u64),
}

/// The client's store of received lines, shared by its copies of the
/// server's states; filed by number, so duplicates and reordering collapse.
///
/// By the time a state is the newest one received, every line below its
/// history end has been filed by the diffs that built it and its bases,
/// unless the server no longer kept it; so a line missing from a range the
/// client takes is a line not kept, and becomes part of a gap.
#[derive(Debug, Clone, Default)]
pub struct HistoryInbox(Arc<Mutex<BTreeMap<u64, Arc<[u8]>>>>);

impl HistoryInbox {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<[u8]>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Files received lines, numbered from `first`.
    pub fn file(&self, first: u64, lines: &[Vec<u8>]) {
        let mut inbox = self.lock();
        for (n, line) in (first..).zip(lines) {
            inbox
                .entry(n)
                .or_insert_with(|| line[..line.len().min(MAX_LINE_BYTES)].into());
        }
    }

    /// Removes and returns, in order, the lines of `from..to`, with one gap
    /// for each run of lines that never arrived; forgets everything below
    /// `to`.
    pub fn take(&self, from: u64, to: u64) -> Vec<HistoryEntry> {
        let mut inbox = self.lock();
        let mut out = Vec::new();
        let mut next = from;
        let keep = inbox.split_off(&to);
        let taken = std::mem::replace(&mut *inbox, keep);
        for (n, line) in taken.range(from..) {
            if *n > next {
                out.push(HistoryEntry::Gap(n - next));
            }
            out.push(HistoryEntry::Line(line.clone()));
            next = n + 1;
        }
        if to > next {
            out.push(HistoryEntry::Gap(to - next));
        }
        out
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The bytes that draw `row` from the left margin of a blank row: SGR only
/// where the rendition changes, text, trailing blanks cut, SGR 0 at the end
/// when anything but the default rendition was used.
pub fn encode_row(row: &Row) -> Vec<u8> {
    encode_row_within(row, row.cells().len())
}

/// [`encode_row`] of the first `width` columns only; a wide character that
/// would straddle the edge is left out.
pub fn encode_row_within(row: &Row, width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width.min(row.cells().len()) + 8);
    encode_row_into(row, width, &mut out);
    out
}

fn encode_row_into(row: &Row, width: usize, out: &mut Vec<u8>) {
    let mut cells = &row.cells()[..width.min(row.cells().len())];
    if cells.last().is_some_and(|c| c.wide) {
        cells = &cells[..cells.len() - 1];
    }
    let used = cells[..cells.len().min(row.extent())]
        .iter()
        .rposition(|c| !c.is_blank() || c.rend != Renditions::default())
        .map_or(0, |last| last + 1);
    let mut current = Renditions::default();
    out.reserve(used + 8);
    for cell in &cells[..used] {
        if cell.spacer {
            continue;
        }
        if cell.rend != current {
            sgr_extended(&cell.rend, out);
            current = cell.rend;
        }
        if cell.is_blank() {
            out.push(b' ');
        } else if let &[byte] = cell.contents_bytes() {
            // Most cells hold one byte: a push, not a call to copy it.
            out.push(byte);
        } else {
            out.extend_from_slice(cell.contents_bytes());
        }
    }
    if current != Renditions::default() {
        out.extend_from_slice(b"\x1b[0m");
    }
}

/// The row an encoded line draws, parsed by an emulator one row as wide as
/// the bytes could fill (at most [`MAX_WIDTH`] columns) without autowrap
/// (untrusted input: cursor motion, modes and anything else only affect
/// this scratch row).
pub fn decode_line(bytes: &[u8]) -> Row {
    let bytes = &bytes[..bytes.len().min(MAX_LINE_BYTES)];
    let mut emulator = Emulator::new(bytes.len().clamp(1, MAX_WIDTH), 1);
    emulator.feed(b"\x1b[?7l");
    emulator.feed(bytes);
    let fb = emulator.framebuffer_mut();
    if fb.alternate_screen() {
        fb.leave_alternate();
    }
    fb.row(0).clone()
}

/// Decodes many lines for a terminal `width` columns wide with one scratch
/// emulator, reset before each line: what [`decode_line`] does, cut to the
/// width, without making an emulator per line.
pub struct HistoryDecoder {
    emulator: Emulator,
    width: usize,
}

impl HistoryDecoder {
    /// A decoder for lines shown `width` columns wide.
    pub fn new(width: usize) -> HistoryDecoder {
        let width = width.clamp(1, MAX_WIDTH - 1);
        HistoryDecoder {
            emulator: Emulator::new(width + 1, 1),
            width,
        }
    }

    /// The bytes that draw `line` cut to the width: only SGR and text, as
    /// [`encode_row_within`] writes them.
    pub fn reencode(&mut self, line: &[u8]) -> Vec<u8> {
        self.emulator.feed(b"\x18\x1bc\x1b[?7l");
        self.emulator.feed(&line[..line.len().min(MAX_LINE_BYTES)]);
        self.emulator.take_replies();
        let fb = self.emulator.framebuffer_mut();
        if fb.alternate_screen() {
            fb.leave_alternate();
        }
        encode_row_within(fb.row(0), self.width)
    }
}

/// The marker line a client shows where the server no longer had `count`
/// lines: `[mosh: 1,988,000 lines not kept]`.
pub fn gap_marker(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let noun = if count == 1 { "line" } else { "lines" };
    format!("[mosh: {grouped} {noun} not kept]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    #[test]
    fn the_log_numbers_lines_and_evicts_by_count_and_bytes() {
        let log = HistoryLog::new(HistoryLimits {
            lines: 3,
            bytes: 10,
        });
        for text in ["a", "b", "c", "d"] {
            log.push(&line(text));
        }
        assert_eq!((log.first_held(), log.end()), (1, 4));
        log.push(&line("0123456789"));
        assert_eq!(log.held(), (1, 10), "the byte bound evicts too");
        let span = log.span(0, 5);
        assert_eq!(span.first, 4);
        assert_eq!(span.lines.len(), 1);
    }

    #[test]
    fn a_batch_keeps_the_newest_lines_within_both_limits() {
        let texts: Vec<Vec<u8>> = (0..40u64)
            .map(|n| format!("{n}{}", "y".repeat((n * 7 % 11) as usize)).into_bytes())
            .collect();
        for limits in [
            HistoryLimits::lines(0),
            HistoryLimits::lines(5),
            HistoryLimits::lines(100),
            HistoryLimits { lines: 6, bytes: 9 },
            HistoryLimits {
                lines: 50,
                bytes: 3,
            },
        ] {
            let log = HistoryLog::new(limits);
            let mut given: Vec<Vec<u8>> = Vec::new();
            for chunk in texts.chunks(13) {
                let lens: Vec<u32> = chunk.iter().map(|t| t.len() as u32).collect();
                log.lock().append(&chunk.concat(), &lens);
                given.extend(
                    chunk
                        .iter()
                        .map(|t| t[..t.len().min(limits.bytes)].to_vec()),
                );
                // The model: the longest run of newest lines within both
                // limits.
                let mut kept = 0;
                let mut bytes = 0;
                for line in given.iter().rev() {
                    if kept == limits.lines || bytes + line.len() > limits.bytes {
                        break;
                    }
                    kept += 1;
                    bytes += line.len();
                }
                let end = given.len() as u64;
                assert_eq!(
                    (log.first_held(), log.end(), log.held()),
                    (end - kept as u64, end, (kept, bytes)),
                    "{limits:?}"
                );
                assert_eq!(
                    log.span(0, end).lines,
                    given[given.len() - kept..],
                    "{limits:?}"
                );
            }
        }
    }

    #[test]
    fn spans_read_the_right_bytes_however_the_ring_has_wrapped() {
        let log = HistoryLog::new(HistoryLimits::lines(7));
        for n in 0..1000u64 {
            log.push(format!("line {n} {}", "x".repeat((n % 13) as usize)).as_bytes());
            let from = n.saturating_sub(6);
            let span = log.span(from, n + 1);
            let expected: Vec<Vec<u8>> = (span.first..=n)
                .map(|k| format!("line {k} {}", "x".repeat((k % 13) as usize)).into_bytes())
                .collect();
            assert_eq!(span.lines, expected, "after line {n}");
        }
    }

    #[test]
    fn zero_lines_keeps_nothing_but_counts() {
        let log = HistoryLog::new(HistoryLimits::lines(0));
        log.push(&line("x"));
        log.push(&line("y"));
        assert_eq!((log.first_held(), log.end(), log.held()), (2, 2, (0, 0)));
    }

    #[test]
    fn spans_clamp_to_what_is_held_and_asked() {
        let log = HistoryLog::new(HistoryLimits::lines(2));
        for text in ["a", "b", "c", "d"] {
            log.push(&line(text));
        }
        let span = log.span(0, 3);
        assert_eq!(span.first, 2);
        assert_eq!(span.lines[0], b"c");
        assert_eq!(span.lines.len(), 1);
        let old = log.span(0, 1);
        assert_eq!((old.first, old.lines.len()), (1, 0), "all of it evicted");
        assert_eq!(log.span(3, 9).lines.len(), 1);
    }

    #[test]
    fn advance_keeps_to_the_byte_budget_but_always_moves() {
        let log = HistoryLog::new(HistoryLimits::lines(100));
        for _ in 0..10 {
            log.push(&[b'x'; 100]);
        }
        let grown = Instant::now();
        let _ = log.advance(0, 250, grown);
        let now = grown + FLOOD_QUIET;
        assert_eq!(log.advance(0, 250, now), (2, None));
        assert_eq!(log.advance(0, 10, now), (1, None), "one line at least");
        assert_eq!(log.advance(8, 1000, now), (10, None));
        assert_eq!(log.advance(10, 1000, now), (10, None));
        let small = HistoryLog::new(HistoryLimits::lines(2));
        for _ in 0..10 {
            small.push(&line("z"));
        }
        let quiet = now + FLOOD_QUIET;
        assert_eq!(small.advance(0, 1000, now), (0, Some(quiet)), "it grew");
        assert_eq!(
            small.advance(0, 1000, quiet),
            (10, None),
            "jumps over what was evicted"
        );
    }

    #[test]
    fn a_client_that_lost_lines_waits_until_the_flood_stops() {
        let log = HistoryLog::new(HistoryLimits::lines(2));
        let start = Instant::now();
        assert_eq!(log.advance(0, 1000, start), (0, None), "nothing yet");
        for _ in 0..10 {
            log.push(&line("z"));
        }
        let quiet = start + FLOOD_QUIET;
        assert_eq!(
            log.advance(0, 1000, start),
            (0, Some(quiet)),
            "it just grew"
        );
        let later = start + FLOOD_QUIET / 2;
        assert_eq!(log.advance(0, 1000, later), (0, Some(quiet)));
        log.push(&line("z"));
        let again = later + FLOOD_QUIET;
        assert_eq!(
            log.advance(0, 1000, later),
            (0, Some(again)),
            "growing again"
        );
        assert_eq!(
            log.advance(10, 1000, later),
            (11, None),
            "only a line behind"
        );
        assert_eq!(
            log.advance(0, 1000, again),
            (11, None),
            "quiet: the newest lines"
        );
    }

    #[test]
    fn the_inbox_collapses_duplicates_and_counts_what_never_came() {
        let inbox = HistoryInbox::default();
        inbox.file(0, &[line("a"), line("b")]);
        inbox.file(1, &[line("B?"), line("c")]);
        inbox.file(10, &[line("k")]);
        let got = inbox.take(0, 11);
        let expected = vec![
            HistoryEntry::Line(b"a".as_slice().into()),
            HistoryEntry::Line(b"b".as_slice().into()),
            HistoryEntry::Line(b"c".as_slice().into()),
            HistoryEntry::Gap(7),
            HistoryEntry::Line(b"k".as_slice().into()),
        ];
        assert_eq!(got, expected);
        assert!(inbox.is_empty());
    }

    #[test]
    fn taking_part_of_a_gap_leaves_nothing_stale() {
        let inbox = HistoryInbox::default();
        inbox.file(5, &[line("e")]);
        inbox.file(0, &[line("late")]);
        assert_eq!(inbox.take(1, 3), vec![HistoryEntry::Gap(2)]);
        assert_eq!(
            inbox.take(3, 6),
            vec![
                HistoryEntry::Gap(2),
                HistoryEntry::Line(b"e".as_slice().into())
            ]
        );
        assert!(inbox.is_empty(), "a line below what was taken is forgotten");
    }

    #[test]
    fn rows_round_trip_with_colours_and_wide_characters() {
        let mut emulator = Emulator::new(20, 2);
        emulator.feed("\x1b[1;31mred\x1b[0m 界x\x1b[44m  \x1b[0m".as_bytes());
        let row = emulator.framebuffer().row(0).clone();
        let bytes = encode_row(&row);
        let back = decode_line(&bytes);
        assert_eq!(encode_row(&back), bytes);
        assert!(
            back.cells()[..20]
                .iter()
                .zip(row.cells())
                .all(|(a, b)| a == b),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            encode_row_within(&back, 5),
            b"\x1b[0;1;31mred\x1b[0m",
            "the wide character at the edge is left out"
        );
    }

    #[test]
    fn decoding_confines_hostile_bytes_to_one_row() {
        let row = decode_line(b"ok\x1b[10;10Hx\x1b[?1049h\x1b[2J");
        assert_eq!(encode_row(&row), b"ok       x", "the main screen's row");
        assert!(encode_row(&decode_line(b"")).is_empty());
    }

    #[test]
    fn the_marker_groups_thousands() {
        assert_eq!(gap_marker(1_988_000), "[mosh: 1,988,000 lines not kept]");
        assert_eq!(gap_marker(1), "[mosh: 1 line not kept]");
        assert_eq!(gap_marker(999), "[mosh: 999 lines not kept]");
    }
}
