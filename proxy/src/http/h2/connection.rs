//! One HTTP/2 connection in one task: frames read and written from two buffers, every
//! stream's exchange polled in place (no task or channel per stream), responses and
//! their bodies framed under the peer's flow-control windows. What each received frame
//! does is in `receive.rs`.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use hyper::body::Body as HttpBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::exchanges::Exchanges;
use super::frame::{self, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, Reason};
use super::streams::{Sending, Stream, Streams};
use super::{Handler, Settings};
use super::{encode, hpack};
use crate::http::body::Body;

/// Room for one whole frame of the largest size we allow, and its header.
const READ_BUF: usize = 2 * DEFAULT_MAX_FRAME + frame::HEADER_LEN;
/// What an idle connection keeps of its buffers (and exchange slots): the rest is
/// given back, so ten thousand idle clients hold 4 KiB each, not a frame's worth.
const IDLE_BUF: usize = 4096;
const IDLE_SLOTS: usize = 16;
/// Output queued beyond this stops reading and body polling until it is written.
pub(super) const HIGH_WATER: usize = 64 * 1024;
/// Request-body credit is given back in steps of at least this many octets.
pub(super) const CREDIT_STEP: usize = 16 * 1024;
/// Our SETTINGS_HEADER_TABLE_SIZE: the default, not sent.
const HEADER_TABLE_SIZE: usize = 4096;
/// How many closed streams are remembered, to tell a late frame from a bad one.
const CLOSED_MEMORY: usize = 128;

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Serving; new streams welcome.
    Open,
    /// The client sent GOAWAY: the streams open finish, then the connection closes.
    Draining,
    /// A connection error: GOAWAY queued, the output is written, then it closes.
    Failed,
}

/// How a stream closed, remembered for frames that arrive after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClosedBy {
    /// Both sides ended, or the client reset it: a frame on it is STREAM_CLOSED.
    Peer,
    /// We reset it: frames already in flight are ignored (RFC 9113 §5.1).
    Us,
}

/// What a HEADERS frame says besides its header block.
#[derive(Clone, Copy, Debug)]
pub(super) struct Opening {
    /// Its stream.
    pub stream: u32,
    /// The HEADERS frame ended the stream.
    pub end_stream: bool,
    /// Its PRIORITY made the stream depend on itself (a stream error once decoded).
    pub self_dependent: bool,
}

/// A header block whose CONTINUATION frames are still coming.
pub(super) struct Partial {
    /// Its HEADERS frame.
    pub opening: Opening,
    /// The fragments so far.
    pub block: Vec<u8>,
}

/// One HTTP/2 connection's state.
pub struct Connection<I, H: Handler> {
    pub(super) io: I,
    pub(super) handler: H,
    pub(super) settings: Settings,
    pub(super) phase: Phase,
    rbuf: Vec<u8>,
    rlen: usize,
    pub(super) preface_seen: bool,
    pub(super) settings_seen: bool,
    pub(super) wbuf: Vec<u8>,
    wpos: usize,
    pub(super) scratch: Vec<u8>,
    pub(super) decoder: hpack::Decoder,
    pub(super) streams: Streams,
    pub(super) exchanges: Exchanges<H::Future>,
    pub(super) last_id: u32,
    pub(super) closed: VecDeque<(u32, ClosedBy)>,
    pub(super) partial: Option<Partial>,
    pub(super) peer_window: i64,
    pub(super) peer_max_frame: usize,
    pub(super) send_window: i64,
    pub(super) recv_window: i64,
    pub(super) conn_unacked: usize,
    pub(super) resets: u32,
    starving: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) opened: u32,
}

