//! The messages between the daemon and a session's worker, each read as
//! its reader reads it: the setup a worker reads from its pipe (JSON, then
//! its key and locale entries), the report lines and re-key replies the
//! daemon reads from a worker (which runs as the session's user, so they
//! are untrusted), and the request lines a worker reads. Whatever parses
//! survives encoding and decoding unchanged, and a report's presence is
//! decided at any time without a panic.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use mosh_daemon::control::{
    LIVE_SECS, SessionReport, WorkerReply, WorkerRequest, encode_line, read_line, read_message,
};
use mosh_daemon::worker::{WorkerSetup, is_locale_variable};
use mosh_proto::Base64Key;

/// The value of a future that reads from memory, which never waits.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("reading from memory waited"),
    }
}

/// The worker's side of the setup pipe.
fn setup(data: &[u8]) {
    let Ok(setup) = serde_json::from_slice::<WorkerSetup>(data) else {
        return;
    };
    let _ = Base64Key::parse(&setup.key);
    for entry in &setup.locale {
        if let Some((name, _)) = entry.split_once('=') {
            let _ = is_locale_variable(name);
        }
    }
    let text = serde_json::to_vec(&setup).expect("a setup serializes");
    let again: WorkerSetup = serde_json::from_slice(&text).expect("an encoded setup parses");
    assert_eq!(serde_json::to_vec(&again).unwrap(), text);
}

/// The daemon following a worker's reports.
fn reports(data: &[u8]) {
    let mut reader = data;
    while let Ok(report) = ready(read_message::<_, SessionReport>(&mut reader)) {
        let decoded: SessionReport = serde_json::from_slice(&encode_line(&report)).unwrap();
        assert_eq!(decoded, report);
        let heard = report.last_contact.unwrap_or(report.started);
        for now in [0, heard, heard.saturating_add(LIVE_SECS + 1), u64::MAX] {
            let presence = report.presence(now);
            let listed = report.clone().listed(now);
            assert_eq!(listed.state, presence.name());
        }
    }
}

/// The daemon waiting for a re-key reply among a worker's lines.
fn replies(data: &[u8]) {
    let mut reader = data;
    let mut line = Vec::new();
    while ready(read_line(&mut reader, &mut line)).is_ok() {
        if let Ok(reply) = serde_json::from_slice::<WorkerReply>(&line) {
            let decoded: WorkerReply = serde_json::from_slice(&encode_line(&reply)).unwrap();
            assert_eq!(decoded, reply);
        }
    }
}

/// A worker reading the daemon's requests.
fn requests(data: &[u8]) {
    let mut reader = data;
    while let Ok(request) = ready(read_message::<_, WorkerRequest>(&mut reader)) {
        let decoded: WorkerRequest = serde_json::from_slice(&encode_line(&request)).unwrap();
        assert_eq!(decoded, request);
    }
}

fuzz_target!(|data: &[u8]| {
    setup(data);
    reports(data);
    replies(data);
    requests(data);
});
