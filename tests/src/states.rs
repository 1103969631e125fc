//! Small [`State`] implementations that let a `mosh_proto::Transport` talk to
//! stock mosh in tests, without a terminal emulator:
//!
//! * [`UserStream`]: the client's input (keystrokes and window sizes), sent
//!   as `UserMessage` diffs; also what a server receives.
//! * [`HostLog`]: what a client receives from a server, kept as the
//!   concatenated hostbytes rather than as a screen.
//! * [`TextScreen`]: a server terminal that shows one text on a cleared
//!   screen, sent as `HostMessage` diffs.

use mosh_proto::messages::{
    EchoAck, HostBytes, HostInstruction, HostMessage, Keystroke, ResizeMessage, UserInstruction,
    UserMessage,
};
use mosh_proto::{State, StateError};
use prost::Message;

/// Hostbytes that reset the scroll region and rendition, home the cursor and
/// clear the screen: what mosh's display differ emits before a full repaint.
pub const CLEAR_SCREEN: &[u8] = b"\x1b[r\x1b[0m\x1b[H\x1b[2J";

/// One event of the user's input stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent {
    /// One typed byte.
    Byte(u8),
    /// The window now has this many columns and rows.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// The client's append-only input stream.
///
/// SSP forgets the part of the stream the peer has acknowledged
/// ([`State::subtract`]); the stream remembers how many events it forgot, so
/// that states of different ages still line up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserStream {
    forgotten: u64,
    events: Vec<UserEvent>,
}

impl UserStream {
    /// Appends typed bytes, one event each.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.events
            .extend(bytes.iter().copied().map(UserEvent::Byte));
    }

    /// Appends a window size change.
    pub fn push_resize(&mut self, width: u16, height: u16) {
        self.events.push(UserEvent::Resize { width, height });
    }

    /// The events held, oldest first (those not yet forgotten).
    pub fn events(&self) -> &[UserEvent] {
        &self.events
    }

    /// The bytes typed among the events held.
    pub fn typed_bytes(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|event| match *event {
                UserEvent::Byte(byte) => Some(byte),
                UserEvent::Resize { .. } => None,
            })
            .collect()
    }

    /// The newest window size among the events held.
    pub fn last_resize(&self) -> Option<(u16, u16)> {
        self.events.iter().rev().find_map(|event| match *event {
            UserEvent::Resize { width, height } => Some((width, height)),
            UserEvent::Byte(_) => None,
        })
    }

    /// Number of events since the stream began, forgotten ones included.
    pub fn total_events(&self) -> u64 {
        self.forgotten + self.events.len() as u64
    }
}

/// Ends a run of typed bytes: moves them, if any, into one keystroke
/// instruction.
fn flush_keys(keys: &mut Vec<u8>, instruction: &mut Vec<UserInstruction>) {
    if !keys.is_empty() {
        instruction.push(UserInstruction {
            keystroke: Some(Keystroke {
                keys: Some(std::mem::take(keys)),
            }),
            resize: None,
        });
    }
}

/// A width or height from the wire, which must be positive.
fn dimension(value: Option<i32>, what: &str) -> Result<u16, StateError> {
    value
        .and_then(|v| u16::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| StateError(format!("resize has invalid {what} {value:?}")))
}

fn resize_message(width: u16, height: u16) -> ResizeMessage {
    ResizeMessage {
        width: Some(i32::from(width)),
        height: Some(i32::from(height)),
    }
}

