//! The few terminfo capabilities the client needs, read from the compiled
//! entry of `$TERM` with the `termini` crate: background colour erase
//! (`bce`), erase characters (`ech`), the alternate screen
//! (`smcup`/`rmcup`) and `colors`.

use termini::{BoolCapability, NumberCapability, StringCapability, TermInfo};

/// What a terminal type can do, as far as the client cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminfo {
    /// Erasing fills with the current background colour.
    pub bce: bool,
    /// `CSI n X` is available.
    pub ech: bool,
    /// Number of colours, if given.
    pub colors: Option<i32>,
    /// Enter the alternate screen.
    pub smcup: Option<Vec<u8>>,
    /// Leave it.
    pub rmcup: Option<Vec<u8>>,
}

impl Terminfo {
    /// Finds and reads the entry for `term` in the usual places
    /// (`$TERMINFO` or `~/.terminfo`, `$TERMINFO_DIRS`, the system
    /// directories); `None` when there is none or it is malformed.
    pub fn load(term: &str) -> Option<Terminfo> {
        if term.is_empty() || term.contains('/') || term.starts_with('.') {
            return None;
        }
        TermInfo::from_name(term)
            .ok()
            .map(|info| Terminfo::from(&info))
    }

    /// Parses a compiled terminfo entry; `None` when it is malformed.
    pub fn parse(bytes: &[u8]) -> Option<Terminfo> {
        TermInfo::parse(bytes)
            .ok()
            .map(|info| Terminfo::from(&info))
    }
}

impl From<&TermInfo> for Terminfo {
    fn from(info: &TermInfo) -> Terminfo {
        let string = |cap| info.raw_string_cap(cap).map(strip_padding);
        Terminfo {
            bce: info.flag_cap(BoolCapability::BackColorErase),
            ech: info.raw_string_cap(StringCapability::EraseChars).is_some(),
            colors: info
                .number_cap(NumberCapability::MaxColors)
                .filter(|&colors| colors >= 0),
            smcup: string(StringCapability::EnterAlternativeMode),
            rmcup: string(StringCapability::ExitAlternativeMode),
        }
    }
}

/// Removes `$<...>` padding specifications.
fn strip_padding(capability: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(capability.len());
    let mut i = 0;
    while i < capability.len() {
        if capability[i..].starts_with(b"$<")
            && let Some(end) = capability[i..].iter().position(|&c| c == b'>')
        {
            i += end + 1;
            continue;
        }
        out.push(capability[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index of `bce` among the boolean capabilities.
    const BCE: usize = 28;
    /// Index of `colors` among the numeric capabilities.
    const COLORS: usize = 13;
    /// Index of `smcup` among the string capabilities.
    const SMCUP: usize = 28;
    /// Index of `ech` among the string capabilities.
    const ECH: usize = 37;
    /// Index of `rmcup` among the string capabilities.
    const RMCUP: usize = 40;
    /// Magic number of the format with 16-bit numbers.
    const MAGIC_16: i16 = 0o432;
    /// Magic number of the format with 32-bit numbers.
    const MAGIC_32: i16 = 0o1036;

    /// A compiled entry with the given capabilities set.
    fn entry(magic: i16, bce: bool, colors: i32, strings: &[(usize, &[u8])]) -> Vec<u8> {
        let names = b"test|a test terminal\0";
        let booleans: Vec<u8> = (0..=BCE).map(|i| u8::from(i == BCE && bce)).collect();
        let number_size = if magic == MAGIC_32 { 4 } else { 2 };
        let string_count = RMCUP + 1;
        let mut table = Vec::new();
        let mut offsets = vec![-1i16; string_count];
        for &(index, value) in strings {
            offsets[index] = table.len() as i16;
            table.extend_from_slice(value);
            table.push(0);
        }
        let mut out = Vec::new();
        for value in [
            magic,
            names.len() as i16,
            booleans.len() as i16,
            (COLORS + 1) as i16,
            string_count as i16,
            table.len() as i16,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(names);
        out.extend_from_slice(&booleans);
        if out.len() % 2 == 1 {
            out.push(0);
        }
        for i in 0..=COLORS {
            let value = if i == COLORS { colors } else { -1 };
            if number_size == 2 {
                out.extend_from_slice(&(value as i16).to_le_bytes());
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        for offset in offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&table);
        out
    }

    #[test]
    fn reads_both_formats() {
        let xterm = entry(
            MAGIC_32,
            true,
            256,
            &[
                (SMCUP, b"\x1b[?1049h\x1b[22;0;0t"),
                (ECH, b"\x1b[%p1%dX"),
                (RMCUP, b"\x1b[?1049l$<5>\x1b[23;0;0t"),
            ],
        );
        let parsed = Terminfo::parse(&xterm).unwrap();
        assert_eq!(
            parsed,
            Terminfo {
                bce: true,
                ech: true,
                colors: Some(256),
                smcup: Some(b"\x1b[?1049h\x1b[22;0;0t".to_vec()),
                rmcup: Some(b"\x1b[?1049l\x1b[23;0;0t".to_vec()),
            }
        );
        let plain = Terminfo::parse(&entry(MAGIC_16, false, 8, &[])).unwrap();
        assert_eq!(plain.colors, Some(8));
        assert!(!plain.bce && !plain.ech && plain.smcup.is_none());
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Terminfo::parse(b""), None);
        assert_eq!(Terminfo::parse(b"\x1a\x01\xff\x7f"), None);
        let mut truncated = entry(MAGIC_32, true, 256, &[(SMCUP, b"x")]);
        truncated.truncate(truncated.len() - 3);
        assert_eq!(Terminfo::parse(&truncated), None);
        let mut out_of_range = entry(MAGIC_16, false, 8, &[(SMCUP, b"x")]);
        let smcup_offset = out_of_range.len() - 2 - 2 * (RMCUP + 1 - SMCUP);
        out_of_range[smcup_offset..smcup_offset + 2].copy_from_slice(&100i16.to_le_bytes());
        assert_eq!(Terminfo::parse(&out_of_range), None);
        assert_eq!(Terminfo::load("../etc/passwd"), None);
    }
}
