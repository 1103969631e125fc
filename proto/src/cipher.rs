//! The native cipher between our client and our server: AES-256-GCM under
//! traffic keys from an ephemeral X25519 exchange carried in the extension
//! negotiation, rekeyed as the session goes on, and the rules that switch
//! suites without a pause and without trusting any single datagram.
//!
//! Keys are numbered by *epoch*. Epoch 0 is mosh's AES-128-OCB under the
//! `MOSH CONNECT` key; epoch n ≥ 1 is AES-256-GCM under the keys of the n-th
//! X25519 exchange. A [`Keyring`] holds the epochs one end accepts (one, or
//! two while switching) and the one it seals with; a [`Handshake`] runs the
//! exchanges:
//! * Epoch 1: the client's extension offer carries its key share; the
//!   server's answer (under OCB) carries its own. The client seals with the
//!   new keys as soon as it has the answer; the server goes on sealing with
//!   OCB, repeating the answer, until it authenticates a datagram of the new
//!   epoch; each end refuses the old epoch once it has authenticated the new
//!   one from its peer.
//! * Epoch n + 1, once an end has only epoch n ≥ 1 left: the client starts it
//!   when its sent or received count under epoch n reaches the threshold,
//!   when epoch n reaches the age limit, or when the server asks (its own
//!   sent count did), and the exchange and switch go exactly as for epoch 1,
//!   inside instructions sealed under epoch n.
//!
//! Every datagram is tried against the accepted epochs, newest first. The
//! ephemeral secrets and the shared secret are wiped as soon as the keys are
//! derived; traffic keys when their epoch is dropped. The wire format is in
//! docs/protocol-extensions.md.

use std::fmt;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::connection::Role;
use crate::crypto::{CryptoError, Direction, Opened, RECEIVE_MTU, Session};
use crate::extensions::{Extension, Negotiation, Peer};
use crate::key::Base64Key;
use crate::messages;

/// Bytes of an X25519 public key (a key share on the wire).
pub const KEY_SHARE_LEN: usize = 32;
/// Bytes of an AES-256-GCM traffic key.
pub const TRAFFIC_KEY_LEN: usize = 32;
/// Datagrams sent or received under one epoch before the client rekeys.
pub const REKEY_DATAGRAMS: u64 = 1 << 32;
/// Age of an epoch at which the client rekeys.
pub const REKEY_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The fixed first part of the HKDF `info`.
pub const DERIVATION_LABEL: &[u8] = b"mosh-daemon aes-256-gcm+x25519 traffic keys v1";

/// The cipher suite sealing an end's datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// mosh's AES-128-OCB3 under the `MOSH CONNECT` key.
    Aes128Ocb,
    /// The native suite: AES-256-GCM under X25519-derived keys.
    Aes256GcmX25519,
}

impl Suite {
    /// The suite of key epoch `epoch`.
    pub const fn of_epoch(epoch: u64) -> Suite {
        if epoch == 0 {
            Suite::Aes128Ocb
        } else {
            Suite::Aes256GcmX25519
        }
    }

    /// The name shown to people (`moshctl list`, `-v` logs).
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Aes128Ocb => "aes-128-ocb",
            Suite::Aes256GcmX25519 => "aes-256-gcm+x25519",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key exchange produced no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyExchangeError {
    /// The peer's field carried no key share.
    #[error("the peer sent no key share")]
    Missing,
    /// The key share is not 32 bytes.
    #[error("key share of {0} bytes (an X25519 public key has 32)")]
    Length(usize),
    /// The key share is a low-order point: the shared secret is all zero.
    #[error("key share is a low-order point (all-zero shared secret)")]
    LowOrder,
    /// The operating system's random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// The traffic keys of one epoch, one per direction; wiped when dropped.
pub struct TrafficKeys {
    to_server: Zeroizing<[u8; TRAFFIC_KEY_LEN]>,
    to_client: Zeroizing<[u8; TRAFFIC_KEY_LEN]>,
}

impl TrafficKeys {
    /// The key sealing datagrams travelling in `direction`.
    pub fn for_direction(&self, direction: Direction) -> &[u8; TRAFFIC_KEY_LEN] {
        match direction {
            Direction::ToServer => &self.to_server,
            Direction::ToClient => &self.to_client,
        }
    }
}

impl fmt::Debug for TrafficKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrafficKeys(<secret>)")
    }
}

