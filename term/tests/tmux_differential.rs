//! Differential test against tmux: every file under `tests/corpus/` is fed to
//! our emulator and to a real tmux (3.3a here) pane of the same size; text,
//! colours, attributes, cursor position and modes must match, at 80×24 and at
//! 53×17. Two more tests replay the display differ's output into tmux, which
//! must end up showing the server's screen: for a sample of the corpus (a
//! full repaint, then one diff per write) and for random screen pairs. tmux
//! must be installed: a missing tmux fails the test.
//!
//! Deliberate deviations from tmux (the comparison tolerates exactly these):
//! * Reverse video (DECSCNM, `CSI ? 5 h`): tmux ignores it; we track it
//!   because mosh synchronises it. It is not compared.
//! * The cursor in the deferred-wrap state: tmux reports column = width, we
//!   keep the cursor on the last column with a pending-wrap flag; columns
//!   are compared after clamping tmux's to the last column.
//! * Background colour erase: we give every erased or scrolled-in cell the
//!   current background (as xterm and stock mosh do). tmux keeps it only
//!   within a line's used length (and not for rows scrolled in by autowrap),
//!   so `capture-pane` shows the rest in the default colour. A trailing run
//!   of blank cells that are background-only on our side and default on
//!   tmux's is therefore compared without its background.
//! * Character widths are the C library's `wcwidth`, as in stock mosh and
//!   in tmux 3.3a, except for what `wcwidth` calls not printable
//!   (unassigned code points, noncharacters): tmux shows it in one cell, we
//!   drop it as stock mosh does (pinned down in `tests/emulator.rs`), so the
//!   corpus has none. tmux also joins the character after a ZERO WIDTH
//!   JOINER into the same cell (emoji ZWJ sequences); we, like stock mosh,
//!   do not.
//! * tmux's `capture-pane` cannot show the wrap flag or the bell, so these
//!   are covered by the unit and round-trip tests instead.
//! * tmux 3.3a keeps strikethrough, double and styled underlines, underline
//!   colour and overline, and these are compared; it drops OSC 8 hyperlinks
//!   (3.4 added them), so links are not (the unit, round-trip and
//!   end-to-end tests cover them). Its `capture-pane -e` writes overline as
//!   `5:3`, which is read back as 53.
//!
//! Behaviour where tmux 3.3a differs from xterm and stock mosh, and where we
//! follow them, is kept out of the corpus and pinned down by unit tests in
//! `tests/emulator.rs` instead: CHT (`CSI I`, ignored by tmux), DECSTR
//! (`CSI ! p`, ignored by tmux), mode 1048 (ignored by tmux), CUB and BS
//! right after a write to the last column (tmux's cursor sits past the
//! margin), invalid UTF-8 (tmux drops it, we show U+FFFD as stock does),
//! parameters too large for 16 bits (tmux drops the sequence, we saturate),
//! and partly overwritten, erased, inserted or deleted halves of wide
//! characters (tmux leaves orphaned halves, we blank both halves as xterm
//! does). Where stock mosh's spec differs from tmux but the differ never
//! sends the sequence (IL/DL keep the cursor column, REP stops at the right
//! margin, erasing with a pending wrap acts past the last column, unknown
//! sequences keep a pending wrap), we follow tmux and the corpus covers it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mosh_term::display::sgr_extended;
use mosh_term::framebuffer::LinkId;
use mosh_term::framebuffer::MouseEncoding;
use mosh_term::framebuffer::MouseReporting;
use mosh_term::{Display, Emulator, Framebuffer, Renditions};

const SIZES: [(usize, usize); 2] = [(80, 24), (53, 17)];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Window name the pane script sets once the replayed bytes are written.
const DONE_MARKER: &str = "mosh-term-replayed";

/// A private tmux server, killed on drop (also when the test panics).
struct Tmux {
    socket: String,
    dir: PathBuf,
}

