//! The control socket's request line, which every local user can send to
//! the daemon: read as the daemon reads it (one line of at most
//! `MAX_LINE` bytes, then JSON); a request that parses survives encoding
//! and decoding unchanged, and so does the same line read as a response
//! (what `moshctl` and `mosh-server new` parse); the daemon's field checks
//! (`request::check`) refuse or accept it without panicking, and agree with
//! `request::parse_request` on the same line.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use mosh_daemon::control::{LineError, MAX_LINE, Request, Response, encode_line, read_message};

/// The value of a future that reads from memory, which never waits.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("reading from memory waited"),
    }
}

fuzz_target!(|data: &[u8]| {
    let newline = data.iter().position(|&b| b == b'\n');
    let content = newline.unwrap_or(data.len());
    let mut reader = data;
    match ready(read_message::<_, Request>(&mut reader)) {
        Ok(request) => {
            let checked = mosh_daemon::request::check(request.clone());
            let parsed = mosh_daemon::request::parse_request(&data[..content]);
            assert_eq!(checked.is_ok(), parsed.is_ok());
            let line = encode_line(&request);
            let decoded: Request = serde_json::from_slice(&line).expect("an encoded request parses");
            assert_eq!(decoded, request);
        }
        Err(LineError::TooLong) => assert!(content >= MAX_LINE),
        Err(LineError::Closed) => assert!(newline.is_none() && content < MAX_LINE),
        Err(LineError::Malformed(_)) => assert!(newline.is_some() && content < MAX_LINE),
        Err(LineError::Io(error)) => panic!("reading from memory failed: {error}"),
    }
    let mut reader = data;
    if let Ok(response) = ready(read_message::<_, Response>(&mut reader)) {
        let line = encode_line(&response);
        let decoded: Response = serde_json::from_slice(&line).expect("an encoded response parses");
        assert_eq!(decoded, response);
    }
});
