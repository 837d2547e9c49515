//! The WebSocket channel protocols kubectl speaks for exec/attach (`v5.channel.k8s.io`, and
//! `v4.channel.k8s.io` for older clients): every binary message starts with a channel byte.
//! Pure framing helpers, no IO.

use bytes::Bytes;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[255, channel]` tells the server the client closed that channel (stdin EOF).
pub const CLOSE: u8 = 255;

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

/// Exec/attach WebSocket subprotocols this server accepts, most preferred first.
pub const SUPPORTED: &[&str] = &[V5, V4];

/// The WebSocket subprotocol of port-forward (SPDY tunnelled in binary messages).
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// A message from the client, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Stdin(Bytes),
    Resize(Bytes),
    /// The client closed one of its channels (v5).
    Close(u8),
    /// Empty messages and channels a client must not write to.
    Ignored,
}

/// Frames server output for `channel`.
pub fn encode(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    m
}

/// Decodes one binary message from the client.
pub fn decode_client(msg: &Bytes, v5: bool) -> ClientMessage {
    let Some(&channel) = msg.first() else {
        return ClientMessage::Ignored;
    };
    match channel {
        STDIN => ClientMessage::Stdin(msg.slice(1..)),
        RESIZE => ClientMessage::Resize(msg.slice(1..)),
        CLOSE if v5 => match msg.get(1) {
            Some(&c) => ClientMessage::Close(c),
            None => ClientMessage::Ignored,
        },
        _ => ClientMessage::Ignored,
    }
}

/// Picks the first protocol of `supported` that the client offered in `Sec-WebSocket-Protocol`
/// (a comma-separated list, possibly over several header lines).
pub fn negotiate<'a>(offered: &[String], supported: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    supported.iter().copied().find(|s| offered.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_prefix_the_channel() {
        assert_eq!(encode(STDOUT, b"hi\n"), b"\x01hi\n");
        assert_eq!(encode(ERROR, b""), vec![3]);
    }

    #[test]
    fn client_frames_decode_by_channel() {
        let m = |b: &[u8]| Bytes::copy_from_slice(b);
        assert_eq!(
            decode_client(&m(b"\x00abc"), true),
            ClientMessage::Stdin(m(b"abc"))
        );
        assert_eq!(
            decode_client(&m(b"\x04{\"Width\":80,\"Height\":24}"), true),
            ClientMessage::Resize(m(b"{\"Width\":80,\"Height\":24}"))
        );
        assert_eq!(decode_client(&m(&[255, 0]), true), ClientMessage::Close(0));
        assert_eq!(decode_client(&m(&[255, 0]), false), ClientMessage::Ignored);
        assert_eq!(decode_client(&m(&[255]), true), ClientMessage::Ignored);
        assert_eq!(decode_client(&m(b""), true), ClientMessage::Ignored);
        assert_eq!(decode_client(&m(b"\x01out"), true), ClientMessage::Ignored);
        // A zero byte on stdin is data, not EOF.
        assert_eq!(
            decode_client(&m(&[0, 0]), true),
            ClientMessage::Stdin(m(&[0]))
        );
    }

    #[test]
    fn negotiation_prefers_the_server_order() {
        let offered = vec!["v4.channel.k8s.io, v5.channel.k8s.io".to_string()];
        assert_eq!(negotiate(&offered, SUPPORTED), Some(V5));
        let offered = vec![
            "channel.k8s.io".to_string(),
            "v4.channel.k8s.io".to_string(),
        ];
        assert_eq!(negotiate(&offered, SUPPORTED), Some(V4));
        assert_eq!(
            negotiate(&["base64.channel.k8s.io".into()], SUPPORTED),
            None
        );
    }
}
