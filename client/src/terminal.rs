//! The user's terminal: raw mode (restored on every exit path, panics
//! included), the window size, the init/exit sequences around a session,
//! and what the terminal can do for the display differ.

use std::io;
use std::sync::Mutex;

use mosh_term::Display;
use rustix::termios::{self, InputModes, OptionalActions, Termios};

/// Entering the alternate screen (xterm's smcup).
const SMCUP: &[u8] = b"\x1b[?1049h\x1b[22;0;0t";
/// Leaving it (xterm's rmcup).
const RMCUP: &[u8] = b"\x1b[?1049l\x1b[23;0;0t";
/// Application cursor keys, so arrows arrive as `ESC O A`..`D`.
const CURSOR_KEYS_ON: &[u8] = b"\x1b[?1h";
/// Everything a session may have switched on, switched off.
const MODES_OFF: &[u8] = b"\x1b[?1l\x1b[0m\x1b[?25h\x1b[?1003l\x1b[?1002l\x1b[?1001l\x1b[?1000l\x1b[?1015l\x1b[?1006l\x1b[?1005l";

/// The terminal settings to put back, and whether the alternate screen was
/// entered; shared with the panic hook.
static SAVED: Mutex<Option<(Termios, bool)>> = Mutex::new(None);

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
    term_init: bool,
}

impl RawTerminal {
    /// Saves the settings of standard input, switches it to raw mode
    /// (cfmakeraw plus IUTF8) and writes the init sequence; `term_init`
    /// enters the alternate screen too.
    pub fn enter(term_init: bool) -> Result<RawTerminal, TerminalError> {
        let original = termios::tcgetattr(rustix::stdio::stdin())
            .map_err(|e| TerminalError::GetAttributes(e.into()))?;
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((original, term_init));
        let terminal = RawTerminal { term_init };
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
        let mut init = Vec::new();
        if self.term_init {
            init.extend_from_slice(SMCUP);
        }
        init.extend_from_slice(CURSOR_KEYS_ON);
        write_stdout(&init);
        Ok(())
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

/// Writes the exit sequence and restores the saved terminal settings, if
/// raw mode is on.
fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((original, term_init)) = saved {
        let mut bytes = MODES_OFF.to_vec();
        if term_init {
            bytes.extend_from_slice(RMCUP);
        }
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
    match termios::tcgetwinsize(rustix::stdio::stdout()) {
        Ok(size) if size.ws_col > 0 && size.ws_row > 0 => (size.ws_col, size.ws_row),
        _ => (80, 24),
    }
}

/// Writes all of `bytes` to standard output, retrying interrupted and
/// partial writes; a closed terminal ends the write silently.
pub fn write_stdout(mut bytes: &[u8]) {
    let stdout = rustix::stdio::stdout();
    while !bytes.is_empty() {
        match rustix::io::write(stdout, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
            Err(_) => return,
        }
    }
}

/// What the terminal named by `TERM` can do: erase characters, background
/// colour erase and window titles.
pub fn display_for(term: &str) -> Display {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| term.starts_with(p));
    Display {
        has_ech: starts(&[
            "xterm",
            "rxvt",
            "linux",
            "alacritty",
            "kitty",
            "foot",
            "Eterm",
        ]),
        has_bce: starts(&["xterm", "linux", "rxvt", "Eterm", "screen.xterm", "kitty"]),
        has_title: starts(&[
            "xterm",
            "rxvt",
            "kterm",
            "Eterm",
            "alacritty",
            "screen",
            "tmux",
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_capabilities_by_name() {
        let xterm = display_for("xterm-256color");
        assert!(xterm.has_ech && xterm.has_bce && xterm.has_title);
        let tmux = display_for("tmux-256color");
        assert!(!tmux.has_ech && !tmux.has_bce && tmux.has_title);
        let dumb = display_for("dumb");
        assert!(!dumb.has_ech && !dumb.has_bce && !dumb.has_title);
    }
}
