//! Arbitrary input never panics, keeps the framebuffer consistent and
//! bounded (hyperlinks included: within their length limits, printable, at
//! most `MAX_LINKS` on a screen), and any two reachable screens still
//! round-trip through the display differ.

mod common;

use std::collections::HashSet;

use mosh_term::framebuffer::{
    CELL_BYTES, MAX_CLIPBOARD_BYTES, MAX_LINK_ID_BYTES, MAX_LINK_URI_BYTES, MAX_LINKS,
    MAX_TITLE_CHARS,
};
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
    let mut links = HashSet::new();
    for row in fb.rows() {
        let cells = row.cells();
        prop_assert_eq!(cells.len(), w);
        for (x, c) in cells.iter().enumerate() {
            prop_assert!(c.contents().len() <= CELL_BYTES);
            if !c.rend.link.is_none() {
                let link = fb.hyperlink(c.rend.link);
                prop_assert!(link.is_some(), "a cell names a link the table lacks");
                let link = link.unwrap();
                let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
                prop_assert!(!link.uri.is_empty() && link.uri.len() <= MAX_LINK_URI_BYTES);
                prop_assert!(link.id.len() <= MAX_LINK_ID_BYTES);
                prop_assert!(printable(&link.uri) && printable(&link.id));
                links.insert(link.clone());
            }
            if c.wide {
                prop_assert!(x + 1 < w && cells[x + 1].spacer, "wide cell without spacer");
            }
            if c.spacer {
                prop_assert!(x > 0 && cells[x - 1].wide, "orphan spacer");
            }
        }
    }
    prop_assert!(links.len() <= MAX_LINKS, "{} links on screen", links.len());
    Ok(())
}

/// OSC 8 sequences with ids and URIs around and beyond the length limits,
/// printable or not, followed by some text.
fn hyperlink_writes() -> impl Strategy<Value = Vec<u8>> {
    let part = |max: usize| {
        prop_oneof![
            4 => (0..max).prop_map(|n| b"u".repeat(n)),
            1 => prop::collection::vec(any::<u8>(), 0..40),
            1 => (0u32..100_000).prop_map(|n| format!("http://e.com/{n}").into_bytes()),
        ]
    };
    prop::collection::vec(
        (
            part(MAX_LINK_ID_BYTES + 20),
            part(MAX_LINK_URI_BYTES + 20),
            prop::sample::select(vec![
                "x",
                "yy",
                "\r\n",
                "\x1b[2J",
                "\x1b[H",
                "",
                "\x1b[?1049h",
            ]),
            any::<bool>(),
        )
            .prop_map(|(id, uri, text, st)| {
                let mut out = b"\x1b]8;".to_vec();
                if !id.is_empty() {
                    out.extend_from_slice(b"id=");
                    out.extend_from_slice(&id);
                }
                out.push(b';');
                out.extend_from_slice(&uri);
                out.extend_from_slice(if st { b"\x1b\\" } else { b"\x07" });
                out.extend_from_slice(text.as_bytes());
                out
            }),
        0..40,
    )
    .prop_map(|writes| writes.concat())
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

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(48), .. ProptestConfig::default() })]

    /// Hyperlinks stay within their limits whatever arrives, on a screen
    /// wide enough to hold more than [`MAX_LINKS`] of them.
    #[test]
    fn hyperlinks_stay_bounded(first in hyperlink_writes(), second in hyperlink_writes()) {
        let mut emu = Emulator::new(MAX_LINKS + 100, 3);
        let distinct: Vec<u8> = (0..MAX_LINKS + 50)
            .flat_map(|i| format!("\x1b]8;;http://e.com/{i}\x1b\\z").into_bytes())
            .collect();
        emu.feed(&distinct);
        check_invariants(emu.framebuffer())?;
        emu.feed(&first);
        check_invariants(emu.framebuffer())?;
        let a = emu.framebuffer().clone();
        emu.feed(&second);
        check_invariants(emu.framebuffer())?;
        let b = emu.framebuffer().clone();
        let bytes = Display::server().with_attributes(true).new_frame(true, &a, &b);
        let mut replay = Emulator::from_framebuffer(a.replica());
        replay.feed(&bytes);
        prop_assert!(replay.framebuffer().same_picture(&b));
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
