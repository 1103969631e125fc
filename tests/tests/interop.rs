//! Interop with stock mosh 1.4 at the datagram level: our `mosh_proto`
//! transport as the client of a stock `mosh-server`, and as the server of a
//! stock `mosh-client` running in tmux. Each session ends with the shutdown
//! handshake, and no datagram from the stock peer may be dropped (except
//! harmless repeats).

use std::time::{Duration, Instant};

use mosh_e2e::peer::UdpPeer;
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::states::{HostLog, TextScreen, UserStream};
use mosh_e2e::stock;
use mosh_e2e::tmux::TmuxSession;
use mosh_proto::connection::{DATAGRAM_OVERHEAD, IPV4_MTU};
use mosh_proto::fragment;
use mosh_proto::{Base64Key, Delivery, ExtensionSet, Peer, State, TransportConfig};

/// Upper bound for every step; each takes well under a second on loopback.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A window size other than the 80 × 24 default, so the tests can tell that
/// the size crossed the wire.
const CLIENT_SIZE: (u16, u16) = (100, 30);

type ClientPeer = UdpPeer<UserStream, HostLog>;
type ServerPeer = UdpPeer<TextScreen, UserStream>;

/// `len` random base64 letters: text that zlib cannot shrink much, so that
/// a few thousand of them need several fragments.
fn random_text(len: usize) -> String {
    let mut text = String::new();
    while text.len() < len {
        text.push_str(&Base64Key::random().expect("OS randomness").printable());
    }
    text.truncate(len);
    text
}

/// Whether a diff is too big for one fragment on IPv4 once compressed.
fn needs_several_fragments(diff: &[u8]) -> bool {
    fragment::compress(diff).len() > IPV4_MTU - DATAGRAM_OVERHEAD
}

/// What the stock server has sent so far, for failure messages.
fn received_text(client: &ClientPeer) -> String {
    String::from_utf8_lossy(client.transport().latest_remote_state().hostbytes()).into_owned()
}

/// Starts a stock `mosh-server` running `/bin/sh`, connects our client
/// (offering no native extension, as stock), sends the window size and waits
/// for the shell's first screen.
fn connect_to_stock_server() -> (MoshServer, ClientPeer) {
    connect_to_stock_server_offering(ExtensionSet::EMPTY)
}

/// [`connect_to_stock_server`] with our client offering `extensions`.
fn connect_to_stock_server_offering(extensions: ExtensionSet) -> (MoshServer, ClientPeer) {
    let server =
        MoshServer::start(Implementation::Stock, &["/bin/sh"]).expect("start stock mosh-server");
    let mut client = UdpPeer::bind(
        TransportConfig::client(server.addr()).with_extensions(extensions),
        server.key(),
        UserStream::default(),
        HostLog::default(),
    )
    .expect("bind the test client's UDP socket");

    // The server keeps the shell waiting until the first client state
    // arrives, so that state is only the window size; typing follows once
    // the shell's first screen shows that the server has it.
    client
        .transport_mut()
        .current_state_mut()
        .push_resize(CLIENT_SIZE.0, CLIENT_SIZE.1);
    client
        .run_until(
            STEP_TIMEOUT,
            "the first screen from stock mosh-server",
            |transport| (!transport.latest_remote_state().hostbytes().is_empty()).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        client.transport().latest_remote_state().size(),
        Some(CLIENT_SIZE),
        "stock mosh-server should resize its terminal to the client's window"
    );
    (server, client)
}

