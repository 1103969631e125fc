//! The status bar (spec §10): what the top row says about the connection.
//!
//! Pure: the caller reports when the server was last heard from and when our
//! newest acknowledged state was sent, sets messages, and asks for the text
//! at a given instant. Count-ups start once the server is silent for 6.5 s
//! or our input goes unacknowledged for 10 s.

use std::time::{Duration, Instant};

/// Silence from the server after which the count-up is shown.
pub const SERVER_LATE: Duration = Duration::from_millis(6500);
/// Time without an acknowledgement of our input after which it is shown.
pub const REPLY_LATE: Duration = Duration::from_millis(10000);
/// How long an ordinary message stays.
pub const MESSAGE_TIME: Duration = Duration::from_secs(1);
/// How long a network error stays.
pub const NETWORK_ERROR_TIME: Duration = Duration::from_millis(3100);

/// The status bar's state.
#[derive(Debug, Clone)]
pub struct StatusBar {
    last_word: Instant,
    last_ack: Instant,
    message: String,
    expires: Option<Instant>,
    quit_hint: String,
    help_shown: bool,
}

impl StatusBar {
    /// A status bar with nothing to say; both clocks start at `now`.
    /// `quit_hint` is appended to every text (e.g. ` [To quit: Ctrl-^ .]`).
    pub fn new(now: Instant, quit_hint: String) -> StatusBar {
        StatusBar {
            last_word: now,
            last_ack: now,
            message: String::new(),
            expires: None,
            quit_hint,
            help_shown: false,
        }
    }

    /// A server state arrived at `at`.
    pub fn server_heard(&mut self, at: Instant) {
        self.last_word = self.last_word.max(at);
    }

    /// The newest state the server acknowledged was sent at `at`.
    pub fn server_acked(&mut self, at: Instant) {
        self.last_ack = self.last_ack.max(at);
    }

    /// Shows `text` until cleared.
    pub fn set_permanent(&mut self, text: &str) {
        self.message = text.to_owned();
        self.expires = None;
        self.help_shown = false;
    }

    /// Shows `text` for `duration` from `now`.
    pub fn set_for(&mut self, text: &str, now: Instant, duration: Duration) {
        self.message = text.to_owned();
        self.expires = Some(now + duration);
        self.help_shown = false;
    }

    /// Shows the escape key help (without the quit hint) until cleared.
    pub fn show_help(&mut self, text: &str) {
        self.set_permanent(text);
        self.help_shown = true;
    }

    /// Removes the escape key help, if shown.
    pub fn hide_help(&mut self) {
        if self.help_shown {
            self.clear();
        }
    }

    /// Removes the message.
    pub fn clear(&mut self) {
        self.message.clear();
        self.expires = None;
        self.help_shown = false;
    }

    /// The current message, if any (expired ones included until replaced).
    pub fn message(&self) -> &str {
        &self.message
    }

    fn live_message(&self, now: Instant) -> Option<&str> {
        let expired = self.expires.is_some_and(|at| now >= at);
        (!self.message.is_empty() && !expired).then_some(self.message.as_str())
    }

    /// The text of the bar at `now`, or `None` when it is hidden.
    pub fn text(&self, now: Instant) -> Option<String> {
        let since_word = now.saturating_duration_since(self.last_word);
        let since_ack = now.saturating_duration_since(self.last_ack);
        let server_late = since_word > SERVER_LATE;
        let reply_late = since_ack > REPLY_LATE;
        let late = server_late || reply_late;
        let (what, silence) = if server_late {
            ("contact", since_word)
        } else {
            ("reply", since_ack)
        };
        let hint = if self.help_shown {
            ""
        } else {
            self.quit_hint.as_str()
        };
        match (self.live_message(now), late) {
            (None, false) => None,
            (Some(message), false) => Some(format!("mosh: {message}{hint}")),
            (None, true) => Some(format!(
                "mosh: Last {what} {} ago.{hint}",
                human_duration(silence, true)
            )),
            (Some(message), true) => Some(format!(
                "mosh: {message} ({} without {what}.){hint}",
                human_duration(silence, false)
            )),
        }
    }

