//! The State Synchronization Protocol as a state machine that does no I/O.
//!
//! A [`Transport`] mirrors its local state to the peer and the peer's state
//! here. The caller feeds it datagrams with [`Transport::handle_datagram`],
//! asks it for datagrams to send with [`Transport::poll_transmit`], and sleeps
//! until [`Transport::poll_timeout`]. Time is passed in on every call.

mod receiver;
mod sender;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prost::Message;

use crate::cipher::{Handshake, RekeyLimits, Suite};
use crate::connection::{Connection, ReceiveError, Role};
use crate::crypto::CryptoError;
use crate::extensions::{Extension, ExtensionSet, Negotiation, Peer};
use crate::fragment::{
    Compressor, Decompressor, Effort, Fragment, FragmentAssembly, FragmentError, Fragmenter,
};
use crate::key::Base64Key;
use crate::messages::{Instruction, PROTOCOL_VERSION};
use crate::state::{State, StateError};

pub use receiver::RECEIVED_STATE_CAP;
use receiver::{Placement, Receiver};
use sender::Sender;
pub use sender::{
    ACK_DELAY, ACK_INTERVAL, ACTIVE_RETRY_TIMEOUT, HEARTBEAT_ANSWER_SLACK, SHUTDOWN_NUM,
    SHUTDOWN_RETRIES,
};

/// Coalescing delay after the first change on a server.
pub const SERVER_SEND_MINDELAY: Duration = Duration::from_millis(8);
/// Coalescing delay after the first change on a client.
pub const CLIENT_SEND_MINDELAY: Duration = Duration::from_millis(1);

/// How a transport is set up.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    role: Role,
    remote: Option<SocketAddr>,
    chaff_seed: Option<u64>,
    extensions: ExtensionSet,
    rekey: RekeyLimits,
}

impl TransportConfig {
    /// A server: the client's address is learnt from its first datagram.
    pub fn server() -> Self {
        Self {
            role: Role::Server,
            remote: None,
            chaff_seed: None,
            extensions: ExtensionSet::EMPTY,
            rekey: RekeyLimits::default(),
        }
    }

    /// A client talking to the server at `server`.
    pub fn client(server: SocketAddr) -> Self {
        Self {
            role: Role::Client,
            remote: Some(server),
            chaff_seed: None,
            extensions: ExtensionSet::EMPTY,
            rekey: RekeyLimits::default(),
        }
    }

    /// Seeds the chaff generator, for reproducible simulations; otherwise it
    /// is seeded from the OS random source.
    pub fn with_chaff_seed(mut self, seed: u64) -> Self {
        self.chaff_seed = Some(seed);
        self
    }

    /// The native extensions this end supports and negotiates with the peer
    /// (see [`crate::extensions`]). The default, the empty set, is stock
    /// mosh on the wire.
    pub fn with_extensions(mut self, extensions: ExtensionSet) -> Self {
        self.extensions = extensions;
        self
    }

    /// When the native cipher rekeys: after `datagrams` datagrams sent or
    /// received under one key epoch, or when an epoch is `age` old (a client
    /// starts the rekey; a server asks for one when its own sent count
    /// reaches `datagrams`). The defaults are
    /// [`REKEY_DATAGRAMS`](crate::cipher::REKEY_DATAGRAMS) and
    /// [`REKEY_AGE`](crate::cipher::REKEY_AGE); tests lower them.
    pub fn with_rekey_limits(mut self, datagrams: u64, age: Duration) -> Self {
        self.rekey = RekeyLimits { datagrams, age };
        self
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The sealed datagram.
    pub contents: Vec<u8>,
}

/// What an accepted datagram did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A fragment was kept; its instruction is not complete yet.
    Partial,
    /// The instruction named a state already held (a duplicate or replay);
    /// only its acknowledgement was used.
    Duplicate,
    /// The instruction's base state is no longer held, so it was dropped.
    UnknownBase,
    /// Too many states are held; the instruction was dropped for now.
    Quenched,
    /// A state older than the newest one arrived late and was filed.
    Earlier(u64),
    /// A new newest remote state.
    NewState(u64),
}

