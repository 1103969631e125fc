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

use flate2::{Compress, Compression, FlushCompress, Status};
use miniz_oxide::inflate::{self, TINFLStatus, core::DecompressorOxide, core::inflate_flags};

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
    /// zlib's default level, the one mosh uses.
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

/// Instructions up to this many bytes are sent as one stored (uncompressed)
/// deflate block in a zlib stream, which every inflater takes. Deflating
/// them saves a few bytes at most (a 22-byte acknowledgement deflates to
/// 30 bytes, stored it takes 33), while resetting the deflater for each one
/// costs clearing about 290 KB of its tables: most of an idle session's CPU.
pub const STORED_UP_TO: usize = 128;

/// One connection's zlib compressor, kept from one instruction to the next
/// (each still a zlib stream of its own, byte for byte what a fresh
/// compressor makes): its state is allocated once, at the first
/// instruction over [`STORED_UP_TO`] bytes, instead of for every datagram;
/// smaller ones never touch it.
#[derive(Debug, Default)]
pub struct Compressor {
    state: Option<(Effort, Compress)>,
}

impl Compressor {
    /// zlib-compresses `encoded` with `effort` (a compressor is made anew
    /// only when the effort changes, which a session does once at most).
    pub fn compress(&mut self, encoded: &[u8], effort: Effort) -> Vec<u8> {
        if encoded.len() <= STORED_UP_TO {
            return stored(encoded);
        }
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

/// `data` (at most [`STORED_UP_TO`] bytes) as a zlib stream (RFC 1950) of
/// one final stored deflate block (RFC 1951, 3.2.4).
fn stored(data: &[u8]) -> Vec<u8> {
    /// Deflate with a 32 KiB window, no dictionary, fastest level; a
    /// multiple of 31 as RFC 1950 asks.
    const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];
    /// BFINAL set, BTYPE 00 (stored).
    const FINAL_STORED_BLOCK: u8 = 0x01;
    let len = u16::try_from(data.len()).expect("a stored instruction fits one block");
    let mut out = Vec::with_capacity(data.len() + 11);
    out.extend_from_slice(&ZLIB_HEADER);
    out.push(FINAL_STORED_BLOCK);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&adler2::adler32_slice(data).to_be_bytes());
    out
}

/// One connection's zlib decompressor, kept from one instruction to the
/// next like [`Compressor`]. It inflates straight into the instruction's
/// buffer, so starting an instruction clears no window: a back-reference
/// past what this instruction produced is refused, not served from an
/// earlier one.
#[derive(Default)]
pub struct Decompressor {
    state: Option<Box<DecompressorOxide>>,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("kept", &self.state.is_some())
            .finish()
    }
}

impl Decompressor {
    /// Inflates an assembled instruction, refusing anything past
    /// [`MAX_INFLATED_LEN`], a stream cut short and anything not zlib.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, FragmentError> {
        const FLAGS: u32 = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
            | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32
            | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        let state = self.state.get_or_insert_with(Box::default);
        state.init();
        let mut out = vec![
            0;
            compressed
                .len()
                .saturating_mul(4)
                .clamp(64, MAX_INFLATED_LEN + 1)
        ];
        let (mut read, mut written) = (0, 0);
        loop {
            let (status, took, gave) =
                inflate::core::decompress(state, &compressed[read..], &mut out, written, FLAGS);
            read += took;
            written += gave;
            match status {
                TINFLStatus::Done => {
                    if written > MAX_INFLATED_LEN {
                        return Err(FragmentError::InflatesTooFar);
                    }
                    out.truncate(written);
                    return Ok(out);
                }
                TINFLStatus::HasMoreOutput if out.len() > MAX_INFLATED_LEN => {
                    return Err(FragmentError::InflatesTooFar);
                }
                TINFLStatus::HasMoreOutput => {
                    let grown = out.len().saturating_mul(2).min(MAX_INFLATED_LEN + 1);
                    out.resize(grown, 0);
                }
                _ => return Err(FragmentError::Corrupt),
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
    use std::io::Read;

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
    fn larger_instructions_are_deflated_and_stock_streams_inflate() {
        let inflated = b"mosh$ echo hello\r\nhello\r\n".repeat(8);
        assert!(inflated.len() > STORED_UP_TO);
        let ours = compress(&inflated);
        assert!(ours.len() < inflated.len() / 4, "{} bytes", ours.len());
        let mut by_flate2 = Vec::new();
        flate2::read::ZlibDecoder::new(&ours[..])
            .read_to_end(&mut by_flate2)
            .unwrap();
        assert_eq!(by_flate2, inflated);
        // zlib 1.2.13's compress2 at level 6, which stock mosh calls.
        let stock = [
            0x78, 0x9c, 0xcb, 0xcd, 0x2f, 0xce, 0x50, 0x51, 0x48, 0x4d, 0xce, 0xc8, 0x57, 0xc8,
            0x48, 0xcd, 0xc9, 0xc9, 0xe7, 0xe5, 0x82, 0x52, 0xb9, 0x43, 0x4b, 0x02, 0x00, 0x8e,
            0x2f, 0x40, 0x81,
        ];
        assert_eq!(decompress(&stock).unwrap(), inflated);
    }

    #[test]
    fn small_instructions_are_stored_without_touching_the_deflater() {
        let acknowledgement = [
            0x08, 0x02, 0x10, 0x00, 0x18, 0x01, 0x20, 0x00, 0x28, 0x00, 0x32, 0x08, 0x0a, 0x06,
            0x1a, 0x04, 0x28, 0x50, 0x30, 0x18, 0x3a, 0x00,
        ];
        let largest = [0xa5; STORED_UP_TO];
        let mut compressor = Compressor::default();
        for input in [&b""[..], &acknowledgement, &largest] {
            for effort in [Effort::Stock, Effort::Fast] {
                let stream = compressor.compress(input, effort);
                assert_eq!(stream.len(), input.len() + 11);
                assert_eq!(stream[..3], [0x78, 0x01, 0x01]);
                let mut inflated = Vec::new();
                flate2::read::ZlibDecoder::new(&stream[..])
                    .read_to_end(&mut inflated)
                    .expect("any inflater takes a stored stream");
                assert_eq!(inflated, input);
                assert_eq!(decompress(&stream).unwrap(), input);
            }
        }
        assert!(
            compressor.state.is_none(),
            "a small instruction made a deflater"
        );
        compressor.compress(&[0xa5; STORED_UP_TO + 1], Effort::Stock);
        assert!(compressor.state.is_some());
    }

    #[test]
    fn a_back_reference_before_the_instruction_is_refused_even_after_that_text() {
        let text = b"hello world, hello mosh";
        // `text` deflated against itself as a preset dictionary, in a zlib
        // stream that declares none: every match reaches before its start.
        let too_far_back = [
            0x78, 0x9c, 0xcb, 0xc0, 0x2e, 0x0c, 0x00, 0x67, 0x51, 0x08, 0x94,
        ];
        let mut decompressor = Decompressor::default();
        assert_eq!(decompressor.decompress(&compress(text)).unwrap(), text);
        assert_eq!(
            decompressor.decompress(&too_far_back),
            Err(FragmentError::Corrupt)
        );
        assert_eq!(decompressor.decompress(&compress(text)).unwrap(), text);
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
