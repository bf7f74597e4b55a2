//! A stream's request body: filled by the connection, read by the exchange, the octets
//! read given back to the client as flow-control credit.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;

use crate::http::body::BodyError;

/// What the connection and a request body's reader share.
#[derive(Default)]
pub struct Shared {
    /// Octets of the request body read by the exchange, not yet given back.
    released: AtomicUsize,
    /// The request body received and not yet read.
    body: Mutex<Received>,
}

/// DATA payloads smaller than this are gathered into one buffer, so that a flood of tiny
/// frames costs the octets it carries, not an allocation each.
const GATHER: usize = 4096;

#[derive(Default)]
struct Received {
    chunks: VecDeque<Bytes>,
    /// Small payloads gathered after `chunks`.
    gathered: BytesMut,
    trailers: Option<HeaderMap>,
    ended: bool,
    broken: bool,
    reader: Option<Waker>,
}

impl Received {
    /// Moves the gathered small payloads to the end of `chunks`.
    fn seal(&mut self) {
        if !self.gathered.is_empty() {
            let sealed = self.gathered.split().freeze();
            self.chunks.push_back(sealed);
        }
    }
}

impl Shared {
    /// Body octets arrived.
    pub fn push(&self, data: &[u8]) {
        let mut body = self.body.lock();
        if data.len() < GATHER {
            body.gathered.extend_from_slice(data);
            if body.gathered.len() >= GATHER {
                body.seal();
            }
        } else {
            body.seal();
            body.chunks.push_back(Bytes::copy_from_slice(data));
        }
        if let Some(w) = body.reader.take() {
            w.wake();
        }
    }

    /// Drops what was received and not read (no one will: the answer is complete);
    /// returns how many octets, the credit to give back.
    pub fn discard(&self) -> usize {
        let mut body = self.body.lock();
        let held = body.chunks.iter().map(Bytes::len).sum::<usize>() + body.gathered.len();
        body.chunks.clear();
        body.gathered.clear();
        held
    }

    /// The trailer section arrived (the body's end).
    pub fn trailers(&self, trailers: HeaderMap) {
        self.body.lock().trailers = Some(trailers);
        self.close(false);
    }

    /// The body ended, whole (`broken`: cut short).
    pub fn close(&self, broken: bool) {
        let mut body = self.body.lock();
        body.ended = true;
        body.broken |= broken;
        if let Some(w) = body.reader.take() {
            w.wake();
        }
    }

    /// Octets read since the last call (the credit to give back).
    pub fn take_released(&self) -> usize {
        self.released.swap(0, Ordering::AcqRel)
    }
}

/// A request body as the exchange reads it.
pub struct RecvBody {
    shared: Arc<Shared>,
    /// What `content-length` declared, if anything.
    length: Option<u64>,
    /// Wakes the connection when credit is to be given back.
    conn: Waker,
}

impl RecvBody {
    /// The body of a stream with `shared`, `length` octets long if known.
    pub fn new(shared: Arc<Shared>, length: Option<u64>, conn: Waker) -> RecvBody {
        RecvBody {
            shared,
            length,
            conn,
        }
    }
}

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let mut body = this.shared.body.lock();
        body.seal();
        if let Some(data) = body.chunks.pop_front() {
            drop(body);
            this.shared.released.fetch_add(data.len(), Ordering::AcqRel);
            this.conn.wake_by_ref();
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if body.broken {
            return Poll::Ready(Some(Err(BodyError::Reset)));
        }
        if let Some(trailers) = body.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if body.ended {
            return Poll::Ready(None);
        }
        body.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let body = self.shared.body.lock();
        body.ended
            && body.chunks.is_empty()
            && body.gathered.is_empty()
            && body.trailers.is_none()
            && !body.broken
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every data frame `body` has now.
    fn read_all(body: &mut RecvBody) -> Vec<Bytes> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut *body).poll_frame(&mut cx) {
            match frame.into_data() {
                Ok(data) => out.push(data),
                Err(_) => break,
            }
        }
        out
    }

    #[test]
    fn small_payloads_are_gathered_and_read_in_order() {
        let shared = Arc::new(Shared::default());
        let mut body = RecvBody::new(shared.clone(), None, Waker::noop().clone());
        for i in 0..10_000u32 {
            shared.push(&[(i % 251) as u8]);
        }
        shared.push(&[7; GATHER]);
        shared.push(b"end");
        shared.close(false);
        let chunks = read_all(&mut body);
        assert!(
            chunks.len() <= 10_000 / GATHER + 3,
            "{} chunks",
            chunks.len()
        );
        let mut expected: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        expected.extend([7; GATHER]);
        expected.extend(b"end");
        assert_eq!(chunks.concat(), expected);
        assert_eq!(shared.take_released(), expected.len());
        assert!(body.is_end_stream());
    }

    #[test]
    fn what_no_one_reads_is_discarded_as_credit() {
        let shared = Arc::new(Shared::default());
        shared.push(&[1; 100]);
        shared.push(&[2; GATHER * 2]);
        shared.push(&[3; 10]);
        assert_eq!(shared.discard(), 110 + GATHER * 2);
        assert_eq!(shared.discard(), 0);
    }
}
