//! The user's terminal: raw mode (restored on every exit path, panics
//! included), the window size, the init/exit sequences around a session,
//! and what the terminal can do for the display differ.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use mosh_term::Display;
use rustix::termios::{self, InputModes, OptionalActions, Termios};

use crate::terminfo::Terminfo;

/// Entering the alternate screen when `$TERM` has no terminfo entry
/// (xterm's smcup).
const XTERM_SMCUP: &[u8] = b"\x1b[?1049h\x1b[22;0;0t";
/// Leaving it (xterm's rmcup).
const XTERM_RMCUP: &[u8] = b"\x1b[?1049l\x1b[23;0;0t";
/// Application cursor keys, so arrows arrive as `ESC O A`..`D`.
const CURSOR_KEYS_ON: &[u8] = b"\x1b[?1h";
/// Everything a session may have switched on, switched off.
const MODES_OFF: &[u8] = b"\x1b[?1l\x1b[0m\x1b[?25h\x1b[?1003l\x1b[?1002l\x1b[?1001l\x1b[?1000l\x1b[?1015l\x1b[?1006l\x1b[?1005l";

/// The terminal settings to put back, and the bytes that leave the
/// alternate screen; shared with the panic hook.
static SAVED: Mutex<Option<(Termios, Vec<u8>)>> = Mutex::new(None);

/// How to enter and leave the alternate screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScreenSwitch {
    enter: Vec<u8>,
    leave: Vec<u8>,
}

impl ScreenSwitch {
    /// No switching (`MOSH_NO_TERM_INIT`).
    pub fn none() -> ScreenSwitch {
        ScreenSwitch::default()
    }

    /// The terminal's smcup/rmcup; xterm's when its type is unknown.
    pub fn for_terminal(info: Option<&Terminfo>) -> ScreenSwitch {
        match info {
            Some(info) => ScreenSwitch {
                enter: info.smcup.clone().unwrap_or_default(),
                leave: info.rmcup.clone().unwrap_or_default(),
            },
            None => ScreenSwitch {
                enter: XTERM_SMCUP.to_vec(),
                leave: XTERM_RMCUP.to_vec(),
            },
        }
    }
}

/// A failure to take over the terminal.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// Standard input is not a terminal (or its settings are unreadable).
    #[error("tcgetattr: {0}")]
    GetAttributes(#[source] io::Error),
    /// Raw mode could not be set.
    #[error("tcsetattr: {0}")]
    SetAttributes(#[source] io::Error),
}

/// The terminal in raw mode; dropping it restores the original settings.
#[derive(Debug)]
pub struct RawTerminal {
    screen: ScreenSwitch,
    main_screen: AtomicBool,
}

impl RawTerminal {
    /// Saves the settings of standard input, switches it to raw mode
    /// (cfmakeraw plus IUTF8) and writes the init sequence, entering the
    /// alternate screen with `screen`.
    pub fn enter(screen: ScreenSwitch) -> Result<RawTerminal, TerminalError> {
        let original = termios::tcgetattr(rustix::stdio::stdin())
            .map_err(|e| TerminalError::GetAttributes(e.into()))?;
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((original, screen.leave.clone()));
        let terminal = RawTerminal {
            screen,
            main_screen: AtomicBool::new(false),
        };
        terminal.resume()?;
        Ok(terminal)
    }

    /// (Re-)enters raw mode and writes the init sequence, e.g. after a
    /// suspension.
    pub fn resume(&self) -> Result<(), TerminalError> {
        let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((original, _)) = saved {
            let mut raw = original;
            raw.make_raw();
            raw.input_modes |= InputModes::IUTF8;
            termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &raw)
                .map_err(|e| TerminalError::SetAttributes(e.into()))?;
        }
        let mut init = if self.main_screen.load(Ordering::Relaxed) {
            push_screen_up(usize::from(window_size().1))
        } else {
            self.screen.enter.clone()
        };
        init.extend_from_slice(CURSOR_KEYS_ON);
        write_stdout(&init);
        Ok(())
    }

    /// Leaves the alternate screen for the rest of the session, so that
    /// what scrolls off the main screen's top enters the terminal's own
    /// scrollback; the rows the main screen showed are pushed up into it
    /// first (`height` rows), as they are again on every resumption, and the
    /// screen must then be repainted.
    pub fn use_main_screen(&self, height: usize) {
        if self.main_screen.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some((_, leave)) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            leave.clear();
        }
        let mut bytes = self.screen.leave.clone();
        bytes.extend(push_screen_up(height));
        write_stdout(&bytes);
    }

    /// Writes the exit sequence and restores the original settings (as for
    /// a suspension); [`RawTerminal::resume`] undoes it.
    pub fn pause(&self) {
        restore();
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        restore();
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The bytes that push every row of a `height`-row main screen up into the
/// terminal's scrollback (what was shown before the session, or while it
/// was suspended, stays readable above it).
fn push_screen_up(height: usize) -> Vec<u8> {
    let mut bytes = format!("\x1b[r\x1b[0m\x1b[{height};1H").into_bytes();
    bytes.extend(std::iter::repeat_n(b'\n', height));
    bytes
}

/// Writes the exit sequence and restores the saved terminal settings, if
/// raw mode is on.
fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((original, leave)) = saved {
        let mut bytes = MODES_OFF.to_vec();
        bytes.extend_from_slice(&leave);
        write_stdout(&bytes);
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &original);
    }
}