/// HKDF-SHA256 with the bootstrap key as salt and the X25519 shared secret as
/// input key material; `info` is [`DERIVATION_LABEL`] ‖ BE64(`epoch`) ‖ the
/// client's public key ‖ the server's. The 64 bytes of output are the
/// client-to-server key, then the server-to-client key.
pub fn derive_traffic_keys(
    bootstrap: &Base64Key,
    epoch: u64,
    client_public: &[u8; KEY_SHARE_LEN],
    server_public: &[u8; KEY_SHARE_LEN],
    shared_secret: &[u8; 32],
) -> TrafficKeys {
    let hkdf = Hkdf::<Sha256>::new(Some(bootstrap.bytes()), shared_secret);
    let mut info = Vec::with_capacity(DERIVATION_LABEL.len() + 8 + 2 * KEY_SHARE_LEN);
    info.extend_from_slice(DERIVATION_LABEL);
    info.extend_from_slice(&epoch.to_be_bytes());
    info.extend_from_slice(client_public);
    info.extend_from_slice(server_public);
    let mut output = Zeroizing::new([0u8; 2 * TRAFFIC_KEY_LEN]);
    hkdf.expand(&info, output.as_mut_slice())
        .expect("64 bytes is within HKDF-SHA256's output limit");
    let mut to_server = Zeroizing::new([0u8; TRAFFIC_KEY_LEN]);
    let mut to_client = Zeroizing::new([0u8; TRAFFIC_KEY_LEN]);
    to_server.copy_from_slice(&output[..TRAFFIC_KEY_LEN]);
    to_client.copy_from_slice(&output[TRAFFIC_KEY_LEN..]);
    TrafficKeys {
        to_server,
        to_client,
    }
}

/// One end's ephemeral X25519 key pair for one exchange; the secret is wiped
/// when the share is used or dropped.
pub struct KeyShare {
    secret: StaticSecret,
    public: [u8; KEY_SHARE_LEN],
}

impl KeyShare {
    /// A fresh key pair from the OS random source.
    pub fn random() -> Result<KeyShare, KeyExchangeError> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut_slice())
            .map_err(|e| KeyExchangeError::Random(e.to_string()))?;
        Ok(KeyShare::from_secret(*secret))
    }

    /// The key pair of a given secret scalar (known-answer tests use this;
    /// sessions use [`KeyShare::random`]).
    pub fn from_secret(secret: [u8; 32]) -> KeyShare {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        KeyShare { secret, public }
    }

    /// The public key sent to the peer.
    pub fn public(&self) -> &[u8; KEY_SHARE_LEN] {
        &self.public
    }

    /// Agrees with the peer's key share and derives epoch `epoch`'s traffic
    /// keys; `role` says which end this share belongs to. The secret and the
    /// shared secret are wiped before this returns.
    pub fn agree(
        self,
        peer_share: Option<&[u8]>,
        role: Role,
        epoch: u64,
        bootstrap: &Base64Key,
    ) -> Result<TrafficKeys, KeyExchangeError> {
        let peer_share = peer_share.ok_or(KeyExchangeError::Missing)?;
        let peer: [u8; KEY_SHARE_LEN] = peer_share
            .try_into()
            .map_err(|_| KeyExchangeError::Length(peer_share.len()))?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer));
        if !shared.was_contributory() {
            return Err(KeyExchangeError::LowOrder);
        }
        let (client, server) = match role {
            Role::Client => (&self.public, &peer),
            Role::Server => (&peer, &self.public),
        };
        Ok(derive_traffic_keys(
            bootstrap,
            epoch,
            client,
            server,
            shared.as_bytes(),
        ))
    }
}

/// The keys of one epoch at one end.
struct EpochKeys {
    epoch: u64,
    seal: Session,
    open: Session,
    installed: Instant,
    sealed: u64,
    opened: u64,
}

/// The key epochs one end accepts and the one it seals with.
pub struct Keyring {
    outgoing: Direction,
    /// Ascending by epoch; one entry, or two while switching.
    epochs: Vec<EpochKeys>,
    sending: u64,
    /// Where datagrams are decrypted, kept so that refusing one allocates
    /// nothing; wiped once an opened datagram's plaintext is copied out.
    scratch: Vec<u8>,
}

