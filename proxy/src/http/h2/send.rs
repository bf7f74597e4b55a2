//! A response body framed as DATA (RFC 9113 §6.1) within the connection's and the
//! stream's send windows and the peer's largest frame, its trailers as a last HEADERS.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Body as HttpBody;

use super::encode;
use super::frame;
use crate::http::body::Body;

/// Where a body's frames go: the output buffer and the connection's send window.
pub struct Out<'a> {
    /// The connection's output.
    pub wbuf: &'a mut Vec<u8>,
    /// What the connection may still send.
    pub window: &'a mut i64,
    /// The peer's largest frame payload.
    pub max_frame: usize,
}

/// How far a body got.
pub enum Sent {
    /// All of it, END_STREAM included.
    Ended,
    /// The body failed: the stream is reset.
    Broken,
    /// More to come (true when a frame went out).
    More(bool),
    /// Data waits for the client to give credit.
    Blocked,
}

impl Out<'_> {
    /// Sends what `body` has for stream `id`, `pending` first, as far as the windows
    /// allow.
    pub fn body(
        &mut self,
        id: u32,
        body: &mut Body,
        pending: &mut Bytes,
        window: &mut i64,
        cx: &mut Context<'_>,
    ) -> Sent {
        let mut sent = false;
        loop {
            if pending.is_empty() {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => return Sent::More(sent),
                    Poll::Ready(None) => {
                        frame::put_data(self.wbuf, id, &[], true);
                        return Sent::Ended;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(stream = id, error = %e, "response body failed");
                        return Sent::Broken;
                    }
                    Poll::Ready(Some(Ok(f))) => match f.into_data() {
                        Ok(data) => *pending = data,
                        Err(f) => {
                            let trailers = f.into_trailers().unwrap_or_default();
                            let mut block = Vec::new();
                            encode::fields(&mut block, &trailers);
                            frame::put_header_block(self.wbuf, id, &block, true, self.max_frame);
                            return Sent::Ended;
                        }
                    },
                }
                if pending.is_empty() {
                    continue;
                }
            }
            let room = (*window).min(*self.window).max(0) as usize;
            let n = pending.len().min(room).min(self.max_frame);
            if n == 0 {
                return if sent {
                    Sent::More(true)
                } else {
                    Sent::Blocked
                };
            }
            let chunk = pending.split_to(n);
            let end = pending.is_empty() && body.is_end_stream();
            frame::put_data(self.wbuf, id, &chunk, end);
            *window -= n as i64;
            *self.window -= n as i64;
            sent = true;
            if end {
                return Sent::Ended;
            }
            if self.wbuf.len() >= super::connection::HIGH_WATER {
                return Sent::More(sent);
            }
        }
    }
}
