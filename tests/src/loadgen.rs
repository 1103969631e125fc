//! A load generator: many real mosh client sessions driven from one
//! thread, by one tokio runtime whose main task owns every session's
//! `mosh_proto::Transport` (carrying `mosh_term`'s user stream out and its
//! complete terminal state back), with one small receive task per UDP
//! socket. No PTY, tmux or process per client.
//!
//! Sessions share client sockets (a few dozen per socket, told apart by
//! the server address a datagram comes from), so a thousand of them cost
//! a few dozen descriptors. Each session takes the port and key of a
//! `MOSH CONNECT` line (from `mosh-server new`, through the daemon or
//! standalone; or the listening address of an
//! [`ImpairmentProxy`](crate::impair::ImpairmentProxy) in front of one) and
//! then [`Behaviour::Quiet`] sends only the transport's heartbeats,
//! [`Behaviour::Typing`] types one key per interval and checks its echo,
//! [`LoadGen::vanish`] drops it without a shutdown and [`LoadGen::roam`]
//! moves it to a new source port.
//!
//! Typing is checked on the screen: the session types lines `#TOKEN\r`
//! (a shell comment; each `TOKEN` unique) at a shell prompt, one key at a
//! time, and watches the cursor row of the screen the server sends back.
//! A key counts as echoed once the row shows the line typed so far, in
//! order (the `\r` once the cursor has left the completed line); the time
//! from typing a key to that screen arriving is its echo latency. A screen
//! whose row shows anything else (keys reordered, dropped from the middle
//! or doubled) marks the line garbled; a key not echoed within the
//! patience counts as lost, and the line is given up (ended with `\r`). A
//! new line starts once a prompt is back (the cursor is past column 0 on
//! a row without `#`), so the program must be a shell whose prompt holds
//! no `#`: `/bin/sh` as an ordinary user, or with `PS1` set.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mosh_proto::{Base64Key, Delivery, ExtensionSet, Transport, TransportConfig};
use mosh_term::{Complete, Framebuffer, UserStream};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Largest datagram received; mosh sends at most about 1,400 bytes.
const RECEIVE_BUFFER: usize = 65_536;
/// Datagrams waiting between the receive tasks and the main task; beyond
/// this the receive tasks wait and the kernel's socket buffers fill.
const DATAGRAM_QUEUE: usize = 8_192;
/// Commands waiting for the main task.
const COMMAND_QUEUE: usize = 1_024;
/// Longest the main task leaves a session unvisited.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Datagrams handled before the main task looks at its timers again.
const DATAGRAM_BATCH: usize = 256;
/// Most sessions one generator drives.
pub const MAX_SESSIONS: usize = 4_096;
/// Most client sockets open at once (shared ones and roamed sessions' own).
const MAX_SOCKETS: usize = 2_048;

/// How a [`LoadGen`] is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the client sockets in this network namespace
    /// (`/run/netns/NAME`) instead of the caller's.
    pub netns: Option<PathBuf>,
    /// Sessions sharing one client socket (at least 1).
    pub sessions_per_socket: usize,
    /// The native extensions the clients offer; the empty set is a stock
    /// client on the wire.
    pub extensions: ExtensionSet,
    /// The clients' window size.
    pub width: u16,
    /// The clients' window height.
    pub height: u16,
    /// How long a typed key may go without its echo before it counts as
    /// lost.
    pub echo_patience: Duration,
}

impl Default for Options {
    /// 32 sessions a socket, a stock client's offer (no extensions),
    /// 80×24, 30 s patience.
    fn default() -> Self {
        Self {
            netns: None,
            sessions_per_socket: 32,
            extensions: ExtensionSet::EMPTY,
            width: 80,
            height: 24,
            echo_patience: Duration::from_secs(30),
        }
    }
}

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Types nothing: only the transport's heartbeats and acknowledgements.
    Quiet,
    /// Types one key every `interval` once a prompt shows, checking each
    /// one's echo.
    Typing {
        /// Time between two keys.
        interval: Duration,
    },
}

/// One session to drive.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Where the server (or a proxy in front of it) listens.
    pub server: SocketAddr,
    /// The session key from `MOSH CONNECT`.
    pub key: Base64Key,
    /// What it does first.
    pub behaviour: Behaviour,
}

/// A session of one [`LoadGen`], in the order they were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub usize);