impl Keyring {
    /// An end of `role` with only epoch 0, the bootstrap key.
    pub fn new(role: Role, bootstrap: &Base64Key, now: Instant) -> Keyring {
        Keyring {
            outgoing: role.outgoing(),
            epochs: vec![EpochKeys {
                epoch: 0,
                seal: Session::new(bootstrap),
                open: Session::new(bootstrap),
                installed: now,
                sealed: 0,
                opened: 0,
            }],
            sending: 0,
            scratch: Vec::with_capacity(RECEIVE_MTU),
        }
    }

    /// Seals the datagram numbered `seq` with the sending epoch's key.
    pub fn seal(&mut self, seq: u64, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let outgoing = self.outgoing;
        let keys = self.current_mut();
        let datagram = keys.seal.seal(outgoing, seq, plaintext)?;
        keys.sealed += 1;
        Ok(datagram)
    }

    /// Authenticates a datagram under the accepted epochs, newest first, and
    /// returns it with the epoch that opened it. Nothing changes until the
    /// caller, having checked the datagram is the peer's, calls
    /// [`Keyring::confirm`].
    pub fn open(&mut self, datagram: &[u8]) -> Result<(Opened, u64), CryptoError> {
        let mut failure = CryptoError::Integrity;
        for keys in self.epochs.iter_mut().rev() {
            match keys.open.open_into(datagram, &mut self.scratch) {
                Ok((direction, seq)) => {
                    keys.opened += 1;
                    let opened = Opened {
                        direction,
                        seq,
                        plaintext: self.scratch.clone(),
                    };
                    // The copy went to the caller; the kept buffer holds no
                    // plaintext until the next datagram.
                    self.scratch.zeroize();
                    return Ok((opened, keys.epoch));
                }
                Err(CryptoError::Integrity) => {}
                Err(error) => failure = error,
            }
        }
        Err(failure)
    }

    /// The peer proved it holds epoch `epoch` (a datagram of it from the
    /// peer authenticated): seal with it from now on, if not already, and
    /// refuse every older epoch.
    pub fn confirm(&mut self, epoch: u64) {
        if self.epochs.iter().any(|keys| keys.epoch == epoch) {
            self.sending = self.sending.max(epoch);
            self.epochs.retain(|keys| keys.epoch >= epoch);
        }
    }

    /// Accepts epoch `epoch` (newer than every held one) under `keys`.
    pub fn install(&mut self, epoch: u64, keys: &TrafficKeys, now: Instant) {
        if epoch <= self.newest_epoch() {
            return;
        }
        let incoming = match self.outgoing {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        };
        self.epochs.push(EpochKeys {
            epoch,
            seal: Session::aes256_gcm(keys.for_direction(self.outgoing)),
            open: Session::aes256_gcm(keys.for_direction(incoming)),
            installed: now,
            sealed: 0,
            opened: 0,
        });
    }

    /// Seals with the newest epoch from now on (the client's side of a
    /// switch: it has the answer, so the server holds the keys).
    pub fn send_with_newest(&mut self) {
        self.sending = self.newest_epoch();
    }

    /// The epoch sealing outgoing datagrams.
    pub fn sending_epoch(&self) -> u64 {
        self.sending
    }

    /// The newest epoch accepted.
    pub fn newest_epoch(&self) -> u64 {
        self.epochs.last().map_or(0, |keys| keys.epoch)
    }

    /// Whether only one epoch is accepted (no switch under way).
    pub fn is_settled(&self) -> bool {
        self.epochs.len() == 1
    }

    /// The suite sealing outgoing datagrams.
    pub fn suite(&self) -> Suite {
        Suite::of_epoch(self.sending)
    }

    /// Datagrams sealed under the sending epoch.
    pub fn sealed_under_current(&self) -> u64 {
        self.current().sealed
    }

    /// Whether the sending epoch reached a rekey threshold: `datagrams`
    /// sealed or opened under it, or `age` since it was installed.
    pub fn due_for_rekey(&self, now: Instant, datagrams: u64, age: Duration) -> bool {
        let keys = self.current();
        keys.sealed >= datagrams
            || keys.opened >= datagrams
            || now.saturating_duration_since(keys.installed) >= age
    }

    fn current(&self) -> &EpochKeys {
        self.epochs
            .iter()
            .find(|keys| keys.epoch == self.sending)
            .expect("the sending epoch is always held")
    }

    fn current_mut(&mut self) -> &mut EpochKeys {
        let sending = self.sending;
        self.epochs
            .iter_mut()
            .find(|keys| keys.epoch == sending)
            .expect("the sending epoch is always held")
    }
}