/// Types `keys` into the stock server's shell and waits until `expected`
/// shows up in the hostbytes.
fn type_and_expect(client: &mut ClientPeer, keys: &str, expected: &str) {
    client
        .transport_mut()
        .current_state_mut()
        .push_bytes(keys.as_bytes());
    client
        .run_until(
            STEP_TIMEOUT,
            &format!("{expected:?} in the hostbytes from stock mosh-server"),
            |transport| {
                transport
                    .latest_remote_state()
                    .contains(expected)
                    .then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; hostbytes so far: {:?}", received_text(client)));
}

/// Leaves the shell, which makes the stock server start the shutdown
/// handshake; acknowledges it and checks that the server exits.
fn exit_stock_server(server: MoshServer, mut client: ClientPeer) {
    client
        .transport_mut()
        .current_state_mut()
        .push_bytes(b"exit\r");
    client
        .run_until(
            STEP_TIMEOUT,
            "stock mosh-server's shutdown, and our acknowledgement",
            |transport| {
                (transport.remote_initiated_shutdown()
                    && transport.counterparty_shutdown_ack_sent())
                .then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; hostbytes so far: {:?}", received_text(&client)));
    assert!(
        server.wait_for_exit(STEP_TIMEOUT),
        "stock mosh-server (pid {}) still runs after its shutdown was acknowledged",
        server.pid()
    );
    let dropped = client.errors();
    assert!(
        dropped.is_empty(),
        "datagrams from stock mosh-server were dropped: {dropped:?}"
    );
}

#[test]
fn proto_client_types_into_stock_server_and_reads_the_output() {
    let (server, mut client) = connect_to_stock_server();
    let (width, height) = CLIENT_SIZE;
    type_and_expect(
        &mut client,
        "echo ok-$((6*7)) $(stty size)\r",
        &format!("ok-42 {height} {width}"),
    );
    exit_stock_server(server, client);
}

#[test]
fn long_input_and_its_echo_cross_in_several_fragments_with_stock_server() {
    let (server, mut client) = connect_to_stock_server();
    let payload = random_text(2400);
    let keys = format!("printf %s '{payload}' | wc -c | sed s/^/count-/\r");
    let mut typed = UserStream::default();
    typed.push_bytes(keys.as_bytes());
    assert!(
        needs_several_fragments(&typed.diff_from(&UserStream::default())),
        "the keystrokes should not fit one fragment"
    );

    // The shell can only count all the letters if stock mosh-server put our
    // fragments back together.
    type_and_expect(&mut client, &keys, &format!("count-{}", payload.len()));
    assert!(
        client.deliveries().contains(&Delivery::Partial),
        "the echo of the long line should come in several fragments; deliveries: {:?}",
        client.deliveries()
    );
    exit_stock_server(server, client);
}

/// Binds our server, starts stock `mosh-client` against it in a tmux pane of
/// [`CLIENT_SIZE`] and waits for the client's window size, its first state.
fn connect_stock_client() -> (ServerPeer, TmuxSession) {
    connect_stock_client_supporting(ExtensionSet::EMPTY)
}

/// [`connect_stock_client`] with our server supporting `extensions`.
fn connect_stock_client_supporting(extensions: ExtensionSet) -> (ServerPeer, TmuxSession) {
    let key = Base64Key::random().expect("a random session key");
    let mut server = UdpPeer::bind(
        TransportConfig::server().with_extensions(extensions),
        &key,
        TextScreen::default(),
        UserStream::default(),
    )
    .expect("bind the test server's UDP socket");
    let tmux = stock::client_in_tmux(server.local_addr(), &key, CLIENT_SIZE.0, CLIENT_SIZE.1)
        .expect("start stock mosh-client in tmux");
    let size = server
        .run_until(
            STEP_TIMEOUT,
            "the window size from stock mosh-client",
            |transport| transport.latest_remote_state().last_resize(),
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane(&tmux)));
    assert_eq!(size, CLIENT_SIZE, "stock mosh-client's window is the pane");
    (server, tmux)
}

/// The pane's contents, or why they could not be read, for failure messages.
fn pane(tmux: &TmuxSession) -> String {
    tmux.capture().unwrap_or_else(|e| e.to_string())
}

/// Shows `text` through our server and waits until stock mosh-client has
/// drawn it; returns the pane's contents.
fn show_and_wait(server: &mut ServerPeer, tmux: &TmuxSession, text: &str) -> String {
    let (width, height) = CLIENT_SIZE;
    server
        .transport_mut()
        .set_current_state(TextScreen::new(width, height, text));
    let mut next_look = Instant::now();
    server
        .run_until(
            STEP_TIMEOUT,
            &format!("{text:?} in the pane of stock mosh-client"),
            |_| {
                if Instant::now() < next_look {
                    return None;
                }
                next_look = Instant::now() + Duration::from_millis(100);
                let screen = tmux.capture().expect("capture the tmux pane");
                screen
                    .lines()
                    .collect::<String>()
                    .contains(text)
                    .then_some(screen)
            },
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane(tmux)))
}

/// Starts the shutdown handshake from our server and checks that stock
/// mosh-client acknowledges it and exits with status 0.
fn shut_down_stock_client(mut server: ServerPeer, tmux: TmuxSession) {
    server.transport_mut().start_shutdown(Instant::now());
    server
        .run_until(
            STEP_TIMEOUT,
            "stock mosh-client to acknowledge our shutdown",
            |transport| {
                assert!(
                    !transport.shutdown_timed_out(Instant::now()),
                    "stock mosh-client never acknowledged our shutdown; the pane shows:\n{}",
                    pane(&tmux)
                );
                transport.shutdown_acknowledged().then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane(&tmux)));
    let status = tmux
        .wait_for_exit(STEP_TIMEOUT)
        .expect("stock mosh-client exits after the shutdown handshake");
    assert_eq!(
        status,
        0,
        "stock mosh-client's exit status after a clean shutdown; the pane shows:\n{}",
        pane(&tmux)
    );
    let dropped = server.errors();
    assert!(
        dropped.is_empty(),
        "datagrams from stock mosh-client were dropped: {dropped:?}"
    );
}

#[test]
fn stock_client_shows_text_from_proto_server_and_exits_cleanly() {
    const TEXT: &str = "hello from proto";
    let (mut server, tmux) = connect_stock_client();
    let screen = show_and_wait(&mut server, &tmux, TEXT);
    assert_eq!(
        screen.lines().next(),
        Some(TEXT),
        "the text should be on the first row; the pane shows:\n{screen}"
    );
    shut_down_stock_client(server, tmux);
}

#[test]
fn stock_client_draws_a_screen_sent_in_several_fragments() {
    let (width, height) = CLIENT_SIZE;
    let rows = usize::from(height) - 1;
    let text = random_text(usize::from(width) * rows);
    assert!(
        needs_several_fragments(
            &TextScreen::new(width, height, &text).diff_from(&TextScreen::default())
        ),
        "the screen should not fit one fragment"
    );
    let (mut server, tmux) = connect_stock_client();
    let screen = show_and_wait(&mut server, &tmux, &text);
    let expected: Vec<_> = text
        .as_bytes()
        .chunks(usize::from(width))
        .map(|row| std::str::from_utf8(row).expect("base64 is ASCII"))
        .collect();
    assert_eq!(
        screen.lines().take(rows).collect::<Vec<_>>(),
        expected,
        "the text should fill the first {rows} rows, wrapping at {width} columns"
    );
    shut_down_stock_client(server, tmux);
}

#[test]
fn stock_server_ignores_our_extension_offer() {
    let (server, mut client) = connect_to_stock_server_offering(ExtensionSet::all());
    type_and_expect(&mut client, "echo offer-$((6*7))\r", "offer-42");
    assert_eq!(
        client.transport().peer_extensions(),
        Peer::Stock,
        "stock mosh-server acknowledged our states without answering the offer"
    );
    exit_stock_server(server, client);
}

#[test]
fn our_server_with_extensions_treats_stock_client_as_stock() {
    const TEXT: &str = "hello from a server with extensions";
    let (mut server, tmux) = connect_stock_client_supporting(ExtensionSet::all());
    assert_eq!(server.transport().peer_extensions(), Peer::Stock);
    show_and_wait(&mut server, &tmux, TEXT);
    shut_down_stock_client(server, tmux);
}
