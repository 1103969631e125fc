//! The byte-level parser: a bounded `vte` state machine (UTF-8 decoding,
//! escape/CSI/OSC/DCS states) and helpers that turn its CSI parameter lists
//! into the numbers the emulator functions use.

/// Largest OSC string kept, in bytes; longer strings are truncated. Large
/// enough for a 64 KiB OSC 52 payload plus its prefix.
pub const MAX_OSC_BYTES: usize = crate::framebuffer::MAX_CLIPBOARD_BYTES + 16;

/// The parser type: `vte` with a fixed-size OSC buffer, so memory use does
/// not depend on the input.
pub type Parser = vte::Parser<MAX_OSC_BYTES>;

/// A fresh parser in the ground state, boxed (its OSC buffer is large).
pub fn new_parser() -> Box<Parser> {
    Box::default()
}

/// Most CSI parameters looked at; later ones are ignored.
const MAX_PARAMS: usize = 32;

/// CSI parameters flattened to plain numbers, 0 meaning missing.
#[derive(Debug, Clone, Copy)]
pub struct CsiParams {
    values: [u16; MAX_PARAMS],
    len: usize,
    has_subparams: bool,
}

impl CsiParams {
    /// Flattens `vte` parameters; sub-parameters (colon form) are noted and
    /// only their first value is kept.
    pub fn new(params: &vte::Params) -> CsiParams {
        let mut out = CsiParams {
            values: [0; MAX_PARAMS],
            len: 0,
            has_subparams: false,
        };
        for p in params.iter().take(MAX_PARAMS) {
            out.values[out.len] = p.first().copied().unwrap_or(0);
            out.has_subparams |= p.len() > 1;
            out.len += 1;
        }
        out
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any parameter used the colon sub-parameter form.
    pub fn has_subparams(&self) -> bool {
        self.has_subparams
    }

    /// Parameter `i` as given (0 when missing).
    pub fn raw(&self, i: usize) -> u16 {
        if i < self.len { self.values[i] } else { 0 }
    }

    /// Parameter `i`, or `default` when missing or zero.
    pub fn get(&self, i: usize, default: u16) -> u16 {
        match self.raw(i) {
            0 => default,
            v => v,
        }
    }

    /// The parameters as given.
    pub fn as_slice(&self) -> &[u16] {
        &self.values[..self.len]
    }
}
