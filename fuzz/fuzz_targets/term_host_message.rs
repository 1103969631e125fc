//! Fuzzes the untrusted side of the SSP states: applying arbitrary bytes as
//! a HostMessage diff to a terminal state, and as a UserMessage diff to a
//! user stream, must return errors rather than panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mosh_proto::State;
use mosh_term::{Complete, UserStream};

fuzz_target!(|data: &[u8]| {
    let mut term = Complete::new(80, 24);
    let _ = term.apply(data);
    let mut user = UserStream::new();
    let _ = user.apply(data);
});