/// The exchange under way at one end, if any.
enum Pending {
    None,
    /// A client's key share for `epoch`, sent until the server answers.
    Offer {
        epoch: u64,
        share: KeyShare,
    },
    /// A server's public key for `epoch`, sent until the client's first
    /// datagram of that epoch authenticates.
    Answer {
        epoch: u64,
        public: [u8; KEY_SHARE_LEN],
    },
}

/// When the client rekeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyLimits {
    /// Datagrams sent or received under one epoch.
    pub datagrams: u64,
    /// Age of an epoch.
    pub age: Duration,
}

impl Default for RekeyLimits {
    fn default() -> RekeyLimits {
        RekeyLimits {
            datagrams: REKEY_DATAGRAMS,
            age: REKEY_AGE,
        }
    }
}

/// One end's key exchanges: what to attach to outgoing instructions and what
/// to do with the peer's (see the module documentation).
pub struct Handshake {
    role: Role,
    enabled: bool,
    bootstrap: Base64Key,
    limits: RekeyLimits,
    pending: Pending,
    rekey_requested: bool,
}

impl Handshake {
    /// The exchanges of an end of `role` whose bootstrap key is `bootstrap`;
    /// `enabled` is whether this end supports the native cipher. An enabled
    /// client makes its first key share here.
    pub fn new(
        role: Role,
        enabled: bool,
        bootstrap: &Base64Key,
        limits: RekeyLimits,
    ) -> Result<Handshake, KeyExchangeError> {
        let pending = if enabled && role == Role::Client {
            Pending::Offer {
                epoch: 1,
                share: KeyShare::random()?,
            }
        } else {
            Pending::None
        };
        Ok(Handshake {
            role,
            enabled,
            bootstrap: bootstrap.clone(),
            limits,
            pending,
            rekey_requested: false,
        })
    }

    /// The negotiation field for the next instruction: `negotiation`'s own,
    /// with this end's key share or rekey request added. May start a rekey.
    pub fn outgoing(
        &mut self,
        negotiation: &Negotiation,
        keyring: &Keyring,
        now: Instant,
    ) -> Option<messages::Extensions> {
        self.forget_finished_answer(keyring);
        let mut field = negotiation.outgoing();
        if self.role == Role::Client
            && matches!(self.pending, Pending::None)
            && keyring.sending_epoch() > 0
            && keyring.is_settled()
            && (self.rekey_requested
                || keyring.due_for_rekey(now, self.limits.datagrams, self.limits.age))
            && let Ok(share) = KeyShare::random()
        {
            self.pending = Pending::Offer {
                epoch: keyring.sending_epoch() + 1,
                share,
            };
            self.rekey_requested = false;
        }
        match &self.pending {
            Pending::Offer { epoch: 1, share } => {
                if let Some(offer) = field.as_mut() {
                    offer.key_share = Some(share.public().to_vec());
                }
            }
            Pending::Offer { epoch, share } => {
                let rekey = field.get_or_insert_with(Default::default);
                rekey.key_share = Some(share.public().to_vec());
                rekey.key_epoch = Some(*epoch);
            }
            Pending::Answer { epoch: 1, public } => {
                field = field
                    .or_else(|| negotiation.answer())
                    .map(|answer| messages::Extensions {
                        key_share: Some(public.to_vec()),
                        ..answer
                    });
            }
            Pending::Answer { epoch, public } => {
                let rekey = field.get_or_insert_with(Default::default);
                rekey.key_share = Some(public.to_vec());
                rekey.key_epoch = Some(*epoch);
            }
            Pending::None => {
                if self.role == Role::Server
                    && keyring.sending_epoch() > 0
                    && keyring.is_settled()
                    && keyring.sealed_under_current() >= self.limits.datagrams
                {
                    field.get_or_insert_with(Default::default).rekey_request = Some(true);
                }
            }
        }
        field
    }