/// A session's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// Where its server is.
    pub server: SocketAddr,
    /// Its client socket's address (the source the server sees).
    pub source: Option<SocketAddr>,
    /// From being added to the first screen from the server.
    pub connected_after: Option<Duration>,
    /// Since the last datagram that authenticated.
    pub last_heard: Option<Duration>,
    /// Keys typed.
    pub typed: u64,
    /// Keys seen echoed, in order.
    pub echoed: u64,
    /// Keys given up on: not echoed within the patience.
    pub lost: u64,
    /// Lines whose echo showed something other than what was typed.
    pub garbled_lines: u64,
    /// Lines typed and echoed completely.
    pub lines_done: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that authenticated.
    pub datagrams_accepted: u64,
    /// Datagrams dropped by the transport (failed authentication and the
    /// like).
    pub datagrams_rejected: u64,
    /// Whether it was dropped with [`LoadGen::vanish`].
    pub vanished: bool,
}

/// Counters over all sessions, and the echo latencies since the last
/// [`LoadGen::reset_latencies`].
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Sessions added.
    pub sessions: usize,
    /// Sessions that have had a screen from their server.
    pub connected: usize,
    /// Keys typed.
    pub typed: u64,
    /// Keys seen echoed.
    pub echoed: u64,
    /// Keys typed, not echoed yet and not given up on.
    pub pending: u64,
    /// Keys given up on.
    pub lost: u64,
    /// Garbled lines.
    pub garbled_lines: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that authenticated.
    pub datagrams_accepted: u64,
    /// Datagrams the transports dropped.
    pub datagrams_rejected: u64,
    /// Key-to-echo latencies.
    pub latency: Histogram,
}

/// A latency histogram: 32 buckets per power of two of microseconds (about
/// 3% wide), so its memory is fixed whatever the number of samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

/// Sub-buckets per power of two, as a shift.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values from 2^MAX_EXPONENT µs (about 12 days) up share the last bucket.
const MAX_EXPONENT: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_EXPONENT - SUB_BITS + 1) as u64 * SUB) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl Histogram {
    fn bucket(micros: u64) -> usize {
        if micros < SUB {
            return micros as usize;
        }
        let exponent = (63 - micros.leading_zeros()).min(MAX_EXPONENT);
        let mantissa = (micros.min((1 << (MAX_EXPONENT + 1)) - 1) >> (exponent - SUB_BITS)) - SUB;
        (SUB + u64::from(exponent - SUB_BITS) * SUB + mantissa) as usize
    }

    /// The middle of bucket `index`, in microseconds.
    fn middle(index: usize) -> f64 {
        let index = index as u64;
        if index < SUB {
            return index as f64;
        }
        let exponent = (index - SUB) / SUB + u64::from(SUB_BITS);
        let mantissa = (index - SUB) % SUB;
        let low = (SUB + mantissa) << (exponent - u64::from(SUB_BITS));
        let width = 1u64 << (exponent - u64::from(SUB_BITS));
        low as f64 + width as f64 / 2.0
    }

    /// Adds one sample.
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(micros)] += 1;
        self.total += 1;
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 to 1), within about 3%; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_secs_f64(Self::middle(index) / 1e6));
            }
        }
        None
    }
}

