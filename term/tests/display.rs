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

/// The diff toward our own client (extended attributes on).
fn diff_ours(a: &mosh_term::Framebuffer, b: &mosh_term::Framebuffer) -> String {
    String::from_utf8(
        Display::server()
            .with_attributes(true)
            .new_frame(true, a, b),
    )
    .unwrap()
}

#[test]
fn stock_peers_get_the_bytes_of_the_screen_without_extended_attributes() {
    let pairs: [(&[u8], &[u8]); 5] = [
        (b"\x1b[4;58;5;196mX\x1b[0m", b"\x1b[4mX\x1b[0m"),
        (b"\x1b[4:3;58;2;10;200;30mX\x1b[0m", b"\x1b[4mX\x1b[0m"),
        (b"\x1b[9;53mS\x1b[29;55mT", b"ST"),
        (b"\x1b[21;1mD\x1b[m", b"\x1b[4;1mD\x1b[m"),
        (
            b"\x1b]8;id=a;http://e.com/\x1b\\link\x1b]8;;\x1b\\ x",
            b"link x",
        ),
    ];
    for (extended, plain) in pairs {
        let mut with = Emulator::new(20, 3);
        let mut without = Emulator::new(20, 3);
        let (a1, b1) = after(&mut with, extended);
        let (a2, b2) = after(&mut without, plain);
        assert_eq!(
            diff(&a1, &b1),
            diff(&a2, &b2),
            "{:?}",
            String::from_utf8_lossy(extended)
        );
        let full = |a, b| Display::server().new_frame(false, a, b);
        assert_eq!(full(&a1, &b1), full(&a2, &b2));
        // The server's state diff toward a stock (or undecided) client.
        let state = |fb: &mosh_term::Framebuffer| mosh_term::Complete::from_framebuffer(fb.clone());
        use mosh_proto::State;
        assert_eq!(
            state(&b1).diff_from(&state(&a1)),
            state(&b2).diff_from(&state(&a2))
        );
        // And the emulator that replays it shows just the underline.
        let mut replay = Emulator::new(20, 3);
        replay.feed(&full(&a1, &b1));
        assert!(replay.framebuffer().same_picture(&b2));
    }
}

#[test]
fn our_client_gets_extended_sgr_with_colon_subparameters() {
    let mut emu = Emulator::new(30, 3);
    let (a, b) = after(
        &mut emu,
        b"\x1b[4:3;58;2;10;200;30mC\x1b[0;21;58;5;196mD\x1b[0;9;53;4mE\x1b[m",
    );
    assert_eq!(
        diff_ours(&a, &b),
        "\x1b[0;4:3;58:2::10:200:30mC\x1b[0;4:2;58:5:196mD\x1b[0;4;9;53mE\x1b[0m"
    );
}

#[test]
fn our_client_gets_osc8_around_exactly_the_linked_cells() {
    let mut emu = Emulator::new(30, 3);
    emu.feed(b"\x1b[2;1Hbelow");
    let (a, b) = after(
        &mut emu,
        b"\x1b[1;1Hpre \x1b]8;id=i;http://e.com/\x1b\\ab\x1b[1mc\x1b]8;;\x1b\\ post\x1b[3;1Hz",
    );
    assert_eq!(
        diff_ours(&a, &b),
        "\x1b[?25l\x1b[1;1Hpre \x1b]8;id=i;http://e.com/\x1b\\ab\x1b[0;1mc\x1b]8;;\x1b\\ post\r\n\nz\x1b[?25h"
    );
    // A link the application left open stays open across cursor moves
    // that print nothing, is closed before unlinked cells are printed and
    // opened again for linked ones.
    let mut emu = Emulator::new(30, 3);
    let (a, b) = after(&mut emu, b"\x1b]8;;http://e.com/\x1b\\ab\x1b[3;1H");
    let bytes = diff_ours(&a, &b);
    assert_eq!(
        bytes,
        "\x1b]8;;http://e.com/\x1b\\ab\x1b[?25l\r\n\n\x1b[?25h"
    );
    let (c, d) = after(&mut emu, b"x\x1b]8;;\x1b\\\x1b[1;5Hy");
    assert_eq!(
        diff_ours(&c, &d),
        "\x1b[?25l\x1b[1;5H\x1b]8;;\x1b\\y\r\n\n\x1b]8;;http://e.com/\x1b\\x\x1b[1;6H\x1b[?25h\
         \x1b]8;;\x1b\\"
    );
    let mut replay = Emulator::from_framebuffer(a.replica());
    replay.feed(bytes.as_bytes());
    replay.feed(diff_ours(&c, &d).as_bytes());
    let fb = replay.framebuffer();
    assert!(fb.same_picture(&d));
    let linked: Vec<bool> = (0..6)
        .map(|col| fb.hyperlink(fb.cell(0, col).rend.link).is_some())
        .collect();
    assert_eq!(linked, [true, true, false, false, false, false]);
    assert!(fb.hyperlink(fb.cell(2, 0).rend.link).is_some());
}

