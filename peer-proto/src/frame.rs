//! Length-prefixed framing: a `u32` big-endian payload length, then the payload.
//! Lengths over the configured maximum are refused before any buffer is allocated, and a
//! frame body is buffered only as fast as its bytes actually arrive.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, CodecError};

/// Maximum size of a frame exchanged before the peer is authenticated.
pub const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// Size of the length prefix.
const HEADER: usize = 4;

/// Initial buffer reservation for a frame body; the rest grows as data arrives.
const INITIAL_RESERVE: usize = 64 * 1024;

/// Error reading or writing one frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the maximum frame size.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced (or, when sending, actual) payload length.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed by peer")]
    Closed,
    /// The connection ended in the middle of a frame.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the header (or the length) promised.
        expected: usize,
        /// Bytes actually received.
        got: usize,
    },
    /// Transport error.
    #[error("frame I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The payload is not a valid message.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl FrameError {
    /// True when an over-long length looks like the start of a TLS record (a TLS client
    /// talking to a plaintext peer).
    pub fn looks_like_tls(&self) -> bool {
        matches!(self, FrameError::TooLarge { len, .. } if (len >> 24) == 0x16 && ((len >> 16) & 0xff) == 0x03)
    }
}

/// Reads one frame payload of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER];
    let got = read_full(r, &mut header).await?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER {
        return Err(FrameError::Truncated {
            expected: HEADER,
            got,
        });
    }
    let len = u32::from_be_bytes(header);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if len_usize > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    let mut body = Vec::with_capacity(len_usize.min(INITIAL_RESERVE));
    (&mut *r)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await?;
    if body.len() < len_usize {
        return Err(FrameError::Truncated {
            expected: len_usize,
            got: body.len(),
        });
    }
    Ok(body)
}

/// Reads and decodes one message frame of at most `max` bytes.
pub async fn read_message<T, R>(r: &mut R, max: usize) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let payload = read_frame(r, max).await?;
    Ok(codec::decode(&payload)?)
}

/// Encodes `msg` into a complete frame (header included), refusing one over `max`.
pub fn encode_frame<T: Serialize>(msg: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; HEADER];
    codec::encode_into(msg, &mut buf)?;
    set_length(buf, max)
}

/// Builds a complete frame around raw `payload` bytes, refusing one over `max`.
pub fn raw_frame(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&[0u8; HEADER]);
    buf.extend_from_slice(payload);
    set_length(buf, max)
}

fn set_length(mut buf: Vec<u8>, max: usize) -> Result<Vec<u8>, FrameError> {
    let len = buf.len() - HEADER;
    let too_large = || FrameError::TooLarge {
        len: len as u64,
        max,
    };
    if len > max {
        return Err(too_large());
    }
    let len32 = u32::try_from(len).map_err(|_| too_large())?;
    buf[..HEADER].copy_from_slice(&len32.to_be_bytes());
    Ok(buf)
}

/// Writes a complete frame (from [`encode_frame`] or [`raw_frame`]) and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), FrameError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// Encodes and writes one message frame.
pub async fn write_message<T, W>(w: &mut W, msg: &T, max: usize) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let frame = encode_frame(msg, max)?;
    write_frame(w, &frame).await
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let frame = encode_frame(&("hello", 42u32), 1024).expect("encode");
        let mut input = &frame[..];
        let v: (String, u32) = read_message(&mut input, 1024).await.expect("read");
        assert_eq!(v, ("hello".to_string(), 42));
        assert!(matches!(
            read_frame(&mut input, 1024).await,
            Err(FrameError::Closed)
        ));
    }

    #[tokio::test]
    async fn oversized_length_refused_before_reading() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame(&mut input, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 1024
            }
        ));
        assert_eq!(input, &[1, 2, 3], "body must not be consumed");
        assert!(encode_frame(&vec![0u8; 2000], 1024).is_err());
    }

    #[tokio::test]
    async fn truncated_header_and_body() {
        let mut input: &[u8] = &[0, 0];
        let err = read_frame(&mut input, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            FrameError::Truncated {
                expected: 4,
                got: 2
            }
        ));
        let mut input: &[u8] = &[0, 0, 0, 10, 1, 2, 3];
        let err = read_frame(&mut input, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            FrameError::Truncated {
                expected: 10,
                got: 3
            }
        ));
    }

    #[test]
    fn tls_detection() {
        let e = FrameError::TooLarge {
            len: 0x1603_0100,
            max: 1024,
        };
        assert!(e.looks_like_tls());
    }
}
