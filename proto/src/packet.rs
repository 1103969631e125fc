//! The plaintext of one datagram: two 16-bit millisecond timestamps followed
//! by one fragment.
//!
//! ```text
//! 0  u16  timestamp        sender's clock mod 65536, 0xFFFF = none
//! 2  u16  timestamp_reply  echo of the peer's last timestamp, 0xFFFF = none
//! 4  ...  payload
//! ```

/// Bytes of the timestamp header.
pub const HEADER_LEN: usize = 4;

/// The wire value meaning "no timestamp".
const NONE: u16 = 0xFFFF;

/// A datagram's plaintext, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The sender's clock when it sent this, if given.
    pub timestamp: Option<u16>,
    /// The sender's echo of our last timestamp, advanced by how long it held it.
    pub timestamp_reply: Option<u16>,
    /// One fragment.
    pub payload: &'a [u8],
}

/// The plaintext was shorter than the timestamp header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal counterparty input: plaintext of {0} bytes has no timestamps")]
pub struct TooShort(pub usize);

impl<'a> Packet<'a> {
    /// Parses an authenticated plaintext.
    pub fn parse(plaintext: &'a [u8]) -> Result<Self, TooShort> {
        if plaintext.len() < HEADER_LEN {
            return Err(TooShort(plaintext.len()));
        }
        let field = |at: usize| {
            let value = u16::from_be_bytes([plaintext[at], plaintext[at + 1]]);
            (value != NONE).then_some(value)
        };
        Ok(Self {
            timestamp: field(0),
            timestamp_reply: field(2),
            payload: &plaintext[HEADER_LEN..],
        })
    }

    /// Serializes into a plaintext ready for sealing.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.timestamp.unwrap_or(NONE).to_be_bytes());
        out.extend_from_slice(&self.timestamp_reply.unwrap_or(NONE).to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

/// A millisecond count reduced to a wire timestamp: mod 65536, with 65535
/// (reserved for "none") sent as 0.
pub fn timestamp16(millis: u64) -> u16 {
    match (millis % 65536) as u16 {
        NONE => 0,
        value => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn none_is_all_ones() {
        let packet = Packet {
            timestamp: Some(0x0102),
            timestamp_reply: None,
            payload: b"hi",
        };
        assert_eq!(packet.to_bytes(), [1, 2, 0xff, 0xff, b'h', b'i']);
        assert_eq!(Packet::parse(&packet.to_bytes()).unwrap(), packet);
    }

    #[test]
    fn reserved_timestamp_is_never_produced() {
        assert_eq!(timestamp16(65535), 0);
        assert_eq!(timestamp16(65536 + 65535), 0);
        assert_eq!(timestamp16(65537), 1);
    }

    #[test]
    fn short_plaintext_is_refused() {
        assert_eq!(Packet::parse(&[1, 2, 3]), Err(TooShort(3)));
    }

    proptest! {
        #[test]
        fn round_trip(ts in 0u16..0xFFFF, reply in any::<Option<u16>>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let reply = reply.filter(|&r| r != 0xFFFF);
            let packet = Packet { timestamp: Some(ts), timestamp_reply: reply, payload: &payload };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes).unwrap(), packet);
        }
    }
}
