//! The protobuf messages of mosh's wire protocol, declared with `prost`
//! derive and the exact field numbers of mosh 1.4 (proto2; stock peers set
//! every field, and missing fields read as zero or empty).

/// `TransportBuffers.Instruction`: the SSP envelope carried by every
/// datagram's fragments.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Instruction {
    /// Must be [`PROTOCOL_VERSION`].
    #[prost(uint32, optional, tag = "1")]
    pub protocol_version: Option<u32>,
    /// The sender's state the diff applies to.
    #[prost(uint64, optional, tag = "2")]
    pub old_num: Option<u64>,
    /// The sender's state the diff produces; `u64::MAX` means shutdown.
    #[prost(uint64, optional, tag = "3")]
    pub new_num: Option<u64>,
    /// The newest of the receiver's states the sender holds in order.
    #[prost(uint64, optional, tag = "4")]
    pub ack_num: Option<u64>,
    /// The receiver may forget the sender's states numbered below this.
    #[prost(uint64, optional, tag = "5")]
    pub throwaway_num: Option<u64>,
    /// Serialized [`HostMessage`] or [`UserMessage`]; may be empty.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub diff: Option<Vec<u8>>,
    /// Random padding that blurs lengths; ignored.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub chaff: Option<Vec<u8>>,
    /// Our native-extension negotiation (see [`crate::extensions`]); a tag
    /// stock mosh does not define, so a stock peer skips it. Absent on
    /// everything sent to or by a stock peer after the first few datagrams.
    #[prost(message, optional, tag = "100")]
    pub extensions: Option<Extensions>,
}

/// The negotiation field: a client's offer or a server's answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Extensions {
    /// Bit mask of [`crate::extensions::Extension`]s: those the client
    /// supports, or those the server enabled.
    #[prost(uint64, optional, tag = "1")]
    pub supported: Option<u64>,
    /// The sender's ephemeral X25519 public key for the native cipher (see
    /// [`crate::cipher`]): on the client's offer and the server's answer,
    /// and on both halves of every rekey.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub key_share: Option<Vec<u8>>,
    /// The key epoch `key_share` is for; absent means 1, the first native
    /// keys (epoch 0 is the bootstrap AES-128-OCB key).
    #[prost(uint64, optional, tag = "3")]
    pub key_epoch: Option<u64>,
    /// Set by a server whose sent count under the current keys reached the
    /// rekey threshold: it asks the client to start a rekey.
    #[prost(bool, optional, tag = "4")]
    pub rekey_request: Option<bool>,
}

/// The only protocol version mosh 1.4 speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// `HostBuffers.HostMessage`: the server's terminal diff.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HostMessage {
    /// The steps of the diff, applied in order.
    #[prost(message, repeated, tag = "1")]
    pub instruction: Vec<HostInstruction>,
}

/// One step of a [`HostMessage`]; mosh declares these as extensions, and each
/// instruction carries exactly one of them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HostInstruction {
    /// Bytes for the client's emulator.
    #[prost(message, optional, tag = "2")]
    pub hostbytes: Option<HostBytes>,
    /// The terminal's new size.
    #[prost(message, optional, tag = "3")]
    pub resize: Option<ResizeMessage>,
    /// Client input state whose echo is now on screen.
    #[prost(message, optional, tag = "7")]
    pub echoack: Option<EchoAck>,
    /// Scrollback history (native extension `scrollback`; a tag stock mosh
    /// does not define, sent only to a client that negotiated it).
    #[prost(message, optional, tag = "100")]
    pub history: Option<HistoryLines>,
}

/// Lines that left the top of the server's screen: the state now holds
/// history up to (not including) line `end`; the lines from `first` on are
/// given, and those between the base state's end and `first` were no longer
/// kept by the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistoryLines {
    /// Number of the line after the last one the state includes.
    #[prost(uint64, optional, tag = "1")]
    pub end: Option<u64>,
    /// Number of the first line in `lines`.
    #[prost(uint64, optional, tag = "2")]
    pub first: Option<u64>,
    /// Lines `first..end`, each as the bytes that draw it (SGR and text).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub lines: Vec<Vec<u8>>,
}

/// `HostBuffers.HostBytes`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HostBytes {
    /// Escape sequences and text that turn the old screen into the new one.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub hoststring: Option<Vec<u8>>,
}

/// `HostBuffers.ResizeMessage` and `ClientBuffers.ResizeMessage` (same layout).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResizeMessage {
    /// Columns.
    #[prost(int32, optional, tag = "5")]
    pub width: Option<i32>,
    /// Rows.
    #[prost(int32, optional, tag = "6")]
    pub height: Option<i32>,
}

/// `HostBuffers.EchoAck`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoAck {
    /// Newest client state whose input reached the application 50 ms ago.
    #[prost(uint64, optional, tag = "8")]
    pub echo_ack_num: Option<u64>,
}

/// `ClientBuffers.UserMessage`: the client's input events.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserMessage {
    /// The events, in order.
    #[prost(message, repeated, tag = "1")]
    pub instruction: Vec<UserInstruction>,
}

/// One event of a [`UserMessage`]: keystrokes or a window resize.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UserInstruction {
    /// Typed bytes.
    #[prost(message, optional, tag = "2")]
    pub keystroke: Option<Keystroke>,
    /// The client's new window size.
    #[prost(message, optional, tag = "3")]
    pub resize: Option<ResizeMessage>,
}

/// `ClientBuffers.Keystroke`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Keystroke {
    /// The bytes, one user event each.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub keys: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn stock_client_first_instruction_decodes() {
        let bytes = [
            0x08, 0x02, 0x10, 0x00, 0x18, 0x01, 0x20, 0x00, 0x28, 0x00, 0x32, 0x08, 0x0a, 0x06,
            0x1a, 0x04, 0x28, 0x50, 0x30, 0x18, 0x3a, 0x00,
        ];
        let instruction = Instruction::decode(&bytes[..]).unwrap();
        assert_eq!(instruction.protocol_version, Some(2));
        assert_eq!(instruction.new_num, Some(1));
        let user = UserMessage::decode(instruction.diff.as_deref().unwrap()).unwrap();
        let resize = user.instruction[0].resize.clone().unwrap();
        assert_eq!((resize.width, resize.height), (Some(80), Some(24)));
        assert_eq!(instruction.encode_to_vec(), bytes);
    }

    #[test]
    fn captured_host_and_user_messages() {
        let echo = HostMessage {
            instruction: vec![HostInstruction {
                echoack: Some(EchoAck {
                    echo_ack_num: Some(1),
                }),
                ..Default::default()
            }],
        };
        assert_eq!(echo.encode_to_vec(), [0x0a, 0x04, 0x3a, 0x02, 0x40, 0x01]);
        let x = UserMessage {
            instruction: vec![UserInstruction {
                keystroke: Some(Keystroke {
                    keys: Some(b"x".to_vec()),
                }),
                resize: None,
            }],
        };
        assert_eq!(
            x.encode_to_vec(),
            [0x0a, 0x05, 0x12, 0x03, 0x22, 0x01, 0x78]
        );
        let host = HostMessage::decode(&x.encode_to_vec()[..]).unwrap();
        assert_eq!(
            host.instruction[0]
                .hostbytes
                .as_ref()
                .unwrap()
                .hoststring
                .as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn shutdown_number_is_a_ten_byte_varint() {
        let instruction = Instruction {
            new_num: Some(u64::MAX),
            ..Default::default()
        };
        assert_eq!(
            instruction.encode_to_vec(),
            [
                0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }
}
