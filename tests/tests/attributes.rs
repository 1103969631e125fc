//! Cell attributes stock mosh cannot carry (strikethrough, double and
//! styled underlines, underline colour, overline, OSC 8 hyperlinks), end to
//! end: through our client and our server each shows as the same bytes
//! shown directly in tmux (`capture-pane -e`; tmux 3.3a keeps all of them
//! but hyperlinks, which are checked in what our client writes to its
//! terminal instead, also through loss and after redraws). Through stock
//! `mosh-client` and our server the screen is what stock can show (the
//! colour arguments of SGR 58 never turn into blink, faint or black), and
//! the extension negotiation enables `attributes` only between our ends.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mosh_e2e::impair::{Impairment, ImpairmentProxy};
use mosh_e2e::ours;
use mosh_e2e::peer::UdpPeer;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::states::{HostLog, TextScreen, UserStream};
use mosh_e2e::stock;
use mosh_e2e::tmux::TmuxSession;
use mosh_proto::{Base64Key, Extension, ExtensionSet, Peer, TransportConfig};
use mosh_term::{Emulator, Framebuffer};

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(20);

/// Every attribute, in the `;` and `:` forms editors and `ls` use.
const EXTENDED: &str = concat!(
    "printf '\\033[9mstrike\\033[29m \\033[21mdouble\\033[24m \\033[4:3mcurly\\033[4:4mdotted",
    "\\033[4:5mdashed\\033[4:2mdbl\\033[4:0m none\\n';",
    "printf '\\033[4;58;5;196mul-idx\\033[59mul-default\\033[0m \\033[4:3;58;2;10;200;30mcurly-semi",
    "\\033[0m \\033[4:3;58:2::10:200:30mcurly-colon\\033[0m\\n';",
    "printf '\\033[53moverline\\033[55m \\033[9;53;4:3;58;5;21;1;31mall\\033[0m ",
    "\\033[38:2::200:100:50;48:5:17mcolon-colours\\033[0m\\n';",
    "printf 'a \\033]8;id=x;http://example.com/a\\033\\\\linked\\033[1m-bold\\033]8;;\\033\\\\ plain\\n';",
);

/// [`EXTENDED`] as stock mosh can show it: underlines of any style are
/// plain underlines, the rest is gone.
const STOCK_VIEW: &str = concat!(
    "printf 'strike \\033[4mdouble\\033[24m \\033[4mcurlydotteddasheddbl\\033[24m none\\n';",
    "printf '\\033[4mul-idxul-default\\033[0m \\033[4mcurly-semi\\033[0m \\033[4mcurly-colon\\033[0m\\n';",
    "printf 'overline \\033[4;1;31mall\\033[0m \\033[38;2;200;100;50;48;5;17mcolon-colours\\033[0m\\n';",
    "printf 'a linked\\033[1m-bold plain\\n';",
);

/// Rows of the screens compared.
const ROWS: usize = 4;

/// The script our server runs: no echo (so Ctrl-L leaves the screen
/// alone), `text` once the file `go` exists, then a marker.
fn script(text: &str, go: &Path) -> String {
    format!(
        "stty -echo; while [ ! -e '{}' ]; do sleep 0.05; done; {text} printf 'done-marker'; exec sleep 600",
        go.display()
    )
}

/// A private directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mosh-e2e-attrs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test's directory");
    dir
}

fn capture_styled(pane: &TmuxSession) -> Vec<String> {
    pane.run(["capture-pane", "-p", "-e", "-t", "e2e"])
        .expect("capture the pane")
        .lines()
        .take(ROWS)
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// The same bytes shown directly in a tmux pane.
fn direct(text: &str) -> Vec<String> {
    let command = format!("{text} printf 'done-marker'; exec sleep 600");
    let local = TmuxSession::start(80, 24, &["/bin/sh", "-c", &command], &[]).unwrap();
    local.wait_for("done-marker", QUICK).unwrap();
    capture_styled(&local)
}

/// Our server running [`script`] of `text` (shown once `go` is called).
fn our_server(text: &str, dir: &Path) -> MoshServer {
    let gate = dir.join("go");
    MoshServer::start(
        Implementation::Ours,
        &["/bin/sh", "-c", &script(text, &gate)],
    )
    .expect("start our mosh-server")
}

/// [`our_server`] and a client of `kind` in tmux.
fn session(text: &str, client: Implementation, dir: &Path) -> (MoshServer, TmuxSession) {
    let server = our_server(text, dir);
    let pane = match client {
        Implementation::Ours => ours::client_in_tmux(server.addr(), server.key(), 80, 24, &[]),
        Implementation::Stock => stock::client_in_tmux(server.addr(), server.key(), 80, 24),
    }
    .expect("start the client");
    (server, pane)
}

/// Our client (with `options`) talking to `addr`, in tmux, everything it
/// writes to its terminal from its very start recorded in `output`.
fn recorded_client(
    addr: SocketAddr,
    key: &Base64Key,
    options: &[&str],
    dir: &Path,
    output: &Path,
) -> TmuxSession {
    let program = mosh_e2e::our_program("mosh-client").unwrap();
    let start = dir.join("start");
    let command = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; exec '{}' {} {} {}",
        start.display(),
        program.display(),
        options.join(" "),
        addr.ip(),
        addr.port()
    );
    let pane = ours::client_command_in_tmux(&["/bin/sh", "-c", &command], key, 80, 24, &[])
        .expect("start our client");
    record_output(&pane, output);
    std::fs::write(&start, b"").expect("write the start file");
    pane
}

