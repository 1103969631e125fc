//! The terminal state SSP synchronises from server to client: the
//! framebuffer plus the echo acknowledgement, and, with the `scrollback`
//! extension, how far the client has the history. Its diff is a
//! `HostMessage` (echoack, resize, hostbytes; spec §6.2; and our history
//! lines) and applying one replays the hostbytes through an emulator (§6.3)
//! and files the lines in the client's inbox.
//!
//! History is part of the state only as a line number (`history_end`): the
//! lines themselves live in the server's [`HistoryLog`] and the client's
//! [`HistoryInbox`], shared by every copy of the state, so copying a state
//! stays cheap however much history there is.
//!
//! The state also records the native extensions enabled with the client
//! (see `mosh_proto::extensions`): with [`Extension::Attributes`] the
//! hostbytes carry extended attributes and hyperlinks
//! ([`Display::attributes`]), and a diff between states of different sets
//! is a full repaint, so a client that drew the screen before the
//! negotiation gets everything.

use mosh_proto::messages::{
    EchoAck, HistoryLines, HostBytes, HostInstruction, HostMessage, ResizeMessage,
};
use mosh_proto::{Extension, ExtensionSet, State, StateError};
use prost::Message;
use std::time::Instant;

use crate::display::Display;
use crate::emulator::{Emulator, clamp_size};
use crate::framebuffer::Framebuffer;
use crate::history::{HISTORY_BUDGET, HistoryInbox, HistoryLog};

/// Where a state's history lines are kept.
#[derive(Debug, Clone, Default)]
enum HistoryStore {
    /// No history (stock peers, or scrollback off).
    #[default]
    None,
    /// A server's: lines are read from its log.
    Log(HistoryLog),
    /// A client's: received lines are filed here.
    Inbox(HistoryInbox),
}

/// A complete terminal state: screen, echo acknowledgement, the extensions
/// its diffs may use, and how far the history goes.
#[derive(Debug, Clone)]
pub struct Complete {
    fb: Framebuffer,
    echo_ack: u64,
    extensions: ExtensionSet,
    history_end: u64,
    history: HistoryStore,
}

impl Complete {
    /// A blank terminal of the given size.
    pub fn new(width: usize, height: usize) -> Complete {
        Complete::from_framebuffer(Framebuffer::new(width, height))
    }

    /// A state showing `fb` with echo ack 0.
    pub fn from_framebuffer(fb: Framebuffer) -> Complete {
        Complete {
            fb,
            echo_ack: 0,
            extensions: ExtensionSet::EMPTY,
            history_end: 0,
            history: HistoryStore::None,
        }
    }

    /// This (server) state reads its history lines from `log`.
    #[must_use]
    pub fn with_history_log(mut self, log: HistoryLog) -> Complete {
        self.history = HistoryStore::Log(log);
        self
    }

    /// This (client) state files received history lines in `inbox`.
    #[must_use]
    pub fn with_history_inbox(mut self, inbox: HistoryInbox) -> Complete {
        self.history = HistoryStore::Inbox(inbox);
        self
    }

    /// The number after the last history line this state includes.
    pub fn history_end(&self) -> u64 {
        self.history_end
    }

    /// Makes the state include history up to (not including) line `end`; a
    /// server moves it forward as its peer acknowledges lines (see
    /// [`HistoryLog::advance`]).
    pub fn set_history_end(&mut self, end: u64) {
        self.history_end = end;
    }

    /// A server state's next step at `now`: include as much more of its log
    /// as fits [`HISTORY_BUDGET`] beyond `acknowledged_end` (the history end
    /// of the newest state the client acknowledged), never going back.
    /// Returns when to call again if the log held history back for a flood
    /// (see [`HistoryLog::advance`]). Without a log nothing changes.
    pub fn advance_history(&mut self, acknowledged_end: u64, now: Instant) -> Option<Instant> {
        if let HistoryStore::Log(log) = &self.history {
            let (end, again) = log.advance(acknowledged_end, HISTORY_BUDGET, now);
            self.history_end = self.history_end.max(end);
            again
        } else {
            None
        }
    }