/// Makes a panic restore the terminal before the message is printed.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// The window size of the terminal on standard output as (columns, rows);
/// 80×24 when unknown.
pub fn window_size() -> (u16, u16) {
    match termios::tcgetwinsize(mosh_stdio::Stdout) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => (size.ws_col, size.ws_row),
        _ => (80, 24),
    }
}

/// Writes all of `bytes` to standard output, best effort: a closed
/// terminal ends the write silently.
pub use mosh_stdio::write_stdout;

/// What the terminal named by `TERM` can do: erase characters and
/// background colour erase from its terminfo entry (guessed from the name
/// without one), window titles from the name, as stock decides. Extended
/// attributes and OSC 8 hyperlinks are always drawn: only our own server
/// sends them, and terminals that cannot show them ignore them.
pub fn display_for(term: &str, info: Option<&Terminfo>) -> Display {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| term.starts_with(p));
    let (has_ech, has_bce) = match info {
        Some(info) => (info.ech, info.bce),
        None => (
            starts(&[
                "xterm",
                "rxvt",
                "linux",
                "alacritty",
                "kitty",
                "foot",
                "Eterm",
            ]),
            starts(&["xterm", "linux", "rxvt", "Eterm", "kitty"]),
        ),
    };
    Display {
        has_ech,
        has_bce,
        has_title: starts(&[
            "xterm",
            "rxvt",
            "kterm",
            "Eterm",
            "alacritty",
            "screen",
            "tmux",
        ]),
        attributes: true,
        keeps_scrollback: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_capabilities_by_name() {
        let xterm = display_for("xterm-256color", None);
        assert!(xterm.has_ech && xterm.has_bce && xterm.has_title);
        let tmux = display_for("tmux-256color", None);
        assert!(!tmux.has_ech && !tmux.has_bce && tmux.has_title);
        let dumb = display_for("dumb", None);
        assert!(!dumb.has_ech && !dumb.has_bce && !dumb.has_title);
    }

    #[test]
    fn terminfo_overrides_the_guess() {
        let info = Terminfo {
            ech: true,
            bce: false,
            ..Terminfo::default()
        };
        let display = display_for("tmux-256color", Some(&info));
        assert!(display.has_ech && !display.has_bce && display.has_title);
        assert_eq!(
            ScreenSwitch::for_terminal(None).enter,
            b"\x1b[?1049h\x1b[22;0;0t"
        );
        assert!(ScreenSwitch::for_terminal(Some(&info)).enter.is_empty());
    }
}
