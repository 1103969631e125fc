//! The user input stream SSP synchronises from client to server: an
//! append-only list of typed bytes and window resizes (spec §7.2), plus the
//! server-side cursor-key translation applied before bytes reach the
//! application.

use std::collections::VecDeque;

use mosh_proto::messages::{Keystroke, ResizeMessage, UserInstruction, UserMessage};
use mosh_proto::{State, StateError};
use prost::Message;

/// One user event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent {
    /// A byte typed by the user.
    Byte(u8),
    /// The client's window changed size (both dimensions > 0).
    Resize {
        /// Columns.
        width: i32,
        /// Rows.
        height: i32,
    },
}

/// The client's input so far (minus what both sides have forgotten).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserStream {
    events: VecDeque<UserEvent>,
}

impl UserStream {
    /// An empty stream.
    pub fn new() -> UserStream {
        UserStream::default()
    }

    /// Appends typed bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.events
            .extend(bytes.iter().map(|&b| UserEvent::Byte(b)));
    }

    /// Appends a resize.
    pub fn push_resize(&mut self, width: i32, height: i32) {
        self.events.push_back(UserEvent::Resize { width, height });
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no events are held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events held, oldest first.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &UserEvent> {
        self.events.iter()
    }

    /// The events after the first `n` (the ones `self` has beyond a state
    /// holding `n` events).
    pub fn events_after(&self, n: usize) -> impl Iterator<Item = &UserEvent> {
        self.events.iter().skip(n)
    }

    /// The diff from `older` (a prefix of `self`) as a message: runs of bytes
    /// merged into one keystroke, each resize its own instruction.
    pub fn user_message(&self, older: &UserStream) -> UserMessage {
        let mut msg = UserMessage::default();
        let mut keys: Vec<u8> = Vec::new();
        let flush = |keys: &mut Vec<u8>, msg: &mut UserMessage| {
            if !keys.is_empty() {
                msg.instruction.push(UserInstruction {
                    keystroke: Some(Keystroke {
                        keys: Some(std::mem::take(keys)),
                    }),
                    resize: None,
                });
            }
        };
        for event in self.events_after(older.len()) {
            match *event {
                UserEvent::Byte(b) => keys.push(b),
                UserEvent::Resize { width, height } => {
                    flush(&mut keys, &mut msg);
                    msg.instruction.push(UserInstruction {
                        keystroke: None,
                        resize: Some(ResizeMessage {
                            width: Some(width),
                            height: Some(height),
                        }),
                    });
                }
            }
        }
        flush(&mut keys, &mut msg);
        msg
    }

    /// Appends the events of a decoded message; unknown instructions are
    /// ignored. A resize to a non-positive size is an error and nothing is
    /// appended.
    pub fn apply_message(&mut self, msg: &UserMessage) -> Result<(), StateError> {
        for inst in &msg.instruction {
            if let Some(r) = &inst.resize {
                let (w, h) = (r.width.unwrap_or(0), r.height.unwrap_or(0));
                if w <= 0 || h <= 0 {
                    return Err(StateError(format!("bad resize {w}x{h}")));
                }
            }
        }
        for inst in &msg.instruction {
            if let Some(keys) = inst.keystroke.as_ref().and_then(|k| k.keys.as_ref()) {
                self.push_bytes(keys);
            }
            if let Some(r) = &inst.resize {
                self.push_resize(r.width.unwrap_or(0), r.height.unwrap_or(0));
            }
        }
        Ok(())
    }
}

impl State for UserStream {
    fn diff_from(&self, older: &UserStream) -> Vec<u8> {
        if self.len() <= older.len() {
            return Vec::new();
        }
        self.user_message(older).encode_to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        let msg = UserMessage::decode(diff).map_err(|e| StateError(e.to_string()))?;
        self.apply_message(&msg)
    }

    fn subtract(&mut self, prefix: &UserStream) {
        let n = prefix.len().min(self.len());
        self.events.drain(..n);
    }
}

/// Where the key translator is within a possible `ESC O x` sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum KeyState {
    #[default]
    Ground,
    Escape,
    Ss3,
}

/// Server-side translation of typed bytes: the client always sends cursor
/// keys as `ESC O A`..`D`; when the application has not enabled
/// application cursor keys (DECCKM) they become `ESC [ A`..`D`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyTranslator {
    state: KeyState,
}

impl KeyTranslator {
    /// A translator in the ground state.
    pub fn new() -> KeyTranslator {
        KeyTranslator::default()
    }

    /// Translates one typed byte, appending the result to `out` (`O` after
    /// `ESC` is held back until the next byte decides its fate).
    pub fn translate(&mut self, byte: u8, application_cursor_keys: bool, out: &mut Vec<u8>) {
        match self.state {
            KeyState::Ground => {
                if byte == 0x1b {
                    self.state = KeyState::Escape;
                }
                out.push(byte);
            }
            KeyState::Escape => {
                if byte == b'O' {
                    self.state = KeyState::Ss3;
                } else {
                    self.state = if byte == 0x1b {
                        KeyState::Escape
                    } else {
                        KeyState::Ground
                    };
                    out.push(byte);
                }
            }
            KeyState::Ss3 => {
                self.state = KeyState::Ground;
                if !application_cursor_keys && (b'A'..=b'D').contains(&byte) {
                    out.push(b'[');
                } else {
                    out.push(b'O');
                }
                if byte == 0x1b {
                    self.state = KeyState::Escape;
                }
                out.push(byte);
            }
        }
    }
}
