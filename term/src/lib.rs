//! The terminal side of mosh: the emulator that tracks an application's screen,
//! the differ that turns one screen into another with minimal escape bytes, and
//! the user input stream. Nothing here does I/O; it is driven from byte slices.
//!
//! * [`parser`]: the bounded `vte` parser and CSI parameter helpers.
//! * [`framebuffer`]: cells, rows, renditions, modes, title, clipboard.
//! * [`emulator`]: [`Emulator`], actions applied to a framebuffer.
//! * [`display`]: [`Display::new_frame`], the screen differ.
//! * [`complete`]: [`Complete`], the server→client SSP state.
//! * [`input`]: [`UserStream`], the client→server SSP state, and the
//!   server's [`KeyTranslator`].
#![forbid(unsafe_code)]

pub mod complete;
pub mod display;
pub mod emulator;
pub mod framebuffer;
pub mod input;
pub mod parser;

pub use complete::Complete;
pub use display::Display;
pub use emulator::Emulator;
pub use framebuffer::{Cell, Color, Framebuffer, Renditions, Row};
pub use input::{KeyTranslator, UserEvent, UserStream};
