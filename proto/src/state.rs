//! What SSP synchronises: a value that can be diffed against an older copy of
//! itself and patched forward. The user input stream and the terminal each
//! implement [`State`].

/// A diff could not be applied; the instruction carrying it is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal counterparty input: {0}")]
pub struct StateError(pub String);

/// A synchronisable state.
pub trait State: Clone + PartialEq {
    /// Bytes that turn `older` into `self` when given to [`State::apply`].
    /// Empty when the two are equal.
    fn diff_from(&self, older: &Self) -> Vec<u8>;

    /// Applies a diff produced by `diff_from` on the peer. The input is
    /// untrusted (though authenticated): errors must be values, not panics.
    fn apply(&mut self, diff: &[u8]) -> Result<(), StateError>;

    /// Forgets the leading part that `prefix` shares with `self`, for states
    /// that grow without bound (the user stream). The default keeps
    /// everything.
    fn subtract(&mut self, prefix: &Self) {
        let _ = prefix;
    }
}