impl State for UserStream {
    /// The events after `older`'s end, consecutive bytes merged into one
    /// keystroke, as a `UserMessage`.
    ///
    /// # Panics
    ///
    /// If `older` is not a prefix of `self` that `self` still holds the end
    /// of: SSP only ever diffs against older states of the same stream.
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        let skip = older
            .total_events()
            .checked_sub(self.forgotten)
            .and_then(|skip| usize::try_from(skip).ok())
            .filter(|&skip| skip <= self.events.len())
            .expect("diff_from: the older user stream is not a prefix of this one");
        let mut instruction = Vec::new();
        let mut keys = Vec::new();
        for event in &self.events[skip..] {
            match *event {
                UserEvent::Byte(byte) => keys.push(byte),
                UserEvent::Resize { width, height } => {
                    flush_keys(&mut keys, &mut instruction);
                    instruction.push(UserInstruction {
                        keystroke: None,
                        resize: Some(resize_message(width, height)),
                    });
                }
            }
        }
        flush_keys(&mut keys, &mut instruction);
        if instruction.is_empty() {
            return Vec::new();
        }
        UserMessage { instruction }.encode_to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        let message = UserMessage::decode(diff)
            .map_err(|e| StateError(format!("UserMessage does not decode: {e}")))?;
        for instruction in message.instruction {
            if let Some(keystroke) = instruction.keystroke {
                self.push_bytes(&keystroke.keys.unwrap_or_default());
            }
            if let Some(resize) = instruction.resize {
                let width = dimension(resize.width, "width")?;
                let height = dimension(resize.height, "height")?;
                self.push_resize(width, height);
            }
        }
        Ok(())
    }

    fn subtract(&mut self, prefix: &Self) {
        let covered = prefix.total_events().saturating_sub(self.forgotten);
        let drop = usize::try_from(covered)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        self.events.drain(..drop);
        self.forgotten += drop as u64;
    }
}

/// What a client learnt from a server's `HostMessage`s: every hostbyte in
/// order, the newest size and the newest echo ack.
///
/// Diffs are relative to older states and may repeat text already sent, so
/// search the log rather than expecting an exact transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLog {
    hostbytes: Vec<u8>,
    size: Option<(u16, u16)>,
    echo_ack: u64,
}

impl HostLog {
    /// All hostbytes received on the way to this state, concatenated.
    pub fn hostbytes(&self) -> &[u8] {
        &self.hostbytes
    }

    /// Whether `text` occurs in the hostbytes.
    pub fn contains(&self, text: &str) -> bool {
        let needle = text.as_bytes();
        needle.is_empty()
            || self
                .hostbytes
                .windows(needle.len())
                .any(|window| window == needle)
    }

    /// The terminal size from the newest resize, if any.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }

    /// The newest echo ack: the client state whose input the server's
    /// application has seen.
    pub fn echo_ack(&self) -> u64 {
        self.echo_ack
    }
}

impl State for HostLog {
    /// A `HostMessage` with the echo ack, size and hostbytes `self` has
    /// beyond `older`.
    ///
    /// # Panics
    ///
    /// If `older`'s hostbytes are not a prefix of `self`'s.
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        let added = self
            .hostbytes
            .strip_prefix(older.hostbytes.as_slice())
            .expect("diff_from: the older host log is not a prefix of this one");
        let mut instruction = Vec::new();
        if self.echo_ack != older.echo_ack {
            instruction.push(HostInstruction {
                echoack: Some(EchoAck {
                    echo_ack_num: Some(self.echo_ack),
                }),
                ..Default::default()
            });
        }
        if let Some((width, height)) = self.size.filter(|_| self.size != older.size) {
            instruction.push(HostInstruction {
                resize: Some(resize_message(width, height)),
                ..Default::default()
            });
        }
        if !added.is_empty() {
            instruction.push(HostInstruction {
                hostbytes: Some(HostBytes {
                    hoststring: Some(added.to_vec()),
                }),
                ..Default::default()
            });
        }
        if instruction.is_empty() {
            return Vec::new();
        }
        HostMessage { instruction }.encode_to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        let message = HostMessage::decode(diff)
            .map_err(|e| StateError(format!("HostMessage does not decode: {e}")))?;
        for instruction in message.instruction {
            if let Some(echo) = instruction.echoack {
                self.echo_ack = echo.echo_ack_num.unwrap_or(0);
            }
            if let Some(resize) = instruction.resize {
                self.size = Some((
                    dimension(resize.width, "width")?,
                    dimension(resize.height, "height")?,
                ));
            }
            if let Some(bytes) = instruction.hostbytes {
                self.hostbytes
                    .extend_from_slice(&bytes.hoststring.unwrap_or_default());
            }
        }
        Ok(())
    }
}

