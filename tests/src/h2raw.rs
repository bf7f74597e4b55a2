//! A raw HTTP/2 client for conformance tests: it writes frames exactly as a test says
//! (split, malformed, out of order) over a plain TCP connection with prior knowledge,
//! and reads the server's frames one by one, header blocks decoded with a reference
//! HPACK decoder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// END_STREAM (DATA, HEADERS).
pub const END_STREAM: u8 = 0x1;
/// ACK (SETTINGS, PING).
pub const ACK: u8 = 0x1;
/// END_HEADERS (HEADERS, CONTINUATION).
pub const END_HEADERS: u8 = 0x4;

/// One frame as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its type.
    pub kind: u8,
    /// Its flags.
    pub flags: u8,
    /// Its stream.
    pub stream: u32,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of an RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Encodes a frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header block for `fields`, encoded by a reference HPACK encoder.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut encoder = loona_hpack::Encoder::new();
    encoder.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

/// A raw HTTP/2 connection.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
}

impl Client {
    /// Connects to `addr` and sends the preface and an empty SETTINGS frame, or the
    /// `settings` given (id, value).
    pub fn connect(addr: &str, settings: &[(u16, u32)]) -> Client {
        let mut client = Client::open(addr);
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(kind::SETTINGS, 0, 0, &payload));
        client.send(&hello);
        client
    }

    /// As `connect`, the preface written in two pieces, the first `first` octets long,
    /// a moment apart.
    pub fn connect_split(addr: &str, first: usize) -> Client {
        let mut client = Client::open(addr);
        client.send(&PREFACE[..first]);
        std::thread::sleep(Duration::from_millis(100));
        let mut rest = PREFACE[first..].to_vec();
        rest.extend(frame(kind::SETTINGS, 0, 0, &[]));
        client.send(&rest);
        client
    }

    /// A connection to `addr`, nothing sent yet.
    fn open(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a request's HEADERS on `stream` (END_HEADERS; END_STREAM when `end`).
    pub fn request(&mut self, stream: u32, fields: &[(&str, &str)], end: bool) {
        let flags = END_HEADERS | if end { END_STREAM } else { 0 };
        let bytes = frame(kind::HEADERS, flags, stream, &block(fields));
        self.send(&bytes);
    }

    /// The next frame within `limit`, if the connection is still open.
    pub fn read(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let raw: Vec<u8> = self.buf.drain(..9 + len).collect();
                    let stream = u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]]) & 0x7fff_ffff;
                    return Some(Frame {
                        kind: raw[3],
                        flags: raw[4],
                        stream,
                        payload: raw[9..].to_vec(),
                    });
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The frames until one of `kind` (on `stream`, unless `None`), skipping the rest;
    /// `None` if the connection closes or `limit` passes first.
    pub fn until(&mut self, kind: u8, stream: Option<u32>, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let f = self.read(left)?;
            if f.kind == kind && stream.is_none_or(|s| s == f.stream) {
                return Some(f);
            }
        }
    }

    /// Decodes a HEADERS frame's block (no padding, no priority) into fields.
    pub fn fields(&mut self, headers: &Frame) -> Vec<(String, String)> {
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        let fields = self
            .decoder
            .decode(&headers.payload)
            .expect("the server's HPACK");
        fields
            .into_iter()
            .map(|(n, v)| (text(n), text(v)))
            .collect()
    }

    /// The `:status` of a response's HEADERS frame.
    pub fn status(&mut self, headers: &Frame) -> Option<u16> {
        let fields = self.fields(headers);
        fields
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok())
    }
}