    /// The screen.
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.fb
    }

    /// Replaces the screen (e.g. with a snapshot of the live emulator's).
    pub fn set_framebuffer(&mut self, fb: Framebuffer) {
        self.fb = fb;
    }

    /// The extensions enabled with the peer, which diffs to this state use.
    pub fn extensions(&self) -> ExtensionSet {
        self.extensions
    }

    /// Records the extensions enabled with the peer (the transport's
    /// `peer_extensions().enabled()`).
    pub fn set_extensions(&mut self, extensions: ExtensionSet) {
        self.extensions = extensions;
    }

    /// The differ profile of diffs to this state.
    fn display(&self) -> Display {
        Display::server().with_attributes(self.extensions.contains(Extension::Attributes))
    }

    /// Newest client state whose input is known to be echoed on screen.
    pub fn echo_ack(&self) -> u64 {
        self.echo_ack
    }

    /// Sets the echo acknowledgement; returns whether it changed.
    pub fn set_echo_ack(&mut self, echo_ack: u64) -> bool {
        let changed = self.echo_ack != echo_ack;
        self.echo_ack = echo_ack;
        changed
    }

    /// The diff from `older` as a message, before encoding.
    pub fn host_message(&self, older: &Complete) -> HostMessage {
        let mut msg = HostMessage::default();
        if self.history_end != older.history_end
            && let HistoryStore::Log(log) = &self.history
        {
            let span = log.span(older.history_end, self.history_end);
            msg.instruction.push(HostInstruction {
                history: Some(HistoryLines {
                    end: Some(self.history_end),
                    first: Some(span.first),
                    lines: span.lines,
                }),
                ..HostInstruction::default()
            });
        }
        if self.echo_ack != older.echo_ack {
            msg.instruction.push(HostInstruction {
                echoack: Some(EchoAck {
                    echo_ack_num: Some(self.echo_ack),
                }),
                ..HostInstruction::default()
            });
        }
        if self.fb.width() != older.fb.width() || self.fb.height() != older.fb.height() {
            msg.instruction.push(HostInstruction {
                resize: Some(ResizeMessage {
                    width: Some(self.fb.width() as i32),
                    height: Some(self.fb.height() as i32),
                }),
                ..HostInstruction::default()
            });
        }
        let same_profile = self.extensions == older.extensions;
        if self.fb != older.fb || !same_profile {
            let bytes = self.display().new_frame(same_profile, &older.fb, &self.fb);
            if !bytes.is_empty() {
                msg.instruction.push(HostInstruction {
                    hostbytes: Some(HostBytes {
                        hoststring: Some(bytes),
                    }),
                    ..HostInstruction::default()
                });
            }
        }
        msg
    }

    /// Applies a decoded host message. A resize to a non-positive size is an
    /// error and leaves the state untouched. Answers the emulator would give
    /// to status requests in the hostbytes are discarded (a correct server
    /// never sends such requests).
    pub fn apply_message(&mut self, msg: &HostMessage) -> Result<(), StateError> {
        for resize in msg.instruction.iter().filter_map(|i| i.resize.as_ref()) {
            let (w, h) = (resize.width.unwrap_or(0), resize.height.unwrap_or(0));
            if w <= 0 || h <= 0 {
                return Err(StateError(format!("bad resize {w}x{h}")));
            }
        }
        // Each history instruction goes on from the one before: lines filed
        // above the final end would stay in the inbox for good.
        let mut reached = self.history_end;
        for history in msg.instruction.iter().filter_map(|i| i.history.as_ref()) {
            let (end, first) = (history.end.unwrap_or(0), history.first.unwrap_or(0));
            let given = first.checked_add(history.lines.len() as u64);
            if end < reached || given != Some(end) {
                return Err(StateError(format!(
                    "bad history lines {first}+{} to {end} after {reached}",
                    history.lines.len(),
                )));
            }
            reached = end;
        }
        for inst in &msg.instruction {
            if let Some(history) = &inst.history {
                let end = history.end.unwrap_or(0);
                if let HistoryStore::Inbox(inbox) = &self.history {
                    inbox.file(history.first.unwrap_or(0), &history.lines);
                }
                self.history_end = end;
            }
            if let Some(resize) = &inst.resize {
                let (w, h) = (resize.width.unwrap_or(0), resize.height.unwrap_or(0));
                let (w, h) = clamp_size(w.into(), h.into());
                self.fb.resize(w, h);
            }
            if let Some(bytes) = inst.hostbytes.as_ref().and_then(|b| b.hoststring.as_ref()) {
                let fb = std::mem::replace(&mut self.fb, Framebuffer::new(1, 1));
                let mut emu = Emulator::from_framebuffer(fb);
                emu.feed(bytes);
                self.fb = emu.into_framebuffer();
            }
            if let Some(ack) = &inst.echoack {
                self.echo_ack = ack.echo_ack_num.unwrap_or(0);
            }
        }
        Ok(())
    }
}

impl PartialEq for Complete {
    /// Same echo ack, extensions, history end and screen; without
    /// [`Extension::Attributes`] the screens are compared as stock sees them
    /// ([`Framebuffer::same_for_stock`]), so that a change a stock peer
    /// cannot be shown is no new state to send it.
    fn eq(&self, other: &Complete) -> bool {
        self.echo_ack == other.echo_ack
            && self.extensions == other.extensions
            && self.history_end == other.history_end
            && (self.fb == other.fb
                || (!self.extensions.contains(Extension::Attributes)
                    && self.fb.same_for_stock(&other.fb)))
    }
}

impl State for Complete {
    fn diff_from(&self, older: &Complete) -> Vec<u8> {
        let msg = self.host_message(older);
        if msg.instruction.is_empty() {
            Vec::new()
        } else {
            msg.encode_to_vec()
        }
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        let msg = HostMessage::decode(diff).map_err(|e| StateError(e.to_string()))?;
        self.apply_message(&msg)
    }
}
