//! Fuzzes the emulator with arbitrary application output (split at a
//! fuzzer-chosen point, with a resize in between) and checks that the
//! display differ's output replays to the same screen, toward our own
//! client and (as stock holds it) toward a stock one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mosh_term::{Display, Emulator};

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let w = usize::from(shape & 0x1f) + 1;
    let h = usize::from(shape >> 5) + 1;
    let split = rest.len() / 2;
    let mut emu = Emulator::new(w, h);
    emu.feed(&rest[..split]);
    let a = emu.framebuffer().clone();
    emu.resize(h + 3, w);
    emu.feed(&rest[split..]);
    let b = emu.framebuffer().clone();
    let _ = emu.take_replies();
    for (initialized, attributes) in [(true, false), (false, false), (true, true), (false, true)] {
        let bytes = Display::server()
            .with_attributes(attributes)
            .new_frame(initialized, &a, &b);
        // Toward a stock peer the client holds, and gets, what stock can.
        let (a, b) = if attributes {
            (a.clone(), b.clone())
        } else {
            (a.to_stock(), b.to_stock())
        };
        let mut replay = Emulator::from_framebuffer(a.replica());
        replay.resize(b.width(), b.height());
        replay.feed(&bytes);
        assert!(replay.framebuffer().same_picture(&b));
        assert!(!replay.has_replies());
    }
});
