//! Interop with stock mosh 1.4 at the datagram level: our `mosh_proto`
//! transport as the client of a stock `mosh-server`, and as the server of a
//! stock `mosh-client` running in tmux.

use std::time::{Duration, Instant};

use mosh_e2e::peer::UdpPeer;
use mosh_e2e::states::{HostLog, TextScreen, UserStream};
use mosh_e2e::stock::{self, StockServer, UTF8_LOCALE};
use mosh_e2e::tmux::TmuxSession;
use mosh_proto::Base64Key;

/// Upper bound for every step; each takes well under a second on loopback.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A window size other than the 80 × 24 default, so the tests can tell that
/// the size crossed the wire.
const CLIENT_SIZE: (u16, u16) = (100, 30);

/// What the stock server has sent so far, for failure messages.
fn received_text(client: &UdpPeer<UserStream, HostLog>) -> String {
    String::from_utf8_lossy(client.transport().latest_remote_state().hostbytes()).into_owned()
}

#[test]
fn proto_client_types_into_stock_server_and_reads_the_output() {
    let server = StockServer::start(&["/bin/sh"]).expect("start stock mosh-server");
    let mut client = UdpPeer::client(
        server.addr(),
        server.key(),
        UserStream::default(),
        HostLog::default(),
    )
    .expect("bind the test client's UDP socket");

    // The server keeps the shell waiting until the first client state
    // arrives, so that state is only the window size; typing follows once
    // the shell's first screen shows that the server has it.
    let (width, height) = CLIENT_SIZE;
    client
        .transport_mut()
        .current_state_mut()
        .push_resize(width, height);
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

    client
        .transport_mut()
        .current_state_mut()
        .push_bytes(b"echo ok-$((6*7)) $(stty size)\r");
    let expected = format!("ok-42 {height} {width}");
    client
        .run_until(
            STEP_TIMEOUT,
            &format!("{expected:?} in the hostbytes from stock mosh-server"),
            |transport| {
                transport
                    .latest_remote_state()
                    .contains(&expected)
                    .then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; hostbytes so far: {:?}", received_text(&client)));

    // Leaving the shell makes the server start the shutdown handshake;
    // acknowledging it lets the server exit.
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
    assert!(
        client.errors().is_empty(),
        "datagrams from stock mosh-server were dropped: {:?}",
        client.errors()
    );
}

#[test]
fn stock_client_shows_text_from_proto_server_and_exits_cleanly() {
    const TEXT: &str = "hello from proto";
    let key = Base64Key::random().expect("a random session key");
    let mut server = UdpPeer::server(&key, TextScreen::default(), UserStream::default())
        .expect("bind the test server's UDP socket");
    let client_program = stock::client_program().expect("find stock mosh-client");
    let port = server.local_addr().port().to_string();
    let printable_key = key.printable();
    let (width, height) = CLIENT_SIZE;
    let tmux = TmuxSession::start(
        width,
        height,
        &[
            client_program.to_str().expect("a UTF-8 path"),
            "127.0.0.1",
            &port,
        ],
        &[
            ("MOSH_KEY", &printable_key),
            ("LANG", UTF8_LOCALE),
            ("LC_ALL", UTF8_LOCALE),
        ],
    )
    .expect("start stock mosh-client in tmux");
    let pane = || tmux.capture().unwrap_or_else(|e| e.to_string());

    // The stock client's first state is its window size: draw for it.
    let size = server
        .run_until(
            STEP_TIMEOUT,
            "the window size from stock mosh-client",
            |transport| transport.latest_remote_state().last_resize(),
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane()));
    assert_eq!(size, CLIENT_SIZE, "stock mosh-client's window is the pane");
    server
        .transport_mut()
        .set_current_state(TextScreen::new(size.0, size.1, TEXT));

    let mut next_look = Instant::now();
    let screen = server
        .run_until(
            STEP_TIMEOUT,
            &format!("{TEXT:?} in the pane of stock mosh-client"),
            |_| {
                if Instant::now() < next_look {
                    return None;
                }
                next_look = Instant::now() + Duration::from_millis(100);
                let screen = tmux.capture().expect("capture the tmux pane");
                screen.contains(TEXT).then_some(screen)
            },
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane()));
    assert_eq!(
        screen.lines().next(),
        Some(TEXT),
        "the text should be on the first row; the pane shows:\n{screen}"
    );

    server.transport_mut().start_shutdown(Instant::now());
    server
        .run_until(
            STEP_TIMEOUT,
            "stock mosh-client to acknowledge our shutdown",
            |transport| {
                assert!(
                    !transport.shutdown_timed_out(Instant::now()),
                    "stock mosh-client never acknowledged our shutdown; the pane shows:\n{}",
                    pane()
                );
                transport.shutdown_acknowledged().then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}; the pane shows:\n{}", pane()));
    let status = tmux
        .wait_for_exit(STEP_TIMEOUT)
        .expect("stock mosh-client exits after the shutdown handshake");
    assert_eq!(
        status,
        0,
        "stock mosh-client's exit status after a clean shutdown; the pane shows:\n{}",
        pane()
    );
    assert!(
        server.errors().is_empty(),
        "datagrams from stock mosh-client were dropped: {:?}",
        server.errors()
    );
}
