//! Arbitrary input never panics, keeps the framebuffer consistent and
//! bounded, and any two reachable screens still round-trip through the
//! display differ.

mod common;

use mosh_term::framebuffer::{CELL_BYTES, MAX_CLIPBOARD_BYTES, MAX_TITLE_CHARS};
use mosh_term::{Display, Emulator, Framebuffer};
use proptest::prelude::*;

/// Bytes biased towards escape-sequence material.
fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"\x1b[;?0123456789mHJKLMPX@ABCDrhlSTdGfgIZcnpbsu\x07\x08\t\n\r]P\\_^ #78EMc=>".to_vec()),
            2 => any::<u8>(),
            1 => prop::sample::select(vec![0xe6, 0xbc, 0xa2, 0xcc, 0x81, 0xf0, 0x9f, 0x98, 0x80, 0xc2, 0x9b]),
        ],
        0..400,
    )
}

fn check_invariants(fb: &Framebuffer) -> Result<(), TestCaseError> {
    let (w, h) = (fb.width(), fb.height());
    prop_assert_eq!(fb.rows().len(), h);
    prop_assert!(fb.ds.cursor_row < h && fb.ds.cursor_col < w);
    prop_assert!(fb.ds.scroll_top <= fb.ds.scroll_bottom && fb.ds.scroll_bottom < h);
    prop_assert_eq!(fb.ds.tabs.len(), w);
    prop_assert!(fb.title().chars().count() <= MAX_TITLE_CHARS);
    prop_assert!(fb.icon_name().chars().count() <= MAX_TITLE_CHARS);
    prop_assert!(fb.clipboard().len() <= MAX_CLIPBOARD_BYTES);
    for row in fb.rows() {
        let cells = row.cells();
        prop_assert_eq!(cells.len(), w);
        for (x, c) in cells.iter().enumerate() {
            prop_assert!(c.contents().len() <= CELL_BYTES);
            if c.wide {
                prop_assert!(x + 1 < w && cells[x + 1].spacer, "wide cell without spacer");
            }
            if c.spacer {
                prop_assert!(x > 0 && cells[x - 1].wide, "orphan spacer");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(400), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_is_safe(
        chunks in prop::collection::vec((noisy_bytes(), 1usize..30, 1usize..12, any::<bool>()), 1..6),
    ) {
        let mut emu = Emulator::new(10, 5);
        for (bytes, w, h, resize) in &chunks {
            if *resize {
                emu.resize(*w, *h);
            }
            emu.feed(bytes);
            check_invariants(emu.framebuffer())?;
            prop_assert!(emu.take_replies().len() <= mosh_term::emulator::MAX_REPLY_BYTES);
        }
    }

    #[test]
    fn arbitrary_screens_round_trip(first in noisy_bytes(), second in noisy_bytes(), w in 1usize..20, h in 1usize..8) {
        let mut emu = Emulator::new(w, h);
        emu.feed(&first);
        let a = emu.framebuffer().clone();
        emu.feed(&second);
        let b = emu.framebuffer().clone();
        for (initialized, attributes) in [(true, false), (false, false), (true, true), (false, true)] {
            let display = Display::server().with_attributes(attributes);
            let bytes = display.new_frame(initialized, &a, &b);
            let (a, b) = if attributes { (a.clone(), b.clone()) } else { (a.to_stock(), b.to_stock()) };
            let mut replay = Emulator::from_framebuffer(a.replica());
            replay.feed(&bytes);
            prop_assert!(!replay.has_replies());
            prop_assert!(
                replay.framebuffer().same_picture(&b),
                "initialized={} attributes={} bytes={:?}", initialized, attributes, String::from_utf8_lossy(&bytes)
            );
        }
    }
}

#[test]
fn huge_sizes_and_tiny_sizes() {
    for (w, h) in [(1, 1), (1, 1000), (1000, 1), (2, 2)] {
        let mut emu = Emulator::new(w, h);
        emu.feed("漢字\u{301}abc\x1b[99L\x1b[99M\x1b[99@\x1b[99P\x1b[99S\x1b[99T\x1b[r\x1b[2;1r\x1bM\x1bD".as_bytes());
        assert_eq!(emu.framebuffer().width(), w);
        let blank = Framebuffer::new(w, h);
        let bytes = Display::server().new_frame(false, &blank, emu.framebuffer());
        let mut replay = Emulator::from_framebuffer(blank);
        replay.feed(&bytes);
        assert!(replay.framebuffer().same_picture(emu.framebuffer()));
    }
}
