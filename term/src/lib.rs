//! The terminal side of mosh: the emulator that tracks an application's screen,
//! the differ that turns one screen into another with minimal escape bytes, and
//! the user input stream. Nothing here does I/O; it is driven from byte slices.
#![forbid(unsafe_code)]
