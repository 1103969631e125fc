//! The escape key (spec §9.3): by default `Ctrl-^`. After it, `.` quits,
//! `Ctrl-Z` suspends, the pass key (`^`) sends the escape byte itself, and any
//! other byte sends the escape byte followed by that byte.

/// The escape byte when `MOSH_ESCAPE_KEY` does not say otherwise (Ctrl-^).
pub const DEFAULT_ESCAPE: u8 = 0x1e;
/// Ctrl-Z, which suspends the client after the escape key.
const SUSPEND: u8 = 0x1a;

/// What the caller must do with filtered input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the server.
    Send(Vec<u8>),
    /// The user asked to quit.
    Quit,
    /// The user asked to suspend the client.
    Suspend,
    /// The escape key was typed: show the help in the status bar.
    ShowHelp,
    /// The key after the escape was handled: hide the help.
    HideHelp,
}

/// The escape-key filter between the keyboard and the user stream.
#[derive(Debug, Clone)]
pub struct EscapeFilter {
    key: Option<u8>,
    waiting: bool,
    after_newline: bool,
}

impl EscapeFilter {
    /// A filter for `key` (`None`: escapes disabled).
    pub fn new(key: Option<u8>) -> EscapeFilter {
        EscapeFilter {
            key,
            waiting: false,
            after_newline: true,
        }
    }

    /// The filter configured by the value of `MOSH_ESCAPE_KEY` (`None` when
    /// unset): one character 1..=127 selects it, an empty value disables
    /// escapes, anything else (and the refused keys Ctrl-C, Ctrl-D, LF,
    /// Ctrl-L and CR) keeps the default.
    pub fn from_env(value: Option<&str>) -> EscapeFilter {
        let key = match value.map(str::as_bytes) {
            None => Some(DEFAULT_ESCAPE),
            Some([]) => None,
            Some(&[byte]) if (1..=127).contains(&byte) => {
                if [0x03, 0x04, b'\n', 0x0c, b'\r'].contains(&byte) {
                    Some(DEFAULT_ESCAPE)
                } else {
                    Some(byte)
                }
            }
            Some(_) => Some(DEFAULT_ESCAPE),
        };
        EscapeFilter::new(key)
    }

    /// The escape byte, if escapes are enabled.
    pub fn key(&self) -> Option<u8> {
        self.key
    }

    /// Whether the escape was typed and the next key is awaited.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// How the escape key is named to the user: `Ctrl-^`, or the printable
    /// character in quotes.
    pub fn key_name(&self) -> Option<String> {
        self.key.map(|key| match control_pass_key(key) {
            Some(pass) => format!("Ctrl-{}", char::from(pass)),
            None => format!("\"{}\"", char::from(key)),
        })
    }

    /// The ` [To quit: <key> .]` hint appended to status bar messages.
    pub fn quit_hint(&self) -> String {
        self.key_name()
            .map(|name| format!(" [To quit: {name} .]"))
            .unwrap_or_default()
    }

    /// The status bar text shown while the second key is awaited.
    pub fn help_text(&self) -> String {
        let name = self.key_name().unwrap_or_default();
        let pass = self
            .key
            .map(|key| char::from(control_pass_key(key).unwrap_or(key)))
            .unwrap_or(' ');
        format!("Commands: Ctrl-Z suspends, \".\" quits, \"{pass}\" gives literal {name}")
    }

    /// Splits `input` into bytes to send and escape commands, in order.
    pub fn filter(&mut self, input: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut pending = Vec::new();
        let Some(key) = self.key else {
            return vec![Action::Send(input.to_vec())];
        };
        for &byte in input {
            if self.waiting {
                self.waiting = false;
                actions.push(Action::HideHelp);
                if byte == b'.' {
                    flush(&mut pending, &mut actions);
                    actions.push(Action::Quit);
                } else if byte == SUSPEND {
                    flush(&mut pending, &mut actions);
                    actions.push(Action::Suspend);
                } else if self.is_pass_key(key, byte) {
                    pending.push(key);
                } else {
                    pending.push(key);
                    pending.push(byte);
                }
                self.after_newline = byte == b'\r' || byte == b'\n';
                continue;
            }
            let recognised = byte == key && (control_pass_key(key).is_some() || self.after_newline);
            if recognised {
                flush(&mut pending, &mut actions);
                self.waiting = true;
                actions.push(Action::ShowHelp);
            } else {
                pending.push(byte);
            }
            self.after_newline = byte == b'\r' || byte == b'\n';
        }
        flush(&mut pending, &mut actions);
        actions
    }

