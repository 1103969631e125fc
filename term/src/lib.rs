//! The terminal side of mosh: the emulator that tracks an application's screen,
//! the differ that turns one screen into another with minimal escape bytes, and
//! the user input stream. Nothing here does I/O; it is driven from byte slices.
//!
//! * [`parser`]: the bounded `vte` parser and CSI parameter helpers.
//! * [`framebuffer`]: cells, rows, renditions, modes, title, clipboard.
//! * [`emulator`]: [`Emulator`], actions applied to a framebuffer.
//! * [`display`]: [`Display::new_frame`], the screen differ.
//! * [`history`]: scrollback history, the lines that leave the top of the
//!   screen (server log, client inbox).
//! * [`complete`]: [`Complete`], the server→client SSP state.
//! * [`input`]: [`UserStream`], the client→server SSP state, and the
//!   server's [`KeyTranslator`].
//! * [`width`]: [`width::wcwidth`], the C library's character widths, which
//!   the emulator and the client's prediction engine use.
//!
//! ```
//! use mosh_term::{Display, Emulator};
//!
//! let mut server = Emulator::new(80, 24);
//! server.feed(b"# ");
//! let before = server.framebuffer().clone();
//! server.feed(b"echo hi");
//! let bytes = Display::server().new_frame(true, &before, server.framebuffer());
//! assert_eq!(bytes, b"echo hi");
//!
//! // A client replaying the bytes on its copy of `before` shows the same.
//! let mut client = Emulator::from_framebuffer(before.replica());
//! client.feed(&bytes);
//! assert!(client.framebuffer().same_picture(server.framebuffer()));
//! ```
//!
//! Bounds: sizes are clamped to 1..=1000 in each dimension, a cell holds at
//! most 32 bytes of UTF-8, titles 256 characters, the clipboard 64 KiB, OSC
//! strings are cut at 64 KiB, unread replies at 4 KiB, and a screen refers
//! to at most 512 hyperlinks of at most 2048 bytes of URI and 250 of id; so
//! memory is bounded by the screen size whatever the input.
#![forbid(unsafe_code)]

pub mod complete;
pub mod display;
pub mod emulator;
pub mod framebuffer;
pub mod history;
pub mod input;
pub mod parser;
pub mod width;
mod width_table;

pub use complete::Complete;
pub use display::Display;
pub use emulator::Emulator;
pub use framebuffer::{Cell, Color, Framebuffer, Renditions, Row};
pub use input::{KeyTranslator, UserEvent, UserStream};
