//! Our `mosh-client` run in a tmux pane, and reading tmux's styled captures.

use std::io;
use std::net::SocketAddr;

use mosh_proto::Base64Key;

use crate::tmux::TmuxSession;
use crate::{UTF8_LOCALE, our_program};

/// Starts our `mosh-client` in a `width` × `height` tmux pane, talking to
/// `server` with `key`, in a UTF-8 locale, with `env` added (e.g.
/// `MOSH_PREDICTION_DISPLAY`).
pub fn client_in_tmux(
    server: SocketAddr,
    key: &Base64Key,
    width: u16,
    height: u16,
    env: &[(&str, &str)],
) -> io::Result<TmuxSession> {
    let program = our_program("mosh-client")?;
    let program = program
        .to_str()
        .ok_or_else(|| io::Error::other("mosh-client's path is not UTF-8"))?;
    let (ip, port) = (server.ip().to_string(), server.port().to_string());
    client_command_in_tmux(&[program, &ip, &port], key, width, height, env)
}

/// Starts `command` (which runs a mosh client) in a tmux pane with
/// `MOSH_KEY` set to `key`, in a UTF-8 locale, with `env` added.
pub fn client_command_in_tmux(
    command: &[&str],
    key: &Base64Key,
    width: u16,
    height: u16,
    env: &[(&str, &str)],
) -> io::Result<TmuxSession> {
    let printable_key = key.printable();
    let mut vars = vec![
        ("MOSH_KEY", printable_key.as_str()),
        ("LANG", UTF8_LOCALE),
        ("LC_ALL", UTF8_LOCALE),
    ];
    vars.extend_from_slice(env);
    TmuxSession::start(width, height, command, &vars)
}

/// The text of one line of `tmux capture-pane -e` output that was drawn
/// underlined (SGR 4), in order.
pub fn underlined_text(styled_line: &str) -> String {
    let mut underlined = false;
    let mut out = String::new();
    let mut chars = styled_line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            if underlined {
                out.push(c);
            }
            continue;
        }
        if chars.peek() != Some(&'[') {
            continue;
        }
        chars.next();
        let mut params = String::new();
        let mut last = None;
        for c in chars.by_ref() {
            if ('\x40'..='\x7e').contains(&c) {
                last = Some(c);
                break;
            }
            params.push(c);
        }
        if last != Some('m') {
            continue;
        }
        let codes: Vec<&str> = params.split(';').collect();
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                "" | "0" => underlined = false,
                "4" => underlined = true,
                "24" => underlined = false,
                "38" | "48" | "58" => {
                    i += match codes.get(i + 1) {
                        Some(&"5") => 2,
                        Some(&"2") => 4,
                        _ => 0,
                    };
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underlined_runs_are_found() {
        assert_eq!(underlined_text("$ e\x1b[4mcho\x1b[0m x"), "cho");
        assert_eq!(
            underlined_text("\x1b[38;5;4mab\x1b[4;31mc\x1b[24md\x1b[4me\x1b[m"),
            "ce"
        );
        assert_eq!(underlined_text("plain"), "");
    }
}
