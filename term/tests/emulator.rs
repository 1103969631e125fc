//! Unit tests of the emulator: features cell by cell, answers to status
//! requests, bounds, and the places where we deliberately follow xterm and
//! stock mosh rather than tmux 3.3a (kept out of the tmux corpus).

use mosh_term::framebuffer::{
    Attrs, MAX_CLIPBOARD_BYTES, MAX_LINK_ID_BYTES, MAX_LINK_URI_BYTES, MAX_LINKS, MAX_TITLE_CHARS,
    MouseReporting, UnderlineStyle,
};
use mosh_term::{Color, Emulator, Framebuffer, Renditions};

fn emu(w: usize, h: usize, bytes: &[u8]) -> Emulator {
    let mut e = Emulator::new(w, h);
    e.feed(bytes);
    e
}

fn row_text(fb: &Framebuffer, y: usize) -> String {
    fb.row(y)
        .cells()
        .iter()
        .filter(|c| !c.spacer)
        .map(|c| {
            if c.contents().is_empty() {
                " "
            } else {
                c.contents()
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn cursor(fb: &Framebuffer) -> (usize, usize) {
    (fb.ds.cursor_row, fb.ds.cursor_col)
}

#[test]
fn prints_and_wraps_deferred() {
    let e = emu(5, 3, b"abcde");
    let fb = e.framebuffer();
    assert_eq!(row_text(fb, 0), "abcde");
    assert_eq!(cursor(fb), (0, 4));
    assert!(fb.ds.pending_wrap);
    let e = emu(5, 3, b"abcdef");
    let fb = e.framebuffer();
    assert_eq!(row_text(fb, 1), "f");
    assert!(fb.row(0).wrap, "autowrap sets the row's wrap flag");
    assert!(!fb.row(1).wrap);
}

#[test]
fn cub_and_bs_after_last_column_follow_xterm() {
    // tmux 3.3a puts the cursor past the margin, so CUB 1 lands on the last
    // column there; xterm and stock mosh land one further left.
    let e = emu(5, 2, b"abcde\x1b[Dx");
    assert_eq!(row_text(e.framebuffer(), 0), "abcxe");
    // The same for BS (stock mosh's emulator moves left from the last
    // column; its hostbytes must replay the same here).
    let e = emu(5, 2, b"abcde\x08x");
    assert_eq!(row_text(e.framebuffer(), 0), "abcxe");
}

#[test]
fn cht_moves_forward_unlike_tmux() {
    // tmux 3.3a ignores CHT; xterm and stock mosh implement it.
    let e = emu(40, 2, b"a\x1b[2Ib\x1b[99Ic");
    let fb = e.framebuffer();
    assert_eq!(fb.cell(0, 16).contents(), "b");
    assert_eq!(fb.cell(0, 39).contents(), "c");
    let e = emu(40, 2, b"\x1b[1;30H\x1b[2Zx\x1b[99Zy");
    assert_eq!(e.framebuffer().cell(0, 16).contents(), "x");
    assert_eq!(e.framebuffer().cell(0, 0).contents(), "y");
}

#[test]
fn decstr_soft_reset_unlike_tmux() {
    // tmux 3.3a ignores DECSTR; stock mosh resets these.
    let e = emu(
        20,
        10,
        b"\x1b[?25l\x1b[4h\x1b[1;33m\x1b[5;8r\x1b[?6h\x1b7\x1b[!p",
    );
    let ds = &e.framebuffer().ds;
    assert!(ds.cursor_visible && !ds.insert_mode && !ds.origin_mode);
    assert_eq!((ds.scroll_top, ds.scroll_bottom), (0, 9));
    assert_eq!(ds.rend, Default::default());
    assert_eq!(ds.saved_cursor, None);
}

#[test]
fn mode_1048_saves_cursor_unlike_tmux() {
    let e = emu(20, 10, b"\x1b[3;4H\x1b[?1048h\x1b[9;9H\x1b[?1048lx");
    assert_eq!(e.framebuffer().cell(2, 3).contents(), "x");
}

#[test]
fn alternate_screen_1049_restores_primary_and_cursor() {
    let mut e = emu(10, 4, b"primary\x1b[2;3H\x1b[?1049h");
    assert!(e.framebuffer().alternate_screen());
    assert_eq!(row_text(e.framebuffer(), 0), "");
    e.feed(b"\x1b[Halt\x1b[?1049l");
    let fb = e.framebuffer();
    assert!(!fb.alternate_screen());
    assert_eq!(row_text(fb, 0), "primary");
    assert_eq!(cursor(fb), (1, 2));
    let e = emu(10, 4, b"one\x1b[?47htwo\x1b[?47l");
    assert_eq!(row_text(e.framebuffer(), 0), "one");
    assert_eq!(cursor(e.framebuffer()), (0, 6));
}

#[test]
fn invalid_utf8_becomes_replacement_character() {
    // tmux drops invalid bytes; stock mosh shows U+FFFD.
    let e = emu(10, 2, b"a\xffb");
    assert_eq!(row_text(e.framebuffer(), 0), "a\u{fffd}b");
}

#[test]
fn oversized_parameters_saturate() {
    let e = emu(10, 3, b"\x1b[99999999999;99999999999Hx");
    assert_eq!(e.framebuffer().cell(2, 9).contents(), "x");
}

#[test]
fn wide_characters_and_their_halves() {
    let e = emu(6, 3, "漢字".as_bytes());
    let fb = e.framebuffer();
    assert!(fb.cell(0, 0).wide && fb.cell(0, 1).spacer && fb.cell(0, 2).wide);
    assert_eq!(cursor(fb), (0, 4));
    // Overwriting the right half blanks the left half.
    let e = emu(6, 3, "漢字\x1b[2Gx".as_bytes());
    assert_eq!(row_text(e.framebuffer(), 0), " x字");
    // Erasing the left half blanks the right half.
    let e = emu(6, 3, "漢字\x1b[3G\x1b[X".as_bytes());
    assert_eq!(row_text(e.framebuffer(), 0), "漢");
    // Inserting or deleting inside a wide character removes it.
    let e = emu(6, 3, "漢字\x1b[2G\x1b[@".as_bytes());
    assert_eq!(row_text(e.framebuffer(), 0), "   字");
    let e = emu(6, 3, "a漢字\x1b[3G\x1b[P".as_bytes());
    assert_eq!(row_text(e.framebuffer(), 0), "a 字");
    // A wide character does not fit in the last column: it wraps first.
    let e = emu(5, 3, "abcd漢".as_bytes());
    let fb = e.framebuffer();
    assert_eq!(row_text(fb, 0), "abcd");
    assert_eq!(row_text(fb, 1), "漢");
    assert!(!fb.row(0).wrap);
}

#[test]
fn combining_characters() {
    let e = emu(10, 3, "e\u{301}x\r\n\u{302}".as_bytes());
    let fb = e.framebuffer();
    assert_eq!(fb.cell(0, 0).contents(), "e\u{301}");
    assert_eq!(fb.cell(0, 1).contents(), "x");
    // A combining mark with nothing before it becomes NBSP + mark.
    assert_eq!(fb.cell(1, 0).contents(), "\u{a0}\u{302}");
    assert_eq!(cursor(fb), (1, 1));
    // Combining after a wide character joins the wide cell.
    let e = emu(10, 3, "漢\u{301}".as_bytes());
    assert_eq!(e.framebuffer().cell(0, 0).contents(), "漢\u{301}");
    // Cells hold at most 32 bytes.
    let many = format!("a{}", "\u{301}".repeat(100));
    let e = emu(10, 3, many.as_bytes());
    assert!(e.framebuffer().cell(0, 0).contents().len() <= 32);
}

#[test]
fn sgr_colours_and_attributes() {
    let e = emu(
        20,
        2,
        b"\x1b[1;2;3;4;5;7;8;31;42ma\x1b[0;91;104mb\x1b[38;5;200;48;2;1;2;3mc\x1b[38:2::9:8:7md\x1b[22;23;24mE",
    );
    let fb = e.framebuffer();
    let a = fb.cell(0, 0).rend;
    for attr in [
        Attrs::BOLD,
        Attrs::FAINT,
        Attrs::ITALIC,
        Attrs::UNDERLINE,
        Attrs::BLINK,
        Attrs::INVERSE,
        Attrs::INVISIBLE,
    ] {
        assert!(a.attrs.contains(attr));
    }
    assert_eq!((a.fg, a.bg), (Color::Indexed(1), Color::Indexed(2)));
    let b = fb.cell(0, 1).rend;
    assert_eq!((b.fg, b.bg), (Color::Indexed(9), Color::Indexed(12)));
    let c = fb.cell(0, 2).rend;
    assert_eq!((c.fg, c.bg), (Color::Indexed(200), Color::Rgb(1, 2, 3)));
    assert_eq!(fb.cell(0, 3).rend.fg, Color::Rgb(9, 8, 7));
    assert_eq!(fb.cell(0, 4).rend.attrs, Attrs::default());
}

#[test]
fn erase_uses_background_colour() {
    let e = emu(10, 3, b"abcdefghij\x1b[44m\x1b[1;4H\x1b[K");
    let fb = e.framebuffer();
    assert_eq!(row_text(fb, 0), "abc");
    assert_eq!(fb.cell(0, 5).rend.bg, Color::Indexed(4));
    assert_eq!(fb.cell(0, 5).rend.attrs, Attrs::default());
}

#[test]
fn scroll_region_and_line_operations() {
    let mut e = emu(5, 5, b"0\r\n1\r\n2\r\n3\r\n4\x1b[2;4r\x1b[4;1H\nX");
    let fb = e.framebuffer();
    let rows: Vec<String> = (0..5).map(|y| row_text(fb, y)).collect();
    assert_eq!(rows, ["0", "2", "3", "X", "4"]);
    e.feed(b"\x1b[2;1H\x1b[L");
    let fb = e.framebuffer();
    let rows: Vec<String> = (0..5).map(|y| row_text(fb, y)).collect();
    assert_eq!(rows, ["0", "", "2", "3", "4"]);
    e.feed(b"\x1b[S");
    let rows: Vec<String> = (0..5).map(|y| row_text(e.framebuffer(), y)).collect();
    assert_eq!(rows, ["0", "2", "3", "", "4"]);
}

#[test]
fn rows_keep_generation_when_scrolled() {
    let mut e = emu(5, 3, b"a\r\nb\r\nc");
    let gen_b = e.framebuffer().row(1).generation();
    e.feed(b"\r\nd");
    assert_eq!(e.framebuffer().row(0).generation(), gen_b);
    e.feed(b"\x1b[2J");
    assert_ne!(e.framebuffer().row(0).generation(), gen_b);
}

#[test]
fn modes_title_clipboard_bell() {
    let e = emu(
        10,
        3,
        b"\x1b[?1h\x1b=\x1b[?2004h\x1b[?1002h\x1b[?1006h\x1b[?1004h\x1b[?25l\x1b[?5h\x1b]0;hi\x07\x1b]52;c;aGk=\x07\x07\x07",
    );
    let fb = e.framebuffer();
    let ds = &fb.ds;
    assert!(ds.application_cursor_keys && ds.application_keypad && ds.bracketed_paste);
    assert!(ds.mouse_focus_event && !ds.cursor_visible && ds.reverse_video);
    assert_eq!(ds.mouse_reporting, MouseReporting::ButtonEvent);
    assert_eq!((fb.title(), fb.icon_name()), ("hi", "hi"));
    assert_eq!(fb.clipboard(), b"aGk=");
    assert_eq!(fb.bell_count(), 2);
    let e = emu(
        10,
        3,
        b"\x1b[?1002h\x1b[?1000l\x1b]1;icon\x1b\\\x1b]2;a;b\x07",
    );
    let fb = e.framebuffer();
    assert_eq!(fb.ds.mouse_reporting, MouseReporting::None);
    assert_eq!((fb.title(), fb.icon_name()), ("a;b", "icon"));
}

#[test]
fn status_requests_are_answered() {
    let mut e = emu(
        10,
        5,
        b"\x1b[3;4H\x1b[c\x1b[>c\x1b[5n\x1b[6n\x1b[?2004h\x1b[?2004$p\x1b[?1$p\x1b[?9999$p\x1b[4$p",
    );
    let replies = e.take_replies();
    assert_eq!(
        String::from_utf8(replies).unwrap(),
        "\x1b[?62c\x1b[>1;10;0c\x1b[0n\x1b[3;4R\x1b[?2004;1$y\x1b[?1;2$y\x1b[?9999;0$y\x1b[4;2$y"
    );
    assert!(!e.has_replies());
}

#[test]
fn tab_stops() {
    let e = emu(30, 3, b"\tx\x1b[3g\x1b[1;5H\x1bH\r\ty\r\n\ta");
    let fb = e.framebuffer();
    assert_eq!(fb.cell(0, 8).contents(), "x");
    assert_eq!(fb.cell(0, 4).contents(), "y");
    assert_eq!(fb.cell(1, 4).contents(), "a");
}

#[test]
fn origin_mode_and_saved_cursor() {
    let e = emu(
        10,
        10,
        b"\x1b[3;6r\x1b[?6h\x1b[1;1Ha\x1b[99;1Hb\x1b[?6l\x1b[1;1Hc",
    );
    let fb = e.framebuffer();
    assert_eq!(fb.cell(2, 0).contents(), "a");
    assert_eq!(fb.cell(5, 0).contents(), "b");
    assert_eq!(fb.cell(0, 0).contents(), "c");
    let e = emu(10, 5, b"\x1b[2;3H\x1b[1m\x1b7\x1b[0m\x1b[5;5H\x1b8x");
    let fb = e.framebuffer();
    assert_eq!(fb.cell(1, 2).contents(), "x");
    assert!(fb.cell(1, 2).rend.attrs.contains(Attrs::BOLD));
}

#[test]
fn resize_is_safe_and_bounded() {
    let mut e = emu(80, 24, "hello 漢字 world\x1b[24;80H".as_bytes());
    e.resize(1, 1);
    assert_eq!((e.framebuffer().width(), e.framebuffer().height()), (1, 1));
    e.feed("漢字abc\r\n\x1b[5;5Hx\x1b[L\x1b[P".as_bytes());
    e.resize(100_000, 100_000);
    let fb = e.framebuffer();
    assert_eq!((fb.width(), fb.height()), (1000, 1000));
    e.resize(0, 0);
    assert_eq!((e.framebuffer().width(), e.framebuffer().height()), (1, 1));
}

#[test]
fn strings_are_bounded() {
    let long = "x".repeat(100_000);
    let e = emu(
        10,
        3,
        format!("\x1b]2;{long}\x07\x1b]52;c;{long}\x07").as_bytes(),
    );
    let fb = e.framebuffer();
    assert_eq!(fb.title().chars().count(), MAX_TITLE_CHARS);
    assert!(fb.clipboard().len() <= MAX_CLIPBOARD_BYTES);
}

#[test]
fn unknown_sequences_are_ignored() {
    let e = emu(
        20,
        3,
        b"a\x1bP1$r0m\x1b\\\x1b_apc\x1b\\\x1b[5;6;7y\x1b]8;;http://x\x07\x1b(0\x1b[2 q\x1b[18tb",
    );
    assert_eq!(row_text(e.framebuffer(), 0), "ab");
}

#[test]
fn reset_keeps_bell_count() {
    let e = emu(10, 3, b"\x07x\x1b]0;t\x07\x1bc");
    let fb = e.framebuffer();
    assert_eq!(fb.bell_count(), 1);
    assert_eq!(row_text(fb, 0), "");
    assert_eq!(fb.title(), "");
}

#[test]
fn widths_are_the_c_librarys() {
    // The soft hyphen takes a cell of its own, as in glibc, stock mosh and
    // tmux (unicode-width makes it zero-width).
    let e = emu(10, 2, "a\u{ad}b".as_bytes());
    let fb = e.framebuffer();
    assert_eq!(fb.cell(0, 0).contents(), "a");
    assert_eq!(fb.cell(0, 1).contents(), "\u{ad}");
    assert_eq!(fb.cell(0, 2).contents(), "b");
    assert_eq!(cursor(fb), (0, 3));
    // Wide: CJK, emoji, a Hangul tone mark and the Hangul filler; U+2630
    // (a trigram, wide for unicode-width) takes one cell.
    let e = emu(12, 2, "漢😀\u{302e}\u{3164}\u{2630}x".as_bytes());
    let fb = e.framebuffer();
    for (col, text) in [(0, "漢"), (2, "😀"), (4, "\u{302e}"), (6, "\u{3164}")] {
        assert!(fb.cell(0, col).wide && fb.cell(0, col + 1).spacer, "{text}");
        assert_eq!(fb.cell(0, col).contents(), text);
    }
    assert!(!fb.cell(0, 8).wide);
    assert_eq!(fb.cell(0, 8).contents(), "\u{2630}");
    assert_eq!(fb.cell(0, 9).contents(), "x");
    // Zero-width characters join the previous cell: combining marks, a
    // Hangul medial vowel, a variation selector, a zero-width joiner (whose
    // sequence is not joined: each emoji keeps its own wide cell).
    let e = emu(
        12,
        2,
        "e\u{301}\u{1100}\u{1160}\u{2764}\u{fe0f}\u{1f468}\u{200d}\u{1f469}".as_bytes(),
    );
    let fb = e.framebuffer();
    assert_eq!(fb.cell(0, 0).contents(), "e\u{301}");
    assert_eq!(fb.cell(0, 1).contents(), "\u{1100}\u{1160}");
    assert_eq!(fb.cell(0, 3).contents(), "\u{2764}\u{fe0f}");
    assert_eq!(fb.cell(0, 4).contents(), "\u{1f468}\u{200d}");
    assert_eq!(fb.cell(0, 6).contents(), "\u{1f469}");
    assert_eq!(cursor(fb), (0, 8));
    // What wcwidth calls not printable (an unassigned code point, a
    // noncharacter) is dropped and the cursor stays, as in stock mosh (tmux
    // 3.3a shows it in one cell).
    let e = emu(10, 2, "a\u{378}\u{fffe}b".as_bytes());
    let fb = e.framebuffer();
    assert_eq!(row_text(fb, 0), "ab");
    assert_eq!(cursor(fb), (0, 2));
}

/// The rendition of the first cell after `sgr` and an `x`.
fn rend_after(sgr: &str) -> Renditions {
    let e = emu(10, 2, format!("{sgr}x").as_bytes());
    e.framebuffer().cell(0, 0).rend
}

/// An underline of `style` in `colour`, and nothing else.
fn underline(style: UnderlineStyle, colour: Color) -> Renditions {
    let mut rend = Renditions {
        underline_color: colour,
        ..Renditions::default()
    };
    rend.set_underline(Some(style));
    rend
}

#[test]
fn underline_colour_arguments_are_not_attributes() {
    let red = Color::Indexed(196);
    let green = Color::Rgb(10, 200, 30);
    for (sgr, expected) in [
        ("\x1b[4;58;5;196m", underline(UnderlineStyle::Single, red)),
        ("\x1b[4;58:5:196m", underline(UnderlineStyle::Single, red)),
        (
            "\x1b[4:3;58:2::10:200:30m",
            underline(UnderlineStyle::Curly, green),
        ),
        (
            "\x1b[4:3;58:2:10:200:30m",
            underline(UnderlineStyle::Curly, green),
        ),
        (
            "\x1b[4:3;58;2;10;200;30m",
            underline(UnderlineStyle::Curly, green),
        ),
        (
            "\x1b[58;2;10;200;30;4:4m",
            underline(UnderlineStyle::Dotted, green),
        ),
        ("\x1b[21;58;5;196m", underline(UnderlineStyle::Double, red)),
        (
            "\x1b[4:5m",
            underline(UnderlineStyle::Dashed, Color::Default),
        ),
        (
            "\x1b[4:2m",
            underline(UnderlineStyle::Double, Color::Default),
        ),
        (
            "\x1b[4:1m",
            underline(UnderlineStyle::Single, Color::Default),
        ),
    ] {
        assert_eq!(rend_after(sgr), expected, "{sgr:?}");
    }
}

#[test]
fn colour_forms_of_38_and_48() {
    for (sgr, fg, bg) in [
        ("\x1b[38:2::1:2:3m", Color::Rgb(1, 2, 3), Color::Default),
        ("\x1b[38:2:1:2:3m", Color::Rgb(1, 2, 3), Color::Default),
        ("\x1b[38:5:9m", Color::Indexed(9), Color::Default),
        ("\x1b[48:2::4:5:6m", Color::Default, Color::Rgb(4, 5, 6)),
        ("\x1b[48;5;21m", Color::Default, Color::Indexed(21)),
        (
            "\x1b[38;2;7;8;9;48;5;1m",
            Color::Rgb(7, 8, 9),
            Color::Indexed(1),
        ),
    ] {
        let rend = rend_after(sgr);
        assert_eq!(
            rend,
            Renditions {
                fg,
                bg,
                ..Renditions::default()
            },
            "{sgr:?}"
        );
    }
    let after_rgb = rend_after("\x1b[38;2;1;2;3;4m");
    assert_eq!(
        after_rgb.attrs,
        Attrs::UNDERLINE,
        "the 4 after r;g;b is SGR 4"
    );
}

#[test]
fn extended_attributes_set_and_reset() {
    let strike = rend_after("\x1b[9m");
    assert_eq!(strike.attrs, Attrs::STRIKE);
    assert_eq!(rend_after("\x1b[9;29m"), Renditions::default());
    assert_eq!(rend_after("\x1b[53m").attrs, Attrs::OVERLINE);
    assert_eq!(rend_after("\x1b[53;55m"), Renditions::default());
    assert_eq!(rend_after("\x1b[4:3;24m"), Renditions::default());
    assert_eq!(rend_after("\x1b[4:3;4:0m"), Renditions::default());
    assert_eq!(
        rend_after("\x1b[21;4m"),
        underline(UnderlineStyle::Single, Color::Default)
    );
    assert_eq!(
        rend_after("\x1b[4:3;4:9m"),
        underline(UnderlineStyle::Curly, Color::Default),
        "an unknown style changes nothing"
    );
    let colour_kept = rend_after("\x1b[58;5;3;24m");
    assert_eq!(colour_kept.underline_color, Color::Indexed(3));
    assert_eq!(rend_after("\x1b[58;5;3;59m"), Renditions::default());
    assert_eq!(rend_after("\x1b[9;53;4:3;58;5;3;0m"), Renditions::default());
    let erased = emu(10, 2, b"\x1b[9;53;4:3;58;5;3;44m\x1b[2K");
    assert_eq!(
        erased.framebuffer().cell(0, 5).rend,
        Renditions {
            bg: Color::Indexed(4),
            ..Renditions::default()
        },
        "erased cells keep only the background"
    );
    let stock = rend_after("\x1b[1;4:3;9;53;58;5;3;31m").stock();
    assert_eq!(stock.attrs, Attrs(Attrs::BOLD.0 | Attrs::UNDERLINE.0));
    assert_eq!(
        (stock.fg, stock.underline, stock.underline_color),
        (Color::Indexed(1), UnderlineStyle::Single, Color::Default)
    );
}

/// The URI of the link of cell (`row`, `col`), if any.
fn link_at(fb: &Framebuffer, row: usize, col: usize) -> Option<String> {
    fb.hyperlink(fb.cell(row, col).rend.link)
        .map(|l| format!("{}|{}", l.id, l.uri))
}

#[test]
fn osc8_links_exactly_the_cells_printed_while_open() {
    let e = emu(
        20,
        2,
        b"a\x1b]8;id=x:k=v;http://e.com/a;b\x1b\\lnk\x1b[0m!\x1b]8;;\x1b\\z\x1b]8;;file:///f\x07F\x1b]8;;\x07",
    );
    let fb = e.framebuffer();
    let links: Vec<Option<String>> = (0..8).map(|c| link_at(fb, 0, c)).collect();
    let x = Some("x|http://e.com/a;b".to_owned());
    assert_eq!(
        links,
        [
            None,
            x.clone(),
            x.clone(),
            x.clone(),
            x,
            None,
            Some("|file:///f".to_owned()),
            None
        ],
        "SGR 0 leaves the link open; an empty URI closes it"
    );
    assert_eq!(fb.cell(0, 1).rend.link, fb.cell(0, 4).rend.link);
    assert!(fb.ds.rend.link.is_none());
}

#[test]
fn osc8_bounds() {
    let long_uri = format!("http://e.com/{}", "u".repeat(MAX_LINK_URI_BYTES));
    let ok_uri = format!("http://e.com/{}", "u".repeat(MAX_LINK_URI_BYTES - 13));
    let long_id = "i".repeat(MAX_LINK_ID_BYTES + 1);
    let ok_id = "i".repeat(MAX_LINK_ID_BYTES);
    for (params, uri, kept) in [
        ("", ok_uri.as_str(), true),
        ("", long_uri.as_str(), false),
        (&format!("id={ok_id}")[..], "http://e.com/", true),
        (&format!("id={long_id}")[..], "http://e.com/", false),
        ("", "http://e.com/\u{e9}", false),
        ("", "http://e.com/\x7f", false),
    ] {
        let bytes = format!("\x1b]8;{params};{uri}\x1b\\x");
        let e = emu(5, 1, bytes.as_bytes());
        let fb = e.framebuffer();
        assert_eq!(
            fb.hyperlink(fb.cell(0, 0).rend.link).is_some(),
            kept,
            "{} bytes of URI, {} of params",
            uri.len(),
            params.len()
        );
        assert_eq!(fb.cell(0, 0).contents(), "x", "the text is printed anyway");
    }
}

#[test]
fn at_most_max_links_per_screen_and_unused_ones_are_forgotten() {
    let mut e = Emulator::new(MAX_LINKS + 10, 2);
    for i in 0..MAX_LINKS + 5 {
        e.feed(format!("\x1b]8;;http://e.com/{i}\x1b\\x").as_bytes());
    }
    e.feed(b"\x1b]8;;\x1b\\");
    let fb = e.framebuffer();
    let distinct: std::collections::HashSet<_> = (0..MAX_LINKS + 5)
        .filter_map(|c| fb.hyperlink(fb.cell(0, c).rend.link).map(|l| l.uri.clone()))
        .collect();
    assert_eq!(
        distinct.len(),
        MAX_LINKS,
        "links beyond the cap are dropped"
    );
    assert!(fb.cell(0, MAX_LINKS).rend.link.is_none());
    assert_eq!(fb.cell(0, MAX_LINKS + 4).contents(), "x");
    // Once the linked text is gone, new links get room again.
    e.feed(b"\x1b[2J\x1b[H\x1b]8;;http://e.com/new\x1b\\n");
    let fb = e.framebuffer();
    assert_eq!(
        fb.hyperlink(fb.cell(0, 0).rend.link)
            .map(|l| l.uri.as_str()),
        Some("http://e.com/new")
    );
    // A link shared by many cells is one entry.
    let mut e = Emulator::new(50, 2);
    for _ in 0..MAX_LINKS * 2 {
        e.feed(b"\x1b]8;id=s;http://e.com/same\x1b\\y\x1b]8;;\x1b\\\x08");
    }
    let fb = e.framebuffer();
    assert!(fb.hyperlink(fb.cell(0, 0).rend.link).is_some());
}

#[test]
fn cell_size() {
    assert_eq!(
        size_of::<mosh_term::Cell>(),
        54,
        "a cell is 54 bytes (44 before extended attributes)"
    );
}