    /// Takes the negotiation field of an authenticated instruction, feeding
    /// `negotiation` (with the cipher struck from an offer or answer whose
    /// key share is unusable) and installing keys in `keyring`.
    pub fn handle_instruction(
        &mut self,
        negotiation: &mut Negotiation,
        keyring: &mut Keyring,
        now: Instant,
        ack_num: u64,
        field: Option<messages::Extensions>,
    ) {
        self.forget_finished_answer(keyring);
        if negotiation.peer() == Peer::Undecided {
            self.handle_first(negotiation, keyring, now, ack_num, field);
        } else if let Some(field) = field {
            negotiation.handle_instruction(ack_num, Some(&field));
            if keyring.sending_epoch() > 0 && keyring.is_settled() {
                self.handle_rekey(keyring, now, &field);
            }
        } else {
            negotiation.handle_instruction(ack_num, None);
        }
    }

    /// The exchange of epoch 1, decided with the negotiation.
    fn handle_first(
        &mut self,
        negotiation: &mut Negotiation,
        keyring: &mut Keyring,
        now: Instant,
        ack_num: u64,
        mut field: Option<messages::Extensions>,
    ) {
        let cipher_bit = Extension::NativeCipher.bit();
        let mut first = None;
        if let Some(f) = field.as_mut()
            && self.enabled
            && f.supported.is_some_and(|bits| bits & cipher_bit != 0)
        {
            let agreed = match (
                self.role,
                std::mem::replace(&mut self.pending, Pending::None),
            ) {
                (Role::Server, _) => KeyShare::random().and_then(|share| {
                    let public = *share.public();
                    share
                        .agree(f.key_share.as_deref(), Role::Server, 1, &self.bootstrap)
                        .map(|keys| (keys, Some(public)))
                }),
                (Role::Client, Pending::Offer { epoch: 1, share }) => share
                    .agree(f.key_share.as_deref(), Role::Client, 1, &self.bootstrap)
                    .map(|keys| (keys, None)),
                (Role::Client, _) => Err(KeyExchangeError::Missing),
            };
            match agreed {
                Ok(keys) => first = Some(keys),
                Err(_) => f.supported = f.supported.map(|bits| bits & !cipher_bit),
            }
        }
        negotiation.handle_instruction(ack_num, field.as_ref());
        match negotiation.peer() {
            Peer::Undecided => {}
            Peer::Native(set) if set.contains(Extension::NativeCipher) => {
                let (keys, server_public) = first.expect("the cipher stays only with keys");
                keyring.install(1, &keys, now);
                self.pending = match server_public {
                    Some(public) => Pending::Answer { epoch: 1, public },
                    None => {
                        keyring.send_with_newest();
                        Pending::None
                    }
                };
            }
            Peer::Native(_) | Peer::Stock => self.pending = Pending::None,
        }
    }

    /// A rekey field from a peer that already proved the current epoch.
    fn handle_rekey(&mut self, keyring: &mut Keyring, now: Instant, field: &messages::Extensions) {
        let next = keyring.sending_epoch() + 1;
        let epoch = field.key_epoch.unwrap_or(1);
        match self.role {
            Role::Server => {
                if matches!(self.pending, Pending::None)
                    && epoch == next
                    && let Ok(share) = KeyShare::random()
                {
                    let public = *share.public();
                    if let Ok(keys) = share.agree(
                        field.key_share.as_deref(),
                        Role::Server,
                        next,
                        &self.bootstrap,
                    ) {
                        keyring.install(next, &keys, now);
                        self.pending = Pending::Answer {
                            epoch: next,
                            public,
                        };
                    }
                }
            }
            Role::Client => {
                if field.rekey_request == Some(true) {
                    self.rekey_requested = true;
                }
                if matches!(self.pending, Pending::Offer { epoch: offered, .. } if offered == next && epoch == next)
                    && field.key_share.is_some()
                    && let Pending::Offer { share, .. } =
                        std::mem::replace(&mut self.pending, Pending::None)
                    && let Ok(keys) = share.agree(
                        field.key_share.as_deref(),
                        Role::Client,
                        next,
                        &self.bootstrap,
                    )
                {
                    keyring.install(next, &keys, now);
                    keyring.send_with_newest();
                    self.rekey_requested = false;
                }
            }
        }
    }

