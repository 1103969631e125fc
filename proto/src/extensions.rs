//! The native extensions our client and our server use between themselves,
//! and the one negotiation that turns them on.
//!
//! Stock mosh 1.4 knows nothing of them, so a stock peer must never see a
//! byte it does not expect. The negotiation rides in
//! [`Instruction::extensions`](crate::messages::Instruction::extensions), a
//! protobuf field with a tag stock mosh does not define and therefore skips
//! (proto2 keeps unknown fields aside and never looks at them). It is
//! authenticated like every other byte of the instruction.
//!
//! The rules, which make the outcome independent of loss, reordering and
//! duplication:
//! * The client offers the set it supports on every instruction it sends
//!   until it has decided what the server is.
//! * The server decides once, on the first instruction it processes: an offer
//!   there means the peer is ours, and the server enables the intersection of
//!   the offer and its own set; no offer means a stock client, and nothing is
//!   ever enabled. Because the client offers on everything it sends before it
//!   decides, the server's first instruction from our client always carries
//!   the offer.
//! * A server that found our client answers with the enabled set on every
//!   instruction it sends until it processes one of the client's
//!   instructions without an offer (the client has its answer by then).
//!   With the native cipher enabled, [`crate::cipher`] repeats the answer
//!   (via [`Negotiation::answer`]) until the server has switched suites.
//!   A field without a set (a rekey) is neither offer nor answer.
//! * The client decides on the first server instruction that carries an
//!   answer (the peer is ours, the answer is what is enabled) or that
//!   acknowledges one of the client's states without an answer (a stock
//!   server: it has processed an offer and ignored it). Server instructions
//!   that acknowledge nothing yet decide nothing.
//!
//! A side whose own set is empty neither offers nor answers: it is, on the
//! wire, exactly stock mosh. Features ask [`Negotiation::enabled`] (or the
//! transport's `peer_extensions`) whether they may use the peer's extension,
//! never carry flags of their own.

use std::fmt;

use crate::connection::Role;
use crate::messages;

/// One native extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension {
    /// Cell attributes stock mosh cannot carry (strikethrough, underline
    /// styles and colour, overline, hyperlinks) in the screen diff.
    Attributes,
    /// The native cipher: AES-256-GCM under keys from an ephemeral X25519
    /// exchange, rekeyed as the session goes on (see [`crate::cipher`]).
    NativeCipher,
    /// Lines that leave the top of the server's screen, sent to the client
    /// for the local terminal's scrollback.
    Scrollback,
}

impl Extension {
    /// Every extension this build knows, in bit order.
    pub const ALL: [Extension; 3] = [
        Extension::Attributes,
        Extension::Scrollback,
        Extension::NativeCipher,
    ];

    /// The extension's bit in [`messages::Extensions::supported`]. Bits are
    /// never reused.
    pub const fn bit(self) -> u64 {
        match self {
            Extension::Attributes => 1 << 0,
            Extension::Scrollback => 1 << 1,
            Extension::NativeCipher => 1 << 2,
        }
    }