/// Why a datagram was dropped. None of these is fatal to the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Failed authentication, size or direction checks.
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    /// Fragment malformed, out of bounds or not decompressible.
    #[error(transparent)]
    Fragment(#[from] FragmentError),
    /// The assembled instruction is not a valid protobuf message.
    #[error("illegal counterparty input: instruction does not decode: {0}")]
    Decode(String),
    /// The peer speaks another protocol version.
    #[error("mosh protocol version mismatch (peer sent {0:?}, we speak {PROTOCOL_VERSION})")]
    VersionMismatch(Option<u32>),
    /// The peer allowed us to throw away the base of its own diff.
    #[error("illegal counterparty input: throwaway {throwaway} beyond base {old}")]
    ThrowawayBeyondBase {
        /// The instruction's base state.
        old: u64,
        /// The instruction's throwaway number.
        throwaway: u64,
    },
    /// The diff did not apply to its base state.
    #[error(transparent)]
    Apply(#[from] StateError),
}

/// Counters of what crossed the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Datagrams that authenticated.
    pub datagrams_accepted: u64,
    /// Datagrams dropped with an error.
    pub datagrams_rejected: u64,
}

/// One end of an SSP session: local state `L` sent, remote state `R` received.
pub struct Transport<L, R> {
    connection: Connection,
    sender: Sender<L>,
    receiver: Receiver<R>,
    delivered: R,
    fragmenter: Fragmenter,
    compressor: Compressor,
    assembly: FragmentAssembly,
    decompressor: Decompressor,
    outbox: VecDeque<Transmit>,
    seal_failure: Option<CryptoError>,
    stats: TransportStats,
    negotiation: Negotiation,
    handshake: Handshake,
}

impl<L: State, R: State> Transport<L, R> {
    /// A transport whose local and remote states start as `local` and
    /// `remote` (state number 0 on both sides).
    pub fn new(
        config: TransportConfig,
        key: &Base64Key,
        local: L,
        remote: R,
        now: Instant,
    ) -> Result<Self, CryptoError> {
        let chaff_seed = match config.chaff_seed {
            Some(seed) => seed,
            None => getrandom::u64().map_err(|e| CryptoError::RandomSource(e.to_string()))?,
        };
        let mindelay = match config.role {
            Role::Server => SERVER_SEND_MINDELAY,
            Role::Client => CLIENT_SEND_MINDELAY,
        };
        Ok(Self {
            connection: Connection::new(config.role, key, now, config.remote),
            sender: Sender::new(
                local,
                now,
                mindelay,
                config.role == Role::Server,
                chaff_seed,
            ),
            receiver: Receiver::new(remote.clone()),
            delivered: remote,
            fragmenter: Fragmenter::default(),
            compressor: Compressor::default(),
            assembly: FragmentAssembly::default(),
            decompressor: Decompressor::default(),
            outbox: VecDeque::new(),
            seal_failure: None,
            stats: TransportStats::default(),
            negotiation: Negotiation::new(config.role, config.extensions),
            handshake: Handshake::new(
                config.role,
                config.extensions.contains(Extension::NativeCipher),
                key,
                config.rekey,
            )
            .map_err(|e| CryptoError::RandomSource(e.to_string()))?,
        })
    }