    /// A server stops answering once the client's datagrams of the answered
    /// epoch authenticate.
    fn forget_finished_answer(&mut self, keyring: &Keyring) {
        if let Pending::Answer { epoch, .. } = self.pending
            && keyring.sending_epoch() >= epoch
        {
            self.pending = Pending::None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::ExtensionSet;

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        (0..clean.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex32(text: &str) -> [u8; 32] {
        hex(text).try_into().unwrap()
    }

    fn bootstrap() -> Base64Key {
        Base64Key::from_bytes(core::array::from_fn(|i| i as u8))
    }

    /// The RFC 7748 section 6.1 key pairs: Alice is the client, Bob the server.
    fn alice() -> KeyShare {
        KeyShare::from_secret(hex32(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ))
    }

    fn bob() -> KeyShare {
        KeyShare::from_secret(hex32(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ))
    }

    /// Known answers from proto/tests/vectors/native_cipher.py.
    #[test]
    fn derivation_known_answers() {
        assert_eq!(
            alice().public(),
            &hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let bob_public = *bob().public();
        assert_eq!(
            bob_public,
            hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let expected = [
            (
                1,
                "59251ea91593074cacbb17d1d384abe5f383d5396697cb55416668d4b2ff7924",
                "d4e06073fcdc9213b8cf0541a347a6360a4d059009a21bcb111e9c11c9187fbc",
            ),
            (
                2,
                "a4d21dcd9df471f45af24a3208d8e75cfa3762cd9473fd7d90ab1e8200d85795",
                "6216b994555cc1bdae1782fab86dd1a88a77eae3cc06791771a4d31aa0a21324",
            ),
        ];
        for (epoch, to_server, to_client) in expected {
            let client = alice()
                .agree(Some(&bob_public), Role::Client, epoch, &bootstrap())
                .unwrap();
            let server = bob()
                .agree(Some(alice().public()), Role::Server, epoch, &bootstrap())
                .unwrap();
            for keys in [&client, &server] {
                assert_eq!(keys.for_direction(Direction::ToServer), &hex32(to_server));
                assert_eq!(keys.for_direction(Direction::ToClient), &hex32(to_client));
            }
        }
    }

    #[test]
    fn unusable_key_shares_are_refused() {
        let low_order = [
            [0u8; 32],
            hex32("0100000000000000000000000000000000000000000000000000000000000000"),
            hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ];
        for point in low_order {
            assert_eq!(
                alice()
                    .agree(Some(&point), Role::Client, 1, &bootstrap())
                    .unwrap_err(),
                KeyExchangeError::LowOrder
            );
        }
        assert_eq!(
            alice()
                .agree(None, Role::Client, 1, &bootstrap())
                .unwrap_err(),
            KeyExchangeError::Missing
        );
        assert_eq!(
            alice()
                .agree(Some(&[9; 31]), Role::Client, 1, &bootstrap())
                .unwrap_err(),
            KeyExchangeError::Length(31)
        );
    }

    #[test]
    fn fresh_shares_differ_and_agree() {
        let (a, b) = (KeyShare::random().unwrap(), KeyShare::random().unwrap());
        assert_ne!(a.public(), b.public());
        let (a_public, b_public) = (*a.public(), *b.public());
        let client = a
            .agree(Some(&b_public), Role::Client, 1, &bootstrap())
            .unwrap();
        let server = b
            .agree(Some(&a_public), Role::Server, 1, &bootstrap())
            .unwrap();
        for direction in [Direction::ToServer, Direction::ToClient] {
            assert_eq!(
                client.for_direction(direction),
                server.for_direction(direction)
            );
        }
        assert_ne!(
            client.for_direction(Direction::ToServer),
            client.for_direction(Direction::ToClient)
        );
        assert_eq!(format!("{client:?}"), "TrafficKeys(<secret>)");
    }

    fn keys_for_epoch_1() -> (TrafficKeys, TrafficKeys) {
        let bob_public = *bob().public();
        (
            alice()
                .agree(Some(&bob_public), Role::Client, 1, &bootstrap())
                .unwrap(),
            bob()
                .agree(Some(alice().public()), Role::Server, 1, &bootstrap())
                .unwrap(),
        )
    }

    #[test]
    fn each_end_accepts_both_epochs_until_the_peer_proves_the_new_one() {
        let now = Instant::now();
        let mut client = Keyring::new(Role::Client, &bootstrap(), now);
        let mut server = Keyring::new(Role::Server, &bootstrap(), now);
        let (client_keys, server_keys) = keys_for_epoch_1();
        let ocb_from_client = client.seal(0, b"offer").unwrap();
        server.install(1, &server_keys, now);
        assert_eq!(server.suite(), Suite::Aes128Ocb, "the server waits");
        assert_eq!(server.open(&ocb_from_client).unwrap().1, 0);
        let ocb_from_server = server.seal(0, b"answer").unwrap();

        client.install(1, &client_keys, now);
        client.send_with_newest();
        assert_eq!(client.suite(), Suite::Aes256GcmX25519);
        assert_eq!(client.open(&ocb_from_server).unwrap().1, 0);
        client.confirm(0);
        assert!(
            !client.is_settled(),
            "OCB from the server proves nothing new"
        );

        let gcm_from_client = client.seal(1, b"switched").unwrap();
        let (opened, epoch) = server.open(&gcm_from_client).unwrap();
        assert_eq!((opened.plaintext.as_slice(), epoch), (&b"switched"[..], 1));
        server.confirm(epoch);
        assert_eq!(server.suite(), Suite::Aes256GcmX25519);
        assert!(server.is_settled());
        assert_eq!(
            server.open(&ocb_from_client).unwrap_err(),
            CryptoError::Integrity,
            "OCB refused once the client proved GCM"
        );

        let gcm_from_server = server.seal(1, b"ok").unwrap();
        let (_, epoch) = client.open(&gcm_from_server).unwrap();
        client.confirm(epoch);
        assert!(client.is_settled());
        assert_eq!(
            client.open(&ocb_from_server).unwrap_err(),
            CryptoError::Integrity
        );
        assert_eq!(
            server.open(&gcm_from_server).unwrap_err(),
            CryptoError::Integrity,
            "a reflected GCM datagram fails: each direction has its own key"
        );
    }

    #[test]
    fn rekey_thresholds_count_datagrams_and_age() {
        let now = Instant::now();
        let mut ring = Keyring::new(Role::Client, &bootstrap(), now);
        let (client_keys, _) = keys_for_epoch_1();
        ring.install(1, &client_keys, now);
        ring.send_with_newest();
        ring.confirm(1);
        let day = Duration::from_secs(86_400);
        assert!(!ring.due_for_rekey(now, 3, day));
        for seq in 0..3 {
            ring.seal(seq, b"x").unwrap();
        }
        assert_eq!(ring.sealed_under_current(), 3);
        assert!(ring.due_for_rekey(now, 3, day));
        assert!(!ring.due_for_rekey(now, 4, day));
        assert!(ring.due_for_rekey(now + day, 4, day));
    }

    #[test]
    fn suites_have_names() {
        assert_eq!(Suite::of_epoch(0).to_string(), "aes-128-ocb");
        assert_eq!(Suite::of_epoch(3).to_string(), "aes-256-gcm+x25519");
    }

    /// Drives two handshakes by their fields alone (no datagrams), checking
    /// the epoch-1 offer and answer and then a rekey.
    #[test]
    fn handshakes_offer_answer_and_rekey() {
        let now = Instant::now();
        let limits = RekeyLimits {
            datagrams: 2,
            age: Duration::from_secs(60),
        };
        let all = ExtensionSet::all();
        let (mut cn, mut sn) = (
            Negotiation::new(Role::Client, all),
            Negotiation::new(Role::Server, all),
        );
        let mut ch = Handshake::new(Role::Client, true, &bootstrap(), limits).unwrap();
        let mut sh = Handshake::new(Role::Server, true, &bootstrap(), limits).unwrap();
        let mut cr = Keyring::new(Role::Client, &bootstrap(), now);
        let mut sr = Keyring::new(Role::Server, &bootstrap(), now);

        let offer = ch.outgoing(&cn, &cr, now).unwrap();
        assert_eq!(offer.key_share.as_ref().map(Vec::len), Some(32));
        assert_eq!(offer.key_epoch, None);
        sh.handle_instruction(&mut sn, &mut sr, now, 0, Some(offer));
        assert_eq!(sn.peer(), Peer::Native(all));
        assert_eq!(sr.newest_epoch(), 1);
        assert_eq!(sr.sending_epoch(), 0);

        sn.handle_instruction(1, None);
        let answer = sh.outgoing(&sn, &sr, now).unwrap();
        assert_eq!(answer.supported, Some(all.bits()), "answers until switched");
        assert!(answer.key_share.is_some());
        ch.handle_instruction(&mut cn, &mut cr, now, 1, Some(answer));
        assert_eq!(cr.suite(), Suite::Aes256GcmX25519);

        sr.confirm(1);
        cr.confirm(1);
        assert_eq!(sh.outgoing(&sn, &sr, now), None, "switched: silent");
        for seq in 0..2 {
            cr.seal(seq, b"x").unwrap();
        }
        let rekey = ch.outgoing(&cn, &cr, now).unwrap();
        assert_eq!((rekey.supported, rekey.key_epoch), (None, Some(2)));
        sh.handle_instruction(&mut sn, &mut sr, now, 2, Some(rekey));
        assert_eq!(sr.newest_epoch(), 2);
        let rekey_answer = sh.outgoing(&sn, &sr, now).unwrap();
        assert_eq!(rekey_answer.key_epoch, Some(2));
        ch.handle_instruction(&mut cn, &mut cr, now, 2, Some(rekey_answer.clone()));
        assert_eq!(cr.sending_epoch(), 2);
        ch.handle_instruction(&mut cn, &mut cr, now, 2, Some(rekey_answer));
        assert_eq!(cr.newest_epoch(), 2, "a repeated answer changes nothing");
        sr.confirm(2);
        assert_eq!(sh.outgoing(&sn, &sr, now), None);
    }

    /// An authenticated peer sending unusable key shares (a buggy or hostile
    /// build of ours) gets no keys: the cipher is struck from the first
    /// exchange, and a bad rekey leaves the current epoch in place.
    #[test]
    fn unusable_shares_from_the_peer_install_nothing() {
        let now = Instant::now();
        let limits = RekeyLimits::default();
        let all = ExtensionSet::all();
        let mut sn = Negotiation::new(Role::Server, all);
        let mut sh = Handshake::new(Role::Server, true, &bootstrap(), limits).unwrap();
        let mut sr = Keyring::new(Role::Server, &bootstrap(), now);
        let offer = messages::Extensions {
            supported: Some(all.bits()),
            key_share: Some(vec![0; 32]),
            ..Default::default()
        };
        sh.handle_instruction(&mut sn, &mut sr, now, 0, Some(offer));
        assert_eq!(
            sn.peer(),
            Peer::Native(all.without(Extension::NativeCipher))
        );
        assert_eq!(sr.newest_epoch(), 0);
        let answer = sh.outgoing(&sn, &sr, now).unwrap();
        assert_eq!(answer.key_share, None);

        let mut sn = Negotiation::new(Role::Server, all);
        let mut sh = Handshake::new(Role::Server, true, &bootstrap(), limits).unwrap();
        let mut sr = Keyring::new(Role::Server, &bootstrap(), now);
        let offer = messages::Extensions {
            supported: Some(all.bits()),
            key_share: Some(alice().public().to_vec()),
            ..Default::default()
        };
        sh.handle_instruction(&mut sn, &mut sr, now, 0, Some(offer));
        sr.confirm(1);
        for share in [vec![1; 5], vec![0; 32]] {
            let rekey = messages::Extensions {
                key_share: Some(share),
                key_epoch: Some(2),
                ..Default::default()
            };
            sh.handle_instruction(&mut sn, &mut sr, now, 1, Some(rekey));
            assert_eq!(sr.newest_epoch(), 1);
        }
        let wrong_epoch = messages::Extensions {
            key_share: Some(alice().public().to_vec()),
            key_epoch: Some(7),
            ..Default::default()
        };
        sh.handle_instruction(&mut sn, &mut sr, now, 1, Some(wrong_epoch));
        assert_eq!(sr.newest_epoch(), 1, "only the next epoch is taken");
    }

    #[test]
    fn a_server_asks_for_a_rekey_when_its_own_count_is_reached() {
        let now = Instant::now();
        let limits = RekeyLimits {
            datagrams: 1,
            age: Duration::from_secs(60),
        };
        let mut sn = Negotiation::new(Role::Server, ExtensionSet::all());
        let mut sh = Handshake::new(Role::Server, true, &bootstrap(), limits).unwrap();
        let mut sr = Keyring::new(Role::Server, &bootstrap(), now);
        let offer = messages::Extensions {
            supported: Some(ExtensionSet::all().bits()),
            key_share: Some(alice().public().to_vec()),
            ..Default::default()
        };
        sh.handle_instruction(&mut sn, &mut sr, now, 0, Some(offer));
        sr.confirm(1);
        sn.handle_instruction(1, None);
        assert_eq!(sh.outgoing(&sn, &sr, now), None);
        sr.seal(5, b"x").unwrap();
        let ask = sh.outgoing(&sn, &sr, now).unwrap();
        assert_eq!(ask.rekey_request, Some(true));
    }
}
