//! Instructions on the wire: zlib-compressed, cut into fragments that fit one
//! datagram each, and put back together with hard bounds on what a peer can
//! make us hold.
//!
//! ```text
//! 0  u64  instruction id
//! 8  u16  bit 15 = final fragment, bits 0..14 = fragment number
//! 10 ...  body
//! ```

use std::collections::BTreeMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Bytes of the fragment header.
pub const HEADER_LEN: usize = 10;
/// Fragment numbers are 15 bits.
pub const MAX_FRAGMENT_NUM: u16 = 0x7FFF;
/// The most an instruction may inflate to (mosh's limit, 2048 × 2048).
pub const MAX_INFLATED_LEN: usize = 2048 * 2048;
/// The most compressed bytes one instruction may take while being assembled.
pub const MAX_MESSAGE_LEN: usize = 2 * 1024 * 1024;
/// The most fragments one instruction may have (a full message at the
/// 462-byte fallback body size needs about 4600).
pub const MAX_FRAGMENTS_PER_MESSAGE: usize = 8192;
/// The most instructions kept partially assembled at once; the oldest is
/// dropped to make room.
pub const MAX_PARTIAL_MESSAGES: usize = 4;

/// Why a fragment or an assembled instruction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    /// Shorter than the 10-byte header.
    #[error("fragment of {0} bytes is shorter than its header")]
    TooShort(usize),
    /// Numbered beyond what the message-size bound allows.
    #[error("fragment number {0} is beyond the per-message bound")]
    TooManyFragments(u16),
    /// The message would exceed [`MAX_MESSAGE_LEN`] compressed bytes.
    #[error("instruction {id} exceeds {MAX_MESSAGE_LEN} compressed bytes")]
    MessageTooLarge {
        /// The instruction id.
        id: u64,
    },
    /// A fragment number was seen twice with different bodies.
    #[error("fragment {num} of instruction {id} was resent with different contents")]
    Conflicting {
        /// The instruction id.
        id: u64,
        /// The fragment number.
        num: u16,
    },
    /// The final fragment disagreed with fragments already held.
    #[error("instruction {id} has fragments past its final fragment")]
    Inconsistent {
        /// The instruction id.
        id: u64,
    },
    /// The instruction is older than one already completed.
    #[error("instruction {id} is stale")]
    Stale {
        /// The instruction id.
        id: u64,
    },
    /// The assembled bytes were not a zlib stream.
    #[error("illegal counterparty input: not a zlib stream")]
    Corrupt,
    /// The assembled bytes inflate past [`MAX_INFLATED_LEN`].
    #[error("instruction inflates past {MAX_INFLATED_LEN} bytes")]
    InflatesTooFar,
}

/// One fragment of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Which instruction this belongs to.
    pub id: u64,
    /// Position within the instruction, from 0.
    pub num: u16,
    /// Whether this is the instruction's last fragment.
    pub is_final: bool,
    /// This fragment's share of the compressed instruction.
    pub body: Vec<u8>,
}

impl Fragment {
    /// Parses a datagram payload.
    pub fn parse(payload: &[u8]) -> Result<Self, FragmentError> {
        if payload.len() < HEADER_LEN {
            return Err(FragmentError::TooShort(payload.len()));
        }
        let id = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
        let word = u16::from_be_bytes([payload[8], payload[9]]);
        Ok(Self {
            id,
            num: word & MAX_FRAGMENT_NUM,
            is_final: word & 0x8000 != 0,
            body: payload[HEADER_LEN..].to_vec(),
        })
    }

    /// Serializes header and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.body.len());
        out.extend_from_slice(&self.id.to_be_bytes());
        let word = self.num | if self.is_final { 0x8000 } else { 0 };
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// How hard a [`Compressor`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effort {
    /// zlib's default level, as mosh uses: the same bytes as stock.
    #[default]
    Stock,
    /// zlib level 1: several times faster on large instructions (history
    /// lines) for a few percent more bytes; only for peers of ours.
    Fast,
}

impl Effort {
    fn level(self) -> Compression {
        match self {
            Effort::Stock => Compression::default(),
            Effort::Fast => Compression::fast(),
        }
    }
}

/// zlib-compresses an encoded instruction (default level, as mosh does).
pub fn compress(encoded: &[u8]) -> Vec<u8> {
    Compressor::default().compress(encoded, Effort::Stock)
}

/// Inflates an assembled instruction, refusing anything past
/// [`MAX_INFLATED_LEN`].
pub fn decompress(compressed: &[u8]) -> Result<Vec<u8>, FragmentError> {
    Decompressor::default().decompress(compressed)
}

