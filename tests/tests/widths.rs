//! Character widths are the C library's, as stock mosh and the programs in
//! a session measure them: `mosh_term::width::wcwidth` against glibc's
//! `wcwidth` in `C.UTF-8` for every code point, and the printable ISO 8859-1
//! table shown through stock `mosh-client` ⇄ our `mosh-server` and through
//! our `mosh-client` ⇄ stock `mosh-server`, cell for cell as tmux shows the
//! same text directly.

use std::ffi::c_int;
use std::time::Duration;

use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{ours, stock};

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(10);

/// The highest Unicode code point.
const MAX_CODE_POINT: u32 = 0x10_FFFF;

unsafe extern "C" {
    /// The C library's `wcwidth(3)`: the columns a wide character takes in
    /// the calling thread's locale, or -1 when it is not printable.
    fn wcwidth(c: libc::wchar_t) -> c_int;
}

/// The C library's `wcwidth` of every code point from U+0000 to U+10FFFF
/// (surrogates included, as `wchar_t` values), in a `C.UTF-8` locale set
/// for this thread only, so that tests running beside it are not affected.
/// Panics if the C library has no `C.UTF-8` locale.
fn c_library_widths() -> Vec<c_int> {
    // SAFETY: the locale name is NUL-terminated and no base locale is
    // given; the result is checked before use.
    let utf8 = unsafe {
        libc::newlocale(
            libc::LC_CTYPE_MASK,
            c"C.UTF-8".as_ptr(),
            std::ptr::null_mut(),
        )
    };
    assert!(
        !utf8.is_null(),
        "the C library cannot load the C.UTF-8 locale: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `utf8` is a valid locale object; uselocale changes only this
    // thread's locale and returns the previous one.
    let previous = unsafe { libc::uselocale(utf8) };
    assert!(!previous.is_null(), "uselocale(C.UTF-8) failed");
    let widths = (0..=MAX_CODE_POINT)
        .map(|code_point| {
            let wide = libc::wchar_t::try_from(code_point).expect("code points fit in wchar_t");
            // SAFETY: wcwidth reads only its argument and the thread's
            // locale, set above.
            unsafe { wcwidth(wide) }
        })
        .collect();
    // SAFETY: `previous` came from uselocale and `utf8` from newlocale;
    // once the thread is back on `previous`, nothing uses `utf8`.
    unsafe {
        libc::uselocale(previous);
        libc::freelocale(utf8);
    }
    widths
}

#[test]
fn every_code_point_has_the_c_librarys_width() {
    let theirs = c_library_widths();
    assert_eq!(theirs[0x4e00], 2, "the C.UTF-8 locale should make CJK wide");
    let differences: Vec<String> = (0..=MAX_CODE_POINT)
        .zip(theirs)
        .filter_map(|(code_point, c_width)| {
            let ours = mosh_term::width::wcwidth(code_point);
            (ours != usize::try_from(c_width).ok())
                .then(|| format!("U+{code_point:04X}: C library {c_width}, ours {ours:?}"))
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{} code points differ from the C library's wcwidth; the first: {:#?}\n\
         (regenerate with `cargo run -p xtask -- gen-widths term/src/width_table.rs`)",
        differences.len(),
        &differences[..differences.len().min(20)]
    );
}

/// Columns of the pane the table is shown in: each row of the table fills
/// it exactly.
const TABLE_WIDTH: u16 = 20;

/// Rows of the table.
const TABLE_ROWS: usize = 12;

/// The printable ISO 8859-1 characters (0x20 to 0x7E and 0xA0 to 0xFF) in
/// rows of 16, each after its hexadecimal label and followed by a blank
/// (0x7F is a blank too) that the border replaces later. Nothing separates
/// the rows but the terminal's autowrap, so a character measured one column
/// too narrow or too wide shifts everything after it.
fn latin_1_table() -> String {
    let mut table = String::new();
    for first in (0x20..0x80).step_by(16).chain((0xa0..0x100).step_by(16)) {
        table.push_str(&format!("{first:02x} "));
        table.extend(
            (first..first + 16)
                .map(|code_point| char::from_u32(code_point).filter(|c| !c.is_control()))
                .map(|c| c.unwrap_or(' ')),
        );
        table.push(' ');
    }
    assert_eq!(table.chars().count(), TABLE_ROWS * usize::from(TABLE_WIDTH));
    table
}

/// A command that clears the screen (whatever the server printed first)
/// and prints `table` from the top left; a moment later (so that mosh
/// sends it as a later frame) draws the table's right border by absolute
/// positioning, as full-screen programs redraw, then a marker below; and
/// waits.
fn show(table: &str) -> [&str; 5] {
    [
        "/bin/sh",
        "-c",
        r#"printf '\033[H\033[2J%s' "$1"; sleep 0.5
           printf '\033[%d;20H|' 1 2 3 4 5 6 7 8 9 10 11 12
           printf '\033[13;1Hdone-marker'; exec sleep 600"#,
        "sh",
        table,
    ]
}

/// What `pane` shows once the table and the marker are there and the user
/// pressed Ctrl-L (which makes a mosh client repaint the whole screen from
/// its own copy; the terminal echoes it as `^L`): every row up to the
/// marker's, and the cursor position.
fn screen(pane: &TmuxSession) -> (Vec<String>, String) {
    pane.wait_for("done-marker", QUICK).unwrap();
    pane.send_keys(&["C-l"]).unwrap();
    let text = pane.wait_for("done-marker^L", QUICK).unwrap();
    let rows = text
        .lines()
        .take(TABLE_ROWS + 1)
        .map(str::to_owned)
        .collect();
    let cursor = pane
        .run(["display-message", "-p", "#{cursor_x},#{cursor_y}"])
        .unwrap();
    (rows, cursor)
}

/// The table shown directly in a tmux pane of the same size.
fn direct_screen(table: &str) -> (Vec<String>, String) {
    let direct = TmuxSession::start(TABLE_WIDTH, 24, &show(table), &[]).unwrap();
    let shown = screen(&direct);
    assert_eq!(shown.0[6], "a0 \u{a0}¡¢£¤¥¦§¨©ª«¬\u{ad}®¯|", "{shown:?}");
    assert_eq!(shown.0[TABLE_ROWS], "done-marker^L", "{shown:?}");
    shown
}

#[test]
fn latin_1_through_stock_client_and_our_server_is_shown_as_tmux_shows_it() {
    let table = latin_1_table();
    let server = MoshServer::start(Implementation::Ours, &show(&table)).unwrap();
    let client = stock::client_in_tmux(server.addr(), server.key(), TABLE_WIDTH, 24).unwrap();
    assert_eq!(screen(&client), direct_screen(&table));
}

#[test]
fn latin_1_through_our_client_and_stock_server_is_shown_as_tmux_shows_it() {
    let table = latin_1_table();
    let server = MoshServer::start(Implementation::Stock, &show(&table)).unwrap();
    let client = ours::client_in_tmux(server.addr(), server.key(), TABLE_WIDTH, 24, &[]).unwrap();
    assert_eq!(screen(&client), direct_screen(&table));
}
