//! `gen-widths`: writes `mosh-term`'s character width table
//! (`term/src/width_table.rs`) from the C library's `wcwidth` in the
//! `C.UTF-8` locale, the widths stock mosh and the programs in a session
//! use. The table is checked in; the e2e tests compare it with the C
//! library for every code point.

use std::ffi::{CStr, c_int};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The highest Unicode code point; the table covers U+0000 to it.
const MAX_CODE_POINT: u32 = 0x10_FFFF;

/// The locale whose widths the table holds.
const LOCALE: &CStr = c"C.UTF-8";

unsafe extern "C" {
    /// The C library's `wcwidth(3)`: the columns a wide character takes in
    /// the current locale, or -1 when it is not printable.
    fn wcwidth(c: libc::wchar_t) -> c_int;
}

/// What went wrong generating the table.
#[derive(Debug, thiserror::Error)]
pub enum GenWidthsError {
    /// `setlocale(LC_ALL, "C.UTF-8")` failed: the C library has no such locale.
    #[error("the C library cannot set the C.UTF-8 locale (setlocale(LC_ALL, \"C.UTF-8\") failed)")]
    Locale,
    /// More than 256 distinct blocks: their indices no longer fit in a byte.
    #[error("the widths need more than 256 distinct blocks of 256 code points")]
    TooManyBlocks,
    /// `wcwidth` gave a width other than -1, 0, 1 or 2.
    #[error("wcwidth(U+{code_point:04X}) is {width}, not -1, 0, 1 or 2")]
    UnexpectedWidth {
        /// The code point measured.
        code_point: u32,
        /// What `wcwidth` returned.
        width: c_int,
    },
    /// The table could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The table's path.
        path: PathBuf,
        /// Why writing failed.
        source: io::Error,
    },
}

/// Code points per block of the table.
const BLOCK: usize = 256;

/// Bytes per block: four 2-bit widths a byte.
const BLOCK_BYTES: usize = BLOCK / 4;