/// One connection's zlib compressor, kept from one instruction to the next
/// (each still a zlib stream of its own, byte for byte what a fresh
/// compressor makes): its state is allocated once, at the first
/// instruction, instead of for every datagram.
#[derive(Debug, Default)]
pub struct Compressor {
    state: Option<(Effort, Compress)>,
}

impl Compressor {
    /// zlib-compresses `encoded` with `effort` (a compressor is made anew
    /// only when the effort changes, which a session does once at most).
    pub fn compress(&mut self, encoded: &[u8], effort: Effort) -> Vec<u8> {
        if self.state.as_ref().is_some_and(|(kept, _)| *kept != effort) {
            self.state = None;
        }
        let (_, state) = self
            .state
            .get_or_insert_with(|| (effort, Compress::new(effort.level(), true)));
        state.reset();
        let mut out = Vec::with_capacity(encoded.len() / 2 + 64);
        loop {
            let consumed =
                usize::try_from(state.total_in()).map_or(encoded.len(), |n| n.min(encoded.len()));
            let status = state
                .compress_vec(&encoded[consumed..], &mut out, FlushCompress::Finish)
                .expect("deflating into a growing buffer cannot fail");
            if status == Status::StreamEnd {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// One connection's zlib decompressor, kept from one instruction to the
/// next like [`Compressor`].
#[derive(Debug, Default)]
pub struct Decompressor {
    state: Option<Decompress>,
}

impl Decompressor {
    /// Inflates an assembled instruction, refusing anything past
    /// [`MAX_INFLATED_LEN`], a stream cut short and anything not zlib.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, FragmentError> {
        let state = self.state.get_or_insert_with(|| Decompress::new(true));
        state.reset(true);
        let mut out = Vec::with_capacity(
            compressed
                .len()
                .saturating_mul(4)
                .clamp(64, MAX_INFLATED_LEN + 1),
        );
        loop {
            let (read, written) = (state.total_in(), state.total_out());
            let consumed =
                usize::try_from(read).map_or(compressed.len(), |n| n.min(compressed.len()));
            let status = state
                .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::None)
                .map_err(|_| FragmentError::Corrupt)?;
            if out.len() > MAX_INFLATED_LEN {
                return Err(FragmentError::InflatesTooFar);
            }
            if status == Status::StreamEnd {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                out.reserve_exact(out.capacity().min(MAX_INFLATED_LEN + 1 - out.capacity()));
            } else if (state.total_in(), state.total_out()) == (read, written) {
                return Err(FragmentError::Corrupt);
            }
        }
    }
}

/// Cuts compressed instructions into fragments, each under a fresh id.
#[derive(Debug, Default)]
pub struct Fragmenter {
    last_id: u64,
}

impl Fragmenter {
    /// Splits `compressed` into fragments whose bodies hold at most
    /// `max_body` bytes. An empty input still yields one (final) fragment.
    pub fn fragment(&mut self, compressed: &[u8], max_body: usize) -> Vec<Fragment> {
        assert!(max_body > 0, "fragment body size must be positive");
        self.last_id += 1;
        let id = self.last_id;
        let count = compressed.len().div_ceil(max_body).max(1);
        assert!(
            count <= usize::from(MAX_FRAGMENT_NUM) + 1,
            "instruction too large to fragment"
        );
        (0..count)
            .map(|index| {
                let start = index * max_body;
                let end = (start + max_body).min(compressed.len());
                Fragment {
                    id,
                    num: index as u16,
                    is_final: index + 1 == count,
                    body: compressed[start..end].to_vec(),
                }
            })
            .collect()
    }
}

#[derive(Debug, Default)]
struct Partial {
    bodies: BTreeMap<u16, Vec<u8>>,
    final_num: Option<u16>,
    bytes: usize,
}

/// Reassembles instructions from fragments in any order, holding at most
/// [`MAX_PARTIAL_MESSAGES`] partial instructions of at most
/// [`MAX_MESSAGE_LEN`] bytes each.
#[derive(Debug, Default)]
pub struct FragmentAssembly {
    partials: BTreeMap<u64, Partial>,
    newest_completed: Option<u64>,
}

impl FragmentAssembly {
    /// Adds a fragment; returns the compressed instruction once all its
    /// fragments are present.
    pub fn add(&mut self, fragment: Fragment) -> Result<Option<Vec<u8>>, FragmentError> {
        let Fragment {
            id,
            num,
            is_final,
            body,
        } = fragment;
        match self.newest_completed {
            // A byte-identical resend keeps its id (mosh does this).
            Some(done) if id == done => return Ok(None),
            Some(done) if id < done => return Err(FragmentError::Stale { id }),
            _ => {}
        }
        if usize::from(num) >= MAX_FRAGMENTS_PER_MESSAGE {
            return Err(FragmentError::TooManyFragments(num));
        }
        if !self.partials.contains_key(&id) && self.partials.len() >= MAX_PARTIAL_MESSAGES {
            let oldest = *self.partials.keys().next().expect("non-empty");
            if oldest > id {
                return Err(FragmentError::Stale { id });
            }
            self.partials.remove(&oldest);
        }
        let partial = self.partials.entry(id).or_default();
        if let Some(held) = partial.bodies.get(&num) {
            return if *held == body {
                Ok(None)
            } else {
                Err(FragmentError::Conflicting { id, num })
            };
        }
        let last_held = partial.bodies.keys().next_back().copied();
        if is_final && (partial.final_num.is_some() || last_held.is_some_and(|n| n > num))
            || partial.final_num.is_some_and(|f| num > f)
        {
            self.partials.remove(&id);
            return Err(FragmentError::Inconsistent { id });
        }
        if partial.bytes + body.len() > MAX_MESSAGE_LEN {
            self.partials.remove(&id);
            return Err(FragmentError::MessageTooLarge { id });
        }
        partial.bytes += body.len();
        partial.bodies.insert(num, body);
        if is_final {
            partial.final_num = Some(num);
        }
        let complete = partial
            .final_num
            .is_some_and(|f| partial.bodies.len() == usize::from(f) + 1);
        if !complete {
            return Ok(None);
        }
        let partial = self.partials.remove(&id).expect("present");
        self.newest_completed = Some(id);
        self.partials.retain(|&other, _| other > id);
        let mut message = Vec::with_capacity(partial.bytes);
        for body in partial.bodies.into_values() {
            message.extend_from_slice(&body);
        }
        Ok(Some(message))
    }

    /// Compressed bytes currently held in partial instructions.
    pub fn held_bytes(&self) -> usize {
        self.partials.values().map(|p| p.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_layout() {
        let fragment = Fragment {
            id: 7,
            num: 0,
            is_final: true,
            body: b"hello".to_vec(),
        };
        assert_eq!(
            fragment.to_bytes(),
            [
                0, 0, 0, 0, 0, 0, 0, 7, 0x80, 0, b'h', b'e', b'l', b'l', b'o'
            ]
        );
        assert_eq!(Fragment::parse(&fragment.to_bytes()).unwrap(), fragment);
        assert_eq!(Fragment::parse(&[0; 9]), Err(FragmentError::TooShort(9)));
    }

    #[test]
    fn compression_matches_stock_bytes() {
        let inflated = [
            0x08, 0x02, 0x10, 0x00, 0x18, 0x01, 0x20, 0x00, 0x28, 0x00, 0x32, 0x08, 0x0a, 0x06,
            0x1a, 0x04, 0x28, 0x50, 0x30, 0x18, 0x3a, 0x00,
        ];
        let stock = [
            0x78, 0x9c, 0xe3, 0x60, 0x12, 0x60, 0x90, 0x60, 0x54, 0x60, 0xd0, 0x60, 0x30, 0xe2,
            0xe0, 0x62, 0x93, 0x62, 0xd1, 0x08, 0x30, 0x90, 0xb0, 0x62, 0x00, 0x00, 0x10, 0x53,
            0x01, 0xde,
        ];
        assert_eq!(compress(&inflated), stock);
        assert_eq!(decompress(&stock).unwrap(), inflated);
    }

    #[test]
    fn kept_compressors_make_what_fresh_ones_make_after_any_input() {
        let inputs: [&[u8]; 4] = [b"", &[7; 70_000], b"not zlib at all", &[1, 2, 3, 4, 5]];
        let mut compressor = Compressor::default();
        let mut decompressor = Decompressor::default();
        for input in inputs {
            let fresh = compress(input);
            assert_eq!(compressor.compress(input, Effort::Stock), fresh);
            assert_eq!(decompressor.decompress(&fresh).unwrap(), input);
            assert_eq!(decompressor.decompress(input), Err(FragmentError::Corrupt));
            assert_eq!(
                decompressor.decompress(&fresh[..fresh.len() - 1]),
                Err(FragmentError::Corrupt)
            );
        }
    }

    #[test]
    fn fast_compression_inflates_the_same_and_stock_effort_stays_stock() {
        let lines: Vec<u8> = (0..5000u32)
            .flat_map(|n| format!("\x1a\x05{n:05}").into_bytes())
            .collect();
        let mut compressor = Compressor::default();
        let fast = compressor.compress(&lines, Effort::Fast);
        assert_eq!(decompress(&fast).unwrap(), lines);
        assert_ne!(fast, compress(&lines), "a different level");
        assert_eq!(compressor.compress(&lines, Effort::Stock), compress(&lines));
        assert_eq!(compressor.compress(&lines, Effort::Fast), fast);
    }

    #[test]
    fn compression_bomb_is_refused() {
        let bomb = compress(&vec![0u8; MAX_INFLATED_LEN + 1]);
        assert!(bomb.len() < 10_000);
        assert_eq!(decompress(&bomb), Err(FragmentError::InflatesTooFar));
        let fits = compress(&vec![0u8; MAX_INFLATED_LEN]);
        assert_eq!(decompress(&fits).unwrap().len(), MAX_INFLATED_LEN);
        assert_eq!(decompress(b"not zlib"), Err(FragmentError::Corrupt));
    }

    #[test]
    fn fragments_fit_the_body_size() {
        let mut fragmenter = Fragmenter::default();
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let fragments = fragmenter.fragment(&data, 1214);
        assert_eq!(fragments.len(), 3);
        assert!(fragments.iter().all(|f| f.id == 1 && f.body.len() <= 1214));
        assert!(fragments[2].is_final && !fragments[1].is_final);
        assert_eq!(fragmenter.fragment(&[], 1214)[0].id, 2);
        assert_eq!(fragmenter.fragment(&[], 1214).len(), 1);
    }

    #[test]
    fn stale_and_conflicting_fragments_are_refused() {
        let mut fragmenter = Fragmenter::default();
        let mut assembly = FragmentAssembly::default();
        let first = fragmenter.fragment(b"abcdef", 4);
        let second = fragmenter.fragment(b"xyz", 4);
        assert_eq!(
            assembly.add(second[0].clone()).unwrap(),
            Some(b"xyz".to_vec())
        );
        assert_eq!(
            assembly.add(first[0].clone()),
            Err(FragmentError::Stale { id: 1 })
        );
        let third = fragmenter.fragment(b"123456", 4);
        assert_eq!(assembly.add(third[0].clone()).unwrap(), None);
        assert_eq!(assembly.add(third[0].clone()).unwrap(), None);
        let mut forged = third[0].clone();
        forged.body[0] ^= 1;
        assert_eq!(
            assembly.add(forged),
            Err(FragmentError::Conflicting { id: 3, num: 0 })
        );
        assert_eq!(
            assembly.add(third[1].clone()).unwrap(),
            Some(b"123456".to_vec())
        );
    }

    #[test]
    fn flood_of_unfinished_fragments_stays_bounded() {
        let mut assembly = FragmentAssembly::default();
        for id in 1..10_000u64 {
            for num in 0..8u16 {
                let _ = assembly.add(Fragment {
                    id,
                    num,
                    is_final: false,
                    body: vec![0; 1200],
                });
            }
            assert!(assembly.partials.len() <= MAX_PARTIAL_MESSAGES);
        }
        assert!(assembly.held_bytes() <= MAX_PARTIAL_MESSAGES * MAX_MESSAGE_LEN);
        let refusal = (0..MAX_MESSAGE_LEN / 1200 + 2)
            .map(|num| {
                assembly.add(Fragment {
                    id: 20_000,
                    num: num as u16,
                    is_final: false,
                    body: vec![1; 1200],
                })
            })
            .find(Result::is_err)
            .expect("an oversized message is refused");
        assert_eq!(refusal, Err(FragmentError::MessageTooLarge { id: 20_000 }));
        assert_eq!(
            assembly.add(Fragment {
                id: 30_000,
                num: MAX_FRAGMENT_NUM,
                is_final: true,
                body: vec![],
            }),
            Err(FragmentError::TooManyFragments(MAX_FRAGMENT_NUM))
        );
    }

    proptest! {
        #[test]
        fn any_order_reassembles(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            body in 1usize..700,
            seed in any::<u64>(),
        ) {
            let mut fragments = Fragmenter::default().fragment(&data, body);
            let mut state = seed | 1;
            for i in (1..fragments.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                fragments.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut assembly = FragmentAssembly::default();
            let mut result = None;
            for fragment in fragments {
                prop_assert!(result.is_none());
                result = assembly.add(fragment).unwrap();
            }
            prop_assert_eq!(result, Some(data));
            prop_assert_eq!(assembly.held_bytes(), 0);
        }

        #[test]
        fn arbitrary_fragments_never_panic(
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..64)
        ) {
            let mut assembly = FragmentAssembly::default();
            for payload in inputs {
                if let Ok(fragment) = Fragment::parse(&payload)
                    && let Ok(Some(message)) = assembly.add(fragment)
                {
                    let _ = decompress(&message);
                }
                prop_assert!(assembly.partials.len() <= MAX_PARTIAL_MESSAGES);
            }
        }
    }
}
