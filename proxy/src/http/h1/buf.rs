//! The read buffer of one side of the fast path: bytes read from a socket and not yet
//! forwarded, allocated once per connection and reused for every request on it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read and not yet consumed: `data[start..end]`.
pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// An empty buffer holding at most `capacity` unconsumed bytes.
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            data: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// The unconsumed bytes.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// True when nothing is left unconsumed.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True when no more bytes fit without consuming some.
    pub fn is_full(&self) -> bool {
        self.end - self.start == self.data.len()
    }

    /// Marks the first `n` unconsumed bytes consumed.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.end - self.start);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes the unconsumed bytes out (the buffer is left empty).
    pub fn take(&mut self) -> Vec<u8> {
        let rest = self.filled().to_vec();
        self.consume(rest.len());
        rest
    }

    /// Reads once from `io` after what is buffered; `Ok(0)` at end of stream or when the
    /// buffer is full.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        if !self.make_room() {
            return Ok(0);
        }
        let n = io.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// [`fill`](Self::fill) for a caller that polls (a body handed to hyper).
    pub fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<io::Result<usize>> {
        if !self.make_room() {
            return Poll::Ready(Ok(0));
        }
        let mut spare = tokio::io::ReadBuf::new(&mut self.data[self.end..]);
        match Pin::new(io).poll_read(cx, &mut spare) {
            Poll::Ready(Ok(())) => {
                let n = spare.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Moves the unconsumed bytes to the front when the end is reached; false when the
    /// buffer is full.
    fn make_room(&mut self) -> bool {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.end < self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fills_consumes_and_compacts() {
        let mut b = ReadBuf::new(8);
        let mut src: &[u8] = b"abcdefghij";
        assert_eq!(b.fill(&mut src).await.unwrap(), 8);
        assert!(b.is_full());
        assert_eq!(b.fill(&mut src).await.unwrap(), 0);
        b.consume(6);
        assert_eq!(b.filled(), b"gh");
        assert_eq!(b.fill(&mut src).await.unwrap(), 2);
        assert_eq!(b.filled(), b"ghij");
        assert_eq!(b.take(), b"ghij");
        assert!(b.is_empty());
    }
}