/// Starts recording what the pane's program writes to its terminal.
fn record_output(pane: &TmuxSession, file: &Path) {
    pane.run([
        "pipe-pane",
        "-o",
        "-t",
        "e2e",
        &format!("cat >> '{}'", file.display()),
    ])
    .expect("pipe the pane's output to a file");
}

fn go(dir: &Path) {
    std::fs::write(dir.join("go"), b"").expect("write the go file");
}

/// What `cells` of row `row` link to, as `id|uri`, after replaying `output`.
fn links(output: &[u8], row: usize, cells: std::ops::Range<usize>) -> Vec<Option<String>> {
    let mut emulator = Emulator::new(80, 24);
    emulator.feed(output);
    let fb: &Framebuffer = emulator.framebuffer();
    cells
        .map(|col| {
            fb.hyperlink(fb.cell(row, col).rend.link)
                .map(|l| format!("{}|{}", l.id, l.uri))
        })
        .collect()
}

/// Row 3 of [`EXTENDED`]: `a linked-bold plain`, with `linked-bold` linked.
fn expected_links() -> Vec<Option<String>> {
    let link = Some("x|http://example.com/a".to_owned());
    let mut expected = vec![None, None];
    expected.extend(std::iter::repeat_n(link, "linked-bold".len()));
    expected.extend(std::iter::repeat_n(None, " plain".len() + 2));
    expected
}

