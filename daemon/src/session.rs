//! One mosh session, as the server runs it: a UDP socket carrying SSP, a PTY
//! running the user's command, and the terminal emulator between them.
//!
//! The event loop waits on the socket, the PTY, signals and the transport's
//! timers; each turn it applies new user input to the PTY, feeds PTY output
//! to the emulator, publishes the screen as the transport's local state and
//! sends whatever the transport has due. The shell is started when the first
//! client state arrives, at the client's window size.
//!
//! A session run by the daemon can be re-keyed ([`Rekey`]): the transport is
//! replaced by a fresh one under a new random key, whose first state is the
//! whole current screen, so a brand-new client takes the session over; the
//! old transport, and the old key's cipher with it, is dropped (and wiped).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mosh_proto::messages::UserMessage;
use mosh_proto::{
    Base64Key, Delivery, Extension, ExtensionSet, Peer, Suite, Transport, TransportConfig,
};
use mosh_term::history::{HistoryLimits, HistoryLog};
use mosh_term::{Complete, Emulator, KeyTranslator, UserStream};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zeroize::{Zeroize, Zeroizing};

use pty_process::{OwnedReadPty, OwnedWritePty};

use crate::alarm::Alarm;
use crate::datagrams::{self, ReceiveBatch, SessionSocket};
use crate::pty::{ChildCommand, ShellChild};
use crate::utmp::UtmpRecord;

/// Input is acknowledged for prediction once it reached the PTY this long ago.
const ECHO_TIMEOUT: Duration = Duration::from_millis(50);
/// A server no client ever reached gives up after this long.
const FIRST_CONTACT_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest PTY read per turn.
const PTY_READ: usize = 16384;
/// Full batches of datagrams already waiting that are taken in one turn of
/// the event loop after the one that woke it (a flood of garbage then costs
/// little more than its decryption attempts).
const DATAGRAM_BURST: usize = 8;
/// Most bytes waiting to be written to the PTY; further input is dropped
/// while the application does not read (it would be lost in a real pty
/// buffer too, and must not grow without bound).
const MAX_PENDING_INPUT: usize = 1 << 20;
/// The terminal size before the client says otherwise.
const INITIAL_SIZE: (usize, usize) = (80, 24);
/// A client heard from this recently is live: re-keying under it needs
/// `force`.
const LIVE_CLIENT: Duration = Duration::from_secs(crate::control::LIVE_SECS);
/// The foreground command is looked up at most this often.
const FOREGROUND_INTERVAL: Duration = Duration::from_secs(1);
/// Longest foreground command reported, in characters.
const MAX_FOREGROUND: usize = 64;
/// How much of the stack below the session's frame is overwritten once a
/// key is in the transport, wiping the copies that making the cipher left
/// in frames that have returned.
const STACK_WIPE: usize = 64 * 1024;

/// How a session is set up.
#[derive(Debug)]
pub struct SessionConfig {
    /// The command to run (or the login shell).
    pub command: ChildCommand,
    /// `-v` count: 1 or more logs session events to stderr.
    pub verbose: u32,
    /// `MOSH_SERVER_NETWORK_TMOUT`: shut down after this long without a new
    /// client state.
    pub network_timeout: Option<Duration>,
    /// `MOSH_SERVER_SIGNAL_TMOUT`: SIGUSR1 shuts down only after this long
    /// without a new client state (always, when unset).
    pub signal_timeout: Option<Duration>,
    /// Bytes to show on the screen before the shell starts (the motd).
    pub banner: Vec<u8>,
    /// Where to publish the session's [`SessionStatus`], if anywhere.
    pub status: Option<tokio::sync::watch::Sender<SessionStatus>>,
    /// Lines of scrollback history kept for clients that take it; 0 turns
    /// the `scrollback` extension off.
    pub scrollback: usize,
    /// Where re-key requests come from, if anywhere.
    pub rekeys: Option<mpsc::Receiver<Rekey>>,
}