    /// The name shown to people (`moshctl list`, `-v` logs).
    pub const fn name(self) -> &'static str {
        match self {
            Extension::Attributes => "attributes",
            Extension::Scrollback => "scrollback",
            Extension::NativeCipher => "cipher",
        }
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Extension`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExtensionSet(u64);

impl ExtensionSet {
    /// No extension: stock behaviour.
    pub const EMPTY: ExtensionSet = ExtensionSet(0);

    /// Every extension this build implements.
    pub fn all() -> ExtensionSet {
        Extension::ALL
            .iter()
            .fold(ExtensionSet::EMPTY, |set, &ext| set.with(ext))
    }

    /// The set named by a peer's bit mask; bits this build does not know are
    /// dropped.
    pub fn from_bits(bits: u64) -> ExtensionSet {
        ExtensionSet(bits & ExtensionSet::all().0)
    }

    /// The bit mask sent on the wire.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether `ext` is in the set.
    pub const fn contains(self, ext: Extension) -> bool {
        self.0 & ext.bit() != 0
    }

    /// The set with `ext` added.
    #[must_use]
    pub const fn with(self, ext: Extension) -> ExtensionSet {
        ExtensionSet(self.0 | ext.bit())
    }

    /// The set without `ext`.
    #[must_use]
    pub const fn without(self, ext: Extension) -> ExtensionSet {
        ExtensionSet(self.0 & !ext.bit())
    }

    /// The extensions in both sets.
    #[must_use]
    pub const fn intersection(self, other: ExtensionSet) -> ExtensionSet {
        ExtensionSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The extensions in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Extension> {
        Extension::ALL
            .into_iter()
            .filter(move |&ext| self.contains(ext))
    }
}

impl FromIterator<Extension> for ExtensionSet {
    fn from_iter<I: IntoIterator<Item = Extension>>(iter: I) -> ExtensionSet {
        iter.into_iter()
            .fold(ExtensionSet::EMPTY, |set, ext| set.with(ext))
    }
}

impl fmt::Display for ExtensionSet {
    /// Names separated by commas, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, ext) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(ext.name())?;
        }
        Ok(())
    }
}

/// What this end knows about the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Not decided yet: behave as stock.
    Undecided,
    /// A stock mosh peer (or one of ours with every extension turned off):
    /// stock behaviour for the whole session.
    Stock,
    /// One of ours; the set is what both ends enabled (it may be empty).
    Native(ExtensionSet),
}

impl Peer {
    /// The extensions this end may use with the peer.
    pub fn enabled(self) -> ExtensionSet {
        match self {
            Peer::Native(set) => set,
            Peer::Undecided | Peer::Stock => ExtensionSet::EMPTY,
        }
    }
}

/// The negotiation state machine of one end; the transport feeds it every
/// instruction it processes and asks it what to attach to every instruction
/// it sends.
#[derive(Debug, Clone)]
pub struct Negotiation {
    role: Role,
    supported: ExtensionSet,
    peer: Peer,
    announcing: bool,
}

impl Negotiation {
    /// An end of `role` that supports `supported`. With an empty set it
    /// never sends anything and decides [`Peer::Stock`] at once.
    pub fn new(role: Role, supported: ExtensionSet) -> Negotiation {
        let silent = supported.is_empty();
        Negotiation {
            role,
            supported,
            peer: if silent { Peer::Stock } else { Peer::Undecided },
            announcing: !silent && role == Role::Client,
        }
    }

    /// What this end knows about the peer.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The extensions this end may use with the peer now.
    pub fn enabled(&self) -> ExtensionSet {
        self.peer.enabled()
    }

    /// The field to attach to the next instruction sent, if any.
    pub fn outgoing(&self) -> Option<messages::Extensions> {
        if !self.announcing {
            return None;
        }
        let set = match self.role {
            Role::Client => self.supported,
            Role::Server => self.enabled(),
        };
        Some(messages::Extensions {
            supported: Some(set.bits()),
            ..Default::default()
        })
    }

    /// The server's answer (the enabled set), whether or not the rules above
    /// still ask for it; `None` on a client or before a server found one of
    /// ours. The native cipher repeats it until its switch is done.
    pub fn answer(&self) -> Option<messages::Extensions> {
        match (self.role, self.peer) {
            (Role::Server, Peer::Native(set)) => Some(messages::Extensions {
                supported: Some(set.bits()),
                ..Default::default()
            }),
            _ => None,
        }
    }

    /// Takes the negotiation field of an authenticated instruction from the
    /// peer, with the instruction's acknowledgement number. A field without
    /// `supported` (a rekey of the native cipher) is neither offer nor
    /// answer.
    pub fn handle_instruction(&mut self, ack_num: u64, field: Option<&messages::Extensions>) {
        if self.supported.is_empty() {
            return;
        }
        let peer_set = field.and_then(|f| f.supported).map(ExtensionSet::from_bits);
        match (self.role, self.peer) {
            (Role::Server, Peer::Undecided) => match peer_set {
                Some(offer) => {
                    self.peer = Peer::Native(offer.intersection(self.supported));
                    self.announcing = true;
                }
                None => self.peer = Peer::Stock,
            },
            (Role::Server, Peer::Native(_)) => {
                if peer_set.is_none() {
                    self.announcing = false;
                }
            }
            (Role::Client, Peer::Undecided) => match peer_set {
                Some(answer) => {
                    self.peer = Peer::Native(answer.intersection(self.supported));
                    self.announcing = false;
                }
                None if ack_num > 0 => {
                    self.peer = Peer::Stock;
                    self.announcing = false;
                }
                None => {}
            },
            (Role::Server, Peer::Stock) | (Role::Client, Peer::Stock | Peer::Native(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(set: ExtensionSet) -> messages::Extensions {
        messages::Extensions {
            supported: Some(set.bits()),
            ..Default::default()
        }
    }

    #[test]
    fn sets_name_their_members_and_drop_unknown_bits() {
        let all = ExtensionSet::all();
        assert!(all.contains(Extension::Attributes));
        assert!(all.contains(Extension::NativeCipher));
        assert_eq!(Extension::NativeCipher.bit(), 1 << 2);
        assert_eq!(all.to_string(), "attributes,scrollback,cipher");
        assert_eq!(ExtensionSet::EMPTY.to_string(), "none");
        assert_eq!(ExtensionSet::from_bits(u64::MAX), all);
        assert_eq!(ExtensionSet::from_bits(1 << 40), ExtensionSet::EMPTY);
        assert_eq!(
            all.without(Extension::Attributes)
                .without(Extension::NativeCipher),
            ExtensionSet::EMPTY.with(Extension::Scrollback)
        );
        let collected: ExtensionSet = all.iter().collect();
        assert_eq!(collected, all);
    }

    #[test]
    fn silent_ends_send_nothing_and_treat_the_peer_as_stock() {
        for role in [Role::Client, Role::Server] {
            let mut n = Negotiation::new(role, ExtensionSet::EMPTY);
            assert_eq!(n.outgoing(), None);
            n.handle_instruction(1, Some(&offer(ExtensionSet::all())));
            assert_eq!(n.peer(), Peer::Stock);
            assert_eq!(n.outgoing(), None);
        }
    }

    #[test]
    fn client_and_server_agree_on_the_intersection() {
        let mut client = Negotiation::new(Role::Client, ExtensionSet::all());
        let mut server = Negotiation::new(Role::Server, ExtensionSet::all());
        assert_eq!(server.outgoing(), None, "a server speaks only when asked");
        let sent = client.outgoing();
        assert_eq!(sent, Some(offer(ExtensionSet::all())));
        server.handle_instruction(0, sent.as_ref());
        assert_eq!(server.peer(), Peer::Native(ExtensionSet::all()));
        let answer = server.outgoing();
        assert!(answer.is_some());
        client.handle_instruction(1, answer.as_ref());
        assert_eq!(client.peer(), Peer::Native(ExtensionSet::all()));
        assert_eq!(client.outgoing(), None, "the client stops offering");
        server.handle_instruction(1, None);
        assert_eq!(server.outgoing(), None, "the server stops answering");
        assert_eq!(server.enabled(), ExtensionSet::all());
    }

    #[test]
    fn server_enables_only_what_it_supports() {
        let mut server = Negotiation::new(Role::Server, ExtensionSet::all());
        server.handle_instruction(0, Some(&offer(ExtensionSet::EMPTY)));
        assert_eq!(server.peer(), Peer::Native(ExtensionSet::EMPTY));
        assert_eq!(server.outgoing(), Some(offer(ExtensionSet::EMPTY)));
    }

    #[test]
    fn stock_client_is_decided_on_its_first_instruction() {
        let mut server = Negotiation::new(Role::Server, ExtensionSet::all());
        server.handle_instruction(0, None);
        assert_eq!(server.peer(), Peer::Stock);
        server.handle_instruction(0, Some(&offer(ExtensionSet::all())));
        assert_eq!(server.peer(), Peer::Stock, "a late offer changes nothing");
        assert_eq!(server.outgoing(), None);
    }

    #[test]
    fn stock_server_is_decided_when_it_acknowledges_without_answer() {
        let mut client = Negotiation::new(Role::Client, ExtensionSet::all());
        client.handle_instruction(0, None);
        assert_eq!(client.peer(), Peer::Undecided, "acknowledges nothing yet");
        assert!(client.outgoing().is_some());
        client.handle_instruction(3, None);
        assert_eq!(client.peer(), Peer::Stock);
        assert_eq!(client.outgoing(), None);
        client.handle_instruction(4, Some(&offer(ExtensionSet::all())));
        assert_eq!(client.peer(), Peer::Stock);
    }

    #[test]
    fn a_field_without_a_set_is_no_offer() {
        let rekey = messages::Extensions {
            key_share: Some(vec![9; 32]),
            key_epoch: Some(2),
            ..Default::default()
        };
        let mut server = Negotiation::new(Role::Server, ExtensionSet::all());
        server.handle_instruction(0, Some(&offer(ExtensionSet::all())));
        assert!(server.outgoing().is_some());
        server.handle_instruction(1, Some(&rekey));
        assert_eq!(server.outgoing(), None, "a rekey ends the answering");
        assert_eq!(server.answer(), Some(offer(ExtensionSet::all())));

        let mut fresh = Negotiation::new(Role::Server, ExtensionSet::all());
        fresh.handle_instruction(0, Some(&rekey));
        assert_eq!(fresh.peer(), Peer::Stock);
        assert_eq!(fresh.answer(), None);
    }

    #[test]
    fn replayed_answers_and_offers_change_nothing() {
        let mut client = Negotiation::new(Role::Client, ExtensionSet::all());
        client.handle_instruction(1, Some(&offer(ExtensionSet::EMPTY)));
        assert_eq!(client.peer(), Peer::Native(ExtensionSet::EMPTY));
        client.handle_instruction(2, Some(&offer(ExtensionSet::all())));
        assert_eq!(client.peer(), Peer::Native(ExtensionSet::EMPTY));

        let mut server = Negotiation::new(Role::Server, ExtensionSet::all());
        server.handle_instruction(0, Some(&offer(ExtensionSet::EMPTY)));
        server.handle_instruction(0, Some(&offer(ExtensionSet::all())));
        assert_eq!(server.peer(), Peer::Native(ExtensionSet::EMPTY));
    }
}