    /// When the text may change next without any other input.
    pub fn next_change(&self, now: Instant) -> Instant {
        let since_word = now.saturating_duration_since(self.last_word);
        let since_ack = now.saturating_duration_since(self.last_ack);
        let mut at = now + Duration::from_secs(3600);
        if since_word > SERVER_LATE || since_ack > REPLY_LATE {
            let step = if since_word.min(since_ack) > Duration::from_secs(60) {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(1)
            };
            at = at.min(now + step);
        } else {
            at = at
                .min(self.last_word + SERVER_LATE + Duration::from_millis(1))
                .min(self.last_ack + REPLY_LATE + Duration::from_millis(1));
        }
        if let Some(expiry) = self.expires.filter(|&e| e > now) {
            at = at.min(expiry);
        }
        at
    }
}

/// `N seconds` (or `N s` when `long` is false) under a minute, `M:SS` under
/// an hour, else `H:MM:SS`.
pub fn human_duration(duration: Duration, long: bool) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if total < 60 {
        if long {
            format!("{total} seconds")
        } else {
            format!("{total} s")
        }
    } else if total < 3600 {
        format!("{minutes}:{seconds:02}")
    } else {
        format!("{hours}:{minutes:02}:{seconds:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HINT: &str = " [To quit: Ctrl-^ .]";

    fn bar() -> (StatusBar, Instant) {
        let start = Instant::now();
        (StatusBar::new(start, HINT.to_owned()), start)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn hidden_while_in_contact() {
        let (status, start) = bar();
        assert_eq!(status.text(start), None);
        assert_eq!(status.text(start + ms(6500)), None);
    }

    #[test]
    fn last_contact_after_six_and_a_half_seconds() {
        let (mut status, start) = bar();
        status.server_acked(start + ms(5000));
        assert_eq!(
            status.text(start + ms(6501)).as_deref(),
            Some("mosh: Last contact 6 seconds ago. [To quit: Ctrl-^ .]")
        );
        assert_eq!(
            status.text(start + ms(11_200)).as_deref(),
            Some("mosh: Last contact 11 seconds ago. [To quit: Ctrl-^ .]")
        );
        status.server_heard(start + ms(11_300));
        assert_eq!(status.text(start + ms(11_400)), None, "contact returned");
    }

    #[test]
    fn reply_when_only_our_input_goes_unanswered() {
        let (mut status, start) = bar();
        status.server_heard(start + ms(9000));
        assert_eq!(status.text(start + ms(10_000)), None);
        assert_eq!(
            status.text(start + ms(10_001)).as_deref(),
            Some("mosh: Last reply 10 seconds ago. [To quit: Ctrl-^ .]")
        );
    }

    #[test]
    fn messages_with_and_without_lateness() {
        let (mut status, start) = bar();
        status.set_permanent("Nothing received from server on UDP port 60001.");
        assert_eq!(
            status.text(start + ms(300)).as_deref(),
            Some("mosh: Nothing received from server on UDP port 60001. [To quit: Ctrl-^ .]")
        );
        assert_eq!(
            status.text(start + ms(15_000)).as_deref(),
            Some(
                "mosh: Nothing received from server on UDP port 60001. (15 s without contact.) [To quit: Ctrl-^ .]"
            )
        );
        status.clear();
        status.server_heard(start + ms(15_000));
        status.server_acked(start + ms(15_000));
        assert_eq!(status.text(start + ms(15_001)), None);
    }

    #[test]
    fn timed_messages_expire() {
        let (mut status, start) = bar();
        status.set_for("sendto: Network is unreachable", start, NETWORK_ERROR_TIME);
        assert!(status.text(start + ms(3000)).is_some());
        assert_eq!(status.text(start + ms(3100)), None);
        assert_eq!(status.next_change(start + ms(10)), start + ms(3100));
    }

    #[test]
    fn help_has_no_quit_hint() {
        let (mut status, start) = bar();
        status.show_help("Commands: Ctrl-Z suspends");
        assert_eq!(
            status.text(start).as_deref(),
            Some("mosh: Commands: Ctrl-Z suspends")
        );
    }

    #[test]
    fn refresh_cadence() {
        let (status, start) = bar();
        assert_eq!(status.next_change(start), start + ms(6501));
        let late = start + ms(7000);
        assert_eq!(status.next_change(late), late + ms(1000));
        let very_late = start + ms(70_000);
        assert_eq!(status.next_change(very_late), very_late + ms(3000));
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(1), true), "1 seconds");
        assert_eq!(human_duration(Duration::from_secs(59), false), "59 s");
        assert_eq!(human_duration(Duration::from_secs(61), true), "1:01");
        assert_eq!(human_duration(Duration::from_secs(3599), false), "59:59");
        assert_eq!(human_duration(Duration::from_secs(3661), true), "1:01:01");
    }
}