/// A request to give the session a new key and a fresh transport.
#[derive(Debug)]
pub struct Rekey {
    /// Even if the current client is live.
    pub force: bool,
    /// Where the new key (printable), or the refusal, goes.
    pub reply: oneshot::Sender<Result<Zeroizing<String>, RekeyRefusal>>,
}

/// Why a session was not re-keyed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RekeyRefusal {
    /// The client was heard from recently and `force` was not given.
    #[error(
        "its client is still live (heard from {0} s ago); add --force to take the session over"
    )]
    Live(u64),
    /// The session is shutting down.
    #[error("it is ending")]
    Closing,
    /// No new key could be made.
    #[error("making a new key: {0}")]
    Key(String),
}

/// What a running session tells about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// The client's address, once one was heard from.
    pub client: Option<SocketAddr>,
    /// Whether the client is live: heard from under the current key less
    /// than [`LIVE_CLIENT`] ago.
    pub client_live: bool,
    /// When the client was last heard from, as of the last change of
    /// `client_live`: a live client is heard every few seconds, and each
    /// time is not published.
    pub last_contact: Option<SystemTime>,
    /// Whether the session is shutting down.
    pub closing: bool,
    /// The cipher suite sealing the server's datagrams (`aes-128-ocb` until
    /// the native cipher's switch).
    pub cipher: Option<Suite>,
    /// How many clients attached (the first, and each after a re-key).
    pub attaches: u32,
    /// When the session was last re-keyed.
    pub rekeyed: Option<SystemTime>,
    /// The command in the foreground of the terminal.
    pub foreground: Option<String>,
    /// Scrollback history held: lines and bytes (`None`: scrollback off).
    pub history: Option<(usize, usize)>,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The shutdown handshake completed.
    Clean,
    /// Our shutdown went unanswered (16 tries or 10 s).
    ShutdownTimedOut,
    /// No client ever reached the server.
    NoClient,
    /// Asked to stop (signal or timeout) before any client address was known.
    StoppedUnattached,
}