/// The generator failed to start or is gone.
#[derive(Debug, thiserror::Error)]
pub enum LoadGenError {
    /// Its thread or runtime could not start, or a socket failed.
    #[error("load generator: {0}")]
    Io(#[from] io::Error),
    /// Its thread has ended (a panic, or it was dropped).
    #[error("the load generator's thread is gone")]
    Gone,
    /// No session has this id.
    #[error("no session {0:?}")]
    NoSession(SessionId),
    /// [`MAX_SESSIONS`] sessions are driven already.
    #[error("at most {MAX_SESSIONS} sessions")]
    TooManySessions,
    /// A session's transport could not be made (no randomness).
    #[error("making a transport: {0}")]
    Transport(String),
    /// A wait ran out.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

enum Command {
    Add(
        SessionSpec,
        oneshot::Sender<Result<SessionId, LoadGenError>>,
    ),
    Behave(
        SessionId,
        Behaviour,
        oneshot::Sender<Result<(), LoadGenError>>,
    ),
    Vanish(SessionId, oneshot::Sender<Result<(), LoadGenError>>),
    Roam(SessionId, oneshot::Sender<Result<SocketAddr, LoadGenError>>),
    Status(oneshot::Sender<Vec<SessionStatus>>),
    Screen(
        SessionId,
        oneshot::Sender<Result<Vec<String>, LoadGenError>>,
    ),
    Totals(oneshot::Sender<Totals>),
    ResetLatencies(oneshot::Sender<()>),
}

/// A running load generator; dropping it stops its thread (sessions just
/// go silent, as [`LoadGen::vanish`]).
pub struct LoadGen {
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl LoadGen {
    /// Starts the generator's thread, with no sessions yet.
    pub fn start(options: Options) -> Result<Self, LoadGenError> {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (ready_send, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("loadgen".into())
            .spawn(move || {
                let setup = enter_netns(options.netns.as_ref()).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                });
                match setup {
                    Ok(runtime) => {
                        let _ = ready_send.send(Ok(()));
                        runtime.block_on(Driver::new(options).run(receiver));
                    }
                    Err(error) => {
                        let _ = ready_send.send(Err(error));
                    }
                }
            })?;
        ready.recv().map_err(|_| LoadGenError::Gone)??;
        Ok(Self {
            commands: Some(commands),
            thread: Some(thread),
        })
    }

    fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, LoadGenError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or(LoadGenError::Gone)?
            .blocking_send(command(reply))
            .map_err(|_| LoadGenError::Gone)?;
        answer.blocking_recv().map_err(|_| LoadGenError::Gone)
    }

    /// Adds a session; its first datagram leaves at once.
    pub fn add(&self, spec: SessionSpec) -> Result<SessionId, LoadGenError> {
        self.ask(|reply| Command::Add(spec, reply))?
    }

    /// Changes what session `id` does.
    pub fn set_behaviour(&self, id: SessionId, behaviour: Behaviour) -> Result<(), LoadGenError> {
        self.ask(|reply| Command::Behave(id, behaviour, reply))?
    }

    /// Changes what every session does, one session after another spread
    /// evenly over `spread` (zero: all at once). Typists started across one
    /// interval type out of step, as independent users do, instead of all
    /// in the same instant.
    pub fn set_behaviour_all(
        &self,
        behaviour: Behaviour,
        spread: Duration,
    ) -> Result<(), LoadGenError> {
        let sessions = self.statuses()?.len();
        let began = Instant::now();
        for n in 0..sessions {
            let at = began + spread.mul_f64(n as f64 / sessions as f64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            self.set_behaviour(SessionId(n), behaviour)?;
        }
        Ok(())
    }

    /// Drops session `id` without a shutdown: it sends and reads nothing
    /// more, as a client whose machine went away.
    pub fn vanish(&self, id: SessionId) -> Result<(), LoadGenError> {
        self.ask(|reply| Command::Vanish(id, reply))?
    }

    /// Moves session `id` to a new client socket of its own (a new source
    /// port), as a client changing networks; returns the new source.
    pub fn roam(&self, id: SessionId) -> Result<SocketAddr, LoadGenError> {
        self.ask(|reply| Command::Roam(id, reply))?
    }

    /// Every session's counters, by id.
    pub fn statuses(&self) -> Result<Vec<SessionStatus>, LoadGenError> {
        self.ask(Command::Status)
    }

    /// The text of session `id`'s screen as last received, a line a row
    /// (trailing blanks trimmed).
    pub fn screen(&self, id: SessionId) -> Result<Vec<String>, LoadGenError> {
        self.ask(|reply| Command::Screen(id, reply))?
    }

    /// Counters over all sessions.
    pub fn totals(&self) -> Result<Totals, LoadGenError> {
        self.ask(Command::Totals)
    }

    /// Forgets the echo latencies recorded so far.
    pub fn reset_latencies(&self) -> Result<(), LoadGenError> {
        self.ask(Command::ResetLatencies)
    }

    /// Polls [`LoadGen::totals`] until `done` holds, for up to `timeout`;
    /// the error names `what`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Totals) -> bool,
    ) -> Result<Totals, LoadGenError> {
        let deadline = Instant::now() + timeout;
        loop {
            let totals = self.totals()?;
            if done(&totals) {
                return Ok(totals);
            }
            if Instant::now() >= deadline {
                return Err(LoadGenError::Timeout(
                    timeout,
                    format!("{what} (now {})", summary(&totals)),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One line about `totals`, for messages.
pub fn summary(totals: &Totals) -> String {
    format!(
        "{} sessions, {} connected, {} keys typed, {} echoed, {} pending, {} lost, {} garbled lines",
        totals.sessions,
        totals.connected,
        totals.typed,
        totals.echoed,
        totals.pending,
        totals.lost,
        totals.garbled_lines
    )
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn enter_netns(netns: Option<&PathBuf>) -> io::Result<()> {
    let Some(path) = netns else {
        return Ok(());
    };
    let namespace = std::fs::File::open(path)?;
    nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// A received datagram: the socket it came in on, its source, its bytes.
type Datagram = (u64, SocketAddr, Vec<u8>);

struct ClientSocket {
    socket: Arc<UdpSocket>,
    users: usize,
    shared: bool,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for ClientSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Session {
    server: SocketAddr,
    transport: Transport<UserStream, Complete>,
    socket: Option<u64>,
    behaviour: Behaviour,
    added: Instant,
    connected_at: Option<Instant>,
    typist: Typist,
    generation: u64,
}

struct Driver {
    options: Options,
    sessions: Vec<Session>,
    sockets: HashMap<u64, ClientSocket>,
    next_socket: u64,
    /// The shared socket new sessions join while it has room.
    open_shared: Option<u64>,
    routes: HashMap<(u64, SocketAddr), usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    datagrams: (mpsc::Sender<Datagram>, mpsc::Receiver<Datagram>),
    latency: Histogram,
}

impl Driver {
    fn new(options: Options) -> Self {
        Self {
            options,
            sessions: Vec::new(),
            sockets: HashMap::new(),
            next_socket: 0,
            open_shared: None,
            routes: HashMap::new(),
            timers: BinaryHeap::new(),
            datagrams: mpsc::channel(DATAGRAM_QUEUE),
            latency: Histogram::default(),
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let now = Instant::now();
            self.run_timers(now);
            let wake = self
                .timers
                .peek()
                .map_or(now + MAX_SLEEP, |Reverse((at, _, _))| *at)
                .min(now + MAX_SLEEP);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                Some((socket, from, bytes)) = self.datagrams.1.recv() => {
                    self.datagram(socket, from, &bytes);
                    for _ in 0..DATAGRAM_BATCH {
                        match self.datagrams.1.try_recv() {
                            Ok((socket, from, bytes)) => self.datagram(socket, from, &bytes),
                            Err(_) => break,
                        }
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.sessions[index].generation == generation {
                self.service(index, now);
            }
        }
    }

    /// Types what is due, sends what the transport wants sent and sets the
    /// session's next timer.
    fn service(&mut self, index: usize, now: Instant) {
        let patience = self.options.echo_patience;
        let session = &mut self.sessions[index];
        let Some(socket_id) = session.socket else {
            return;
        };
        if let Behaviour::Typing { interval } = session.behaviour
            && session.connected_at.is_some()
        {
            let screen = session.transport.latest_remote_state().framebuffer();
            if let Some(key) = session.typist.next_key(now, interval, patience, screen) {
                session.transport.current_state_mut().push_bytes(&[key]);
            }
        }
        if let Some(socket) = self.sockets.get(&socket_id) {
            while let Some(transmit) = session.transport.poll_transmit(now) {
                if let Err(error) = socket
                    .socket
                    .try_send_to(&transmit.contents, transmit.destination)
                    && error.raw_os_error() == Some(libc::EMSGSIZE)
                {
                    session.transport.handle_message_too_large();
                }
            }
        }
        let mut wake = session
            .transport
            .poll_timeout(now)
            .unwrap_or(now + MAX_SLEEP)
            .min(now + MAX_SLEEP);
        if let Behaviour::Typing { interval } = session.behaviour
            && let Some(at) = session.typist.next_wake(now, interval, patience)
        {
            wake = wake.min(at);
        }
        session.generation += 1;
        let generation = session.generation;
        self.timers
            .push(Reverse((wake.max(now), index, generation)));
    }

    fn datagram(&mut self, socket: u64, from: SocketAddr, bytes: &[u8]) {
        let Some(&index) = self.routes.get(&(socket, from)) else {
            return;
        };
        let now = Instant::now();
        let session = &mut self.sessions[index];
        if let Ok(Delivery::NewState(_)) = session.transport.handle_datagram(now, from, bytes) {
            session.connected_at.get_or_insert(now);
            let screen = session.transport.latest_remote_state().framebuffer();
            session.typist.observe(screen, now, &mut self.latency);
        }
        self.service(index, now);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Add(spec, reply) => {
                let _ = reply.send(self.add(spec));
            }
            Command::Behave(id, behaviour, reply) => {
                let result = self.session_index(id).map(|index| {
                    self.sessions[index].behaviour = behaviour;
                    self.service(index, Instant::now());
                });
                let _ = reply.send(result);
            }
            Command::Vanish(id, reply) => {
                let result = self.session_index(id).map(|index| self.detach(index));
                let _ = reply.send(result);
            }
            Command::Roam(id, reply) => {
                let result = self.session_index(id).and_then(|index| self.roam(index));
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let now = Instant::now();
                let statuses = (0..self.sessions.len())
                    .map(|index| self.status(index, now))
                    .collect();
                let _ = reply.send(statuses);
            }
            Command::Screen(id, reply) => {
                let result = self.session_index(id).map(|index| {
                    screen_text(
                        self.sessions[index]
                            .transport
                            .latest_remote_state()
                            .framebuffer(),
                    )
                });
                let _ = reply.send(result);
            }
            Command::Totals(reply) => {
                let _ = reply.send(self.totals());
            }
            Command::ResetLatencies(reply) => {
                self.latency = Histogram::default();
                let _ = reply.send(());
            }
        }
    }

    fn session_index(&self, id: SessionId) -> Result<usize, LoadGenError> {
        (id.0 < self.sessions.len())
            .then_some(id.0)
            .ok_or(LoadGenError::NoSession(id))
    }

    fn add(&mut self, spec: SessionSpec) -> Result<SessionId, LoadGenError> {
        if self.sessions.len() >= MAX_SESSIONS {
            return Err(LoadGenError::TooManySessions);
        }
        let now = Instant::now();
        let options = &self.options;
        let mut input = UserStream::new();
        input.push_resize(i32::from(options.width), i32::from(options.height));
        let mut transport = Transport::new(
            TransportConfig::client(spec.server).with_extensions(options.extensions),
            &spec.key,
            UserStream::new(),
            Complete::new(usize::from(options.width), usize::from(options.height)),
            now,
        )
        .map_err(|e| LoadGenError::Transport(e.to_string()))?;
        transport.set_current_state(input);
        let socket = self.shared_socket()?;
        let index = self.sessions.len();
        self.sessions.push(Session {
            server: spec.server,
            transport,
            socket: Some(socket),
            behaviour: spec.behaviour,
            added: now,
            connected_at: None,
            typist: Typist::new(index),
            generation: 0,
        });
        self.routes.insert((socket, spec.server), index);
        self.service(index, now);
        Ok(SessionId(index))
    }

    /// A shared socket with room for one more session (which it counts).
    fn shared_socket(&mut self) -> Result<u64, LoadGenError> {
        if let Some(id) = self.open_shared
            && let Some(socket) = self.sockets.get_mut(&id)
            && socket.users < self.options.sessions_per_socket.max(1)
        {
            socket.users += 1;
            return Ok(id);
        }
        let id = self.open_socket(true)?;
        self.open_shared = Some(id);
        Ok(id)
    }

    /// Binds a new client socket with one user and starts its receive task.
    fn open_socket(&mut self, shared: bool) -> Result<u64, LoadGenError> {
        if self.sockets.len() >= MAX_SOCKETS {
            return Err(LoadGenError::Io(io::Error::other(format!(
                "at most {MAX_SOCKETS} client sockets"
            ))));
        }
        let std_socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let id = self.next_socket;
        self.next_socket += 1;
        let reader = tokio::spawn(receive(id, Arc::clone(&socket), self.datagrams.0.clone()));
        self.sockets.insert(
            id,
            ClientSocket {
                socket,
                users: 1,
                shared,
                reader,
            },
        );
        Ok(id)
    }

    /// Takes session `index` off its socket (closing the socket when it was
    /// the last user).
    fn detach(&mut self, index: usize) {
        let session = &mut self.sessions[index];
        let Some(socket) = session.socket.take() else {
            return;
        };
        session.generation += 1;
        self.routes.remove(&(socket, session.server));
        if let Some(entry) = self.sockets.get_mut(&socket) {
            entry.users -= 1;
            if entry.users == 0 && (!entry.shared || self.open_shared != Some(socket)) {
                self.sockets.remove(&socket);
            }
        }
    }

    fn roam(&mut self, index: usize) -> Result<SocketAddr, LoadGenError> {
        if self.sessions[index].socket.is_none() {
            return Err(LoadGenError::Io(io::Error::other(
                "the session has vanished",
            )));
        }
        let socket = self.open_socket(false)?;
        self.detach(index);
        let session = &mut self.sessions[index];
        session.socket = Some(socket);
        self.routes.insert((socket, session.server), index);
        self.service(index, Instant::now());
        Ok(self.sockets[&socket].socket.local_addr()?)
    }

    fn status(&self, index: usize, now: Instant) -> SessionStatus {
        let session = &self.sessions[index];
        let stats = session.transport.stats();
        let typist = &session.typist;
        SessionStatus {
            server: session.server,
            source: session
                .socket
                .and_then(|id| self.sockets.get(&id))
                .and_then(|socket| socket.socket.local_addr().ok()),
            connected_after: session.connected_at.map(|at| at - session.added),
            last_heard: session.transport.last_heard().map(|at| now - at),
            typed: typist.typed,
            echoed: typist.echoed,
            lost: typist.lost,
            garbled_lines: typist.garbled_lines,
            lines_done: typist.lines_done,
            datagrams_sent: stats.datagrams_sent,
            datagrams_accepted: stats.datagrams_accepted,
            datagrams_rejected: stats.datagrams_rejected,
            vanished: session.socket.is_none(),
        }
    }

    fn totals(&self) -> Totals {
        let now = Instant::now();
        let mut totals = Totals {
            sessions: self.sessions.len(),
            latency: self.latency.clone(),
            ..Totals::default()
        };
        for index in 0..self.sessions.len() {
            let status = self.status(index, now);
            totals.connected += usize::from(status.connected_after.is_some());
            totals.typed += status.typed;
            totals.echoed += status.echoed;
            totals.lost += status.lost;
            totals.garbled_lines += status.garbled_lines;
            totals.datagrams_sent += status.datagrams_sent;
            totals.datagrams_accepted += status.datagrams_accepted;
            totals.datagrams_rejected += status.datagrams_rejected;
        }
        totals.pending = totals.typed - totals.echoed - totals.lost;
        totals
    }
}

async fn receive(id: u64, socket: Arc<UdpSocket>, queue: mpsc::Sender<Datagram>) {
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, from)) => {
                if queue
                    .send((id, from, buffer[..len].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// A row's text, blank cells as spaces, trailing blanks trimmed.
fn row_text(screen: &Framebuffer, row: usize) -> String {
    let mut text: String = screen
        .row(row)
        .cells()
        .iter()
        .map(|cell| match cell.contents() {
            "" => " ",
            contents => contents,
        })
        .collect();
    text.truncate(text.trim_end().len());
    text
}

/// The whole screen as text, a line a row.
pub fn screen_text(screen: &Framebuffer) -> Vec<String> {
    (0..screen.height())
        .map(|row| row_text(screen, row))
        .collect()
}

/// What follows the last `#` of `text`, if it has one.
fn after_marker(text: &str) -> Option<&str> {
    text.rfind('#').map(|at| &text[at + 1..])
}

/// The line being typed: `#TOKEN\r`.
struct Line {
    text: Vec<u8>,
    /// When each typed key was typed.
    typed_at: Vec<Instant>,
    echoed: usize,
    garbled: bool,
}

impl Line {
    fn token(&self) -> &str {
        std::str::from_utf8(&self.text[1..self.text.len() - 1]).expect("tokens are ASCII")
    }

    /// How many of the line's keys `screen` shows echoed: `None` when it
    /// shows something else.
    fn shown(&self, screen: &Framebuffer) -> Option<usize> {
        let cursor = screen.ds.cursor_row.min(screen.height() - 1);
        let token = self.token();
        let on_cursor_row = row_text(screen, cursor);
        if let Some(segment) = after_marker(&on_cursor_row) {
            return (token.starts_with(segment) && segment.len() < self.typed_at.len())
                .then_some(1 + segment.len());
        }
        let above = cursor
            .checked_sub(1)
            .map(|row| row_text(screen, row))
            .unwrap_or_default();
        if after_marker(&above) == Some(token) && self.typed_at.len() == self.text.len() {
            return Some(self.text.len());
        }
        (self.echoed == 0).then_some(0)
    }
}

/// One session's typing and echo check.
struct Typist {
    label: String,
    seq: u64,
    line: Option<Line>,
    /// When the last key was typed.
    last_key: Option<Instant>,
    typed: u64,
    echoed: u64,
    lost: u64,
    garbled_lines: u64,
    lines_done: u64,
}

impl Typist {
    fn new(session: usize) -> Self {
        Self {
            label: format!("s{session:04}n"),
            seq: 0,
            line: None,
            last_key: None,
            typed: 0,
            echoed: 0,
            lost: 0,
            garbled_lines: 0,
            lines_done: 0,
        }
    }

    /// Whether `screen` shows a prompt waiting for a new line.
    fn at_prompt(screen: &Framebuffer) -> bool {
        let cursor = screen.ds.cursor_row.min(screen.height() - 1);
        screen.ds.cursor_col > 0 && !row_text(screen, cursor).contains('#')
    }

    /// The key to type now, if one is due; gives up on a line whose echo is
    /// overdue.
    fn next_key(
        &mut self,
        now: Instant,
        interval: Duration,
        patience: Duration,
        screen: &Framebuffer,
    ) -> Option<u8> {
        if let Some(line) = &self.line
            && line.echoed < line.typed_at.len()
            && now.duration_since(line.typed_at[line.echoed]) >= patience
        {
            return self.give_up();
        }
        if self.last_key.is_some_and(|at| now < at + interval) {
            return None;
        }
        let line = match &mut self.line {
            Some(line) => line,
            None if Self::at_prompt(screen) => {
                self.seq += 1;
                let text = format!("#{}{:06}\r", self.label, self.seq).into_bytes();
                self.line.insert(Line {
                    typed_at: Vec::with_capacity(text.len()),
                    text,
                    echoed: 0,
                    garbled: false,
                })
            }
            None => return None,
        };
        let key = *line.text.get(line.typed_at.len())?;
        line.typed_at.push(now);
        self.typed += 1;
        self.last_key = Some(now);
        Some(key)
    }

    /// Ends the current line: its unechoed keys are lost, and the shell gets
    /// a `\r` unless it had one.
    fn give_up(&mut self) -> Option<u8> {
        let line = self.line.take()?;
        self.lost += (line.typed_at.len() - line.echoed) as u64;
        if line.garbled {
            self.garbled_lines += 1;
        }
        (line.typed_at.len() < line.text.len()).then_some(b'\r')
    }

    /// When the next key is due or the oldest unechoed key's patience runs
    /// out, whichever comes first, if after `now`. A new line waits for
    /// a screen with a prompt, which comes with a datagram.
    fn next_wake(&self, now: Instant, interval: Duration, patience: Duration) -> Option<Instant> {
        let next_key = self.last_key.map(|at| at + interval).filter(|&at| at > now);
        let Some(line) = &self.line else {
            return next_key;
        };
        let overdue = line.typed_at.get(line.echoed).map(|&at| at + patience);
        let next_key = next_key.filter(|_| line.typed_at.len() < line.text.len());
        [overdue, next_key].into_iter().flatten().min()
    }

    /// Takes a new screen from the server: records the keys it shows
    /// echoed.
    fn observe(&mut self, screen: &Framebuffer, now: Instant, latency: &mut Histogram) {
        let Some(line) = &mut self.line else {
            return;
        };
        match line.shown(screen) {
            Some(shown) if shown >= line.echoed => {
                for &typed in &line.typed_at[line.echoed..shown] {
                    latency.record(now - typed);
                }
                self.echoed += (shown - line.echoed) as u64;
                line.echoed = shown;
                if shown == line.text.len() {
                    if line.garbled {
                        self.garbled_lines += 1;
                    }
                    self.lines_done += 1;
                    self.line = None;
                }
            }
            _ => line.garbled = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mosh_term::Emulator;

    #[test]
    fn the_histogram_finds_quantiles_within_its_bucket_width() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for micros in 1..=10_000u64 {
            histogram.record(Duration::from_micros(micros));
        }
        assert_eq!(histogram.count(), 10_000);
        for (q, exact) in [(0.5, 5_000.0), (0.99, 9_900.0), (1.0, 10_000.0)] {
            let got = histogram.quantile(q).unwrap().as_secs_f64() * 1e6;
            assert!(
                (got - exact).abs() / exact < 0.035,
                "q{q}: {got} vs {exact}"
            );
        }
        histogram.record(Duration::from_secs(100 * 86_400));
        assert!(histogram.quantile(1.0).unwrap() > Duration::from_secs(86_400));
        let mut merged = Histogram::default();
        merged.merge(&histogram);
        assert_eq!(merged, histogram);
    }

    /// Types every due key of the current line into `terminal` as a tty
    /// with echo would, `echo` deciding what each key shows.
    fn type_into(
        typist: &mut Typist,
        terminal: &mut Emulator,
        now: &mut Instant,
        echo: impl Fn(u8) -> Vec<u8>,
    ) -> Vec<u8> {
        let mut typed = Vec::new();
        let mut latency = Histogram::default();
        for _ in 0..64 {
            *now += Duration::from_millis(10);
            let Some(key) = typist.next_key(
                *now,
                Duration::from_millis(10),
                Duration::from_secs(5),
                terminal.framebuffer(),
            ) else {
                break;
            };
            typed.push(key);
            terminal.feed(&echo(key));
            typist.observe(terminal.framebuffer(), *now, &mut latency);
            if key == b'\r' {
                break;
            }
        }
        typed
    }

    fn tty_echo(key: u8) -> Vec<u8> {
        match key {
            b'\r' => b"\r\n$ ".to_vec(),
            key => vec![key],
        }
    }

    #[test]
    fn a_faithful_echo_counts_every_key_and_a_prompt_starts_the_next_line() {
        let mut terminal = Emulator::new(80, 24);
        let mut typist = Typist::new(7);
        let mut now = Instant::now();
        assert!(type_into(&mut typist, &mut terminal, &mut now, tty_echo).is_empty());
        terminal.feed(b"$ ");
        let first = type_into(&mut typist, &mut terminal, &mut now, tty_echo);
        assert_eq!(first, b"#s0007n000001\r");
        let second = type_into(&mut typist, &mut terminal, &mut now, tty_echo);
        assert_eq!(second, b"#s0007n000002\r");
        assert_eq!(typist.typed, 28);
        assert_eq!(typist.echoed, 28);
        assert_eq!(
            (typist.lines_done, typist.lost, typist.garbled_lines),
            (2, 0, 0)
        );
    }

    #[test]
    fn an_echo_that_arrives_in_one_screen_with_the_next_prompt_counts_the_whole_line() {
        let mut terminal = Emulator::new(80, 24);
        terminal.feed(b"$ ");
        let mut typist = Typist::new(1);
        let mut now = Instant::now();
        let typed = type_into(&mut typist, &mut terminal, &mut now, |_| Vec::new());
        assert_eq!(typed.len(), 14);
        let mut latency = Histogram::default();
        terminal.feed(b"#s0001n000001\r\n$ ");
        typist.observe(terminal.framebuffer(), now, &mut latency);
        assert_eq!((typist.echoed, typist.lines_done), (14, 1));
        assert_eq!(latency.count(), 14);
    }

    #[test]
    fn reordered_keys_garble_the_line_and_go_lost_after_the_patience() {
        let mut terminal = Emulator::new(80, 24);
        terminal.feed(b"$ ");
        let mut typist = Typist::new(2);
        let mut now = Instant::now();
        let mut latency = Histogram::default();
        for _ in 0..3 {
            now += Duration::from_millis(10);
            typist.next_key(
                now,
                Duration::ZERO,
                Duration::from_secs(5),
                terminal.framebuffer(),
            );
        }
        terminal.feed(b"#");
        typist.observe(terminal.framebuffer(), now, &mut latency);
        terminal.feed(b"0s");
        typist.observe(terminal.framebuffer(), now, &mut latency);
        assert_eq!(typist.echoed, 1, "only the # is in order");
        now += Duration::from_secs(6);
        let key = typist.next_key(
            now,
            Duration::ZERO,
            Duration::from_secs(5),
            terminal.framebuffer(),
        );
        assert_eq!(key, Some(b'\r'), "the line is ended");
        assert_eq!((typist.lost, typist.garbled_lines), (2, 1));
    }

    #[test]
    fn a_dropped_key_is_lost_not_echoed() {
        let mut terminal = Emulator::new(80, 24);
        terminal.feed(b"$ ");
        let mut typist = Typist::new(3);
        let mut now = Instant::now();
        let typed = type_into(&mut typist, &mut terminal, &mut now, |key| {
            if key == b'n' {
                Vec::new()
            } else {
                tty_echo(key)
            }
        });
        assert_eq!(typed.len(), 14);
        assert!(typist.echoed < 14);
        now += Duration::from_secs(6);
        typist.next_key(
            now,
            Duration::ZERO,
            Duration::from_secs(5),
            terminal.framebuffer(),
        );
        assert_eq!(typist.lines_done, 0);
        assert_eq!(typist.echoed + typist.lost, 14);
        assert_eq!(typist.garbled_lines, 1);
    }
}