impl Tmux {
    fn start(file: &Path, width: usize, height: usize) -> Tmux {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let socket = format!("mosh-term-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&socket);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let tmux = Tmux { socket, dir };
        let go = tmux.dir.join("go");
        let done = tmux.dir.join("done");
        let script = format!(
            "while [ ! -e '{go}' ]; do sleep 0.01; done; stty raw -echo; cat '{file}'; \
             printf '\\033k{DONE_MARKER}\\033\\\\'; touch '{done}'; exec sleep 1000",
            go = go.display(),
            file = file.display(),
            done = done.display()
        );
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &script,
            ";",
            "set",
            "-g",
            "status",
            "off",
            ";",
            "set",
            "-g",
            "allow-rename",
            "on",
        ]);
        let size = tmux.run(&["display", "-p", "-t", "t", "#{pane_width}x#{pane_height}"]);
        assert_eq!(size.trim(), format!("{width}x{height}"), "tmux pane size");
        std::fs::write(&go, b"").expect("write go file");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done.exists() {
            assert!(
                Instant::now() < deadline,
                "tmux pane never finished replaying {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tmux
    }

    fn output(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| panic!("tmux is required for this test but could not be run: {e}"))
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("tmux output is UTF-8")
    }

    /// Capture once tmux has processed everything: the pane script renames
    /// the window (`ESC k … ESC \`) after the replayed bytes, and tmux
    /// handles a pane's output in order.
    fn capture(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .run(&["display", "-p", "-t", "t", "#{window_name}"])
            .trim()
            != DONE_MARKER
        {
            assert!(
                Instant::now() < deadline,
                "tmux never processed the replayed bytes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let fmt = "#{cursor_x} #{cursor_y} #{cursor_flag} #{insert_flag} #{keypad_cursor_flag} \
                   #{keypad_flag} #{wrap_flag} #{origin_flag} #{alternate_on} \
                   #{scroll_region_upper} #{scroll_region_lower} #{mouse_standard_flag} \
                   #{mouse_button_flag} #{mouse_all_flag} #{mouse_sgr_flag} #{mouse_utf8_flag}|#{pane_title}";
        (
            self.run(&["capture-pane", "-p", "-e", "-N", "-t", "t"]),
            self.run(&["display", "-p", "-t", "t", fmt]),
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.output(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the trailing run of cells starts that are erased (blank, only a
/// background colour) in `ours` and blank default in `theirs`: tmux does not
/// keep the background of such cells (see the module docs).
fn erased_tail(ours: &Framebuffer, theirs: &Framebuffer, y: usize) -> usize {
    let (a, b) = (ours.row(y).cells(), theirs.row(y).cells());
    let mut x = a.len();
    while x > 0 {
        let (c, t) = (&a[x - 1], &b[x - 1]);
        let erased = c.is_blank() && c.rend == c.rend.erased();
        if !(erased && t.is_blank() && t.rend == Renditions::default()) {
            break;
        }
        x -= 1;
    }
    x
}

/// tmux 3.3a's capture with its overline parameter `5:3` (in an SGR)
/// written as 53.
fn overline_as_53(capture: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(capture.len());
    let mut i = 0;
    while i < capture.len() {
        if capture[i..].starts_with(b"\x1b[") {
            let end = capture[i + 2..]
                .iter()
                .position(|b| (0x40..=0x7e).contains(b))
                .map_or(capture.len(), |p| i + 2 + p + 1);
            let seq = &capture[i..end];
            if seq.ends_with(b"m") {
                let params = &seq[2..seq.len() - 1];
                let fixed: Vec<&[u8]> = params
                    .split(|&b| b == b';')
                    .map(|p| if p == b"5:3" { &b"53"[..] } else { p })
                    .collect();
                out.extend_from_slice(b"\x1b[");
                out.extend_from_slice(&fixed.join(&b';'));
                out.push(b'm');
            } else {
                out.extend_from_slice(seq);
            }
            i = end;
        } else {
            out.push(capture[i]);
            i += 1;
        }
    }
    out
}

/// One row as text with inline SGR markers where the rendition changes;
/// blank cells from column `tail` on are shown in the default rendition.
fn render_row(fb: &Framebuffer, y: usize, tail: usize) -> String {
    let mut s = String::new();
    let mut rend = None;
    for (x, cell) in fb.row(y).cells().iter().enumerate() {
        if cell.spacer {
            continue;
        }
        let mut cell = *cell;
        cell.rend.link = LinkId::NONE;
        if x >= tail && cell.is_blank() {
            cell.rend = Renditions::default();
        }
        if rend != Some(cell.rend) {
            let mut code = Vec::new();
            sgr_extended(&cell.rend, &mut code);
            s.push_str(&String::from_utf8_lossy(&code).replace('\x1b', "␛"));
            rend = Some(cell.rend);
        }
        let text = cell.contents();
        s.push_str(if text.is_empty() { " " } else { text });
    }
    s
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// The tmux-format state line for our framebuffer.
fn our_state(fb: &Framebuffer) -> String {
    let ds = &fb.ds;
    format!(
        "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        ds.cursor_col,
        ds.cursor_row,
        flag(ds.cursor_visible),
        flag(ds.insert_mode),
        flag(ds.application_cursor_keys),
        flag(ds.application_keypad),
        flag(ds.autowrap),
        flag(ds.origin_mode),
        flag(fb.alternate_screen()),
        ds.scroll_top,
        ds.scroll_bottom,
        flag(ds.mouse_reporting == MouseReporting::Normal),
        flag(ds.mouse_reporting == MouseReporting::ButtonEvent),
        flag(ds.mouse_reporting == MouseReporting::AnyEvent),
        flag(ds.mouse_encoding == MouseEncoding::Sgr),
        flag(ds.mouse_encoding == MouseEncoding::Utf8),
    )
}

/// Compares one corpus file at one size; returns the differences found.
fn compare(file: &Path, width: usize, height: usize) -> Vec<String> {
    let bytes = std::fs::read(file).expect("read corpus file");
    let mut ours = Emulator::new(width, height);
    ours.feed(&bytes);
    let ours = ours.framebuffer();

    let tmux = Tmux::start(file, width, height);
    let (capture, state) = tmux.capture();
    drop(tmux);

    let lines: Vec<&str> = capture.split('\n').take(height).collect();
    let mut theirs = Emulator::new(width, height);
    theirs.feed(&overline_as_53(lines.join("\r\n").as_bytes()));
    let theirs = theirs.framebuffer();

    let mut problems = Vec::new();
    for y in 0..height {
        let tail = erased_tail(ours, theirs, y);
        let (a, b) = (render_row(ours, y, tail), render_row(theirs, y, tail));
        if a != b {
            problems.push(format!("row {y}:\n  ours: {a}\n  tmux: {b}"));
        }
    }
    let (modes, title) = state
        .trim_end_matches('\n')
        .split_once('|')
        .expect("state line");
    let mut modes: Vec<String> = modes.split(' ').map(str::to_string).collect();
    let cx: usize = modes[0].parse().expect("cursor_x");
    modes[0] = cx.min(width - 1).to_string();
    let modes = modes.join(" ");
    let our_modes = our_state(ours);
    if modes != our_modes {
        problems.push(format!(
            "state (cursor x y, cursor, insert, DECCKM, keypad, wrap, origin, alt, region, mouse 1000 1002 1003 sgr utf8):\n  ours: {our_modes}\n  tmux: {modes}"
        ));
    }
    if ours.title_initialized() && ours.title() != title {
        problems.push(format!("title: ours {:?}, tmux {title:?}", ours.title()));
    }
    problems
}

#[test]
fn corpus_matches_tmux() {
    let jobs = common::corpus_files()
        .iter()
        .flat_map(|f| SIZES.iter().map(move |&(w, h)| (f.clone(), w, h)))
        .collect();
    run_jobs(jobs);
}

#[test]
fn differ_output_matches_tmux() {
    let sample = [
        "rec_ls_color.bin",
        "rec_less.bin",
        "rec_vim.bin",
        "rec_top.bin",
        "pager_like.bin",
        "sgr_256colors.bin",
        "sgr_attrs.bin",
        "unicode.bin",
        "wide_edges.bin",
        "scroll_region.bin",
        "erase.bin",
        "modes.bin",
        "sgr_extended.bin",
    ];
    // The profile toward our own client, for the files with attributes
    // stock cannot carry.
    let extended = ["sgr_extended.bin", "sgr_attrs.bin", "rec_vim.bin"];
    let dir = std::env::temp_dir().join(format!("mosh-term-differ-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut jobs = Vec::new();
    let runs = sample
        .iter()
        .map(|&name| (name, false))
        .chain(extended.iter().map(|&name| (name, true)));
    for (name, attributes) in runs {
        let display = Display::server().with_attributes(attributes);
        let input = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name);
        let bytes = std::fs::read(&input).expect("read corpus file");
        for &(w, h) in &SIZES {
            let mut server = Emulator::new(w, h);
            let mut shown = server.framebuffer().clone();
            let mut stream = display.new_frame(false, &shown, &shown);
            for piece in bytes.chunks(150) {
                server.feed(piece);
                let now = server.framebuffer().clone();
                stream.extend(display.new_frame(true, &shown, &now));
                shown = now;
            }
            let mut replay = Emulator::new(w, h);
            replay.feed(&stream);
            let expected = if attributes {
                shown.clone()
            } else {
                shown.to_stock()
            };
            assert!(
                replay.framebuffer().same_picture(&expected),
                "{name} at {w}x{h}: replay differs from the server's screen"
            );
            let path = dir.join(format!("{name}.{w}x{h}.{attributes}.frames"));
            std::fs::write(&path, &stream).expect("write frames");
            jobs.push((path, w, h));
        }
    }
    run_jobs(jobs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Random screens A and B (from a fixed-seed generator): a repaint of A
/// followed by `new_frame(A, B)`, replayed through tmux, shows B (as stock
/// holds it, for the even cases diffed toward a stock peer; all of it for
/// the odd ones, diffed toward our own client).
#[test]
fn random_frames_through_tmux() {
    const SNIPPETS: &[&str] = &[
        "abc",
        "hello world ",
        "漢字",
        "e\u{301}",
        "😀",
        " ",
        "\r\n",
        "\n",
        "\x08",
        "\x1b[2;5H",
        "\x1b[7;1H",
        "\x1b[1;31m",
        "\x1b[0m",
        "\x1b[44m",
        "\x1b[38;5;200m",
        "\x1b[48;2;9;8;7m",
        "\x1b[4;7m",
        "\x1b[9;53m",
        "\x1b[4:3;58:2::10:200:30m",
        "\x1b[21;58;5;196m",
        "\x1b[24;29;55;59m",
        "\x1b]8;id=r;http://example.com/r\x1b\\",
        "\x1b]8;;\x1b\\",
        "\x1b[K",
        "\x1b[1K",
        "\x1b[3X",
        "\x1b[2J",
        "\x1b[J",
        "\x1b[2P",
        "\x1b[2@",
        "\x1b[L",
        "\x1b[M",
        "\x1b[S",
        "\x1b[T",
        "\x1b[3;6r",
        "\x1b[r",
        "\x1bM",
        "\x1b[?25l",
        "\x1b[?25h",
        "\x1b[?2004h",
        "\x1b[?1002h",
        "\x1b[?1006h",
        "\x1b]0;t1\x07",
        "\x1b[9;20H",
        "0123456789012345678901234567890123",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let dir = std::env::temp_dir().join(format!("mosh-term-random-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut jobs = Vec::new();
    for case in 0..24 {
        let (w, h) = (20 + (next() % 20) as usize, 5 + (next() % 8) as usize);
        let mut server = Emulator::new(w, h);
        let mut write = |emu: &mut Emulator, n: usize| {
            for _ in 0..n {
                let s = SNIPPETS[(next() % SNIPPETS.len() as u64) as usize];
                emu.feed(s.as_bytes());
            }
        };
        write(&mut server, 40);
        let a = server.framebuffer().clone();
        write(&mut server, 25);
        let b = server.framebuffer().clone();
        let attributes = case % 2 == 1;
        let display = Display::server().with_attributes(attributes);
        let blank = Framebuffer::new(w, h);
        let mut stream = display.new_frame(false, &blank, &a);
        stream.extend(display.new_frame(true, &a, &b));
        let mut replay = Emulator::new(w, h);
        replay.feed(&stream);
        let expected = if attributes { b.clone() } else { b.to_stock() };
        assert!(
            replay.framebuffer().same_picture(&expected),
            "case {case}: replay differs"
        );
        let path = dir.join(format!("random{case}.frames"));
        std::fs::write(&path, &stream).expect("write frames");
        jobs.push((path, w, h));
    }
    run_jobs(jobs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compares each (file, width, height) against tmux, four at a time, and
/// fails listing every difference.
fn run_jobs(jobs: Vec<(PathBuf, usize, usize)>) {
    let jobs: Arc<Mutex<Vec<(PathBuf, usize, usize)>>> = Arc::new(Mutex::new(jobs));
    let results: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let jobs = Arc::clone(&jobs);
            let results = Arc::clone(&results);
            std::thread::spawn(move || {
                loop {
                    let Some((file, w, h)) = jobs.lock().unwrap().pop() else {
                        return;
                    };
                    let problems = compare(&file, w, h);
                    let name =
                        format!("{} at {w}x{h}", file.file_name().unwrap().to_string_lossy());
                    results.lock().unwrap().insert(name, problems);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    let results = results.lock().unwrap();
    let failures: Vec<String> = results
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(name, p)| format!("== {name}\n{}", p.join("\n")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from tmux:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}
