//! Character widths: how many columns a character takes, exactly as the C
//! library's `wcwidth` says in a UTF-8 locale (glibc's, in `C.UTF-8`).
//!
//! Stock mosh measures every character with `wcwidth` at both ends, and so
//! do the programs running in the session, so both our ends (the emulator
//! and the client's prediction engine) use [`wcwidth`] and nothing else: a
//! screen then agrees cell for cell with what a stock peer and the
//! application think. The widths come from a table generated from the C
//! library (`cargo run -p xtask -- gen-widths term/src/width_table.rs`);
//! the e2e tests compare it with the C library for every code point.

use crate::width_table::{BLOCK_OF, BLOCKS};

/// The columns `code_point` takes, as the C library's `wcwidth` gives them
/// in the `C.UTF-8` locale: `Some(0)` for combining and other zero-width
/// characters, `Some(1)`, `Some(2)` for wide characters (CJK, most emoji),
/// and `None` where `wcwidth` returns -1: control characters, surrogates,
/// unassigned code points and anything above U+10FFFF.
///
/// A code point rather than a `char`, so that every value `wcwidth` can be
/// asked about (surrogates too) has an answer to compare.
///
/// ```
/// use mosh_term::width::wcwidth;
///
/// assert_eq!(wcwidth(u32::from('a')), Some(1));
/// assert_eq!(wcwidth(u32::from('\u{ad}')), Some(1)); // soft hyphen
/// assert_eq!(wcwidth(u32::from('\u{301}')), Some(0)); // combining acute
/// assert_eq!(wcwidth(u32::from('漢')), Some(2));
/// assert_eq!(wcwidth(0x1b), None);
/// ```
pub fn wcwidth(code_point: u32) -> Option<usize> {
    let block = BLOCK_OF.get((code_point >> 8) as usize)?;
    let low = (code_point & 0xff) as usize;
    let code = (BLOCKS[usize::from(*block)][low / 4] >> (low % 4 * 2)) & 0b11;
    usize::from(code).checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_code_point() {
        assert_eq!(BLOCK_OF.len() * 256, 0x11_0000);
        assert!(BLOCK_OF.iter().all(|&b| usize::from(b) < BLOCKS.len()));
    }

    #[test]
    fn latin_1_wide_and_combining_characters() {
        let width = |c: char| wcwidth(u32::from(c));
        // Every printable ISO 8859-1 character takes one column, the soft
        // hyphen included (unicode-width says 0).
        assert!(
            (' '..='~')
                .chain('\u{a0}'..='\u{ff}')
                .all(|c| width(c) == Some(1))
        );
        assert_eq!(width('\u{ad}'), Some(1));
        // Wide: CJK, kana, Hangul syllables, fullwidth forms, emoji; and the
        // Hangul tone marks and filler that unicode-width makes zero-width.
        for c in ['漢', 'か', '한', 'Ａ', '😀', '\u{302e}', '\u{3164}'] {
            assert_eq!(width(c), Some(2), "{c:?}");
        }
        // Zero-width: combining marks, Hangul medial vowels, zero-width
        // space and joiner, variation selectors.
        for c in [
            '\u{301}', '\u{308}', '\u{1160}', '\u{200b}', '\u{200d}', '\u{fe0f}',
        ] {
            assert_eq!(width(c), Some(0), "{c:?}");
        }
        // One column where unicode-width says 2 (symbols made wide in
        // recent Unicode) or 0.
        for c in ['\u{2630}', '\u{ffa0}', '\u{e000}'] {
            assert_eq!(width(c), Some(1), "{c:?}");
        }
    }

    #[test]
    fn controls_surrogates_and_unassigned_code_points_are_not_printable() {
        for code_point in [
            0x01, 0x1b, 0x7f, 0x85, 0x9f, 0xd800, 0xdfff, 0x0378, 0xfffe, 0x11_0000,
        ] {
            assert_eq!(wcwidth(code_point), None, "U+{code_point:04X}");
        }
        assert_eq!(wcwidth(0), Some(0));
        assert_eq!(wcwidth(u32::MAX), None);
    }
}
