//! Body bytes passed through the fast path as they are, by the framing the message
//! declared: a length, the chunked coding (scanned as it passes, not re-encoded), or until
//! the server closes. A side stalled longer than its limit (`Stalls`) cuts the exchange.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::buf::ReadBuf;
use super::chunked::Chunked;
use super::upstream::Upstream;
use crate::http::framing::Framing;

/// How long each side of a copy may stall: the source sending nothing, the destination
/// reading nothing (a client that stops reading must not hold a connection forever).
#[derive(Clone, Copy, Debug)]
pub struct Stalls {
    /// Longest wait for the source's next bytes.
    pub read: Duration,
    /// Longest wait for the destination to take bytes.
    pub write: Duration,
}

/// Writes `bytes` to `dst` within `limit`.
pub async fn write_within<W: AsyncWrite + Unpin>(
    dst: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), ()> {
    match tokio::time::timeout(limit, dst.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Closes `dst`'s sending side within `limit`: a TLS close flushes what the session still
/// holds, which a client that stopped reading never takes.
pub async fn shutdown_within<W: AsyncWrite + Unpin>(dst: &mut W, limit: Duration) {
    let _ = tokio::time::timeout(limit, dst.shutdown()).await;
}

/// Writes a last answer, `bytes`, and closes `dst`'s sending side, each within `limit`.
pub async fn answer_and_close<W: AsyncWrite + Unpin>(dst: &mut W, bytes: &[u8], limit: Duration) {
    if write_within(dst, bytes, limit).await.is_ok() {
        shutdown_within(dst, limit).await;
    }
}

/// Which side broke a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broke {
    /// The source closed or failed.
    Source,
    /// The source sent nothing for its stall limit.
    SourceStalled,
    /// The destination failed or stalled.
    Destination,
}

/// Copies `left` bytes from `src` (after what `buf` holds) to `dst`.
pub async fn pass_length<R, W>(
    src: &mut R,
    buf: &mut ReadBuf,
    dst: &mut W,
    mut left: u64,
    stalls: Stalls,
) -> Result<(), Broke>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while left > 0 {
        if buf.is_empty() {
            match tokio::time::timeout(stalls.read, buf.fill(src)).await {
                Ok(Ok(1..)) => {}
                Ok(_) => return Err(Broke::Source),
                Err(_) => return Err(Broke::SourceStalled),
            }
        }
        let take = (buf.filled().len() as u64).min(left) as usize;
        write_within(dst, &buf.filled()[..take], stalls.write)
            .await
            .map_err(|()| Broke::Destination)?;
        buf.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Copies the rest of a response body framed by `framing` from `up` to `dst`; returns
/// the bytes copied.
pub async fn pass_body<W: AsyncWrite + Unpin>(
    up: &mut Upstream,
    dst: &mut W,
    framing: Framing,
    chunked: &mut Chunked,
    left: u64,
    stalls: Stalls,
) -> Result<u64, ()> {
    if let Framing::Length(_) = framing {
        return pass_length(&mut up.stream, &mut up.buf, dst, left, stalls)
            .await
            .map(|()| left)
            .map_err(|_| ());
    }
    let mut passed = 0;
    loop {
        if framing == Framing::Chunked && chunked.is_done() {
            return Ok(passed);
        }
        match tokio::time::timeout(stalls.read, up.buf.fill(&mut up.stream)).await {
            Ok(Ok(0)) if framing == Framing::Close => return Ok(passed),
            Ok(Ok(1..)) => {}
            _ => return Err(()),
        }
        let take = match framing {
            Framing::Chunked => chunked.feed(up.buf.filled()).map_err(|_| ())?,
            _ => up.buf.filled().len(),
        };
        write_within(dst, &up.buf.filled()[..take], stalls.write).await?;
        up.buf.consume(take);
        passed += take as u64;
    }
}
