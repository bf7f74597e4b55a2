//! What each frame the client sends does to the connection (RFC 9113 §5–6): stream
//! states, header blocks and their CONTINUATIONs, flow control, SETTINGS, PING, GOAWAY.
//! A returned `Reason` is a connection error; stream errors reset the stream here.

use std::sync::Arc;
use std::task::Context;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Handler;
use super::connection::{ClosedBy, Connection, Opening, Partial, Phase};
use super::frame::{self, Head, MAX_WINDOW, Reason, flag, kind, setting};
use super::request::{Fault, Fields};
use super::stream::{RecvBody, Shared};
use super::streams::{Sending, Stream};
use crate::http::body::empty;
use crate::http::framing;

/// The largest header block taken, CONTINUATIONs included: a flood of them is refused.
const MAX_BLOCK_FACTOR: usize = 2;
/// Exchanges a client may cancel before its cancels must stay under half the exchanges
/// it started: by RST_STREAM (the "rapid reset" flood, CVE-2023-44487), or by a frame
/// that makes the server reset a stream whose exchange runs ("MadeYouReset",
/// CVE-2025-8671).
const RESET_ALLOWANCE: u32 = 200;

type Handled = Result<(), Reason>;

impl<I, H> Connection<I, H>
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    /// Handles one frame.
    pub(super) fn frame(&mut self, head: Head, payload: &[u8], cx: &mut Context<'_>) -> Handled {
        if let Some(partial) = &self.partial
            && (head.kind != kind::CONTINUATION || head.stream != partial.opening.stream)
        {
            return Err(Reason::Protocol);
        }
        if !self.settings_seen {
            // The client preface ends with a SETTINGS frame (RFC 9113 §3.4).
            if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                return Err(Reason::Protocol);
            }
            self.settings_seen = true;
        }
        let handled = match head.kind {
            kind::DATA => self.data(head, payload),
            kind::HEADERS => self.headers(head, payload, cx),
            kind::PRIORITY => self.priority(head, payload),
            kind::RST_STREAM => self.rst_stream(head, payload),
            kind::SETTINGS => self.settings_frame(head, payload),
            kind::PUSH_PROMISE => Err(Reason::Protocol),
            kind::PING => self.ping(head, payload),
            kind::GOAWAY => self.goaway(head, payload),
            kind::WINDOW_UPDATE => self.window_update(head, payload),
            kind::CONTINUATION => self.continuation(head, payload, cx),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        };
        handled?;
        match self.resets > RESET_ALLOWANCE && self.resets > self.opened / 2 {
            true => Err(Reason::EnhanceYourCalm),
            false => Ok(()),
        }
    }

    /// How a frame for a stream not open is taken: ignored after our reset; for one
    /// that closed, STREAM_CLOSED (a connection error for HEADERS, RFC 9113 §5.1); a
    /// connection error for one never opened.
    fn not_open(&mut self, id: u32, frame_kind: u8) -> Handled {
        match self.closed.iter().rev().find(|(c, _)| *c == id) {
            Some((_, ClosedBy::Us)) => Ok(()),
            Some((_, ClosedBy::Peer)) if frame_kind == kind::HEADERS => Err(Reason::StreamClosed),
            Some((_, ClosedBy::Peer)) => {
                frame::put_rst(&mut self.wbuf, id, Reason::StreamClosed);
                Ok(())
            }
            None if id > self.last_id => Err(Reason::Protocol),
            // Closed long ago, or skipped over (implicitly closed, RFC 9113 §5.1.1).
            None => Err(Reason::StreamClosed),
        }
    }

    fn data(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream == 0 {
            return Err(Reason::Protocol);
        }
        self.recv_window -= head.len as i64;
        if self.recv_window < 0 {
            return Err(Reason::FlowControl);
        }
        // The connection's credit returns as frames arrive; streams' windows bound
        // what is held.
        self.conn_unacked += head.len;
        let (start, end) = frame::unpad(&head, payload).ok_or(Reason::Protocol)?;
        let id = head.stream;
        let Some(stream) = self.streams.get_mut(&id) else {
            return self.not_open(id, kind::DATA);
        };
        if !stream.recv_open {
            self.reset_stream(id, Reason::StreamClosed);
            return Ok(());
        }
        stream.recv_window -= head.len as i64;
        if stream.recv_window < 0 {
            self.reset_stream(id, Reason::FlowControl);
            return Ok(());
        }
        let data = &payload[start..end];
        // Padding is credit given back at once.
        stream.unacked += head.len - data.len();
        let end_stream = head.has(flag::END_STREAM);
        let length_ok = match &mut stream.remaining {
            Some(left) => match left.checked_sub(data.len() as u64) {
                Some(rest) => {
                    *left = rest;
                    !end_stream || rest == 0
                }
                None => false,
            },
            None => true,
        };
        if !length_ok {
            // RFC 9113 §8.1.1: DATA that disagrees with `content-length` is malformed.
            self.handler
                .malformed("DATA that disagrees with content-length");
            self.reset_stream(id, Reason::Protocol);
            return Ok(());
        }
        if matches!(stream.sending, Sending::Done) {
            // Answered already: what the client still sends is read by no one.
            stream.unacked += data.len();
        } else if !data.is_empty()
            && let Some(body) = &stream.body
        {
            body.push(data);
        }
        if end_stream {
            if let Some(body) = &stream.body {
                body.close(false);
            }
            self.recv_ended(id);
        }
        Ok(())
    }

    /// The client's side of stream `id` ended: the stream closes if its answer is sent.
    fn recv_ended(&mut self, id: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.recv_open = false;
        if matches!(stream.sending, Sending::Done) {
            self.streams.remove(&id);
            self.remember(id, ClosedBy::Peer);
        }
    }

    fn headers(&mut self, head: Head, payload: &[u8], cx: &mut Context<'_>) -> Handled {
        if head.stream == 0 {
            return Err(Reason::Protocol);
        }
        let (mut start, end) = frame::unpad(&head, payload).ok_or(Reason::Protocol)?;
        let mut self_dependent = false;
        if head.has(flag::PRIORITY) {
            let dependency = payload.get(start..start + 5).ok_or(Reason::FrameSize)?;
            let on =
                u32::from_be_bytes([dependency[0], dependency[1], dependency[2], dependency[3]])
                    & 0x7fff_ffff;
            self_dependent = on == head.stream;
            start += 5;
        }
        if start > end {
            return Err(Reason::Protocol);
        }
        let opening = Opening {
            stream: head.stream,
            end_stream: head.has(flag::END_STREAM),
            self_dependent,
        };
        let fragment = &payload[start..end];
        match head.has(flag::END_HEADERS) {
            true => self.header_block(opening, fragment, cx),
            false => {
                let block = fragment.to_vec();
                self.partial = Some(Partial { opening, block });
                Ok(())
            }
        }
    }

    fn continuation(&mut self, head: Head, payload: &[u8], cx: &mut Context<'_>) -> Handled {
        let Some(mut partial) = self.partial.take() else {
            return Err(Reason::Protocol);
        };
        partial.block.extend_from_slice(payload);
        if partial.block.len()
            > self.settings.fields.max_size * MAX_BLOCK_FACTOR + frame::DEFAULT_MAX_FRAME
        {
            return Err(Reason::EnhanceYourCalm);
        }
        match head.has(flag::END_HEADERS) {
            true => self.header_block(partial.opening, &partial.block, cx),
            false => {
                self.partial = Some(partial);
                Ok(())
            }
        }
    }

    /// A whole header block: decoded (always, to keep the HPACK context), then a new
    /// request, a trailer section, or an error.
    fn header_block(&mut self, partial: Opening, block: &[u8], cx: &mut Context<'_>) -> Handled {
        let id = partial.stream;
        let trailers = self.streams.contains_key(&id);
        let mut fields = Fields::new(self.settings.fields, trailers);
        self.decoder
            .decode(block, |entry| fields.add(&entry.field, entry.size()))
            .map_err(|_| Reason::Compression)?;
        if trailers {
            return self.trailers(id, partial.end_stream, fields);
        }
        if id.is_multiple_of(2) {
            return Err(Reason::Protocol);
        }
        if id <= self.last_id {
            return self.not_open(id, kind::HEADERS);
        }
        self.last_id = id;
        if partial.self_dependent {
            self.reset_stream(id, Reason::Protocol);
            return Ok(());
        }
        if self.phase != Phase::Open || self.streams.len() >= self.settings.max_streams as usize {
            self.reset_stream(id, Reason::RefusedStream);
            return Ok(());
        }
        self.open(id, partial.end_stream, fields, cx);
        Ok(())
    }

    /// A second header block on an open stream: its trailers, which end it.
    fn trailers(&mut self, id: u32, end_stream: bool, fields: Fields) -> Handled {
        let open = self.streams.get(&id).is_some_and(|s| s.recv_open);
        if !open {
            self.reset_stream(id, Reason::StreamClosed);
            return Ok(());
        }
        let trailers = match (end_stream, fields.into_trailers()) {
            (true, Ok(trailers)) => trailers,
            (false, _) | (_, Err(_)) => {
                self.handler
                    .malformed("a trailer section without END_STREAM or with a bad field");
                self.reset_stream(id, Reason::Protocol);
                return Ok(());
            }
        };
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if stream.remaining.is_some_and(|left| left > 0) {
            self.handler
                .malformed("a body shorter than its content-length");
            self.reset_stream(id, Reason::Protocol);
            return Ok(());
        }
        if let Some(body) = &stream.body {
            body.trailers(trailers);
        }
        self.recv_ended(id);
        Ok(())
    }

    /// A new stream's request, handed to its exchange (or refused).
    fn open(&mut self, id: u32, end_stream: bool, fields: Fields, cx: &mut Context<'_>) {
        let req = match fields.into_request() {
            Ok(req) => req,
            Err(Fault::Malformed(why)) => {
                self.handler.malformed(why);
                self.reset_stream(id, Reason::Protocol);
                return;
            }
            Err(Fault::Over(limit)) => {
                let answer = self.handler.rejected(limit);
                self.insert(id, end_stream, None, None);
                self.answer(id, answer);
                return;
            }
        };
        let length = match framing::content_length(req.headers()) {
            Ok(length) => length,
            Err(why) => {
                self.handler.malformed(why);
                self.reset_stream(id, Reason::Protocol);
                return;
            }
        };
        if end_stream && length.is_some_and(|n| n > 0) {
            self.handler
                .malformed("content-length on a request without a body");
            self.reset_stream(id, Reason::Protocol);
            return;
        }
        let shared = (!end_stream).then(|| Arc::new(Shared::default()));
        let req = match &shared {
            None => req.map(|()| empty()),
            Some(shared) => {
                let body = RecvBody::new(shared.clone(), length, cx.waker().clone());
                req.map(|()| http_body_util::BodyExt::boxed(body))
            }
        };
        let handler = &self.handler;
        let Some(slot) = self.exchanges.start(id, || handler.call(req)) else {
            // Never with streams under SETTINGS_MAX_CONCURRENT_STREAMS.
            self.reset_stream(id, Reason::RefusedStream);
            return;
        };
        self.opened += 1;
        self.insert(id, end_stream, length, shared);
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.slot = Some(slot);
        }
    }

    fn insert(
        &mut self,
        id: u32,
        end_stream: bool,
        length: Option<u64>,
        body: Option<Arc<Shared>>,
    ) {
        let stream = Stream {
            body,
            slot: None,
            recv_open: !end_stream,
            recv_window: frame::DEFAULT_WINDOW,
            unacked: 0,
            remaining: length,
            sending: Sending::Waiting,
            send_window: self.peer_window,
        };
        self.streams.insert(id, stream);
    }

    fn priority(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream == 0 {
            return Err(Reason::Protocol);
        }
        if payload.len() != 5 {
            self.reset_stream(head.stream, Reason::FrameSize);
            return Ok(());
        }
        let on = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
        if on == head.stream {
            self.reset_stream(head.stream, Reason::Protocol);
        }
        // Priorities are advice (RFC 9113 §5.3): every stream is served as it comes.
        Ok(())
    }

    fn rst_stream(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream == 0 {
            return Err(Reason::Protocol);
        }
        if payload.len() != 4 {
            return Err(Reason::FrameSize);
        }
        if head.stream > self.last_id {
            return Err(Reason::Protocol);
        }
        if let Some(stream) = self.streams.remove(&head.stream) {
            self.drop_stream(&stream);
            self.remember(head.stream, ClosedBy::Peer);
        }
        Ok(())
    }

    fn settings_frame(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream != 0 {
            return Err(Reason::Protocol);
        }
        if head.has(flag::ACK) {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(Reason::FrameSize)
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(Reason::FrameSize);
        }
        for pair in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
            self.setting(id, value)?;
        }
        frame::put_settings_ack(&mut self.wbuf);
        Ok(())
    }

    fn setting(&mut self, id: u16, value: u32) -> Handled {
        match id {
            setting::ENABLE_PUSH if value > 1 => Err(Reason::Protocol),
            setting::INITIAL_WINDOW_SIZE => {
                let value = i64::from(value);
                if value > MAX_WINDOW {
                    return Err(Reason::FlowControl);
                }
                // RFC 9113 §6.9.2: every stream's window moves by the difference.
                let delta = value - self.peer_window;
                self.peer_window = value;
                for stream in self.streams.values_mut() {
                    stream.send_window += delta;
                    if stream.send_window > MAX_WINDOW {
                        return Err(Reason::FlowControl);
                    }
                }
                Ok(())
            }
            setting::MAX_FRAME_SIZE => match value {
                16_384..=frame::MAX_FRAME_LIMIT => {
                    self.peer_max_frame = value as usize;
                    Ok(())
                }
                _ => Err(Reason::Protocol),
            },
            // The header table size matters not: the encoder keeps no dynamic table.
            _ => Ok(()),
        }
    }

    fn ping(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream != 0 {
            return Err(Reason::Protocol);
        }
        if payload.len() != 8 {
            return Err(Reason::FrameSize);
        }
        if !head.has(flag::ACK) {
            frame::put_ping_ack(&mut self.wbuf, payload);
        }
        Ok(())
    }

    fn goaway(&mut self, head: Head, payload: &[u8]) -> Handled {
        if head.stream != 0 {
            return Err(Reason::Protocol);
        }
        // The last stream id and an error code, then debug data (RFC 9113 §6.8).
        if payload.len() < 8 {
            return Err(Reason::FrameSize);
        }
        if self.phase == Phase::Open {
            self.phase = Phase::Draining;
        }
        Ok(())
    }

    fn window_update(&mut self, head: Head, payload: &[u8]) -> Handled {
        let Ok(bytes) = <[u8; 4]>::try_from(payload) else {
            return Err(Reason::FrameSize);
        };
        let increment = i64::from(u32::from_be_bytes(bytes) & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(Reason::Protocol);
            }
            self.send_window += increment;
            return match self.send_window > MAX_WINDOW {
                true => Err(Reason::FlowControl),
                false => Ok(()),
            };
        }
        if head.stream > self.last_id {
            return Err(Reason::Protocol);
        }
        let Some(stream) = self.streams.get_mut(&head.stream) else {
            return Ok(());
        };
        if increment == 0 {
            self.reset_stream(head.stream, Reason::Protocol);
            return Ok(());
        }
        stream.send_window += increment;
        if stream.send_window > MAX_WINDOW {
            self.reset_stream(head.stream, Reason::FlowControl);
        }
        Ok(())
    }
}