impl<I, H> Connection<I, H>
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    /// A connection over `io`.
    pub fn new(io: I, handler: H, settings: Settings) -> Connection<I, H> {
        let mut wbuf = Vec::with_capacity(4096);
        frame::put_settings(
            &mut wbuf,
            &[
                (frame::setting::MAX_CONCURRENT_STREAMS, settings.max_streams),
                (
                    frame::setting::MAX_HEADER_LIST_SIZE,
                    settings.fields.max_size as u32,
                ),
            ],
        );
        Connection {
            io,
            handler,
            settings,
            phase: Phase::Open,
            rbuf: vec![0; IDLE_BUF],
            rlen: 0,
            preface_seen: false,
            settings_seen: false,
            wbuf,
            wpos: 0,
            scratch: Vec::new(),
            decoder: hpack::Decoder::new(HEADER_TABLE_SIZE),
            streams: Streams::default(),
            exchanges: Exchanges::new(settings.max_streams as usize),
            last_id: 0,
            closed: VecDeque::new(),
            partial: None,
            peer_window: DEFAULT_WINDOW,
            peer_max_frame: DEFAULT_MAX_FRAME,
            send_window: DEFAULT_WINDOW,
            recv_window: DEFAULT_WINDOW,
            conn_unacked: 0,
            resets: 0,
            starving: None,
            opened: 0,
        }
    }

    /// Serves the connection until the client leaves or it fails.
    pub async fn run(mut self) {
        std::future::poll_fn(|cx| self.poll_run(cx)).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.io).await;
    }

    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut busy = false;
        loop {
            if self.phase != Phase::Failed && self.queued() < HIGH_WATER {
                match self.poll_read(cx) {
                    // The client left, or was cut (idle): GOAWAY, if it still reads.
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        self.fail(Reason::NoError);
                        busy = true;
                    }
                    // Read again until the read is pending: only then will it wake us.
                    Poll::Ready(Ok(_)) => {
                        self.take_frames(cx);
                        busy = true;
                    }
                    Poll::Pending => {}
                }
            }
            if self.exchanges.poll(cx) {
                busy = true;
                while let Some((id, resp)) = self.exchanges.next_done() {
                    self.answer(id, resp);
                }
            }
            if self.queued() < HIGH_WATER {
                busy |= self.poll_bodies(cx);
            }
            if self.phase != Phase::Failed && self.starved(cx) {
                self.handler.starved();
                self.fail(Reason::NoError);
                busy = true;
            }
            self.give_credit();
            match self.poll_write(cx) {
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(wrote)) => busy |= wrote,
                Poll::Pending => {}
            }
            if self.queued() == 0 && self.finished() {
                return Poll::Ready(());
            }
            if !std::mem::take(&mut busy) {
                self.trim_when_idle();
                return Poll::Pending;
            }
        }
    }

    /// Gives back what an idle connection does not need: read and write buffers over
    /// their idle size, exchange slots over a few.
    fn trim_when_idle(&mut self) {
        if !self.streams.is_empty() || self.rlen > 0 || self.queued() > 0 {
            return;
        }
        if self.rbuf.len() > IDLE_BUF {
            self.rbuf = vec![0; IDLE_BUF];
        }
        if self.wbuf.capacity() > 4 * IDLE_BUF {
            self.wbuf = Vec::with_capacity(IDLE_BUF);
        }
        self.exchanges.trim(IDLE_SLOTS);
    }

    /// True when nothing is left to do but close.
    fn finished(&self) -> bool {
        match self.phase {
            Phase::Open => false,
            Phase::Draining => self.streams.is_empty() && self.exchanges.is_empty(),
            Phase::Failed => true,
        }
    }

    /// Octets queued and not yet written.
    pub(super) fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rlen == self.rbuf.len() && self.rbuf.len() < READ_BUF {
            // A frame larger than what an idle connection keeps: room for the largest.
            self.rbuf.resize(READ_BUF, 0);
        }
        let mut buf = ReadBuf::new(&mut self.rbuf[self.rlen..]);
        if buf.remaining() == 0 {
            return Poll::Ready(Err(io::ErrorKind::InvalidData.into()));
        }
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                self.rlen += n;
                Poll::Ready(Ok(n))
            }
            other => other.map_ok(|()| 0),
        }
    }

    /// Handles every whole frame read.
    fn take_frames(&mut self, cx: &mut Context<'_>) {
        let rbuf = std::mem::take(&mut self.rbuf);
        let used = self.frames(&rbuf[..self.rlen], cx);
        self.rbuf = rbuf;
        self.rbuf.copy_within(used..self.rlen, 0);
        self.rlen -= used;
    }

    /// Handles the whole frames at the start of `input`; returns the octets used.
    fn frames(&mut self, input: &[u8], cx: &mut Context<'_>) -> usize {
        let mut used = 0;
        if !self.preface_seen {
            match self.preface(input) {
                Some(n) => used = n,
                None => return 0,
            }
        }
        while self.phase != Phase::Failed {
            let Some(head) = frame::Head::parse(&input[used..]) else {
                break;
            };
            if head.len > DEFAULT_MAX_FRAME {
                self.fail(Reason::FrameSize);
                break;
            }
            let end = used + frame::HEADER_LEN + head.len;
            if end > input.len() {
                break;
            }
            let payload = &input[used + frame::HEADER_LEN..end];
            used = end;
            if let Err(reason) = self.frame(head, payload, cx) {
                self.fail(reason);
            }
        }
        used
    }

    /// Checks the client preface (RFC 9113 §3.4): its length once whole, `None` while
    /// it is incomplete (or wrong: the connection has then failed).
    fn preface(&mut self, input: &[u8]) -> Option<usize> {
        let preface = super::PREFACE;
        let n = input.len().min(preface.len());
        if input[..n] != preface[..n] {
            self.fail(Reason::Protocol);
            return None;
        }
        (n == preface.len()).then(|| {
            self.preface_seen = true;
            n
        })
    }

    /// A connection error, or the end (`NoError`): GOAWAY, every stream dropped (RFC 9113
    /// §5.4.1, §6.8).
    pub(super) fn fail(&mut self, reason: Reason) {
        if self.phase == Phase::Failed {
            return;
        }
        tracing::debug!(?reason, "HTTP/2 connection error");
        frame::put_goaway(&mut self.wbuf, self.last_id, reason);
        self.phase = Phase::Failed;
        for (_, stream) in self.streams.drain() {
            stream.break_body();
        }
        self.exchanges.clear();
    }

    /// A stream error: RST_STREAM, the stream dropped (RFC 9113 §5.4.2). It is
    /// remembered as ours even when it never opened (a request refused as it came), so
    /// the frames the client sent before it saw the reset are ignored (§5.1).
    pub(super) fn reset_stream(&mut self, id: u32, reason: Reason) {
        frame::put_rst(&mut self.wbuf, id, reason);
        if let Some(stream) = self.streams.remove(&id) {
            self.drop_stream(&stream);
        }
        self.remember(id, ClosedBy::Us);
    }

    /// A stream taken out before its end: its exchange dropped, its body broken off.
    /// An exchange cancelled while it ran counts against the client's reset allowance,
    /// whichever side reset the stream: only a client's frames lead here.
    pub(super) fn drop_stream(&mut self, stream: &Stream) {
        if let Some(slot) = stream.slot {
            self.exchanges.cancel(slot);
            self.resets += 1;
        }
        stream.break_body();
    }

    /// Remembers a closed stream, forgetting the oldest.
    pub(super) fn remember(&mut self, id: u32, by: ClosedBy) {
        if self.closed.len() == CLOSED_MEMORY {
            self.closed.pop_front();
        }
        self.closed.push_back((id, by));
    }

    /// The answer of stream `id`: its head sent, its body queued.
    pub(super) fn answer(&mut self, id: u32, resp: Response<Body>) {
        if !self.streams.contains_key(&id) {
            return;
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.slot = None;
        }
        let (parts, body) = resp.into_parts();
        self.scratch.clear();
        encode::response_head(&mut self.scratch, parts.status, &parts.headers);
        let end = body.is_end_stream();
        frame::put_header_block(&mut self.wbuf, id, &self.scratch, end, self.peer_max_frame);
        match end {
            true => self.sent_all(id),
            false => {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.sending = Sending::Body {
                        body,
                        pending: Bytes::new(),
                    };
                }
            }
        }
    }

    /// The server's side of stream `id` ended: the stream closes, or stays half-closed
    /// until the client ends its side.
    fn sent_all(&mut self, id: u32) {
        match self.streams.get_mut(&id) {
            Some(stream) if stream.recv_open => stream.sending = Sending::Done,
            Some(_) => {
                self.streams.remove(&id);
                self.remember(id, ClosedBy::Peer);
            }
            None => {}
        }
    }

    /// Sends what the response bodies have, as far as the windows allow; true when any
    /// frame went out.
    fn poll_bodies(&mut self, cx: &mut Context<'_>) -> bool {
        let mut out = super::send::Out {
            wbuf: &mut self.wbuf,
            window: &mut self.send_window,
            max_frame: self.peer_max_frame,
        };
        let (mut ended, mut broken) = (Vec::new(), Vec::new());
        let (mut sent, mut blocked) = (false, false);
        for (&id, stream) in self.streams.iter_mut() {
            let Sending::Body { body, pending } = &mut stream.sending else {
                continue;
            };
            match out.body(id, body, pending, &mut stream.send_window, cx) {
                super::send::Sent::Ended => ended.push(id),
                super::send::Sent::Broken => broken.push(id),
                super::send::Sent::More(any) => sent |= any,
                super::send::Sent::Blocked => blocked = true,
            }
        }
        sent |= !ended.is_empty() || !broken.is_empty();
        self.watch_starving(sent, blocked);
        for id in ended {
            self.sent_all(id);
        }
        for id in broken {
            self.reset_stream(id, Reason::Internal);
        }
        sent
    }

    /// Arms the starvation timer when answers wait for credit and nothing went out,
    /// disarms it when anything does: a client that opens its windows no more is cut
    /// after `timeouts.client`, as one that stops reading is.
    fn watch_starving(&mut self, sent: bool, blocked: bool) {
        if sent || !blocked {
            self.starving = None;
        } else if self.starving.is_none() {
            self.starving = Some(Box::pin(tokio::time::sleep(self.settings.send_timeout)));
        }
    }

    /// True when the client has starved the answers of credit for too long.
    fn starved(&mut self, cx: &mut Context<'_>) -> bool {
        self.starving
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    /// Gives back the credit of request bodies read (stream) and received (connection).
    fn give_credit(&mut self) {
        for (&id, stream) in self.streams.iter_mut() {
            let Some(body) = &stream.body else {
                continue;
            };
            stream.unacked += body.take_released();
            if matches!(stream.sending, Sending::Done) && Arc::strong_count(body) == 1 {
                // Answered, and its reader is gone: what is left is read by no one.
                stream.unacked += body.discard();
            }
            if stream.recv_open && stream.unacked >= CREDIT_STEP {
                frame::put_window_update(&mut self.wbuf, id, stream.unacked as u32);
                stream.recv_window += stream.unacked as i64;
                stream.unacked = 0;
            }
        }
        if self.conn_unacked >= CREDIT_STEP {
            frame::put_window_update(&mut self.wbuf, 0, self.conn_unacked as u32);
            self.recv_window += self.conn_unacked as i64;
            self.conn_unacked = 0;
        }
    }

    /// Writes what is queued; `Ok(true)` when anything was written.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut wrote = false;
        while self.wpos < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.wpos += n;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if wrote => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(wrote)),
        }
    }
}
