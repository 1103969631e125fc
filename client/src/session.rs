//! One client session: the tokio event loop between the user's terminal and
//! the server. It waits on keyboard input (read by a thread), datagrams (one
//! receiving task per UDP socket, for port hopping), signals and timers; each
//! turn it feeds the SSP transport, sends what is due and redraws the screen
//! as the server's framebuffer plus the prediction overlay and status bar.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mosh_proto::{
    Base64Key, Delivery, Extension, ExtensionSet, Peer, Suite, Transport, TransportConfig,
};
use mosh_term::framebuffer::LinkId;
use mosh_term::history::HistoryInbox;
use mosh_term::{Complete, Display, Framebuffer, UserStream};
use tokio::net::UdpSocket;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::escape::{Action, EscapeFilter};
use crate::notify::{NETWORK_ERROR_TIME, StatusBar};
use crate::paint::{self, Canvas};
use crate::predict::{DisplayMode, Predictor};
use crate::scrollback::{SYNC_BEGIN, SYNC_END, push_history};
use crate::terminal::{self, RawTerminal};

/// After this long without any server state, the "Nothing received" notice.
const NOTHING_RECEIVED_AFTER: Duration = Duration::from_millis(250);
/// After this long without any server state, give up.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(15000);
/// Hop to a new source port after this long without a round trip...
const PORT_HOP_AFTER: Duration = Duration::from_millis(10000);
/// ...and at most this often.
const PORT_HOP_SPACING: Duration = Duration::from_millis(10000);
/// Old sockets are closed once the newest is this old.
const OLD_SOCKETS_KEPT: Duration = Duration::from_millis(60000);
/// Most sockets open at once.
const MAX_SOCKETS: usize = 10;
/// A single read longer than this is a paste: no predictions.
const PASTE_BYTES: usize = 100;
/// Largest datagram read.
const RECEIVE_BUFFER: usize = 2048 + 1;
/// Largest keyboard read.
const INPUT_BUFFER: usize = 16384;
/// Longest idle wait.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// How the session is set up.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The server's address.
    pub server: SocketAddr,
    /// The session key.
    pub key: Base64Key,
    /// `-v`: log dropped datagrams, port hops and the cipher suite to stderr.
    pub verbose: bool,
    /// Offer the native cipher (AES-256-GCM with X25519 forward secrecy) to
    /// the server; `MOSH_CIPHER=ocb` turns it off, for stock AES-128-OCB.
    pub native_cipher: bool,
    /// `MOSH_PREDICTION_DISPLAY`.
    pub prediction: DisplayMode,
    /// `MOSH_PREDICTION_OVERWRITE=yes`.
    pub overwrite: bool,
    /// The escape key filter (`MOSH_ESCAPE_KEY`).
    pub escape: EscapeFilter,
    /// Prefix window titles with `[mosh] ` (unless `MOSH_TITLE_NOPREFIX`).
    pub title_prefix: bool,
    /// What the user's terminal can do.
    pub display: Display,
    /// Offer the `scrollback` extension: with a server of ours, lines that
    /// scroll off its screen enter this terminal's scrollback (off with
    /// `MOSH_NO_SCROLLBACK`, which `mosh --no-scrollback` sets).
    pub scrollback: bool,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The shutdown handshake completed.
    Clean,
    /// The server was never heard from.
    NeverConnected,
    /// The server was heard from, but the session did not end cleanly.
    Unclean,
}