    /// Takes one received datagram. Errors say why it was dropped; the
    /// session goes on either way.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Delivery, TransportError> {
        let result = self.receive(now, from, datagram);
        match result {
            Err(TransportError::Receive(_)) => self.stats.datagrams_rejected += 1,
            Err(_) => {
                self.stats.datagrams_accepted += 1;
                self.stats.datagrams_rejected += 1;
            }
            Ok(_) => self.stats.datagrams_accepted += 1,
        }
        result
    }

    fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Delivery, TransportError> {
        let received = self.connection.open(now, from, datagram)?;
        let fragment = Fragment::parse(&received.payload)?;
        let Some(compressed) = self.assembly.add(fragment)? else {
            return Ok(Delivery::Partial);
        };
        let encoded = self.decompressor.decompress(&compressed)?;
        let instruction = Instruction::decode(encoded.as_slice())
            .map_err(|e| TransportError::Decode(e.to_string()))?;
        self.handle_instruction(now, instruction)
    }

    fn handle_instruction(
        &mut self,
        now: Instant,
        mut instruction: Instruction,
    ) -> Result<Delivery, TransportError> {
        if instruction.protocol_version != Some(PROTOCOL_VERSION) {
            return Err(TransportError::VersionMismatch(
                instruction.protocol_version,
            ));
        }
        let ack_num = instruction.ack_num.unwrap_or(0);
        self.handshake.handle_instruction(
            &mut self.negotiation,
            self.connection.keyring_mut(),
            now,
            ack_num,
            instruction.extensions.take(),
        );
        self.sender.process_ack(ack_num);
        let new_num = instruction.new_num.unwrap_or(0);
        if self.receiver.holds(new_num) {
            return Ok(Delivery::Duplicate);
        }
        let old_num = instruction.old_num.unwrap_or(0);
        let throwaway = instruction.throwaway_num.unwrap_or(0);
        if throwaway > old_num {
            return Err(TransportError::ThrowawayBeyondBase {
                old: old_num,
                throwaway,
            });
        }
        let Some(base) = self.receiver.get(old_num) else {
            return Ok(Delivery::UnknownBase);
        };
        let mut state = base.clone();
        if !self.receiver.admit(now) {
            return Ok(Delivery::Quenched);
        }
        let diff = instruction.diff.unwrap_or_default();
        if !diff.is_empty() {
            state.apply(&diff)?;
        }
        self.receiver.throw_away_below(throwaway);
        match self.receiver.insert(new_num, state) {
            Placement::Earlier => Ok(Delivery::Earlier(new_num)),
            Placement::Newest => {
                self.sender.set_ack_num(new_num, now);
                if diff.is_empty() {
                    self.sender.heard_heartbeat(now);
                } else {
                    self.sender.set_data_ack();
                }
                Ok(Delivery::NewState(new_num))
            }
        }
    }

    /// The next datagram to send at `now`, if any. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.outbox.is_empty() {
            self.fill_outbox(now);
        }
        let transmit = self.outbox.pop_front()?;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += transmit.contents.len() as u64;
        Some(transmit)
    }

    fn fill_outbox(&mut self, now: Instant) {
        self.connection.expire_silent_client(now);
        if self.seal_failure.is_some() {
            return;
        }
        let Some(destination) = self.connection.remote() else {
            return;
        };
        let Some(mut instruction) = self.sender.tick(now, self.connection.rtt()) else {
            return;
        };
        instruction.extensions =
            self.handshake
                .outgoing(&self.negotiation, self.connection.keyring(), now);
        // History makes a scrollback peer's instructions large: level 1
        // deflates them several times faster. Everyone else gets stock's
        // bytes.
        let effort = if self.negotiation.enabled().contains(Extension::Scrollback) {
            Effort::Fast
        } else {
            Effort::Stock
        };
        let compressed = self
            .compressor
            .compress(&instruction.encode_to_vec(), effort);
        let fragments = self
            .fragmenter
            .fragment(&compressed, self.connection.max_fragment_body());
        for fragment in fragments {
            match self.connection.seal(now, &fragment.to_bytes()) {
                Ok(contents) => self.outbox.push_back(Transmit {
                    destination,
                    contents,
                }),
                Err(error) => {
                    self.seal_failure = Some(error);
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// When to call [`Transport::poll_transmit`] next; `None` means only an
    /// incoming datagram or a local change can make anything due.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if !self.outbox.is_empty() {
            return Some(now);
        }
        self.connection.expire_silent_client(now);
        self.connection.remote()?;
        if self.seal_failure.is_some() {
            return None;
        }
        self.sender.calculate_timers(now, self.connection.rtt());
        Some(self.sender.next_wakeup())
    }

    /// Replaces the local state; the change is sent on the next due tick.
    pub fn set_current_state(&mut self, state: L) {
        *self.sender.current_mut() = state;
    }

    /// The local state, for in-place changes.
    pub fn current_state_mut(&mut self) -> &mut L {
        self.sender.current_mut()
    }

    /// The local state.
    pub fn current_state(&self) -> &L {
        self.sender.current()
    }

    /// The newest local state the peer acknowledged (the initial state until
    /// it has acknowledged one): every diff sent is based on it or on a
    /// newer one.
    pub fn acknowledged_state(&self) -> &L {
        self.sender.acknowledged()
    }

    /// The newest remote state received.
    pub fn latest_remote_state(&self) -> &R {
        self.receiver.latest().1
    }

    /// Number of the newest remote state received.
    pub fn latest_remote_state_num(&self) -> u64 {
        self.receiver.latest().0
    }

    /// What the newest remote state adds to the one returned by the previous
    /// call (the initial state the first time), as a diff. Afterwards held
    /// remote states forget the prefix they all share, which keeps growing
    /// states such as the user stream small. A server consumes the user
    /// stream this way.
    pub fn take_remote_diff(&mut self) -> Vec<u8> {
        self.receiver.take_diff(&mut self.delivered)
    }

    /// The remote state numbered `num`, if still held.
    pub fn remote_state(&self, num: u64) -> Option<&R> {
        self.receiver.get(num)
    }

    /// How many remote states are held.
    pub fn remote_states_held(&self) -> usize {
        self.receiver.len()
    }

    /// Number of the newest local state sent.
    pub fn last_sent_state_num(&self) -> u64 {
        self.sender.last_sent_num()
    }

    /// Begins the shutdown handshake: from now on the local state is final.
    pub fn start_shutdown(&mut self, now: Instant) {
        self.sender.start_shutdown(now);
    }

    /// Whether this end has begun shutting down.
    pub fn shutdown_in_progress(&self) -> bool {
        self.sender.shutdown_in_progress()
    }

    /// Whether the peer acknowledged our shutdown: this end may exit.
    pub fn shutdown_acknowledged(&self) -> bool {
        self.sender.shutdown_acknowledged()
    }

    /// Whether our shutdown went unanswered too long (16 tries or 10 s).
    pub fn shutdown_timed_out(&self, now: Instant) -> bool {
        self.sender.shutdown_timed_out(now)
    }

    /// Whether the peer has begun shutting down.
    pub fn remote_initiated_shutdown(&self) -> bool {
        self.latest_remote_state_num() == SHUTDOWN_NUM
    }

    /// Whether we have acknowledged the peer's shutdown: this end may exit.
    pub fn counterparty_shutdown_ack_sent(&self) -> bool {
        self.sender.counterparty_shutdown_ack_sent()
    }

    /// What this end knows about the peer's native extensions; features ask
    /// `peer_extensions().enabled()` before using one.
    pub fn peer_extensions(&self) -> Peer {
        self.negotiation.peer()
    }

    /// The cipher suite sealing this end's datagrams now: AES-128-OCB until
    /// the native cipher's switch, AES-256-GCM after.
    pub fn cipher_suite(&self) -> Suite {
        self.connection.keyring().suite()
    }

    /// The key epoch sealing this end's datagrams: 0 for the bootstrap key,
    /// n for the native cipher's n-th key exchange.
    pub fn key_epoch(&self) -> u64 {
        self.connection.keyring().sending_epoch()
    }

    /// Where datagrams go, if known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.connection.remote()
    }

    /// When the last in-order authenticated datagram arrived.
    pub fn last_heard(&self) -> Option<Instant> {
        self.connection.last_heard()
    }

    /// When the newest local state the peer acknowledged was sent.
    pub fn last_round_trip_success(&self) -> Instant {
        self.sender.last_acked_send_time()
    }

    /// The smoothed round-trip time.
    pub fn srtt(&self) -> Duration {
        self.connection.rtt().srtt()
    }

    /// The retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.connection.rtt().rto()
    }

    /// The current frame interval.
    pub fn send_interval(&self) -> Duration {
        self.connection.rtt().send_interval()
    }

    /// Call when the network refused a datagram as too large.
    pub fn handle_message_too_large(&mut self) {
        self.connection.handle_message_too_large();
    }

    /// Set once sealing failed (the key's budget is spent): nothing more can
    /// be sent and the session must end.
    pub fn seal_failure(&self) -> Option<&CryptoError> {
        self.seal_failure.as_ref()
    }

    /// Traffic counters.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Compressed bytes held in partially assembled instructions.
    pub fn partial_bytes_held(&self) -> usize {
        self.assembly.held_bytes()
    }
}
