//! Many sessions at once through one `mosh-daemon`: 200 sessions for two
//! users, started concurrently, each answering a command typed by its own
//! client, while the daemon keeps answering `moshctl`.
#![allow(
    clippy::print_stderr,
    reason = "a test's diagnostics, captured by the test runner"
)]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mosh_e2e::daemon::{As, Connect, TestDaemon, TestUser, free_port_range};
use mosh_e2e::peer::UdpPeer;
use mosh_e2e::states::{HostLog, UserStream};

const SESSIONS: usize = 200;
/// Helpers started at once.
const STARTERS: usize = 8;
const PATIENCE: Duration = Duration::from_secs(120);

/// Reads one line and answers it.
const ANSWERING: [&str; 3] = ["/bin/sh", "-c", "read line; echo got-$line; sleep 120"];

#[test]
fn two_hundred_concurrent_sessions_for_two_users_each_answer() {
    let daemon = Arc::new(
        TestDaemon::start(
            free_port_range(SESSIONS as u16 + 10),
            "max_sessions_per_user = 150\nmax_sessions = 400",
        )
        .unwrap(),
    );
    let users = Arc::new([TestUser::create().unwrap(), TestUser::create().unwrap()]);
    let started = Instant::now();
    let starters: Vec<_> = (0..STARTERS)
        .map(|starter| {
            let (daemon, users) = (daemon.clone(), users.clone());
            thread::spawn(move || {
                (starter..SESSIONS)
                    .step_by(STARTERS)
                    .map(|n| (n, daemon.new_session(As::User(&users[n % 2]), &ANSWERING)))
                    .collect::<Vec<(usize, Connect)>>()
            })
        })
        .collect();
    let sessions: Vec<(usize, Connect)> = starters
        .into_iter()
        .flat_map(|starter| starter.join().expect("starting sessions"))
        .collect();
    assert_eq!(sessions.len(), SESSIONS);
    let setup = started.elapsed();

    let clients: Vec<_> = sessions
        .into_iter()
        .map(|(n, session)| {
            thread::spawn(move || {
                let mut client = UdpPeer::client(
                    session.addr(),
                    &session.key,
                    UserStream::default(),
                    HostLog::default(),
                )
                .expect("client socket");
                client
                    .transport_mut()
                    .current_state_mut()
                    .push_resize(80, 24);
                client
                    .transport_mut()
                    .current_state_mut()
                    .push_bytes(format!("{n}\r").as_bytes());
                let wanted = format!("got-{n}");
                client
                    .run_until(PATIENCE, &wanted, |transport| {
                        transport
                            .latest_remote_state()
                            .contains(&wanted)
                            .then_some(())
                    })
                    .map_err(|e| format!("session {n}: {e}"))
            })
        })
        .collect();
    let status = daemon.moshctl(As::Root, &["status"]);
    assert!(status.status.success());
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("sessions: 200"), "{status}");
    let failures: Vec<String> = clients
        .into_iter()
        .filter_map(|client| client.join().expect("client thread").err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    for user in users.iter() {
        assert_eq!(daemon.list(As::User(user)).len(), SESSIONS / 2);
    }
    eprintln!("{SESSIONS} sessions set up in {setup:?}");
}