#[test]
fn a_link_changed_behind_the_same_id_is_redrawn() {
    // A full table forgets unused links and reuses their ids; the differ
    // compares links by what they name, not by id.
    let mut emu = Emulator::new(10, 1);
    emu.feed(b"\x1b]8;;http://e.com/1\x1b\\a\x1b]8;;\x1b\\");
    let a = emu.framebuffer().clone();
    let mut other = Emulator::new(10, 1);
    other.feed(b"\x1b]8;;http://e.com/2\x1b\\a\x1b]8;;\x1b\\");
    let b = other.framebuffer().clone();
    assert_eq!(a.cell(0, 0).rend.link, b.cell(0, 0).rend.link);
    assert_eq!(
        diff_ours(&a, &b),
        "\x1b[?25l\r\x1b]8;;http://e.com/2\x1b\\a\x1b[?25h\x1b]8;;\x1b\\"
    );
    assert_eq!(diff(&a, &b), "", "a stock peer sees no change");
}

#[test]
fn a_change_of_extensions_repaints_everything() {
    use mosh_proto::{ExtensionSet, State};
    use mosh_term::Complete;
    let mut emu = Emulator::new(20, 2);
    emu.feed(b"\x1b[9mstruck\x1b[m");
    let mut before = Complete::from_framebuffer(emu.framebuffer().clone());
    let same = before.clone();
    assert!(same.diff_from(&before).is_empty());
    let mut after = before.clone();
    after.set_extensions(ExtensionSet::all());
    let mut client = Complete::from_framebuffer(emu.framebuffer().to_stock().replica());
    client.apply(&after.diff_from(&before)).unwrap();
    assert!(client.framebuffer().same_picture(after.framebuffer()));
    before.set_extensions(ExtensionSet::all());
    assert!(after.diff_from(&before).is_empty());
}

#[test]
fn a_screen_of_new_links_after_a_full_table_still_reaches_the_client() {
    use mosh_term::framebuffer::MAX_LINKS;
    let mut emu = Emulator::new(MAX_LINKS + 10, 2);
    for i in 0..MAX_LINKS {
        emu.feed(format!("\x1b]8;;http://e.com/{i}\x1b\\z").as_bytes());
    }
    let (a, b) = after(
        &mut emu,
        b"\x1b]8;;\x1b\\\x1b[2J\x1b[H\x1b]8;;http://e.com/new\x1b\\x",
    );
    let mut replay = Emulator::from_framebuffer(a.replica());
    replay.feed(diff_ours(&a, &b).as_bytes());
    let fb = replay.framebuffer();
    assert_eq!(
        fb.hyperlink(fb.cell(0, 0).rend.link)
            .map(|l| l.uri.as_str()),
        Some("http://e.com/new"),
        "the client's table had room for the new link"
    );
    assert!(fb.same_picture(&b));
}

#[test]
fn a_link_open_across_frames_is_not_sent_again() {
    let mut emu = Emulator::new(30, 2);
    emu.feed(b"\x1b]8;id=k;http://e.com/k\x1b\\ab");
    let a = emu.framebuffer().clone();
    // Another link enters the table (so the two screens no longer share
    // it) while the first one is still open.
    emu.feed(b"cd\x1b]8;;http://e.com/other\x1b\\\x1b]8;id=k;http://e.com/k\x1b\\ef");
    let b = emu.framebuffer().clone();
    assert!(!a.shares_links(&b));
    assert_eq!(diff_ours(&a, &b), "cdef");
}

#[test]
fn an_open_link_is_closed_before_a_repaint_erases_the_screen() {
    let mut emu = Emulator::new(10, 2);
    emu.feed(b"\x1b]8;;http://e.com/\x1b\\ab");
    let a = emu.framebuffer().clone();
    emu.feed(b"\x1b]8;;\x1b\\c");
    let b = emu.framebuffer().clone();
    let ours = Display::server().with_attributes(true);
    let bytes = String::from_utf8(ours.new_frame(false, &a, &b)).unwrap();
    assert!(
        bytes.starts_with("\x1b[?5l\x1b]8;;\x1b\\\x1b[r\x1b[0m\x1b[H\x1b[2J"),
        "{bytes:?}"
    );
    let closed = String::from_utf8(ours.new_frame(false, &b, &b)).unwrap();
    assert!(
        closed.starts_with("\x1b[?5l\x1b[r\x1b[0m\x1b[H\x1b[2J"),
        "nothing open, nothing closed first: {closed:?}"
    );
}

#[test]
fn a_change_stock_cannot_show_is_no_new_state_for_a_stock_peer() {
    use mosh_proto::{ExtensionSet, State};
    use mosh_term::Complete;
    let mut emu = Emulator::new(20, 2);
    emu.feed(b"plain\x1b[1;1H");
    let before = emu.framebuffer().clone();
    emu.feed(b"\x1b[9;53mplain\x1b[1;1H\x1b]8;;http://e.com/\x1b\\\x1b]8;;\x1b\\\x1b[58;5;1m");
    let after = emu.framebuffer().clone();
    assert!(before != after);
    let stock = |fb: &mosh_term::Framebuffer| Complete::from_framebuffer(fb.clone());
    assert!(stock(&before) == stock(&after));
    assert!(stock(&after).diff_from(&stock(&before)).is_empty());
    let ours = |fb: &mosh_term::Framebuffer| {
        let mut state = Complete::from_framebuffer(fb.clone());
        state.set_extensions(ExtensionSet::all());
        state
    };
    assert!(ours(&before) != ours(&after));
    assert!(!ours(&after).diff_from(&ours(&before)).is_empty());
    emu.feed(b"\x1b[0mX");
    assert!(
        stock(&after) != stock(emu.framebuffer()),
        "a visible change is one"
    );
}
