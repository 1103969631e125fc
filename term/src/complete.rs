//! The terminal state SSP synchronises from server to client: the
//! framebuffer plus the echo acknowledgement. Its diff is a `HostMessage`
//! (echoack, resize, hostbytes; spec §6.2) and applying one replays the
//! hostbytes through an emulator (§6.3).
//!
//! The state also records the native extensions enabled with the client
//! (see `mosh_proto::extensions`): with [`Extension::Attributes`] the
//! hostbytes carry extended attributes and hyperlinks
//! ([`Display::attributes`]), and a diff between states of different sets
//! is a full repaint, so a client that drew the screen before the
//! negotiation gets everything.

use mosh_proto::messages::{EchoAck, HostBytes, HostInstruction, HostMessage, ResizeMessage};
use mosh_proto::{Extension, ExtensionSet, State, StateError};
use prost::Message;

use crate::display::Display;
use crate::emulator::{Emulator, clamp_size};
use crate::framebuffer::Framebuffer;

/// A complete terminal state: screen, echo acknowledgement and the
/// extensions its diffs may use.
#[derive(Debug, Clone)]
pub struct Complete {
    fb: Framebuffer,
    echo_ack: u64,
    extensions: ExtensionSet,
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
        for inst in &msg.instruction {
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
    /// Same echo ack, extensions and screen; without
    /// [`Extension::Attributes`] the screens are compared as stock sees them
    /// ([`Framebuffer::same_for_stock`]), so that a change a stock peer
    /// cannot be shown is no new state to send it.
    fn eq(&self, other: &Complete) -> bool {
        self.echo_ack == other.echo_ack
            && self.extensions == other.extensions
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
