//! mosh's wire protocol, version 2, without I/O.
//!
//! Layers, from the wire inwards:
//! * [`crypto`]: AES-128-OCB3 and AES-256-GCM datagram sealing with mosh's
//!   nonce layout, and the session key ([`key`]).
//! * [`cipher`]: the native suite's X25519 key exchanges, key epochs and the
//!   switch from OCB to GCM.
//! * [`packet`]: the plaintext inside a datagram (timestamps and payload);
//!   [`rtt`] turns echoed timestamps into a retransmission timeout.
//! * [`connection`]: sequence numbers, replay ordering, timestamp echo and the
//!   peer address (roaming) for one session.
//! * [`fragment`]: zlib compression and splitting instructions into MTU-sized
//!   fragments, and their bounded reassembly.
//! * [`messages`]: the protobuf messages (`Instruction`, `HostMessage`,
//!   `UserMessage`).
//! * [`extensions`]: the native extensions our two ends negotiate, invisible
//!   to stock peers.
//! * [`transport`]: the State Synchronization Protocol state machine that keeps
//!   a local [`State`] mirrored at the peer and the peer's mirrored here.
//!
//! Time is always passed in as an [`std::time::Instant`]; nothing here reads a
//! clock, opens a socket or spawns a thread.
#![forbid(unsafe_code)]

pub mod cipher;
pub mod connection;
pub mod crypto;
pub mod extensions;
pub mod fragment;
pub mod key;
pub mod messages;
pub mod packet;
pub mod rtt;
pub mod state;
pub mod transport;

pub use cipher::Suite;
pub use connection::{Connection, Role};
pub use crypto::{CryptoError, Direction, Session};
pub use extensions::{Extension, ExtensionSet, Negotiation, Peer};
pub use key::{Base64Key, KeyError};
pub use state::{State, StateError};
pub use transport::{Delivery, Transmit, Transport, TransportConfig, TransportError};
