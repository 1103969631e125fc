//! The SSP states: `Complete` (server → client) and `UserStream`
//! (client → server), against the wire captures of spec §6 and §7.

use mosh_proto::State;
use mosh_proto::messages::{HostBytes, HostInstruction, HostMessage};
use mosh_term::{Complete, Emulator, KeyTranslator, UserEvent, UserStream};
use prost::Message;

#[test]
fn echo_ack_diff_matches_capture() {
    let a = Complete::new(80, 24);
    let mut b = a.clone();
    b.set_echo_ack(1);
    assert_eq!(b.diff_from(&a), [0x0a, 0x04, 0x3a, 0x02, 0x40, 0x01]);
    assert!(b.diff_from(&b).is_empty());
}

#[test]
fn hostbytes_diff_matches_capture() {
    let a = Complete::new(80, 24);
    let mut emu = Emulator::new(80, 24);
    emu.feed(b"x");
    let mut b = a.clone();
    b.set_framebuffer(emu.framebuffer().clone());
    assert_eq!(b.diff_from(&a), [0x0a, 0x05, 0x12, 0x03, 0x22, 0x01, 0x78]);
    let mut c = a.clone();
    c.apply(&b.diff_from(&a)).unwrap();
    assert_eq!(c.framebuffer().cell(0, 0).contents(), "x");
}

#[test]
fn resize_comes_before_hostbytes() {
    let a = Complete::new(80, 24);
    let mut emu = Emulator::new(80, 24);
    emu.resize(40, 10);
    emu.feed(b"hi");
    let mut b = a.clone();
    b.set_framebuffer(emu.framebuffer().clone());
    b.set_echo_ack(3);
    let msg = HostMessage::decode(b.diff_from(&a).as_slice()).unwrap();
    let kinds: Vec<&str> = msg
        .instruction
        .iter()
        .map(|i| {
            if i.echoack.is_some() {
                "echoack"
            } else if i.resize.is_some() {
                "resize"
            } else {
                "hostbytes"
            }
        })
        .collect();
    assert_eq!(kinds, ["echoack", "resize", "hostbytes"]);
    let mut c = a.clone();
    c.apply(&b.diff_from(&a)).unwrap();
    assert!(c.framebuffer().same_picture(b.framebuffer()));
}

#[test]
fn bad_host_messages_are_errors_not_panics() {
    let mut c = Complete::new(80, 24);
    assert!(c.apply(&[0xff, 0xff, 0xff]).is_err());
    let bad = HostMessage {
        instruction: vec![HostInstruction {
            resize: Some(mosh_proto::messages::ResizeMessage {
                width: Some(0),
                height: Some(10),
            }),
            ..HostInstruction::default()
        }],
    };
    assert!(c.apply(&bad.encode_to_vec()).is_err());
    // Status requests in hostbytes get no answer and do no harm.
    let query = HostMessage {
        instruction: vec![HostInstruction {
            hostbytes: Some(HostBytes {
                hoststring: Some(b"\x1b[c\x1b[6nok".to_vec()),
            }),
            ..HostInstruction::default()
        }],
    };
    c.apply(&query.encode_to_vec()).unwrap();
    assert_eq!(c.framebuffer().cell(0, 0).contents(), "o");
}

#[test]
fn user_stream_diffs_match_capture() {
    let empty = UserStream::new();
    let mut s = UserStream::new();
    s.push_resize(80, 24);
    assert_eq!(
        s.diff_from(&empty),
        [0x0a, 0x06, 0x1a, 0x04, 0x28, 0x50, 0x30, 0x18]
    );
    let older = s.clone();
    s.push_bytes(b"x");
    assert_eq!(
        s.diff_from(&older),
        [0x0a, 0x05, 0x12, 0x03, 0x22, 0x01, 0x78]
    );
    assert!(s.diff_from(&s).is_empty());
}

#[test]
fn user_stream_round_trip_and_subtract() {
    let mut client = UserStream::new();
    client.push_resize(80, 24);
    client.push_bytes(b"echo hi");
    client.push_resize(100, 30);
    client.push_bytes(b"\r");
    let mut server = UserStream::new();
    server.apply(&client.diff_from(&UserStream::new())).unwrap();
    assert_eq!(server, client);
    let msg = client.user_message(&UserStream::new());
    assert_eq!(msg.instruction.len(), 4, "bytes merged, resizes separate");

    let acked = client.clone();
    client.push_bytes(b"ls");
    let diff = client.diff_from(&acked);
    client.subtract(&acked);
    assert_eq!(client.len(), 2);
    let mut peer = acked.clone();
    peer.apply(&diff).unwrap();
    peer.subtract(&acked);
    assert_eq!(peer, client);
    assert_eq!(
        peer.events().copied().collect::<Vec<_>>(),
        [UserEvent::Byte(b'l'), UserEvent::Byte(b's')]
    );
}

#[test]
fn user_stream_rejects_bad_input() {
    let mut s = UserStream::new();
    assert!(s.apply(&[0x0a, 0xff]).is_err());
    let mut bad = UserStream::new();
    bad.push_resize(0, 5);
    assert!(s.apply(&bad.diff_from(&UserStream::new())).is_err());
    assert!(s.is_empty());
}

#[test]
fn cursor_keys_are_translated_unless_application_mode() {
    let translate = |input: &[u8], app: bool| {
        let mut t = KeyTranslator::new();
        let mut out = Vec::new();
        for &b in input {
            t.translate(b, app, &mut out);
        }
        out
    };
    assert_eq!(translate(b"\x1bOA\x1bOD", false), b"\x1b[A\x1b[D");
    assert_eq!(translate(b"\x1bOA", true), b"\x1bOA");
    assert_eq!(
        translate(b"\x1bOP\x1bx\x1b\x1bOB", false),
        b"\x1bOP\x1bx\x1b\x1b[B"
    );
    assert_eq!(translate(b"plain", false), b"plain");
}
