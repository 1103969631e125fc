//! Scrollback between our client and our server, with tmux as the local
//! terminal: what scrolls off the server's screen lands in the pane's own
//! history (`capture-pane -S -`), exactly once and in order, through loss
//! and roaming too; stock peers see none of it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mosh_e2e::impair::{Impairment, ImpairmentProxy};
use mosh_e2e::server::{Implementation, MoshServer};
use mosh_e2e::tmux::TmuxSession;
use mosh_e2e::{ours, stock};

/// Generous bound for anything that should take a moment on loopback.
const QUICK: Duration = Duration::from_secs(20);

/// A shell without rc files, with a prompt tests can wait for.
const SHELL: [&str; 3] = ["/bin/sh", "-c", "PS1='mosh$ ' exec /bin/sh -i"];

fn type_line(pane: &TmuxSession, line: &str) {
    pane.send_text(line).unwrap();
    pane.send_keys(&["Enter"]).unwrap();
}

/// The pane's history and screen, as plain text lines.
fn everything(pane: &TmuxSession) -> Vec<String> {
    pane.run(["capture-pane", "-p", "-S", "-", "-E", "-"])
        .unwrap()
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// Lines of the pane's history (not its screen).
fn history(pane: &TmuxSession) -> Vec<String> {
    let size = pane
        .run(["display-message", "-p", "#{history_size}"])
        .unwrap();
    if size.trim() == "0" {
        return Vec::new();
    }
    pane.run(["capture-pane", "-p", "-S", "-", "-E", "-1"])
        .unwrap()
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// The numbers among `lines` that are whole lines, in order.
fn numbers(lines: &[String]) -> Vec<u64> {
    lines.iter().filter_map(|l| l.parse().ok()).collect()
}

/// Waits until the pane (history and screen) shows `marker` on a line of
/// its own below everything else the run printed.
fn wait_for_line(pane: &TmuxSession, marker: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = everything(pane);
        if lines.iter().any(|l| l == marker) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} within {timeout:?}; the pane shows:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ours_with_ours(env: &[(&str, &str)]) -> (MoshServer, TmuxSession) {
    let server = MoshServer::start(Implementation::Ours, &SHELL).expect("start our mosh-server");
    let pane = ours::client_in_tmux(server.addr(), server.key(), 80, 24, env)
        .expect("start our mosh-client");
    pane.wait_for("mosh$", QUICK).unwrap();
    (server, pane)
}

#[test]
fn every_line_that_scrolls_off_lands_in_the_local_scrollback_once_and_in_order() {
    let (_server, pane) = ours_with_ours(&[]);
    type_line(&pane, "seq 1 5000; echo seq-done");
    let lines = wait_for_line(&pane, "seq-done", QUICK);
    let expected: Vec<u64> = (1..=5000).collect();
    assert_eq!(numbers(&lines), expected, "{}", lines.join("\n"));
    let done = lines.iter().position(|l| l == "seq-done").unwrap();
    assert!(
        lines[done + 1..].iter().any(|l| l.starts_with("mosh$")),
        "the prompt follows: {:?}",
        &lines[done..]
    );
}

#[test]
fn without_scrollback_nothing_reaches_the_local_history() {
    let (_server, pane) = ours_with_ours(&[("MOSH_NO_SCROLLBACK", "1")]);
    type_line(&pane, "seq 1 300; echo seq-done");
    wait_for_line(&pane, "seq-done", QUICK);
    assert!(
        numbers(&history(&pane)).is_empty(),
        "the alternate screen keeps no history: {:?}",
        history(&pane)
    );
}

#[test]
fn a_stock_client_on_our_server_gets_no_history() {
    let server = MoshServer::start(Implementation::Ours, &SHELL).expect("start our mosh-server");
    let pane = stock::client_in_tmux(server.addr(), server.key(), 80, 24).expect("stock client");
    pane.wait_for("mosh$", QUICK).unwrap();
    type_line(&pane, "seq 1 300; echo seq-done");
    wait_for_line(&pane, "seq-done", QUICK);
    assert!(numbers(&history(&pane)).is_empty(), "{:?}", history(&pane));
}

#[test]
fn our_client_on_a_stock_server_gets_no_history() {
    let server = MoshServer::start(Implementation::Stock, &SHELL).expect("start stock server");
    let pane = ours::client_in_tmux(server.addr(), server.key(), 80, 24, &[])
        .expect("start our mosh-client");
    pane.wait_for("mosh$", QUICK).unwrap();
    type_line(&pane, "seq 1 300; echo seq-done");
    wait_for_line(&pane, "seq-done", QUICK);
    assert!(numbers(&history(&pane)).is_empty(), "{:?}", history(&pane));
}

#[test]
fn loss_delay_blackout_and_roaming_still_give_each_line_once_in_order() {
    let server = MoshServer::start(Implementation::Ours, &SHELL).expect("start our mosh-server");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let proxy = ImpairmentProxy::start(SocketAddr::new(localhost, 0), server.addr(), localhost, 3)
        .expect("start the impairment proxy");
    proxy.set_both(Impairment {
        loss: 0.2,
        delay: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        ..Impairment::default()
    });
    let pane = ours::client_in_tmux(proxy.listen_addr(), server.key(), 80, 24, &[])
        .expect("start our mosh-client");
    pane.wait_for("mosh$", Duration::from_secs(60)).unwrap();
    type_line(&pane, "seq 1 2000; sleep 3; seq 2001 3000; echo seq-done");
    std::thread::sleep(Duration::from_millis(1500));
    proxy.blackout(Duration::from_secs(10));
    proxy
        .roam(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .expect("roam to 127.0.0.2");
    let lines = wait_for_line(&pane, "seq-done", Duration::from_secs(120));
    let expected: Vec<u64> = (1..=3000).collect();
    assert_eq!(numbers(&lines), expected, "{}", lines.join("\n"));
}
