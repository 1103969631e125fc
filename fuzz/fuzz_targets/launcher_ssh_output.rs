//! What the `mosh` launcher reads from ssh (the remote shell's output, the
//! `MOSH IP` line of `--fake-proxy`, the server's `MOSH CONNECT` line):
//! every line it keeps or shows is bounded, and whatever came before, a
//! well-formed `MOSH CONNECT` line on a line of its own is found unless
//! something before it was refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mosh_client::launcher::{MAX_LINE, Report};

/// A line cut at `MAX_LINE` bytes grows at most threefold when bytes that
/// are not UTF-8 are replaced.
const MAX_TEXT: usize = 3 * MAX_LINE;

const CONNECT: &[u8] = b"\nMOSH CONNECT 60001 AAECAwQFBgcICQoLDA0ODw\n";

fuzz_target!(|data: &[u8]| {
    let mut report = Report::default();
    let outcome = report.read(data, |line| assert!(line.len() <= MAX_TEXT));
    for kept in [&report.ip, &report.ssh_connection_ip].into_iter().flatten() {
        assert!(!kept.is_empty() && kept.len() <= MAX_TEXT);
        assert!(!kept.contains(char::is_whitespace));
    }
    if outcome.is_ok() && report.connect.is_none() {
        let mut output = data.to_vec();
        output.extend_from_slice(CONNECT);
        let mut again = Report::default();
        again
            .read(&output[..], |_| {})
            .expect("the same lines, then a good one");
        assert_eq!(again.connect.map(|(port, _)| port), Some(60001));
    }
});
