//! A sequence of fragments (split from the input at 0xFF 0xFE markers) fed to
//! one assembly: bounds must hold and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mosh_proto::fragment::{
    self, Fragment, FragmentAssembly, MAX_MESSAGE_LEN, MAX_PARTIAL_MESSAGES,
};

fuzz_target!(|data: &[u8]| {
    let mut assembly = FragmentAssembly::default();
    for payload in data.split(|&b| b == 0xFF) {
        if let Ok(fragment) = Fragment::parse(payload)
            && let Ok(Some(message)) = assembly.add(fragment)
        {
            let _ = fragment::decompress(&message);
        }
        assert!(assembly.held_bytes() <= MAX_PARTIAL_MESSAGES * MAX_MESSAGE_LEN);
    }
});