/// Waits until `file` holds more than `from` bytes and contains a full
/// repaint (the cursor homed after the scroll region and renditions are
/// reset; with the screen cleared too unless the client draws on the normal
/// screen for scrollback) after `from`; returns the bytes from that repaint
/// on, once `marker` has been written after it.
fn repaint_after(file: &Path, from: usize, marker: &str) -> Vec<u8> {
    let deadline = Instant::now() + QUICK;
    loop {
        let bytes = std::fs::read(file).unwrap_or_default();
        let tail = &bytes[from.min(bytes.len())..];
        if let Some(at) = find(tail, b"\x1b[r\x1b[0m\x1b[H")
            && find(&tail[at..], marker.as_bytes()).is_some()
        {
            return tail[at..].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "no repaint showing {marker:?} after byte {from}; the client wrote {:?}",
            String::from_utf8_lossy(tail)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn our_client_and_server_show_every_attribute_as_tmux_does() {
    let dir = scratch("tmux");
    let (_server, pane) = session(EXTENDED, Implementation::Ours, &dir);
    pane.wait_for("", QUICK).unwrap();
    go(&dir);
    pane.wait_for("done-marker", QUICK).unwrap();
    let through_mosh = capture_styled(&pane);
    let shown = direct(EXTENDED);
    assert_eq!(through_mosh, shown);
    assert!(
        shown[0].contains("\x1b[9m") && shown[1].contains("4:3") && shown[1].contains("58;"),
        "tmux keeps the attributes: {shown:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stock_client_shows_what_stock_can_and_nothing_else() {
    let dir = scratch("stock");
    let (_server, pane) = session(EXTENDED, Implementation::Stock, &dir);
    go(&dir);
    pane.wait_for("done-marker", QUICK).unwrap();
    assert_eq!(capture_styled(&pane), direct(STOCK_VIEW));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hyperlinks_reach_the_terminal_through_loss_and_redraws() {
    let dir = scratch("links");
    let output = dir.join("client-output");
    let server = our_server(EXTENDED, &dir);
    let proxy = ImpairmentProxy::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        server.addr(),
        Ipv4Addr::LOCALHOST.into(),
        18,
    )
    .expect("start the impairment proxy");
    proxy.set_both(Impairment {
        loss: 0.3,
        delay: Duration::from_millis(20),
        ..Impairment::default()
    });
    let pane = recorded_client(proxy.listen_addr(), server.key(), &[], &dir, &output);
    go(&dir);
    pane.wait_for("done-marker", QUICK).unwrap();
    let first = repaint_after(&output, 0, "done-marker");
    let written = std::fs::read(&output).unwrap();
    assert!(
        find(&written, b"\x1b]8;id=x;http://example.com/a\x1b\\").is_some(),
        "the client wrote {:?}",
        String::from_utf8_lossy(&written)
    );
    assert_eq!(links(&written, 3, 0..21), expected_links(), "after loss");
    assert!(
        links(&first, 0, 0..80)
            .iter()
            .chain(&links(&first, 1, 0..80))
            .chain(&links(&written, 4, 0..80))
            .all(Option::is_none),
        "no other cell is linked"
    );

    let before = written.len();
    pane.send_keys(&["C-l"]).unwrap();
    let redrawn = repaint_after(&output, before, "done-marker");
    assert_eq!(links(&redrawn, 3, 0..21), expected_links(), "after Ctrl-L");

    let before = std::fs::read(&output).unwrap().len();
    pane.run(["resize-window", "-t", "e2e", "-x", "70", "-y", "20"])
        .expect("resize the window");
    let resized = repaint_after(&output, before, "done-marker");
    assert_eq!(
        links(&resized, 3, 0..21),
        expected_links(),
        "after a resize"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Our server and a client transport offering `offer`: what the
/// negotiation decided and the hostbytes once `strike` is on screen.
fn hostbytes_for_offer(offer: ExtensionSet) -> (Peer, Vec<u8>) {
    let command = "printf '\\033[9mstrike\\033[0m \\033]8;;http://e.com/\\033\\\\ln\\033]8;;\\033\\\\ done'; exec sleep 600";
    let server = MoshServer::start(Implementation::Ours, &["/bin/sh", "-c", command])
        .expect("start our mosh-server");
    let mut client = UdpPeer::bind(
        TransportConfig::client(server.addr()).with_extensions(offer),
        server.key(),
        UserStream::default(),
        HostLog::default(),
    )
    .expect("bind the test client");
    client
        .transport_mut()
        .current_state_mut()
        .push_resize(80, 24);
    client
        .run_until(QUICK, "the screen from our server", |transport| {
            transport
                .latest_remote_state()
                .contains("done")
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let peer = client.transport().peer_extensions();
    (
        peer,
        client
            .transport()
            .latest_remote_state()
            .hostbytes()
            .to_vec(),
    )
}

#[test]
fn our_server_sends_extended_attributes_only_to_a_client_that_offers_them() {
    let attributes = ExtensionSet::EMPTY.with(Extension::Attributes);
    let (peer, bytes) = hostbytes_for_offer(attributes);
    assert_eq!(peer, Peer::Native(attributes));
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("\x1b[0;9mstrike") && text.contains("\x1b]8;;http://e.com/\x1b\\"),
        "{text:?}"
    );
    assert!(
        text.starts_with("\x1b[?5l\x1b[r\x1b[0m\x1b[H\x1b[2J"),
        "the first diff after the negotiation is a full repaint: {text:?}"
    );

    let (peer, bytes) = hostbytes_for_offer(ExtensionSet::EMPTY);
    assert_eq!(peer, Peer::Stock);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("strike") && !text.contains(";9m") && !text.contains("\x1b]8"),
        "a stock client gets what stock mosh sends: {text:?}"
    );
}

#[test]
fn our_client_offers_attributes_and_says_so_with_v() {
    let key = Base64Key::random().expect("a random key");
    let mut server = UdpPeer::bind(
        TransportConfig::server().with_extensions(ExtensionSet::all()),
        &key,
        TextScreen::new(80, 24, "hello"),
        UserStream::default(),
    )
    .expect("bind the test server");
    let dir = scratch("verbose");
    let output = dir.join("client-output");
    let program = mosh_e2e::our_program("mosh-client").unwrap();
    let (ip, port) = (
        server.local_addr().ip().to_string(),
        server.local_addr().port().to_string(),
    );
    let pane = ours::client_command_in_tmux(
        &[program.to_str().unwrap(), "-v", &ip, &port],
        &key,
        80,
        24,
        &[],
    )
    .expect("start our client");
    record_output(&pane, &output);
    server
        .run_until(QUICK, "the client's extensions", |transport| {
            matches!(transport.peer_extensions(), Peer::Native(_)).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        server
            .transport()
            .peer_extensions()
            .enabled()
            .contains(Extension::Attributes),
        "{:?}",
        server.transport().peer_extensions()
    );
    let deadline = Instant::now() + QUICK;
    let line = "mosh-client: extensions enabled: attributes";
    while find(&std::fs::read(&output).unwrap_or_default(), line.as_bytes()).is_none() {
        assert!(
            Instant::now() < deadline,
            "the client never logged {line:?}"
        );
        server
            .run_until(Duration::from_millis(100), "time passing", |_| None::<()>)
            .ok();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn our_client_and_server_both_enable_attributes() {
    let dir = scratch("both");
    let output = dir.join("client-output");
    let server = our_server("printf '\\033[4:3mcurly\\033[0m\\n';", &dir);
    let pane = recorded_client(server.addr(), server.key(), &["-v"], &dir, &output);
    go(&dir);
    pane.wait_for("done-marker", QUICK).unwrap();
    let deadline = Instant::now() + QUICK;
    loop {
        let written = std::fs::read(&output).unwrap_or_default();
        let logged = find(&written, b"mosh-client: extensions enabled: attributes").is_some();
        let curly = find(&written, b"\x1b[0;4:3mcurly").is_some();
        if logged && curly {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "logged {logged}, curly underline drawn {curly}: {:?}",
            String::from_utf8_lossy(&written)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
