//! The display differ's output for the updates the spec shows captured from
//! stock mosh-server, and its size for small changes.

use mosh_term::{Display, Emulator};

fn after(emu: &mut Emulator, bytes: &[u8]) -> (mosh_term::Framebuffer, mosh_term::Framebuffer) {
    let a = emu.framebuffer().clone();
    emu.feed(bytes);
    (a, emu.framebuffer().clone())
}

fn diff(a: &mosh_term::Framebuffer, b: &mosh_term::Framebuffer) -> String {
    String::from_utf8(Display::server().new_frame(true, a, b)).unwrap()
}

#[test]
fn typing_is_sent_as_text() {
    let mut emu = Emulator::new(80, 24);
    emu.feed(b"# ");
    let (a, b) = after(&mut emu, b"echo hi");
    assert_eq!(diff(&a, &b), "echo hi");
}

#[test]
fn enter_matches_stock_output() {
    let mut emu = Emulator::new(80, 24);
    emu.feed(b"# echo hi");
    let (a, b) = after(&mut emu, b"\r\nhi\r\n# ");
    assert_eq!(diff(&a, &b), "\x1b[?25l\r\nhi\r\n# \x1b[?25h");
}

#[test]
fn resize_repaints_like_stock() {
    let mut emu = Emulator::new(80, 24);
    let a = emu.framebuffer().clone();
    emu.resize(40, 10);
    let b = emu.framebuffer().clone();
    let mut expected = String::from("\x1b[r\x1b[0m\x1b[H\x1b[2J\x1b[?25l\x1b[K");
    for _ in 1..10 {
        expected.push_str("\n\x1b[K");
    }
    expected.push_str(
        "\x1b[1;1H\x1b[?25h\x1b[0m\x1b[?2004l\x1b[?1003l\x1b[?1002l\x1b[?1001l\x1b[?1000l\x1b[?1004l\x1b[?1015l\x1b[?1006l\x1b[?1005l",
    );
    assert_eq!(diff(&a, &b), expected);
}

#[test]
fn unchanged_screen_gives_nothing() {
    let mut emu = Emulator::new(80, 24);
    emu.feed(b"\x1b[1;31mhello\x1b[0m world\r\n");
    let a = emu.framebuffer().clone();
    assert_eq!(diff(&a, &a), "");
}

#[test]
fn one_cell_change_is_small() {
    let mut emu = Emulator::new(80, 24);
    for i in 0..24 {
        emu.feed(format!("line {i} with some text on it\r\n").as_bytes());
    }
    let (a, b) = after(&mut emu, b"\x1b[5;10HX\x1b[24;1H");
    let out = diff(&a, &b);
    assert_eq!(out, "\x1b[?25l\x1b[5;10HX\x1b[24;1H\x1b[?25h");
    assert!(out.contains('X'));
}

#[test]
fn scrolling_uses_line_feeds() {
    let mut emu = Emulator::new(80, 24);
    for i in 0..30 {
        emu.feed(format!("\r\nline {i}").as_bytes());
    }
    let (a, b) = after(&mut emu, b"\r\nnext line");
    let out = diff(&a, &b);
    assert!(out.len() < 40, "{out:?} should scroll, not repaint");
    assert!(out.contains("next line"));
}

#[test]
fn colours_only_where_needed() {
    let mut emu = Emulator::new(80, 24);
    let (a, b) = after(&mut emu, b"\x1b[1;38;5;200;48;2;1;2;3mab\x1b[0mc");
    assert_eq!(diff(&a, &b), "\x1b[0;1;38;5;200;48;2;1;2;3mab\x1b[0mc");
}

#[test]
fn title_bell_clipboard_and_modes() {
    let mut emu = Emulator::new(80, 24);
    let (a, b) = after(
        &mut emu,
        b"\x07\x07\x1b]0;t\x07\x1b]52;c;eA==\x07\x1b[?2004h\x1b[?1002h\x1b[?1006h\x1b[?1004h\x1b[?25l",
    );
    assert_eq!(
        diff(&a, &b),
        "\x07\x1b]0;t\x07\x1b]52;c;eA==\x07\x1b[?25l\x1b[?2004h\x1b[?1002h\x1b[?1004h\x1b[?1006h"
    );
    let (a, b) = after(&mut emu, b"\x1b]1;i\x07\x1b[?1003h\x1b[?1006l");
    assert_eq!(
        diff(&a, &b),
        "\x1b]1;i\x07\x1b]2;t\x07\x1b[?1002l\x1b[?1003h\x1b[?1015l\x1b[?1006l\x1b[?1005l"
    );
}
