//! One end of a session at the datagram level: sealing with increasing
//! sequence numbers (under the [`Keyring`]'s current key epoch), opening and
//! ordering what arrives, echoing timestamps for RTT measurement, and
//! tracking the peer's address (a server follows the newest authenticated
//! datagram, which is how clients roam).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cipher::Keyring;
use crate::crypto::{self, CryptoError, Direction, TAG_LEN};
use crate::key::Base64Key;
use crate::packet::{self, Packet};
use crate::rtt::RttEstimator;

/// Largest datagram sent to an IPv4 peer (1280 − 28).
pub const IPV4_MTU: usize = 1252;
/// Largest datagram sent to an IPv6 peer (1280 − 64).
pub const IPV6_MTU: usize = 1216;
/// Datagram size after the network refused a larger one.
pub const FALLBACK_MTU: usize = 500;
/// Bytes of each datagram spent on nonce, tag, timestamps and fragment header.
pub const DATAGRAM_OVERHEAD: usize =
    crypto::NONCE_TAIL_LEN + TAG_LEN + packet::HEADER_LEN + crate::fragment::HEADER_LEN;
/// A held timestamp older than this is not echoed.
const TIMESTAMP_ECHO_LIMIT: Duration = Duration::from_millis(1000);
/// A server stops sending to a client silent for this long.
pub const SERVER_ASSOCIATION_TIMEOUT: Duration = Duration::from_secs(40);

/// Which end of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Owns the terminal; receives from anywhere and follows the client.
    Server,
    /// Owns the keyboard; sends to a fixed server address.
    Client,
}

impl Role {
    /// Direction of datagrams this end sends.
    pub fn outgoing(self) -> Direction {
        match self {
            Role::Server => Direction::ToClient,
            Role::Client => Direction::ToServer,
        }
    }
}

/// Why an incoming datagram was dropped before reaching the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// Size or authentication failure.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Its clear nonce has this end's own direction bit: reflected back at
    /// us, or forged; refused before decryption, since neither is the
    /// peer's.
    #[error("datagram has our own direction bit (reflected)")]
    WrongDirection,
    /// Authenticated, but too short to carry timestamps.
    #[error(transparent)]
    TooShort(#[from] packet::TooShort),
}

/// An authenticated datagram's payload, with whether it was in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The fragment it carries.
    pub payload: Vec<u8>,
    /// False for a datagram older than one already seen (reordered or
    /// replayed); its payload is still usable because SSP is idempotent.
    pub in_order: bool,
    /// The key epoch that authenticated it (0: the bootstrap OCB key).
    pub epoch: u64,
}

/// Datagram-level state of one end of a session.
pub struct Connection {
    role: Role,
    keyring: Keyring,
    epoch: Instant,
    next_seq: u64,
    expected_seq: u64,
    held_timestamp: Option<(u16, Instant)>,
    rtt: RttEstimator,
    remote: Option<SocketAddr>,
    last_heard: Option<Instant>,
    message_too_large: bool,
}

impl Connection {
    /// A connection for `role` under `key`. A client knows its server's
    /// address from the start; a server learns its client's.
    pub fn new(role: Role, key: &Base64Key, now: Instant, remote: Option<SocketAddr>) -> Self {
        Self {
            role,
            keyring: Keyring::new(role, key, now),
            epoch: now,
            next_seq: 0,
            expected_seq: 0,
            held_timestamp: None,
            rtt: RttEstimator::default(),
            remote,
            last_heard: None,
            message_too_large: false,
        }
    }

    /// Seals `payload` into the next datagram, stamping the time and echoing
    /// the peer's last timestamp if it is fresh.
    pub fn seal(&mut self, now: Instant, payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let timestamp_reply = self
            .held_timestamp
            .take()
            .filter(|&(_, arrived)| now.saturating_duration_since(arrived) < TIMESTAMP_ECHO_LIMIT)
            .map(|(stamp, arrived)| {
                let held = now.saturating_duration_since(arrived).as_millis() as u16;
                packet::timestamp16(u64::from(stamp.wrapping_add(held)))
            });
        let plaintext = Packet {
            timestamp: Some(self.timestamp16(now)),
            timestamp_reply,
            payload,
        }
        .to_bytes();
        let datagram = self.keyring.seal(self.next_seq, &plaintext)?;
        self.next_seq += 1;
        Ok(datagram)
    }

    /// Authenticates a datagram from `from`, updates timing and (on a server)
    /// the peer address, and returns its payload. A datagram of the peer's
    /// under a newer key epoch completes a switch (see [`Keyring::confirm`]).
    /// One whose clear nonce claims this end's own direction is refused
    /// first, undecrypted: authentic or not, it is not the peer's.
    pub fn open(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Received, ReceiveError> {
        if crypto::claimed_direction(datagram) == Some(self.role.outgoing()) {
            return Err(ReceiveError::WrongDirection);
        }
        let (opened, key_epoch) = self.keyring.open(datagram)?;
        let packet = Packet::parse(&opened.plaintext)?;
        self.keyring.confirm(key_epoch);
        let in_order = opened.seq >= self.expected_seq;
        if in_order {
            self.expected_seq = opened.seq + 1;
            if let Some(stamp) = packet.timestamp {
                self.held_timestamp = Some((stamp, now));
            }
            if let Some(reply) = packet.timestamp_reply {
                let sample = self.timestamp16(now).wrapping_sub(reply);
                self.rtt.sample(sample);
            }
            self.last_heard = Some(now);
            if self.role == Role::Server {
                self.remote = Some(from);
            }
        }
        Ok(Received {
            payload: packet.payload.to_vec(),
            in_order,
            epoch: key_epoch,
        })
    }

    /// On a server, forgets a client silent for [`SERVER_ASSOCIATION_TIMEOUT`]
    /// so nothing more is sent until it speaks again.
    pub fn expire_silent_client(&mut self, now: Instant) {
        if self.role == Role::Server
            && self.last_heard.is_some_and(|heard| {
                now.saturating_duration_since(heard) > SERVER_ASSOCIATION_TIMEOUT
            })
        {
            self.remote = None;
        }
    }

    /// Call when sending failed because the datagram was too large: all
    /// later datagrams use the fallback size.
    pub fn handle_message_too_large(&mut self) {
        self.message_too_large = true;
    }

    fn timestamp16(&self, now: Instant) -> u16 {
        packet::timestamp16(now.saturating_duration_since(self.epoch).as_millis() as u64)
    }

    /// The key epochs this end accepts and seals with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The key epochs, for installing new ones.
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        &mut self.keyring
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where datagrams go, if known.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// When the last in-order authenticated datagram arrived.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// The round-trip estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Largest fragment body that fits a datagram.
    pub fn max_fragment_body(&self) -> usize {
        let mtu = match self.remote {
            Some(addr) if !self.message_too_large => mtu_for(addr),
            _ => FALLBACK_MTU,
        };
        mtu - DATAGRAM_OVERHEAD
    }

    /// Sequence number of the next datagram to be sent.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

fn mtu_for(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => IPV4_MTU,
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => IPV4_MTU,
        SocketAddr::V6(_) => IPV6_MTU,
    }
}
