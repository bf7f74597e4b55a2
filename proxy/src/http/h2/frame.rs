//! HTTP/2 frames on the wire (RFC 9113 §4, §6): the nine-octet header, the frame types
//! and flags the server reads, the error codes, and the writing of every frame the
//! server sends into the connection's output buffer.

/// Length of a frame header (RFC 9113 §4.1).
pub const HEADER_LEN: usize = 9;
/// The smallest `SETTINGS_MAX_FRAME_SIZE`, and its initial value (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME: usize = 16_384;
/// The largest frame size a peer may allow (RFC 9113 §6.5.2).
pub const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;
/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The initial flow-control window of a connection and of every stream (RFC 9113 §6.9.2).
pub const DEFAULT_WINDOW: i64 = 65_535;

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (a client must not send it).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub mod flag {
    /// END_STREAM (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// Setting identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RFC 9113 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    /// Graceful shutdown.
    NoError = 0x0,
    /// A protocol error was detected.
    Protocol = 0x1,
    /// An internal error.
    Internal = 0x2,
    /// Flow control was violated.
    FlowControl = 0x3,
    /// A frame came for a stream already half-closed.
    StreamClosed = 0x5,
    /// A frame had an invalid size.
    FrameSize = 0x6,
    /// The stream was refused before any processing.
    RefusedStream = 0x7,
    /// The header compression context cannot be maintained.
    Compression = 0x9,
    /// The peer behaves in a way that may generate excessive load.
    EnhanceYourCalm = 0xb,
}

/// A frame's header (RFC 9113 §4.1); the reserved bit of the stream id is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: usize,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
}

impl Head {
    /// Reads a header from the first nine octets of `b`, if there are nine.
    pub fn parse(b: &[u8]) -> Option<Head> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize,
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// True when `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame header for a payload of `len` octets.
pub fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// Appends a SETTINGS frame with `pairs`.
pub fn put_settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    put_head(out, pairs.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in pairs {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS frame acknowledging the peer's.
pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING acknowledging `payload`.
pub fn put_ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    put_head(out, payload.len(), kind::PING, flag::ACK, 0);
    out.extend_from_slice(payload);
}

/// Appends a WINDOW_UPDATE of `increment` for `stream` (0: the connection).
pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// Appends an RST_STREAM for `stream`.
pub fn put_rst(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Appends a GOAWAY naming `last` as the last stream processed.
pub fn put_goaway(out: &mut Vec<u8>, last: u32, reason: Reason) {
    put_head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Appends a header block as a HEADERS frame and as many CONTINUATION frames as frames
/// of `max_frame` octets need (RFC 9113 §4.3).
pub fn put_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let rest = chunks.len();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if rest == 0 {
        flags |= flag::END_HEADERS;
    }
    put_head(out, first.len(), kind::HEADERS, flags, stream);
    out.extend_from_slice(first);
    for (i, chunk) in block.chunks(max_frame.max(1)).skip(1).enumerate() {
        let flags = if i + 1 == rest { flag::END_HEADERS } else { 0 };
        put_head(out, chunk.len(), kind::CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// Appends one DATA frame.
pub fn put_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    put_head(out, data.len(), kind::DATA, flags, stream);
    out.extend_from_slice(data);
}

/// The payload of a PADDED frame without its padding (RFC 9113 §6.1): `None` when the
/// padding is as long as the payload or longer (a PROTOCOL_ERROR).
pub fn unpad(head: &Head, payload: &[u8]) -> Option<(usize, usize)> {
    if !head.has(flag::PADDED) {
        return Some((0, payload.len()));
    }
    let pad = *payload.first()? as usize;
    let end = payload.len().checked_sub(pad)?;
    (end >= 1).then_some((1, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9113_4_1_a_header_reads_back_as_written() {
        let mut out = Vec::new();
        put_head(&mut out, 0x01_02_03, kind::HEADERS, 0x25, 0x8000_0007);
        let head = Head::parse(&out).unwrap();
        assert_eq!(head.len, 0x01_02_03);
        assert_eq!(
            (head.kind, head.flags, head.stream),
            (kind::HEADERS, 0x25, 7)
        );
        assert!(Head::parse(&out[..8]).is_none());
    }

    #[test]
    fn rfc9113_4_3_a_large_block_goes_out_in_continuations() {
        let mut out = Vec::new();
        put_header_block(&mut out, 1, &[7; 25], true, 10);
        let first = Head::parse(&out).unwrap();
        assert_eq!(
            (first.kind, first.flags, first.len),
            (kind::HEADERS, flag::END_STREAM, 10)
        );
        let second = Head::parse(&out[19..]).unwrap();
        assert_eq!((second.kind, second.flags), (kind::CONTINUATION, 0));
        let third = Head::parse(&out[38..]).unwrap();
        assert_eq!(
            (third.kind, third.flags, third.len),
            (kind::CONTINUATION, flag::END_HEADERS, 5)
        );
        assert_eq!(out.len(), 38 + 9 + 5);
    }

    #[test]
    fn rfc9113_6_1_padding_as_long_as_the_payload_is_refused() {
        let head = Head {
            len: 4,
            kind: kind::DATA,
            flags: flag::PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&head, &[2, b'a', 0, 0]), Some((1, 2)));
        assert_eq!(unpad(&head, &[3, b'a', 0, 0]), Some((1, 1)));
        assert_eq!(unpad(&head, &[4, b'a', 0, 0]), None);
        assert_eq!(unpad(&head, &[]), None);
    }
}
