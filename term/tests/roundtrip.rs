//! Round-trip property of the display differ: feeding `new_frame(A, B)` to an
//! emulator showing A yields B (text, renditions, wrap flags, cursor, modes,
//! title, clipboard, extended attributes and hyperlinks), and a full repaint
//! from any screen yields B too. The same through `Complete` diffs. Toward a
//! stock peer (no [`Display::attributes`]) the replay is B as stock holds
//! it ([`Framebuffer::to_stock`]), and the bytes are those for the stock
//! copies of A and B.

mod common;

use mosh_proto::{ExtensionSet, State};
use mosh_term::{Complete, Display, Emulator, Framebuffer};
use proptest::prelude::*;

/// One application write, as bytes.
fn op() -> impl Strategy<Value = Vec<u8>> {
    let text = prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", "Z", " ", "é", "漢", "字", "😀", "\u{301}", "\u{302}", "e\u{301}", "~", "ｗ",
        ]),
        1..12,
    )
    .prop_map(|v| v.concat().into_bytes());
    let num = || 0u16..30;
    prop_oneof![
        4 => text,
        1 => (num(), num()).prop_map(|(r, c)| format!("\x1b[{r};{c}H").into_bytes()),
        1 => prop::sample::select(vec![
            "\r", "\n", "\x08", "\t", "\x07", "\x1bD", "\x1bM", "\x1bE", "\x1b7", "\x1b8",
            "\x1b[?5h", "\x1b[?5l", "\x1b[?25l", "\x1b[?25h", "\x1b[?2004h", "\x1b[?2004l",
            "\x1b[?1000h", "\x1b[?1002h", "\x1b[?1003l", "\x1b[?1006h", "\x1b[?1015h",
            "\x1b[?1005l", "\x1b[?1004h", "\x1b[?1004l", "\x1b[?1007h", "\x1b[?6h", "\x1b[?6l",
            "\x1b[?7l", "\x1b[?7h", "\x1b[4h", "\x1b[4l", "\x1b[?1049h", "\x1b[?1049l",
            "\x1b[?47h", "\x1b[?47l", "\x1bc", "\x1b[!p", "\x1b#8",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => (prop::sample::select(vec!['A', 'B', 'C', 'D', 'J', 'K', 'X', '@', 'P', 'L', 'M', 'S', 'T', 'G', 'd', 'I', 'Z', 'b']), 0u16..6)
            .prop_map(|(f, n)| format!("\x1b[{n}{f}").into_bytes()),
        1 => (0u16..12, 0u16..14).prop_map(|(t, b)| format!("\x1b[{t};{b}r").into_bytes()),
        2 => prop::collection::vec(
            prop::sample::select(vec![
                "0", "1", "2", "3", "4", "5", "7", "8", "22", "24", "27", "31", "42", "39",
                "49", "91", "104", "38;5;200", "48;5;3", "38;2;1;2;3", "48;2;250;0;9",
                "9", "29", "21", "53", "55", "4:0", "4:1", "4:2", "4:3", "4:4", "4:5",
                "58;5;196", "58:5:9", "58;2;10;200;30", "58:2::1:2:3", "59", "38:2::4:5:6",
            ]),
            1..4,
        )
        .prop_map(|v| format!("\x1b[{}m", v.join(";")).into_bytes()),
        1 => prop::sample::select(vec![
            "\x1b]8;id=a;http://a.example/\x1b\\", "\x1b]8;;http://b.example/x\x07",
            "\x1b]8;id=c:k=v;file:///etc/motd\x1b\\", "\x1b]8;;\x1b\\", "\x1b]8;;\x07",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::sample::select(vec!["\x1b]0;hello\x07", "\x1b]2;t;x\x07", "\x1b]1;icon\x07", "\x1b]52;c;aGk=\x07", "\x1b]52;c;\x07"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => (0u8..3).prop_map(|_| b"\x1b[2J".to_vec()),
        1 => Just(b"line one\r\nline two\r\nline three\r\n".to_vec()),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(op(), 0..40)
}

fn emulate(w: usize, h: usize, ops: &[Vec<u8>]) -> Emulator {
    let mut emu = Emulator::new(w, h);
    for o in ops {
        emu.feed(o);
    }
    emu
}

/// Replays the diff from `a` to `b` on a replica of `a`, toward our own
/// client (`attributes`) or a stock one.
fn check_replay(
    a: &Framebuffer,
    b: &Framebuffer,
    initialized: bool,
    attributes: bool,
) -> Result<(), TestCaseError> {
    let display = Display::server().with_attributes(attributes);
    let bytes = display.new_frame(initialized, a, b);
    let (a, b) = if attributes {
        (a.clone(), b.clone())
    } else {
        let stock = display.new_frame(initialized, &a.to_stock(), &b.to_stock());
        prop_assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&stock),
            "extended attributes changed the stock bytes"
        );
        (a.to_stock(), b.to_stock())
    };
    let (a, b) = (&a, &b);
    let mut emu = Emulator::from_framebuffer(a.replica());
    emu.feed(&bytes);
    prop_assert!(!emu.has_replies(), "diff made the emulator reply");
    let got = emu.framebuffer();
    if !got.same_picture(b) {
        let lines = |fb: &Framebuffer| -> Vec<String> {
            fb.rows()
                .iter()
                .map(|r| {
                    let mut s: String = r
                        .cells()
                        .iter()
                        .map(|c| {
                            if c.spacer {
                                String::new()
                            } else if c.contents().is_empty() {
                                " ".into()
                            } else {
                                c.contents().to_string()
                            }
                        })
                        .collect();
                    if r.wrap {
                        s.push('+');
                    }
                    s
                })
                .collect()
        };
        let diff_rows: Vec<usize> = (0..b.height())
            .filter(|&y| !got.row(y).same_content(b.row(y)))
            .collect();
        return Err(TestCaseError::fail(format!(
            "replay mismatch (initialized={initialized}) rows {diff_rows:?}\nA={:#?}\nB={:#?}\ngot={:#?}\nbytes={:?}\nB.ds={:?}\ngot.ds={:?}",
            lines(a),
            lines(b),
            lines(got),
            String::from_utf8_lossy(&bytes),
            b.ds,
            got.ds
        )));
    }
    prop_assert_eq!(
        got.bell_count() != a.bell_count(),
        b.bell_count() != a.bell_count()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(512), .. ProptestConfig::default() })]

    #[test]
    fn new_frame_round_trip(w in 1usize..14, h in 1usize..9, first in ops(), second in ops()) {
        let mut emu = emulate(w, h, &first);
        let a = emu.framebuffer().clone();
        for o in &second {
            emu.feed(o);
        }
        let b = emu.framebuffer().clone();
        for attributes in [false, true] {
            check_replay(&a, &b, true, attributes)?;
            check_replay(&a, &b, false, attributes)?;
            check_replay(&Framebuffer::new(w, h), &b, false, attributes)?;
        }
    }

    /// `older` → `newer` with the extension set of each: EMPTY → EMPTY is
    /// a stock session, all → all one of ours, EMPTY → all the negotiation
    /// happening in between (a full repaint: the client then has all of B,
    /// extended attributes it was never sent included).
    #[test]
    fn complete_diff_round_trip(
        w in 1usize..14, h in 1usize..9, w2 in 1usize..14, h2 in 1usize..9,
        first in ops(), second in ops(), ack in 0u64..5,
        (older, newer) in prop::sample::select(vec![
            (ExtensionSet::EMPTY, ExtensionSet::EMPTY),
            (ExtensionSet::all(), ExtensionSet::all()),
            (ExtensionSet::EMPTY, ExtensionSet::all()),
        ]),
    ) {
        let mut emu = emulate(w, h, &first);
        let mut a = Complete::from_framebuffer(emu.framebuffer().clone());
        a.set_extensions(older);
        let client_fb = if older.is_empty() {
            emu.framebuffer().to_stock()
        } else {
            emu.framebuffer().clone()
        };
        let replica = Complete::from_framebuffer(client_fb.replica());
        emu.resize(w2, h2);
        for o in &second {
            emu.feed(o);
        }
        let mut b = Complete::from_framebuffer(emu.framebuffer().clone());
        b.set_echo_ack(ack);
        b.set_extensions(newer);
        let diff = b.diff_from(&a);
        let mut got = replica;
        got.apply(&diff).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = if newer.is_empty() {
            b.framebuffer().to_stock()
        } else {
            b.framebuffer().clone()
        };
        prop_assert!(got.framebuffer().same_picture(&expected));
        prop_assert_eq!(got.echo_ack(), b.echo_ack());
        prop_assert_eq!(b.diff_from(&b).len(), 0);
    }
}

/// A client that replays every frame of a session (its emulator's parser
/// and modes persist across frames, as in a real client) stays identical to
/// the server's screen, for the whole corpus cut into small writes.
#[test]
fn corpus_sessions_round_trip() {
    for file in common::corpus_files() {
        let bytes = std::fs::read(&file).expect("read corpus file");
        for (w, h, chunk) in [(80, 24, 97), (53, 17, 13), (80, 24, 1)] {
            for attributes in [false, true] {
                let display = Display::server().with_attributes(attributes);
                let mut server = Emulator::new(w, h);
                let mut shown = server.framebuffer().clone();
                let mut client = Emulator::new(w, h);
                let first = display.new_frame(false, &shown, &shown);
                client.feed(&first);
                for piece in bytes.chunks(chunk) {
                    server.feed(piece);
                    let now = server.framebuffer().clone();
                    client.feed(&display.new_frame(true, &shown, &now));
                    assert!(!client.has_replies());
                    let expected = if attributes {
                        now.clone()
                    } else {
                        now.to_stock()
                    };
                    assert!(
                        client.framebuffer().same_picture(&expected),
                        "{} at {w}x{h}, chunk {chunk}, attributes {attributes}: client diverged",
                        file.display()
                    );
                    shown = now;
                }
            }
        }
    }
}