/// A failure that ends the session at once.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The UDP socket could not be opened.
    #[error("socket: {0}")]
    Socket(#[source] io::Error),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[source] io::Error),
    /// The keyboard reader could not be started.
    #[error("keyboard: {0}")]
    Keyboard(#[source] io::Error),
    /// The transport could not be created.
    #[error("crypto: {0}")]
    Crypto(#[from] mosh_proto::CryptoError),
}

/// Runs a session on the terminal `terminal` (already in raw mode) until it
/// ends.
pub async fn run(config: SessionConfig, terminal: &RawTerminal) -> Result<Outcome, SessionError> {
    let mut signals = Signals::new().map_err(SessionError::Signals)?;
    let keyboard = spawn_keyboard_reader().map_err(SessionError::Keyboard)?;
    let mut client = Client::new(config, terminal)?;
    client.run(&mut signals, keyboard).await
}

/// The signals the client handles.
struct Signals {
    winch: Signal,
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
    pipe: Signal,
    cont: Signal,
}

impl Signals {
    /// Installs the handlers. From here on, as in stock mosh-client, a
    /// closed pipe on stdout no longer ends the program: SIGPIPE shuts the
    /// session down (the handler stays installed until exit).
    fn new() -> io::Result<Signals> {
        let signals = Signals {
            winch: signal(SignalKind::window_change())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
            pipe: signal(SignalKind::pipe())?,
            cont: signal(SignalKind::from_raw(libc::SIGCONT))?,
        };
        mosh_stdio::on_broken_pipe(mosh_stdio::BrokenPipe::Ignore);
        Ok(signals)
    }
}

/// Reads the keyboard on a thread; an empty read means end of input.
fn spawn_keyboard_reader() -> io::Result<mpsc::Receiver<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel(64);
    std::thread::Builder::new()
        .name("keyboard".into())
        .spawn(move || {
            let mut buffer = vec![0u8; INPUT_BUFFER];
            loop {
                match rustix::io::read(rustix::stdio::stdin(), &mut buffer) {
                    Ok(0) => {
                        let _ = sender.blocking_send(Vec::new());
                        return;
                    }
                    Ok(n) => {
                        if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => {
                        let _ = sender.blocking_send(Vec::new());
                        return;
                    }
                }
            }
        })?;
    Ok(receiver)
}

/// One open UDP socket and the task forwarding what it receives.
struct Hop {
    socket: Arc<UdpSocket>,
    receiver: JoinHandle<()>,
    chosen: Instant,
}

impl Drop for Hop {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// A received datagram and where it came from.
type Datagram = (SocketAddr, Vec<u8>);

enum Event {
    Datagram(SocketAddr, Vec<u8>),
    Input(Option<Vec<u8>>),
    Resize,
    Stop,
    Continue,
    Timer,
}

struct Client<'t> {
    config: SessionConfig,
    terminal: &'t RawTerminal,
    transport: Transport<UserStream, Complete>,
    hops: Vec<Hop>,
    datagrams: (mpsc::Sender<Datagram>, mpsc::Receiver<Datagram>),
    predictor: Predictor,
    status: StatusBar,
    escape: EscapeFilter,
    shown: Framebuffer,
    repaint: bool,
    /// What the transport last said about the server's extensions.
    peer: Peer,
    /// Where received history lines wait until they are written out.
    inbox: HistoryInbox,
    /// History lines below this number have been written out.
    history_written: u64,
    /// Drawing on the main screen, whose scrollback takes history lines.
    main_screen: bool,
    started: Instant,
    connected: bool,
    nothing_received_shown: bool,
    last_port_choice: Instant,
    quit_now: bool,
    /// The cipher suite and key epoch last logged.
    cipher_shown: (Suite, u64),
}

impl<'t> Client<'t> {
    fn new(config: SessionConfig, terminal: &'t RawTerminal) -> Result<Self, SessionError> {
        let now = Instant::now();
        let (cols, rows) = terminal::window_size();
        let (width, height) = (usize::from(cols), usize::from(rows));
        let mut user = UserStream::new();
        user.push_resize(i32::from(cols), i32::from(rows));
        let mut extensions = ExtensionSet::EMPTY.with(Extension::Attributes);
        if config.native_cipher {
            extensions = extensions.with(Extension::NativeCipher);
        }
        if config.scrollback {
            extensions = extensions.with(Extension::Scrollback);
        }
        let inbox = HistoryInbox::default();
        let transport = Transport::new(
            TransportConfig::client(config.server).with_extensions(extensions),
            &config.key,
            UserStream::new(),
            Complete::new(width, height).with_history_inbox(inbox.clone()),
            now.into_std(),
        )?;
        let mut client = Client {
            predictor: Predictor::new(config.prediction, config.overwrite),
            status: StatusBar::new(now.into_std(), config.escape.quit_hint()),
            escape: config.escape.clone(),
            config,
            terminal,
            transport,
            hops: Vec::new(),
            datagrams: mpsc::channel(256),
            shown: Framebuffer::new(width, height),
            repaint: true,
            peer: Peer::Undecided,
            inbox,
            history_written: 0,
            main_screen: false,
            started: now,
            connected: false,
            nothing_received_shown: false,
            last_port_choice: now,
            quit_now: false,
            cipher_shown: (Suite::Aes128Ocb, 0),
        };
        client.log(|| {
            let offer = if client.config.native_cipher {
                format!(", offering {}", Suite::Aes256GcmX25519)
            } else {
                String::new()
            };
            format!("mosh-client: cipher {}{offer}", Suite::Aes128Ocb)
        });
        client.transport.set_current_state(user);
        client.open_socket(now).map_err(SessionError::Socket)?;
        Ok(client)
    }

    fn log(&self, message: impl FnOnce() -> String) {
        if self.config.verbose {
            mosh_stdio::stderr!("{}\r\n", message());
        }
    }

    /// Opens a new socket (a new source port) and makes it the one sends go
    /// out of.
    fn open_socket(&mut self, now: Instant) -> io::Result<()> {
        let any: SocketAddr = if self.config.server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let std_socket = std::net::UdpSocket::bind(any)?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let reader = Arc::clone(&socket);
        let sender = self.datagrams.0.clone();
        let receiver = tokio::spawn(async move {
            let mut buffer = vec![0u8; RECEIVE_BUFFER];
            loop {
                match reader.recv_from(&mut buffer).await {
                    Ok((len, from)) => {
                        if sender.send((from, buffer[..len].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        self.hops.push(Hop {
            socket,
            receiver,
            chosen: now,
        });
        self.last_port_choice = now;
        self.prune_sockets(now);
        Ok(())
    }

    fn prune_sockets(&mut self, now: Instant) {
        if self.hops.len() > 1
            && self
                .hops
                .last()
                .is_some_and(|newest| now - newest.chosen > OLD_SOCKETS_KEPT)
        {
            let newest = self.hops.len() - 1;
            self.hops.drain(..newest);
        }
        if self.hops.len() > MAX_SOCKETS {
            let excess = self.hops.len() - MAX_SOCKETS;
            self.hops.drain(..excess);
        }
    }

    async fn run(
        &mut self,
        signals: &mut Signals,
        keyboard: mpsc::Receiver<Vec<u8>>,
    ) -> Result<Outcome, SessionError> {
        let mut keyboard = Some(keyboard);
        loop {
            let now = Instant::now();
            self.check_connection(now);
            self.draw(now);
            self.send_due(now).await;
            if let Some(outcome) = self.finished(now) {
                return Ok(self.last_frame(outcome));
            }
            let wake = self.next_wake(now);
            let event = tokio::select! {
                Some((from, bytes)) = self.datagrams.1.recv() => Event::Datagram(from, bytes),
                input = read_keyboard(keyboard.as_mut()) => {
                    Event::Input(input.filter(|bytes| !bytes.is_empty()))
                }
                _ = signals.winch.recv() => Event::Resize,
                _ = signals.terminate.recv() => Event::Stop,
                _ = signals.interrupt.recv() => Event::Stop,
                _ = signals.hangup.recv() => Event::Stop,
                _ = signals.pipe.recv() => Event::Stop,
                _ = signals.cont.recv() => Event::Continue,
                _ = tokio::time::sleep_until(wake) => Event::Timer,
            };
            let now = Instant::now();
            match event {
                Event::Datagram(from, bytes) => {
                    self.handle_datagram(now, from, &bytes);
                    while let Ok((from, bytes)) = self.datagrams.1.try_recv() {
                        self.handle_datagram(now, from, &bytes);
                    }
                }
                Event::Input(Some(bytes)) => self.handle_input(now, &bytes),
                Event::Input(None) => {
                    keyboard = None;
                    self.shut_down(now, "Exiting...");
                    if !self.connected {
                        return Ok(self.last_frame(Outcome::NeverConnected));
                    }
                }
                Event::Resize => self.resize(),
                Event::Stop => {
                    self.shut_down(now, "Signal received, shutting down...");
                    if !self.connected {
                        return Ok(self.last_frame(Outcome::NeverConnected));
                    }
                }
                Event::Continue => self.resume(),
                Event::Timer => {}
            }
            if self.quit_now {
                return Ok(self.last_frame(Outcome::NeverConnected));
            }
        }
    }

    /// Draws the last frame as stock does before restoring the terminal:
    /// no status bar, no title prefix.
    fn last_frame(&mut self, outcome: Outcome) -> Outcome {
        let now = Instant::now();
        self.status.clear();
        self.status.server_heard(now.into_std());
        self.status.server_acked(now.into_std());
        self.config.title_prefix = false;
        self.draw(now);
        outcome
    }

    /// The startup notices: nothing heard yet, then giving up.
    fn check_connection(&mut self, now: Instant) {
        if self.connected || self.transport.shutdown_in_progress() {
            return;
        }
        let waited = now - self.started;
        if waited >= CONNECT_TIMEOUT {
            self.status.set_permanent("Timed out waiting for server...");
            self.transport.start_shutdown(now.into_std());
        } else if waited >= NOTHING_RECEIVED_AFTER && !self.nothing_received_shown {
            self.nothing_received_shown = true;
            let text = format!(
                "Nothing received from server on UDP port {}.",
                self.config.server.port()
            );
            self.status.set_permanent(&text);
        }
    }

    async fn send_due(&mut self, now: Instant) {
        let mut sent = false;
        while let Some(transmit) = self.transport.poll_transmit(now.into_std()) {
            let Some(hop) = self.hops.last() else {
                break;
            };
            sent = true;
            match hop
                .socket
                .send_to(&transmit.contents, transmit.destination)
                .await
            {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => {
                    self.transport.handle_message_too_large();
                }
                Err(error) => {
                    let text = format!("sendto: {}", os_error_text(&error));
                    self.status
                        .set_for(&text, now.into_std(), NETWORK_ERROR_TIME);
                }
            }
        }
        if sent {
            self.maybe_hop(now);
        }
    }

    /// Port hopping (spec §8.2): a new source port when round trips have
    /// failed for a while.
    fn maybe_hop(&mut self, now: Instant) {
        let last_success = Instant::from_std(self.transport.last_round_trip_success());
        if now - self.last_port_choice > PORT_HOP_SPACING
            && now.saturating_duration_since(last_success) > PORT_HOP_AFTER
        {
            match self.open_socket(now) {
                Ok(()) => self.log(|| "mosh-client: switched to a new UDP source port".to_owned()),
                Err(error) => {
                    self.last_port_choice = now;
                    let text = format!("socket: {}", os_error_text(&error));
                    self.status
                        .set_for(&text, now.into_std(), NETWORK_ERROR_TIME);
                }
            }
        }
    }

    fn finished(&self, now: Instant) -> Option<Outcome> {
        let transport = &self.transport;
        let unclean = if self.connected {
            Outcome::Unclean
        } else {
            Outcome::NeverConnected
        };
        if transport.seal_failure().is_some() {
            return Some(unclean);
        }
        if transport.shutdown_in_progress() {
            if transport.shutdown_acknowledged() {
                return Some(Outcome::Clean);
            }
            if transport.shutdown_timed_out(now.into_std()) {
                return Some(unclean);
            }
        }
        if transport.counterparty_shutdown_ack_sent() {
            return Some(Outcome::Clean);
        }
        None
    }

    fn next_wake(&mut self, now: Instant) -> Instant {
        let mut wake = now + MAX_WAIT;
        if let Some(at) = self.transport.poll_timeout(now.into_std()) {
            wake = wake.min(Instant::from_std(at));
        }
        wake = wake.min(Instant::from_std(self.status.next_change(now.into_std())));
        if let Some(at) = self.predictor.next_wake(now.into_std()) {
            wake = wake.min(Instant::from_std(at));
        }
        if !self.connected {
            if !self.nothing_received_shown {
                wake = wake.min(self.started + NOTHING_RECEIVED_AFTER);
            }
            wake = wake.min(self.started + CONNECT_TIMEOUT);
        }
        wake.max(now)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self.transport.handle_datagram(now.into_std(), from, bytes) {
            Ok(Delivery::NewState(_)) => {
                if !self.connected {
                    self.connected = true;
                    if self.nothing_received_shown {
                        self.status.clear();
                    }
                }
                self.status.server_heard(now.into_std());
                self.prune_sockets(now);
            }
            Ok(_) => {}
            Err(error) => {
                self.log(|| format!("mosh-client: dropped datagram from {from}: {error}"))
            }
        }
        self.status
            .server_acked(self.transport.last_round_trip_success());
        let peer = self.transport.peer_extensions();
        if peer != self.peer {
            self.peer = peer;
            self.log(|| match peer {
                Peer::Native(set) => format!("mosh-client: extensions enabled: {set}"),
                Peer::Stock | Peer::Undecided => {
                    "mosh-client: extensions enabled: none (stock server)".to_owned()
                }
            });
        }
        let cipher = (self.transport.cipher_suite(), self.transport.key_epoch());
        if cipher != self.cipher_shown {
            self.cipher_shown = cipher;
            self.log(|| format!("mosh-client: cipher {} (key epoch {})", cipher.0, cipher.1));
        }
    }

    fn update_predictor_network(&mut self) {
        let echo_ack = self.transport.latest_remote_state().echo_ack();
        self.predictor.set_network(
            self.transport.send_interval(),
            self.transport.last_sent_state_num(),
            echo_ack,
        );
    }

    fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.transport.shutdown_in_progress() {
            return;
        }
        let paste = bytes.len() > PASTE_BYTES;
        if paste {
            self.predictor.reset();
        }
        for action in self.escape.filter(bytes) {
            match action {
                Action::Send(keys) => {
                    if keys.contains(&0x0c) {
                        self.repaint = true;
                    }
                    self.transport.current_state_mut().push_bytes(&keys);
                    if !paste {
                        self.update_predictor_network();
                        let fb = self.transport.latest_remote_state().framebuffer();
                        self.predictor.input(&keys, fb, now.into_std());
                    }
                }
                Action::Quit => {
                    self.shut_down(now, "Exiting on user request...");
                    if !self.connected {
                        self.quit_now = true;
                    }
                    return;
                }
                Action::Suspend => self.suspend(),
                Action::ShowHelp => {
                    let help = self.escape.help_text();
                    self.status.show_help(&help);
                }
                Action::HideHelp => self.status.hide_help(),
            }
        }
    }

    fn shut_down(&mut self, now: Instant, why: &str) {
        if !self.transport.shutdown_in_progress() {
            self.status.set_permanent(why);
            self.transport.start_shutdown(now.into_std());
        }
    }

    fn resize(&mut self) {
        if self.transport.shutdown_in_progress() {
            return;
        }
        let (cols, rows) = terminal::window_size();
        self.transport
            .current_state_mut()
            .push_resize(i32::from(cols), i32::from(rows));
        self.predictor.reset();
        self.repaint = true;
    }

    fn resume(&mut self) {
        if let Err(error) = self.terminal.resume() {
            self.log(|| format!("mosh-client: {error}"));
        }
        self.repaint = true;
    }

    fn suspend(&mut self) {
        self.terminal.pause();
        terminal::write_stdout(b"\n\x1b[37;44m[mosh is suspended.]\x1b[m\n");
        let _ = rustix::process::kill_current_process_group(rustix::process::Signal::STOP);
        self.resume();
    }

    /// With a server that sends history: moves to the main screen once, and
    /// returns the bytes that write the history lines received since the
    /// last call into the terminal's scrollback (the screen must then be
    /// repainted).
    fn history_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let enabled = self.transport.peer_extensions().enabled();
        if !enabled.contains(Extension::Scrollback) {
            return out;
        }
        let (width, height) = (self.shown.width(), self.shown.height());
        if !self.main_screen {
            self.main_screen = true;
            self.config.display.keeps_scrollback = true;
            self.terminal.use_main_screen(height);
            self.repaint = true;
            self.log(|| "mosh-client: the server sends scrollback history".to_owned());
        }
        let end = self.transport.latest_remote_state().history_end();
        if end > self.history_written {
            let entries = self.inbox.take(self.history_written, end);
            self.history_written = end;
            push_history(&entries, width, height, &mut out);
        }
        out
    }

    /// Draws the server's screen with the overlays, as a diff against what
    /// the terminal shows, after any new history lines.
    fn draw(&mut self, now: Instant) {
        let history = self.history_bytes();
        if !history.is_empty() {
            self.repaint = true;
        }
        self.update_predictor_network();
        let remote = self.transport.latest_remote_state().framebuffer();
        self.predictor.cull(remote, now.into_std());
        let status = self.status.text(now.into_std());
        let target = compose(
            remote,
            &self.predictor,
            self.config.title_prefix,
            status.as_deref(),
        );
        let bytes = self
            .config
            .display
            .new_frame(!self.repaint, &self.shown, &target);
        if !history.is_empty() {
            let mut frame = SYNC_BEGIN.to_vec();
            frame.extend_from_slice(&history);
            frame.extend_from_slice(&bytes);
            frame.extend_from_slice(SYNC_END);
            terminal::write_stdout(&frame);
        } else if !bytes.is_empty() {
            terminal::write_stdout(&bytes);
        }
        self.shown = target;
        self.repaint = false;
    }
}

/// What the terminal should show: the server's screen, with the
/// predictions, the `[mosh] ` title prefix and the status bar over it. No
/// hyperlink is left open at the end of a frame, so nothing the terminal
/// prints later (after the session, say) is linked.
pub fn compose(
    remote: &Framebuffer,
    predictor: &Predictor,
    title_prefix: bool,
    status: Option<&str>,
) -> Framebuffer {
    let mut target = predictor.overlay(remote.clone());
    target.ds.rend.link = LinkId::NONE;
    if title_prefix && target.title_initialized() {
        let mut canvas = Canvas::new(target);
        canvas.prefix_title();
        target = canvas.finish();
    }
    match status {
        Some(text) => paint::status_bar(target, text),
        None => target,
    }
}

/// The next keyboard read; never ready once the keyboard is gone.
async fn read_keyboard(keyboard: Option<&mut mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match keyboard {
        Some(keyboard) => keyboard.recv().await,
        None => std::future::pending().await,
    }
}

/// An OS error's text without Rust's ` (os error N)` suffix, as C's
/// strerror gives it.
fn os_error_text(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosh_term::Emulator;

    #[test]
    fn frames_stack_predictions_title_and_status_bar() {
        let mut emulator = Emulator::new(30, 4);
        emulator.feed(b"\x1b]0;shell\x07\r\n$ ");
        let remote = emulator.into_framebuffer();
        let now = std::time::Instant::now();
        let mut predictor = Predictor::new(DisplayMode::Always, false);
        predictor.set_network(Duration::from_millis(300), 0, 0);
        predictor.input(b"a", &remote, now);
        let plain = compose(&remote, &predictor, false, None);
        assert_eq!(plain.title(), "shell");
        assert_eq!(
            plain.cell(1, 2).contents(),
            "",
            "the first epoch is tentative"
        );
        let framed = compose(
            &remote,
            &predictor,
            true,
            Some("mosh: Last contact 7 seconds ago."),
        );
        assert_eq!(framed.title(), "[mosh] shell");
        assert_eq!(framed.cell(0, 0).contents(), "m");
        assert_eq!(framed.cell(1, 0).contents(), "$");
        assert!(
            framed.ds.cursor_visible,
            "the cursor is not on the bar's row"
        );
        let bytes = Display::server().new_frame(false, &plain, &framed);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("\x1b]0;[mosh] shell\x07"), "{text:?}");
        assert!(
            text.contains("\x1b[0;1;37;44mmosh: Last contact"),
            "{text:?}"
        );
    }
}
