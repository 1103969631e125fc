//! What `mosh-client` does with the server's `HostMessage`s: each diff is
//! applied to a copy of the newest state (a rejected one is dropped, as the
//! transport drops it), the scrollback history lines it files are taken
//! from the inbox and written into the terminal's scrollback, and the
//! screen, with the prediction overlay and the `[mosh]` title prefix, is
//! drawn as a diff against what the terminal shows. The bytes the client
//! writes, fed to an emulator standing for the user's terminal, must show
//! the composed screen, and after the client takes its lines the inbox is empty.
//!
//! Input: the terminal's width and height (a byte each), a flags byte (bit
//! 0: the server sends scrollback history; bit 1: predictions always
//! shown), then records: a kind byte (0: a `HostMessage` diff; else:
//! keystrokes), a big-endian 16-bit length and that many bytes.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mosh_client::predict::{DisplayMode, Predictor};
use mosh_client::scrollback::{SYNC_BEGIN, SYNC_END, push_history};
use mosh_client::session::compose;
use mosh_client::terminal::display_for;
use mosh_proto::State;
use mosh_term::history::HistoryInbox;
use mosh_term::{Complete, Emulator, Framebuffer};

/// The records after the header.
fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&[kind, high, low], rest) = data.split_first_chunk::<3>()?;
        let len = usize::from(u16::from_be_bytes([high, low])).min(rest.len());
        let (body, rest) = rest.split_at(len);
        data = rest;
        Some((kind, body))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[width, height, flags], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let (width, height) = (usize::from(width).max(1), usize::from(height).max(1));
    let scrollback = flags & 1 != 0;
    let mode = if flags & 2 != 0 {
        DisplayMode::Always
    } else {
        DisplayMode::Never
    };
    let now = Instant::now();
    let inbox = HistoryInbox::default();
    let mut latest = Complete::new(width, height).with_history_inbox(inbox.clone());
    let mut display = display_for("xterm-256color", None);
    display.keeps_scrollback = scrollback;
    let mut predictor = Predictor::new(mode, false);
    let mut terminal = Emulator::new(width, height);
    let mut shown = Framebuffer::new(width, height);
    let mut repaint = true;
    let mut history_written = 0;
    for (kind, bytes) in records(body) {
        if kind == 0 {
            let mut next = latest.clone();
            if next.apply(bytes).is_ok() {
                latest = next;
            }
        } else {
            predictor.input(bytes, latest.framebuffer(), now);
        }
        let mut history = Vec::new();
        if scrollback {
            let end = latest.history_end();
            if end > history_written {
                let entries = inbox.take(history_written, end);
                history_written = end;
                push_history(&entries, shown.width(), shown.height(), &mut history);
                assert!(inbox.is_empty(), "lines above the history end {end} were filed");
            }
            repaint |= !history.is_empty();
        }
        predictor.cull(latest.framebuffer(), now);
        let target = compose(latest.framebuffer(), &predictor, true, None);
        let mut frame = display.new_frame(!repaint, &shown, &target);
        if !history.is_empty() {
            history.splice(..0, SYNC_BEGIN.iter().copied());
            history.append(&mut frame);
            history.extend_from_slice(SYNC_END);
            frame = history;
        }
        if (target.width(), target.height()) != (terminal.framebuffer().width(), terminal.framebuffer().height()) {
            terminal.resize(target.width(), target.height());
        }
        terminal.feed(&frame);
        let _ = terminal.take_replies();
        assert!(terminal.framebuffer().same_picture(&target));
        shown = target;
        repaint = false;
    }
});
