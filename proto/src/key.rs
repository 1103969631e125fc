//! The 128-bit session key and its 22-character printable form, as carried in
//! the `MOSH CONNECT <port> <key>` line and the `MOSH_KEY` variable.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a session key in bytes.
pub const KEY_LEN: usize = 16;

/// Length of the printed key: base64 of 16 bytes without the `==` padding.
pub const PRINTED_KEY_LEN: usize = 22;

/// Why a printed key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key did not have exactly 22 characters.
    #[error("key must be 22 letters long (got {0})")]
    WrongLength(usize),
    /// A character outside `A-Z a-z 0-9 + /` was found.
    #[error("key must be well-formed base64: {0:?} at position {1} is not a base64 letter")]
    BadLetter(char, usize),
    /// The last letter carries bits beyond the 128th, so the text is not the
    /// canonical encoding of a 128-bit key.
    #[error("base64 key was not encoded 128-bit key: last letter {0:?} must be one of A, Q, g, w")]
    NotCanonical(char),
    /// The operating system's random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// A session key: 16 random bytes, printed as 22 base64 letters.
///
/// `Debug` does not reveal the key; only [`Base64Key::printable`] does.
/// Every copy overwrites its bytes with zeros when dropped.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Base64Key([u8; KEY_LEN]);

impl Base64Key {
    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Self(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the 22-letter printed form, refusing anything that is not the
    /// exact canonical encoding of 16 bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let count = text.chars().count();
        if count != PRINTED_KEY_LEN || text.len() != PRINTED_KEY_LEN {
            return Err(KeyError::WrongLength(count));
        }
        if let Some((pos, letter)) = text
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        {
            return Err(KeyError::BadLetter(letter, pos));
        }
        let last = text.as_bytes()[PRINTED_KEY_LEN - 1];
        if !matches!(last, b'A' | b'Q' | b'g' | b'w') {
            return Err(KeyError::NotCanonical(char::from(last)));
        }
        let mut padded = [b'='; PRINTED_KEY_LEN + 2];
        padded[..PRINTED_KEY_LEN].copy_from_slice(text.as_bytes());
        let mut bytes = [0u8; KEY_LEN];
        let written = STANDARD.decode_slice(padded, &mut bytes);
        padded.zeroize();
        let written = written.map_err(|_| KeyError::NotCanonical(char::from(last)))?;
        debug_assert_eq!(written, KEY_LEN);
        let key = Self(bytes);
        bytes.zeroize();
        Ok(key)
    }

    /// The 22-letter printed form.
    pub fn printable(&self) -> String {
        let mut text = STANDARD.encode(self.0);
        text.truncate(PRINTED_KEY_LEN);
        text
    }

    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for Base64Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Base64Key(<secret>)")
    }
}

impl std::str::FromStr for Base64Key {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_wiped_when_dropped() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<Base64Key>();
        let mut key = Base64Key::parse("AAECAwQFBgcICQoLDA0ODw").unwrap();
        key.zeroize();
        assert_eq!(key.bytes(), &[0; KEY_LEN]);
    }

    #[test]
    fn known_key_parses_to_known_bytes() {
        let key = Base64Key::parse("AAECAwQFBgcICQoLDA0ODw").unwrap();
        let expected: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(key.bytes(), &expected);
        assert_eq!(key.printable(), "AAECAwQFBgcICQoLDA0ODw");
        let stock = Base64Key::parse("SpQ+QcR4Ww8kzZWK8c9hpw").unwrap();
        assert_eq!(stock.bytes()[0], 0x4a);
        assert_eq!(stock.bytes()[15], 0xa7);
    }

    #[test]
    fn malformed_keys_are_refused_with_reasons() {
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0OD"),
            Err(KeyError::WrongLength(21))
        );
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0ODw=="),
            Err(KeyError::WrongLength(24))
        );
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0O-w"),
            Err(KeyError::BadLetter('-', 20))
        );
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0ODx"),
            Err(KeyError::NotCanonical('x'))
        );
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0O=w"),
            Err(KeyError::BadLetter('=', 20))
        );
        assert_eq!(
            Base64Key::parse("AAECAwQFBgcICQoLDA0ODé"),
            Err(KeyError::WrongLength(22))
        );
        let message = Base64Key::parse("short").unwrap_err().to_string();
        assert!(message.contains("22 letters"), "{message}");
    }

    #[test]
    fn every_last_byte_round_trips() {
        for last in 0..=255u8 {
            let mut bytes = [7u8; 16];
            bytes[15] = last;
            let key = Base64Key::from_bytes(bytes);
            assert_eq!(Base64Key::parse(&key.printable()).unwrap(), key);
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let key = Base64Key::random().unwrap();
        assert!(!format!("{key:?}").contains(&key.printable()));
    }

    proptest! {
        #[test]
        fn random_keys_round_trip(bytes in any::<[u8; 16]>()) {
            let key = Base64Key::from_bytes(bytes);
            let text = key.printable();
            prop_assert_eq!(text.len(), 22);
            prop_assert_eq!(Base64Key::parse(&text).unwrap(), key);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,30}") {
            if let Ok(key) = Base64Key::parse(&text) {
                prop_assert_eq!(key.printable(), text);
            }
        }
    }
}
