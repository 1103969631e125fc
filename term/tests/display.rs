//! The display differ's output for the updates the spec shows captured from
//! stock mosh-server, and its size for small changes.

mod common;

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

/// Records anything in a byte stream that stock mosh's emulator would not
/// understand or would answer.
#[derive(Default)]
struct ConstructCheck {
    problems: Vec<String>,
}

impl vte::Perform for ConstructCheck {
    fn execute(&mut self, byte: u8) {
        if ![0x07, 0x08, 0x0a, 0x0d].contains(&byte) {
            self.problems.push(format!("control {byte:#04x}"));
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        _ignore: bool,
        action: char,
    ) {
        let p: Vec<u16> = params.iter().map(|p| p[0]).collect();
        let ok = match (intermediates, action) {
            ([], 'H' | 'm' | 'r') => true,
            ([], 'K') => p.is_empty() || p == [0],
            ([], 'X') => p.len() == 1 && p[0] > 4,
            ([], 'J') => p == [2],
            ([b'?'], 'h' | 'l') => {
                p.len() == 1
                    && [
                        5, 25, 2004, 9, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015,
                    ]
                    .contains(&p[0])
            }
            _ => false,
        };
        if !ok {
            self.problems
                .push(format!("CSI {intermediates:?} {p:?} {action}"));
        }
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        self.problems
            .push(format!("ESC {intermediates:?} {}", byte as char));
    }

    fn osc_dispatch(&mut self, params: &[&[u8]], bell_terminated: bool) {
        let ok = bell_terminated && matches!(params.first(), Some(&(b"0" | b"1" | b"2" | b"52")));
        if !ok {
            self.problems.push(format!("OSC {:?}", params.first()));
        }
    }

    fn hook(&mut self, _params: &vte::Params, _intermediates: &[u8], _ignore: bool, _action: char) {
        self.problems.push("DCS".into());
    }
}

/// Over whole sessions of the corpus, the differ emits only what spec §12.3
/// lists (plus faint inside SGR).
#[test]
fn differ_emits_only_stock_constructs() {
    for file in common::corpus_files() {
        let bytes = std::fs::read(&file).expect("read corpus file");
        for (w, h) in [(80, 24), (31, 9)] {
            let mut server = Emulator::new(w, h);
            let mut shown = server.framebuffer().clone();
            let mut stream = Display::server().new_frame(false, &shown, &shown);
            for piece in bytes.chunks(61) {
                server.feed(piece);
                let now = server.framebuffer().clone();
                stream.extend(Display::server().new_frame(true, &shown, &now));
                shown = now;
            }
            let mut check = ConstructCheck::default();
            vte::Parser::<65536>::default().advance(&mut check, &stream);
            assert!(
                check.problems.is_empty(),
                "{} at {w}x{h}: {:?}",
                file.display(),
                check.problems
            );
        }
    }
}
