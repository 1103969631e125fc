//! One end of a mosh session for tests: a loopback UDP socket driven by a
//! `mosh_proto::Transport`, with a blocking loop that runs until a condition
//! holds or a deadline passes.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mosh_proto::{Base64Key, Delivery, State, Transport, TransportConfig, TransportError};

/// Longest the loop sleeps between two checks of the caller's condition.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Receive buffer; mosh never sends datagrams larger than this.
const RECEIVE_MTU: usize = 2048;

/// [`UdpPeer::run_until`] gave up: the condition did not hold in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTimeout {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub timeout: Duration,
    /// What each accepted datagram did so far.
    pub deliveries: Vec<Delivery>,
    /// Why datagrams were dropped so far.
    pub errors: Vec<TransportError>,
}

impl fmt::Display for RunTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}; deliveries {:?}, dropped datagrams {:?}",
            self.timeout, self.what, self.deliveries, self.errors
        )
    }
}

impl std::error::Error for RunTimeout {}

/// A UDP socket on 127.0.0.1 and the transport that speaks through it.
pub struct UdpPeer<L, R> {
    socket: UdpSocket,
    transport: Transport<L, R>,
    deliveries: Vec<Delivery>,
    errors: Vec<TransportError>,
}

impl<L: State, R: State> UdpPeer<L, R> {
    /// A client on an ephemeral loopback port, talking to `server`.
    pub fn client(server: SocketAddr, key: &Base64Key, local: L, remote: R) -> io::Result<Self> {
        Self::bind(TransportConfig::client(server), key, local, remote)
    }

    /// A client on `socket` (bound anywhere), talking to `server`.
    pub fn client_on(
        socket: UdpSocket,
        server: SocketAddr,
        key: &Base64Key,
        local: L,
        remote: R,
    ) -> io::Result<Self> {
        Self::with_socket(socket, TransportConfig::client(server), key, local, remote)
    }

    /// A server on an ephemeral loopback port, waiting for a client.
    pub fn server(key: &Base64Key, local: L, remote: R) -> io::Result<Self> {
        Self::bind(TransportConfig::server(), key, local, remote)
    }

    /// A peer on an ephemeral loopback port with a transport set up by
    /// `config` (a client's names its server).
    pub fn bind(config: TransportConfig, key: &Base64Key, local: L, remote: R) -> io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        Self::with_socket(socket, config, key, local, remote)
    }

    fn with_socket(
        socket: UdpSocket,
        config: TransportConfig,
        key: &Base64Key,
        local: L,
        remote: R,
    ) -> io::Result<Self> {
        let transport =
            Transport::new(config, key, local, remote, Instant::now()).map_err(io::Error::other)?;
        Ok(Self {
            socket,
            transport,
            deliveries: Vec::new(),
            errors: Vec::new(),
        })
    }

    /// The socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound UDP socket has an address")
    }

    /// The transport.
    pub fn transport(&self) -> &Transport<L, R> {
        &self.transport
    }

    /// The transport, to change the local state or start a shutdown.
    pub fn transport_mut(&mut self) -> &mut Transport<L, R> {
        &mut self.transport
    }

    /// What each accepted datagram did, in arrival order.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// Why datagrams were dropped, in arrival order. Against a compatible
    /// peer on loopback this stays empty.
    pub fn errors(&self) -> &[TransportError] {
        &self.errors
    }

    /// Runs the session (sending what the transport wants sent, feeding it
    /// what arrives, sleeping until its next timer) until `done` returns a
    /// value, which is returned. `done` is called at least every 50 ms. The
    /// error after `timeout` names `what` was awaited.
    ///
    /// # Panics
    ///
    /// If the socket fails.
    pub fn run_until<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&mut Transport<L, R>) -> Option<T>,
    ) -> Result<T, RunTimeout> {
        let deadline = Instant::now() + timeout;
        let mut buffer = [0u8; RECEIVE_MTU];
        loop {
            let now = Instant::now();
            while let Some(transmit) = self.transport.poll_transmit(now) {
                self.socket
                    .send_to(&transmit.contents, transmit.destination)
                    .unwrap_or_else(|e| panic!("send to {}: {e}", transmit.destination));
            }
            if let Some(value) = done(&mut self.transport) {
                return Ok(value);
            }
            if now >= deadline {
                return Err(RunTimeout {
                    what: what.to_owned(),
                    timeout,
                    deliveries: self.deliveries.clone(),
                    errors: self.errors.clone(),
                });
            }
            let wake = self
                .transport
                .poll_timeout(now)
                .map_or(deadline, |wake| wake.min(deadline))
                .min(now + CHECK_INTERVAL);
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.socket
                .set_read_timeout(Some(wait))
                .expect("a non-zero read timeout is accepted");
            match self.socket.recv_from(&mut buffer) {
                Ok((len, from)) => {
                    match self
                        .transport
                        .handle_datagram(Instant::now(), from, &buffer[..len])
                    {
                        Ok(delivery) => self.deliveries.push(delivery),
                        Err(error) => self.errors.push(error),
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("receive on {}: {e}", self.local_addr()),
            }
        }
    }
}