/// A server terminal that shows one text at the top left of an otherwise
/// blank screen.
///
/// Its diff from any other state is a complete repaint: a resize when the
/// size differs, then hostbytes [`CLEAR_SCREEN`] followed by the text. That
/// needs nothing from the client's copy of the older screen, so it is valid
/// whatever state the client holds. The default state has no size and no
/// text, like a server that has drawn nothing yet, so the first diff always
/// carries the size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextScreen {
    size: Option<(u16, u16)>,
    text: String,
}

impl TextScreen {
    /// A `width` × `height` screen showing `text`, which should hold only
    /// printable characters (and `\r\n` to start a new line) and fit the
    /// screen.
    pub fn new(width: u16, height: u16, text: &str) -> Self {
        Self {
            size: Some((width, height)),
            text: text.to_owned(),
        }
    }

    /// The size, if set.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.size
    }

    /// The text shown.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl State for TextScreen {
    fn diff_from(&self, older: &Self) -> Vec<u8> {
        if self == older {
            return Vec::new();
        }
        let mut instruction = Vec::new();
        if let Some((width, height)) = self.size.filter(|_| self.size != older.size) {
            instruction.push(HostInstruction {
                resize: Some(resize_message(width, height)),
                ..Default::default()
            });
        }
        let mut hoststring = CLEAR_SCREEN.to_vec();
        hoststring.extend_from_slice(self.text.as_bytes());
        instruction.push(HostInstruction {
            hostbytes: Some(HostBytes {
                hoststring: Some(hoststring),
            }),
            ..Default::default()
        });
        HostMessage { instruction }.encode_to_vec()
    }

    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError> {
        let message = HostMessage::decode(diff)
            .map_err(|e| StateError(format!("HostMessage does not decode: {e}")))?;
        for instruction in message.instruction {
            if let Some(resize) = instruction.resize {
                self.size = Some((
                    dimension(resize.width, "width")?,
                    dimension(resize.height, "height")?,
                ));
            }
            if let Some(bytes) = instruction.hostbytes {
                let hoststring = bytes.hoststring.unwrap_or_default();
                let text = hoststring
                    .strip_prefix(CLEAR_SCREEN)
                    .ok_or_else(|| StateError("hostbytes are not a full repaint".into()))?;
                self.text = String::from_utf8(text.to_vec())
                    .map_err(|e| StateError(format!("text is not UTF-8: {e}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_stream_merges_bytes_and_keeps_resizes_apart() {
        let mut stream = UserStream::default();
        stream.push_resize(80, 24);
        stream.push_bytes(b"ab");
        stream.push_bytes(b"c");
        stream.push_resize(100, 30);
        stream.push_bytes(b"d");
        let message = UserMessage::decode(&stream.diff_from(&UserStream::default())[..]).unwrap();
        let shapes: Vec<_> = message
            .instruction
            .iter()
            .map(|i| {
                (
                    i.keystroke.as_ref().and_then(|k| k.keys.clone()),
                    i.resize.as_ref().map(|r| (r.width, r.height)),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (None, Some((Some(80), Some(24)))),
                (Some(b"abc".to_vec()), None),
                (None, Some((Some(100), Some(30)))),
                (Some(b"d".to_vec()), None),
            ]
        );
    }

    #[test]
    fn stock_resize_encoding_is_reproduced() {
        let mut stream = UserStream::default();
        stream.push_resize(80, 24);
        assert_eq!(
            stream.diff_from(&UserStream::default()),
            [0x0a, 0x06, 0x1a, 0x04, 0x28, 0x50, 0x30, 0x18]
        );
    }

    #[test]
    fn user_stream_diff_applies_after_subtract() {
        let mut acked = UserStream::default();
        acked.push_resize(80, 24);
        acked.push_bytes(b"echo");
        let mut current = acked.clone();
        current.push_bytes(b" hi\r");
        let mut remote = UserStream::default();
        remote
            .apply(&acked.diff_from(&UserStream::default()))
            .unwrap();

        let mut trimmed_acked = acked.clone();
        trimmed_acked.subtract(&acked);
        current.subtract(&acked);
        assert!(trimmed_acked.events().is_empty());
        assert_eq!(current.typed_bytes(), b" hi\r");
        assert_eq!(current.total_events(), 9);

        remote.apply(&current.diff_from(&trimmed_acked)).unwrap();
        assert_eq!(remote.typed_bytes(), b"echo hi\r");
        assert_eq!(remote.last_resize(), Some((80, 24)));
        assert!(current.diff_from(&current).is_empty());
    }

    #[test]
    fn user_stream_refuses_zero_sized_resizes() {
        let message = UserMessage {
            instruction: vec![UserInstruction {
                keystroke: None,
                resize: Some(ResizeMessage {
                    width: Some(0),
                    height: Some(24),
                }),
            }],
        };
        assert!(
            UserStream::default()
                .apply(&message.encode_to_vec())
                .is_err()
        );
    }

    #[test]
    fn host_log_collects_hostbytes_size_and_echo_ack() {
        let mut server = HostLog::default();
        server
            .apply(
                &HostMessage {
                    instruction: vec![
                        HostInstruction {
                            echoack: Some(EchoAck {
                                echo_ack_num: Some(3),
                            }),
                            ..Default::default()
                        },
                        HostInstruction {
                            hostbytes: Some(HostBytes {
                                hoststring: Some(b"ok-".to_vec()),
                            }),
                            ..Default::default()
                        },
                    ],
                }
                .encode_to_vec(),
            )
            .unwrap();
        let older = server.clone();
        server
            .apply(&TextScreen::new(40, 10, "42").diff_from(&TextScreen::default()))
            .unwrap();
        assert_eq!(server.echo_ack(), 3);
        assert_eq!(server.size(), Some((40, 10)));
        assert!(server.contains("ok-"));
        assert!(server.contains("42"));
        assert!(!server.contains("ok-42"));

        let mut replica = older.clone();
        replica.apply(&server.diff_from(&older)).unwrap();
        assert_eq!(replica, server);
        assert!(server.diff_from(&server).is_empty());
    }

    #[test]
    fn text_screen_first_diff_is_resize_then_repaint() {
        let screen = TextScreen::new(80, 24, "hello from proto");
        let message = HostMessage::decode(&screen.diff_from(&TextScreen::default())[..]).unwrap();
        assert_eq!(message.instruction.len(), 2);
        let resize = message.instruction[0].resize.as_ref().unwrap();
        assert_eq!((resize.width, resize.height), (Some(80), Some(24)));
        assert_eq!(
            message.instruction[1]
                .hostbytes
                .as_ref()
                .unwrap()
                .hoststring
                .as_deref(),
            Some(&b"\x1b[r\x1b[0m\x1b[H\x1b[2Jhello from proto"[..])
        );

        let mut replica = TextScreen::default();
        replica
            .apply(&screen.diff_from(&TextScreen::default()))
            .unwrap();
        assert_eq!(replica, screen);
        let changed = TextScreen::new(80, 24, "bye");
        let repaint = HostMessage::decode(&changed.diff_from(&screen)[..]).unwrap();
        assert_eq!(repaint.instruction.len(), 1, "same size: no resize");
        replica.apply(&changed.diff_from(&screen)).unwrap();
        assert_eq!(replica.text(), "bye");
        assert!(screen.diff_from(&screen).is_empty());
    }
}