/// A failure that ends the session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The socket failed.
    #[error("network: {0}")]
    Network(#[source] io::Error),
    /// The PTY or the child could not be set up.
    #[error("starting the shell: {0}")]
    Spawn(#[source] io::Error),
    /// Signal handlers could not be installed.
    #[error("signals: {0}")]
    Signals(#[source] io::Error),
    /// The session's alarm could not be set up or set.
    #[error("alarm: {0}")]
    Alarm(#[source] io::Error),
    /// The transport could not be created.
    #[error("crypto: {0}")]
    Crypto(#[from] mosh_proto::CryptoError),
}

/// Runs a session on `socket` under `key` until it ends. The key is boxed
/// so that moving it leaves no copies behind; it is dropped (and so wiped)
/// once the transport holds its cipher.
pub async fn run(
    socket: UdpSocket,
    key: Box<Base64Key>,
    config: SessionConfig,
) -> Result<SessionEnd, SessionError> {
    let mut session = start(socket, key, config)?;
    wipe_stack();
    session.run().await
}

/// Makes the session in a frame of its own and moves it to the heap, so
/// that the copies of its cipher left behind are in a frame
/// [`wipe_stack`] reaches; the key is dropped (and wiped) here.
#[inline(never)]
fn start(
    socket: UdpSocket,
    key: Box<Base64Key>,
    config: SessionConfig,
) -> Result<Box<Session>, SessionError> {
    let session = Session::new(socket, &key, config)?;
    Ok(Box::new(session))
}

/// Overwrites [`STACK_WIPE`] bytes of the stack below the caller's frame,
/// where functions that handled a key have returned, then gives those
/// pages back to the kernel: an idle session does not keep them.
#[inline(never)]
pub fn wipe_stack() {
    let mut area = [0u8; STACK_WIPE];
    area.zeroize();
    std::hint::black_box(&area);
    release_zeroed(&mut area);
}

/// Gives the whole pages inside `area`, which holds only zeros, back to
/// the kernel; they read back as zeros when next touched.
fn release_zeroed(area: &mut [u8]) {
    let page = rustix::param::page_size();
    let start = area.as_mut_ptr() as usize;
    let first = start.next_multiple_of(page);
    let end = (start + area.len()) / page * page;
    if first < end {
        // SAFETY: `first..end` lies inside `area`, which holds only zeros,
        // on this thread's stack (private anonymous memory): after
        // MADV_DONTNEED those pages read back as zeros, so the contents
        // of `area` stay what they are. No other memory is touched.
        unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED) };
    }
}

struct Session {
    socket: SessionSocket,
    config: SessionConfig,
    transport: Transport<Complete, UserStream>,
    /// Made when the first client state arrives: a session nobody
    /// connected to holds no parser and only the transport's blank screen.
    emulator: Option<Emulator>,
    /// The lines that left the top of the screen, when scrollback is on.
    history: Option<HistoryLog>,
    /// When history held back for a flood may go out (see
    /// `Complete::advance_history`).
    history_wake: Option<Instant>,
    translator: KeyTranslator,
    shell: Option<ShellChild>,
    pending_input: Vec<u8>,
    echo_records: VecDeque<(u64, Instant)>,
    started: Instant,
    last_client_state: Option<Instant>,
    attached_to: Option<SocketAddr>,
    /// Whether the client was live when last published.
    client_live: bool,
    pty_closed: bool,
    /// What the transport last said about the client's extensions.
    peer: Peer,
    /// The cipher suite and key epoch last published.
    cipher_shown: Option<(Suite, u64)>,
    rekeys: Option<mpsc::Receiver<Rekey>>,
    /// When the foreground command and history are next looked up: a
    /// moment after the terminal's first output or input since the last
    /// look, so an idle session never looks.
    foreground_due: Option<Instant>,
    utmp: Option<UtmpRecord>,
}

impl Session {
    fn new(
        socket: UdpSocket,
        key: &Base64Key,
        mut config: SessionConfig,
    ) -> Result<Self, SessionError> {
        let now = Instant::now();
        let history = (config.scrollback > 0)
            .then(|| HistoryLog::new(HistoryLimits::lines(config.scrollback)));
        let transport = fresh_transport(key, now, history.as_ref())?;
        let rekeys = config.rekeys.take();
        Ok(Self {
            socket: SessionSocket::new(socket).map_err(SessionError::Network)?,
            config,
            transport,
            emulator: None,
            history,
            history_wake: None,
            translator: KeyTranslator::new(),
            shell: None,
            pending_input: Vec::new(),
            echo_records: VecDeque::new(),
            started: now,
            last_client_state: None,
            attached_to: None,
            client_live: false,
            pty_closed: false,
            peer: Peer::Undecided,
            cipher_shown: None,
            rekeys,
            foreground_due: Some(Instant::now() + FOREGROUND_INTERVAL),
            utmp: None,
        })
    }

    /// The emulator, made on first use from the transport's screen (whose
    /// rows it shares until it writes to them) with the banner shown.
    fn emulator(&mut self) -> &mut Emulator {
        self.emulator.get_or_insert_with(|| {
            let screen = self.transport.current_state().framebuffer().clone();
            let mut emulator = Emulator::from_framebuffer(screen);
            if let Some(log) = &self.history {
                emulator.set_history(log.clone());
            }
            emulator.feed(&self.config.banner);
            emulator
        })
    }

    fn publish_status(&self, change: impl FnOnce(&mut SessionStatus)) {
        if let Some(status) = &self.config.status {
            status.send_modify(change);
        }
    }

    fn log(&self, message: impl FnOnce() -> String) {
        if self.config.verbose > 0 {
            mosh_stdio::stderrln!("{}", message());
        }
    }

    async fn run(&mut self) -> Result<SessionEnd, SessionError> {
        let mut terminate = signal(SignalKind::terminate()).map_err(SessionError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(SessionError::Signals)?;
        let mut hangup = signal(SignalKind::hangup()).map_err(SessionError::Signals)?;
        let mut user1 = signal(SignalKind::user_defined1()).map_err(SessionError::Signals)?;
        let mut alarm = Alarm::new().map_err(SessionError::Alarm)?;
        let mut batch = ReceiveBatch::new();
        let mut output = vec![0u8; PTY_READ];
        self.publish_cipher();
        loop {
            let now = Instant::now();
            self.update_echo_ack(now);
            self.check_foreground(now);
            self.publish_liveness(now);
            self.update_utmp();
            self.send_due(now);
            if let Some(end) = self.finished(now) {
                return Ok(end);
            }
            let wake = self.next_wake(now);
            let reading = !self.transport.shutdown_in_progress();
            let (reader, writer) = match self.shell.as_mut() {
                Some(shell) if !self.pty_closed => (
                    Some(&mut shell.reader).filter(|_| reading),
                    Some(&mut shell.writer).filter(|_| !self.pending_input.is_empty()),
                ),
                _ => (None, None),
            };
            let event = tokio::select! {
                received = batch.recv(&self.socket) => Event::Datagram(received),
                read = read_pty(reader, &mut output) => Event::Output(read),
                written = write_pty(writer, &self.pending_input) => Event::Written(written),
                _ = terminate.recv() => Event::Stop("Got SIGTERM"),
                _ = interrupt.recv() => Event::Stop("Got SIGINT"),
                _ = hangup.recv() => Event::Stop("Got SIGHUP"),
                _ = user1.recv() => Event::User1,
                request = next_rekey(self.rekeys.as_mut()) => Event::Rekey(request),
                rang = alarm.until(wake) => Event::Timer(rang),
            };
            let now = Instant::now();
            match event {
                Event::Datagram(received) => {
                    let mut taken = received.map_err(SessionError::Network)?;
                    self.handle_batch(now, &batch);
                    for _ in 0..DATAGRAM_BURST {
                        if taken < datagrams::BATCH {
                            break;
                        }
                        let Ok(more) = batch.try_recv(&self.socket) else {
                            break;
                        };
                        taken = more;
                        self.handle_batch(Instant::now(), &batch);
                    }
                }
                Event::Output(Ok(len)) if len > 0 => {
                    self.terminal_active(now);
                    self.handle_output(&output[..len]);
                }
                Event::Output(_) => self.pty_gone(now),
                Event::Written(Ok(len)) => {
                    self.terminal_active(now);
                    self.pending_input.drain(..len);
                }
                Event::Written(Err(_)) => self.pty_gone(now),
                Event::Stop(why) => self.stop(now, why),
                Event::User1 => self.user1(now),
                Event::Rekey(Some(request)) => {
                    let outcome = self.rekey(now, request.force);
                    wipe_stack();
                    let _ = request.reply.send(outcome);
                }
                Event::Rekey(None) => self.rekeys = None,
                Event::Timer(Ok(())) => self.check_network_timeout(now),
                Event::Timer(Err(error)) => return Err(SessionError::Alarm(error)),
            }
        }
    }

    /// Sends every datagram the transport has due, with as much more
    /// history as the client may take now.
    fn send_due(&mut self, now: Instant) {
        let enabled = self.transport.peer_extensions().enabled();
        if enabled.contains(Extension::Scrollback) {
            let acknowledged = self.transport.acknowledged_state().history_end();
            self.history_wake = self
                .transport
                .current_state_mut()
                .advance_history(acknowledged, now.into_std())
                .map(Instant::from_std);
        }
        while let Some(transmit) = self.transport.poll_transmit(now.into_std()) {
            match self
                .socket
                .send_to(&transmit.contents, transmit.destination)
            {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::EMSGSIZE) => {
                    self.transport.handle_message_too_large();
                }
                Err(error) => self.log(|| format!("sendto: {error}")),
            }
        }
    }

    fn finished(&self, now: Instant) -> Option<SessionEnd> {
        let transport = &self.transport;
        if transport.shutdown_in_progress() && transport.remote_addr().is_none() {
            return Some(SessionEnd::StoppedUnattached);
        }
        if transport.shutdown_in_progress() {
            if transport.shutdown_acknowledged() {
                return Some(SessionEnd::Clean);
            }
            if transport.shutdown_timed_out(now.into_std()) {
                return Some(SessionEnd::ShutdownTimedOut);
            }
        }
        if transport.counterparty_shutdown_ack_sent() {
            return Some(SessionEnd::Clean);
        }
        if self.last_client_state.is_none() && now - self.started >= FIRST_CONTACT_TIMEOUT {
            self.log(|| "No connection within 60 seconds.".to_owned());
            return Some(SessionEnd::NoClient);
        }
        None
    }

    fn next_wake(&mut self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_secs(5);
        if let Some(at) = self.transport.poll_timeout(now.into_std()) {
            wake = wake.min(Instant::from_std(at));
        }
        if let Some(&(_, at)) = self.echo_records.front() {
            wake = wake.min(at + ECHO_TIMEOUT);
        }
        if let Some(at) = self.history_wake {
            wake = wake.min(at);
        }
        if let Some(due) = self.foreground_due.filter(|_| self.config.status.is_some()) {
            wake = wake.min(due);
        }
        if let Some(heard) = self.live_client_heard(now) {
            wake = wake.min(heard + LIVE_CLIENT);
        }
        if let Some(after) = self.utmp.as_ref().and_then(UtmpRecord::poll_after) {
            wake = wake.min(now + after);
        }
        match self.last_client_state {
            None => wake = wake.min(self.started + FIRST_CONTACT_TIMEOUT),
            Some(last) => {
                if let Some(timeout) = self.config.network_timeout {
                    wake = wake.min(last + timeout);
                }
            }
        }
        wake.max(now)
    }

    /// Handles each datagram of `batch`, all as received at `now`.
    fn handle_batch(&mut self, now: Instant, batch: &ReceiveBatch) {
        for (from, bytes) in batch.datagrams() {
            self.handle_datagram(now, from, bytes);
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self.transport.handle_datagram(now.into_std(), from, bytes) {
            Ok(Delivery::NewState(_)) => {
                self.handle_user_input(now);
                if self.shell.is_none() && !self.pty_closed {
                    self.start_shell();
                    self.publish_screen();
                }
            }
            Ok(Delivery::Earlier(_)) => self.handle_user_input(now),
            Ok(_) => {}
            Err(error) => self.log(|| format!("Dropped datagram from {from}: {error}")),
        }
        self.follow_negotiation();
        self.publish_cipher();
        let remote = self.transport.remote_addr();
        if remote != self.attached_to {
            let first = self.attached_to.is_none();
            self.attached_to = remote;
            self.publish_status(|status| {
                status.client = remote;
                if first {
                    status.attaches += 1;
                }
            });
            match remote {
                Some(addr) => self.log(|| format!("Server now attached to client at {addr}")),
                None => self.log(|| "Server now detached from client.".to_owned()),
            }
        }
    }

    /// Gives the screen state the extensions the transport enabled with the
    /// client, once it knows them (the next diff is then a full repaint).
    fn follow_negotiation(&mut self) {
        let peer = self.transport.peer_extensions();
        let enabled = peer.enabled();
        if self.transport.current_state().extensions() != enabled {
            self.transport.current_state_mut().set_extensions(enabled);
        }
        if peer != self.peer {
            self.peer = peer;
            self.log(|| match peer {
                Peer::Native(set) => format!("Client is ours; extensions enabled: {set}"),
                Peer::Stock => "Client is stock mosh; extensions enabled: none".to_owned(),
                Peer::Undecided => "Client not identified yet".to_owned(),
            });
        }
    }

    /// Publishes and logs the cipher suite when it or its key epoch changed.
    fn publish_cipher(&mut self) {
        let cipher = (self.transport.cipher_suite(), self.transport.key_epoch());
        if self.cipher_shown != Some(cipher) {
            self.cipher_shown = Some(cipher);
            self.publish_status(|status| status.cipher = Some(cipher.0));
            self.log(|| format!("Cipher {} (key epoch {})", cipher.0, cipher.1));
        }
    }

    fn check_network_timeout(&mut self, now: Instant) {
        if let Some(timeout) = self.config.network_timeout
            && self
                .last_client_state
                .is_some_and(|last| now - last >= timeout)
            && !self.transport.shutdown_in_progress()
        {
            let why = format!("Network idle for {} seconds.", timeout.as_secs());
            self.stop(now, &why);
        }
    }

    /// Applies the user events that arrived since the last call.
    /// Every new client state counts as contact, including the empty ones
    /// a quiet client sends every few seconds to show it is alive.
    fn handle_user_input(&mut self, now: Instant) {
        self.last_client_state = Some(now);
        let diff = self.transport.take_remote_diff();
        if diff.is_empty() {
            return;
        }
        let Ok(message) = UserMessage::decode(diff.as_slice()) else {
            return;
        };
        let mut resize = None;
        let mut had_event = false;
        for instruction in &message.instruction {
            if let Some(keys) = instruction.keystroke.as_ref().and_then(|k| k.keys.as_ref()) {
                self.apply_resize(resize.take());
                let application_keys = self.emulator().framebuffer().ds.application_cursor_keys;
                let mut translated = Vec::with_capacity(keys.len());
                for &byte in keys {
                    self.translator
                        .translate(byte, application_keys, &mut translated);
                }
                self.queue_input(&translated);
                had_event = true;
            }
            if let Some(size) = &instruction.resize {
                let width = size.width.unwrap_or(0).max(1) as usize;
                let height = size.height.unwrap_or(0).max(1) as usize;
                self.emulator().resize(width, height);
                resize = Some((width, height));
                had_event = true;
            }
        }
        self.apply_resize(resize);
        if had_event {
            let num = self.transport.latest_remote_state_num();
            self.echo_records.push_back((num, now));
        }
        self.publish_screen();
    }

    fn apply_resize(&mut self, size: Option<(usize, usize)>) {
        if let (Some((width, height)), Some(shell)) = (size, self.shell.as_ref())
            && let Err(error) = shell.resize(width, height)
        {
            self.log(|| format!("resizing the pty: {error}"));
        }
    }

    fn queue_input(&mut self, bytes: &[u8]) {
        let room = MAX_PENDING_INPUT.saturating_sub(self.pending_input.len());
        self.pending_input
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn start_shell(&mut self) {
        let fb = self.emulator().framebuffer();
        let (width, height) = (fb.width(), fb.height());
        match ShellChild::spawn(&self.config.command, width, height) {
            Ok(shell) => {
                self.utmp = shell.master.try_clone().ok().map(UtmpRecord::new);
                self.shell = Some(shell);
            }
            Err(error) => {
                let message = format!("\r\nmosh-server: cannot start the shell: {error}\r\n");
                self.emulator().feed(message.as_bytes());
                self.pty_gone(Instant::now());
            }
        }
    }

    fn handle_output(&mut self, bytes: &[u8]) {
        let emulator = self.emulator();
        emulator.feed(bytes);
        let replies = emulator.take_replies();
        self.queue_input(&replies);
        self.publish_screen();
    }

    fn publish_screen(&mut self) {
        let screen = self.emulator().framebuffer().clone();
        self.transport.current_state_mut().set_framebuffer(screen);
    }

    /// Publishes the terminal's foreground command and history when they
    /// changed (only for the daemon), once they are due: a
    /// [`FOREGROUND_INTERVAL`] after the session started or after the
    /// terminal's first activity since the last look.
    fn check_foreground(&mut self, now: Instant) {
        if self.config.status.is_none() || self.foreground_due.is_none_or(|due| now < due) {
            return;
        }
        self.foreground_due = None;
        let Some(pid) = self.shell.as_ref().and_then(|shell| shell.child.id()) else {
            return;
        };
        let command = foreground_command(pid);
        let history = self.history.as_ref().map(HistoryLog::held);
        if let Some(status) = &self.config.status {
            status.send_if_modified(|status| {
                let changed = status.foreground != command || status.history != history;
                status.foreground = command;
                status.history = history;
                changed
            });
        }
    }

    /// Notes output from or input to the terminal: the foreground command
    /// or the history may change, so they are looked up again a moment
    /// later (at most once a [`FOREGROUND_INTERVAL`]).
    fn terminal_active(&mut self, now: Instant) {
        self.foreground_due.get_or_insert(now + FOREGROUND_INTERVAL);
    }

    /// Keeps the terminal's utmp record in step: the client's address
    /// while it is live, `mosh [PID]` once it has been silent for
    /// [`LIVE_CLIENT`] or the session was re-keyed (as
    /// [`Self::publish_liveness`] last found it).
    fn update_utmp(&mut self) {
        let Some(record) = &mut self.utmp else { return };
        let live = self.transport.remote_addr().filter(|_| self.client_live);
        record.set_client(live.map(|addr| addr.ip()));
    }

    /// When the client was last heard from, if it is live at `now`: heard
    /// from under the current key less than [`LIVE_CLIENT`] ago.
    fn live_client_heard(&self, now: Instant) -> Option<Instant> {
        self.transport.remote_addr()?;
        let heard = Instant::from_std(self.transport.last_heard()?);
        (now.saturating_duration_since(heard) < LIVE_CLIENT).then_some(heard)
    }

    /// Publishes whether the client is live when that changed, with when it
    /// was last heard from (kept from before while no client was heard
    /// under the current key).
    fn publish_liveness(&mut self, now: Instant) {
        let live = self.live_client_heard(now).is_some();
        if live == self.client_live {
            return;
        }
        self.client_live = live;
        let heard = self.transport.last_heard().map(|at| {
            let ago = now.into_std().saturating_duration_since(at);
            SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH)
        });
        self.publish_status(|status| {
            status.client_live = live;
            if heard.is_some() {
                status.last_contact = heard;
            }
        });
    }

    /// Replaces the transport by a fresh one under a new key whose first
    /// state is the current screen; the old client is no longer heard. A
    /// live client is displaced only with `force`.
    fn rekey(&mut self, now: Instant, force: bool) -> Result<Zeroizing<String>, RekeyRefusal> {
        if self.transport.shutdown_in_progress() {
            return Err(RekeyRefusal::Closing);
        }
        if !force
            && self.transport.remote_addr().is_some()
            && let Some(heard) = self.transport.last_heard()
        {
            let ago = now.into_std().saturating_duration_since(heard);
            if ago < LIVE_CLIENT {
                return Err(RekeyRefusal::Live(ago.as_secs()));
            }
        }
        let key = Base64Key::random().map_err(|e| RekeyRefusal::Key(e.to_string()))?;
        let mut transport = fresh_transport(&key, now, self.history.as_ref())
            .map_err(|e| RekeyRefusal::Key(e.to_string()))?;
        if let Some(emulator) = &self.emulator {
            let screen = emulator.framebuffer().clone();
            transport.current_state_mut().set_framebuffer(screen);
        }
        self.transport = transport;
        self.peer = Peer::Undecided;
        self.echo_records.clear();
        self.attached_to = None;
        self.publish_status(|status| {
            status.client = None;
            status.rekeyed = Some(SystemTime::now());
        });
        self.log(|| "Re-keyed for a new client.".to_owned());
        Ok(Zeroizing::new(key.printable()))
    }

    fn update_echo_ack(&mut self, now: Instant) {
        let mut acked = None;
        while let Some(&(num, at)) = self.echo_records.front() {
            if now - at < ECHO_TIMEOUT {
                break;
            }
            acked = Some(num);
            self.echo_records.pop_front();
        }
        if let Some(num) = acked {
            self.transport.current_state_mut().set_echo_ack(num);
        }
    }

    fn pty_gone(&mut self, now: Instant) {
        self.pty_closed = true;
        self.pending_input.clear();
        self.stop(now, "The command exited.");
    }

    /// Starts the shutdown handshake, or ends at once with no client.
    fn stop(&mut self, now: Instant, why: &str) {
        self.log(|| why.to_owned());
        self.publish_status(|status| status.closing = true);
        self.transport.start_shutdown(now.into_std());
    }

    fn user1(&mut self, now: Instant) {
        let quiet_long_enough = match (self.config.signal_timeout, self.last_client_state) {
            (None, _) => true,
            (Some(_), None) => true,
            (Some(timeout), Some(last)) => now - last >= timeout,
        };
        if quiet_long_enough {
            self.stop(now, "Got SIGUSR1");
        }
    }
}

/// A server transport under `key` whose both states start blank at
/// [`INITIAL_SIZE`], as a new client expects.
fn fresh_transport(
    key: &Base64Key,
    now: Instant,
    history: Option<&HistoryLog>,
) -> Result<Transport<Complete, UserStream>, mosh_proto::CryptoError> {
    let (width, height) = INITIAL_SIZE;
    let mut extensions = ExtensionSet::EMPTY
        .with(Extension::NativeCipher)
        .with(Extension::Attributes);
    let mut screen = Complete::new(width, height);
    if let Some(log) = history {
        extensions = extensions.with(Extension::Scrollback);
        screen = screen.with_history_log(log.clone());
    }
    Transport::new(
        TransportConfig::server().with_extensions(extensions),
        key,
        screen,
        UserStream::new(),
        now.into_std(),
    )
}

/// The next re-key request, or never when there is no channel.
async fn next_rekey(requests: Option<&mut mpsc::Receiver<Rekey>>) -> Option<Rekey> {
    match requests {
        Some(requests) => requests.recv().await,
        None => std::future::pending().await,
    }
}

/// The command line of the foreground process group of the terminal whose
/// session leader is `leader`, from `/proc` (`tpgid` in its `stat`).
fn foreground_command(leader: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{leader}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let group: i32 = after_name.split_whitespace().nth(5)?.parse().ok()?;
    if group <= 0 {
        return None;
    }
    let bytes = std::fs::read(format!("/proc/{group}/cmdline")).ok()?;
    let words: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    let line = if words.is_empty() {
        std::fs::read_to_string(format!("/proc/{group}/comm"))
            .ok()?
            .trim_end()
            .to_owned()
    } else {
        words.join(" ")
    };
    Some(line.chars().take(MAX_FOREGROUND).collect())
}

/// What woke the event loop.
enum Event<'a> {
    Datagram(io::Result<usize>),
    Output(io::Result<usize>),
    Written(io::Result<usize>),
    Stop(&'a str),
    User1,
    Rekey(Option<Rekey>),
    Timer(io::Result<()>),
}

/// Reads from the PTY, or waits forever when there is nothing to read.
async fn read_pty(reader: Option<&mut OwnedReadPty>, buffer: &mut [u8]) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Writes pending input to the PTY, or waits forever when there is none.
async fn write_pty(writer: Option<&mut OwnedWritePty>, pending: &[u8]) -> io::Result<usize> {
    match writer {
        Some(writer) => writer.write(pending).await,
        None => std::future::pending().await,
    }
}

/// Reads `MOSH_SERVER_NETWORK_TMOUT`-style settings: a positive number of
/// seconds, or nothing. Bad values are reported and ignored.
pub fn timeout_from_env(name: &str, value: Option<OsString>) -> (Option<Duration>, Option<String>) {
    let Some(value) = value else {
        return (None, None);
    };
    let text = value.to_string_lossy();
    if text.is_empty() {
        return (None, None);
    }
    match text.trim().parse::<i64>() {
        Ok(0) => (None, None),
        Ok(seconds) if seconds < 0 => (None, Some(format!("{name} is negative, ignoring"))),
        Ok(seconds) => (Some(Duration::from_secs(seconds as u64)), None),
        Err(_) => (None, Some(format!("{name} not a valid integer, ignoring"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_from_the_environment() {
        let read = |value: &str| timeout_from_env("X_TMOUT", Some(OsString::from(value)));
        assert_eq!(read("30"), (Some(Duration::from_secs(30)), None));
        assert_eq!(read(""), (None, None));
        assert_eq!(read("0"), (None, None));
        assert_eq!(
            read("-5"),
            (None, Some("X_TMOUT is negative, ignoring".to_owned()))
        );
        assert_eq!(
            read("soon"),
            (
                None,
                Some("X_TMOUT not a valid integer, ignoring".to_owned())
            )
        );
        assert_eq!(timeout_from_env("X_TMOUT", None), (None, None));
    }
}