/// Measures every code point with the C library and writes the table to
/// `path`; returns the number of distinct blocks written.
pub fn gen_widths(path: &Path) -> Result<usize, GenWidthsError> {
    let table = Table::new(&c_library_widths()?)?;
    fs::write(path, table.render(&libc_version())).map_err(|source| GenWidthsError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(table.blocks.len())
}

/// `wcwidth` of every code point from U+0000 to U+10FFFF under
/// `setlocale(LC_ALL, "C.UTF-8")`, each as a 2-bit code: 0 for -1 (not
/// printable), else the width plus one.
fn c_library_widths() -> Result<Vec<u8>, GenWidthsError> {
    // SAFETY: xtask runs this on its only thread, so no other code reads the
    // locale while it changes; LOCALE is a NUL-terminated string.
    let set = unsafe { libc::setlocale(libc::LC_ALL, LOCALE.as_ptr()) };
    if set.is_null() {
        return Err(GenWidthsError::Locale);
    }
    (0..=MAX_CODE_POINT)
        .map(|code_point| {
            let wide = libc::wchar_t::try_from(code_point).expect("code points fit in wchar_t");
            // SAFETY: wcwidth reads only its argument and the locale set above.
            let width = unsafe { wcwidth(wide) };
            match width {
                -1..=2 => Ok(u8::try_from(width + 1).expect("0..=3 fits in u8")),
                _ => Err(GenWidthsError::UnexpectedWidth { code_point, width }),
            }
        })
        .collect()
}

/// The C library's name and version, e.g. "GNU C Library 2.36".
fn libc_version() -> String {
    // SAFETY: gnu_get_libc_version takes nothing and returns a pointer to a
    // static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(libc::gnu_get_libc_version()) };
    format!("GNU C Library {}", version.to_string_lossy())
}

/// A two-level table: the code points in blocks of 256, each block's
/// 2-bit codes packed four a byte (lowest code point in the lowest bits),
/// equal blocks stored once.
#[derive(Debug, PartialEq)]
struct Table {
    /// Which of `blocks` holds each block of code points.
    block_of: Vec<u8>,
    /// The distinct blocks.
    blocks: Vec<[u8; BLOCK_BYTES]>,
}

impl Table {
    /// Packs `codes` (one per code point from U+0000, a whole number of
    /// blocks).
    fn new(codes: &[u8]) -> Result<Table, GenWidthsError> {
        let mut table = Table {
            block_of: Vec::new(),
            blocks: Vec::new(),
        };
        for chunk in codes.chunks(BLOCK) {
            let mut block = [0; BLOCK_BYTES];
            for (i, code) in chunk.iter().enumerate() {
                block[i / 4] |= code << ((i % 4) * 2);
            }
            let index = match table.blocks.iter().position(|b| *b == block) {
                Some(index) => index,
                None => {
                    table.blocks.push(block);
                    table.blocks.len() - 1
                }
            };
            let index = u8::try_from(index).map_err(|_| GenWidthsError::TooManyBlocks)?;
            table.block_of.push(index);
        }
        Ok(table)
    }

    /// The Rust source of the table.
    fn render(&self, libc: &str) -> String {
        let mut out = format!(
            "//! Character widths of the C library: `wcwidth` of every code point from\n\
             //! U+0000 to U+10FFFF (surrogates included) under\n\
             //! `setlocale(LC_ALL, \"C.UTF-8\")`, from {libc}.\n\
             //!\n\
             //! Generated by `cargo run -p xtask -- gen-widths term/src/width_table.rs`;\n\
             //! do not edit. `tests/tests/widths.rs` compares it with the C library.\n\
             \n\
             /// Which of [`BLOCKS`] holds the widths of code points `256 * i` to\n\
             /// `256 * i + 255`.\n\
             #[rustfmt::skip]\n\
             pub(crate) static BLOCK_OF: [u8; {}] = [\n",
            self.block_of.len()
        );
        for line in self.block_of.chunks(16) {
            let items: Vec<String> = line.iter().map(|b| format!("{b:3}")).collect();
            let _ = writeln!(out, "    {},", items.join(", "));
        }
        let _ = write!(
            out,
            "];\n\
             \n\
             /// Blocks of 256 widths, 2 bits each, four a byte (the lowest code point\n\
             /// in the lowest bits): 0 where `wcwidth` returns -1 (not printable), else\n\
             /// the width plus one.\n\
             #[rustfmt::skip]\n\
             pub(crate) static BLOCKS: [[u8; {BLOCK_BYTES}]; {}] = [\n",
            self.blocks.len()
        );
        for block in &self.blocks {
            out.push_str("    [\n");
            for line in block.chunks(16) {
                let items: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
                let _ = writeln!(out, "        {},", items.join(", "));
            }
            out.push_str("    ],\n");
        }
        out.push_str("];\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_blocks_are_stored_once_and_codes_packed_low_bits_first() {
        let mut codes = vec![2; 3 * BLOCK];
        codes[BLOCK + 1] = 3;
        codes[BLOCK + 6] = 0;
        let table = Table::new(&codes).unwrap();
        assert_eq!(table.block_of, [0, 1, 0]);
        assert_eq!(table.blocks[0], [0xaa; BLOCK_BYTES]);
        assert_eq!(table.blocks[1][..2], [0b1010_1110, 0b1000_1010]);
        assert_eq!(table.blocks[1][2..], [0xaa; BLOCK_BYTES - 2]);
        let source = table.render("GNU C Library 2.36");
        assert!(source.contains("from GNU C Library 2.36.\n"), "{source}");
        assert!(
            source.contains("pub(crate) static BLOCK_OF: [u8; 3] = [\n      0,   1,   0,\n];\n"),
            "{source}"
        );
        assert!(
            source.contains("static BLOCKS: [[u8; 64]; 2] = [\n    [\n        0xaa, 0xaa,"),
            "{source}"
        );
    }
}