    fn is_pass_key(&self, key: u8, byte: u8) -> bool {
        match control_pass_key(key) {
            Some(pass) => byte == pass || byte == pass.to_ascii_lowercase(),
            None => byte == key,
        }
    }
}

/// For a control-character escape, the printable key that names it
/// (`^` for Ctrl-^).
fn control_pass_key(key: u8) -> Option<u8> {
    (key < 0x20 || key == 0x7f).then_some(key ^ 0x40)
}

fn flush(pending: &mut Vec<u8>, actions: &mut Vec<Action>) {
    if !pending.is_empty() {
        actions.push(Action::Send(std::mem::take(pending)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(bytes: &[u8]) -> Action {
        Action::Send(bytes.to_vec())
    }

    #[test]
    fn plain_input_passes_through() {
        let mut filter = EscapeFilter::new(Some(DEFAULT_ESCAPE));
        assert_eq!(filter.filter(b"ls\r"), [send(b"ls\r")]);
    }

    #[test]
    fn escape_dot_quits_and_ctrl_z_suspends() {
        let mut filter = EscapeFilter::new(Some(DEFAULT_ESCAPE));
        assert_eq!(
            filter.filter(b"a\x1e.b"),
            [
                send(b"a"),
                Action::ShowHelp,
                Action::HideHelp,
                Action::Quit,
                send(b"b")
            ]
        );
        assert_eq!(
            filter.filter(b"\x1e"),
            [Action::ShowHelp],
            "the second key may come in a later read"
        );
        assert!(filter.waiting());
        assert_eq!(filter.filter(b"\x1a"), [Action::HideHelp, Action::Suspend]);
    }

    #[test]
    fn pass_key_sends_the_escape_and_other_keys_follow_it() {
        let mut filter = EscapeFilter::new(Some(DEFAULT_ESCAPE));
        assert_eq!(
            filter.filter(b"\x1e^"),
            [Action::ShowHelp, Action::HideHelp, send(b"\x1e")]
        );
        assert_eq!(
            filter.filter(b"\x1ex"),
            [Action::ShowHelp, Action::HideHelp, send(b"\x1ex")]
        );
        let mut ctrl_b = EscapeFilter::new(Some(0x02));
        assert_eq!(
            ctrl_b.filter(b"\x02b"),
            [Action::ShowHelp, Action::HideHelp, send(b"\x02")]
        );
    }

    #[test]
    fn printable_escape_only_after_a_newline() {
        let mut filter = EscapeFilter::from_env(Some("~"));
        assert_eq!(filter.filter(b"a~"), [send(b"a~")]);
        assert_eq!(
            filter.filter(b"\r~."),
            [
                send(b"\r"),
                Action::ShowHelp,
                Action::HideHelp,
                Action::Quit
            ]
        );
        assert_eq!(filter.quit_hint(), " [To quit: \"~\" .]");
        assert_eq!(
            filter.help_text(),
            "Commands: Ctrl-Z suspends, \".\" quits, \"~\" gives literal \"~\""
        );
    }

    #[test]
    fn environment_values() {
        assert_eq!(EscapeFilter::from_env(None).key(), Some(0x1e));
        assert_eq!(EscapeFilter::from_env(Some("")).key(), None);
        assert_eq!(EscapeFilter::from_env(Some("\x02")).key(), Some(2));
        assert_eq!(EscapeFilter::from_env(Some("ab")).key(), Some(0x1e));
        assert_eq!(EscapeFilter::from_env(Some("é")).key(), Some(0x1e));
        assert_eq!(EscapeFilter::from_env(Some("\r")).key(), Some(0x1e));
        assert_eq!(EscapeFilter::from_env(Some("\x03")).key(), Some(0x1e));
        let disabled = EscapeFilter::from_env(Some(""));
        assert_eq!(disabled.quit_hint(), "");
    }

    #[test]
    fn wording() {
        let filter = EscapeFilter::new(Some(DEFAULT_ESCAPE));
        assert_eq!(filter.quit_hint(), " [To quit: Ctrl-^ .]");
        assert_eq!(
            filter.help_text(),
            "Commands: Ctrl-Z suspends, \".\" quits, \"^\" gives literal Ctrl-^"
        );
    }
}
