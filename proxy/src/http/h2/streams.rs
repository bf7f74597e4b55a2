//! The streams open on a connection, and what each holds: its window and credit both
//! ways, what `content-length` still promises, and the answer being sent. A list, not a
//! hash map: a connection has a few streams, found faster by a scan than by hashing.

use bytes::Bytes;

use super::stream::Shared;
use crate::http::body::Body;

/// What the server sends on a stream.
pub(super) enum Sending {
    /// The exchange has not answered yet.
    Waiting,
    /// The answer's head is sent; its body goes out as the windows allow.
    Body {
        /// The body.
        body: Body,
        /// Taken from the body, not yet sent.
        pending: Bytes,
    },
    /// All sent; the client is still sending (half-closed local).
    Done,
}

/// One stream still open on either side.
pub(super) struct Stream {
    /// Its request body, shared with the exchange reading it (none without a body).
    pub body: Option<std::sync::Arc<Shared>>,
    /// The slot of its exchange while that runs.
    pub slot: Option<usize>,
    /// The client may still send on it (not half-closed remote).
    pub recv_open: bool,
    /// What the client may still send before it needs more credit.
    pub recv_window: i64,
    /// Credit read by the exchange, not yet given back.
    pub unacked: usize,
    /// Octets `content-length` still promises, if it was sent.
    pub remaining: Option<u64>,
    /// What the server sends.
    pub sending: Sending,
    /// What the server may still send on it.
    pub send_window: i64,
}

impl Stream {
    /// The client cut the stream short: its request body breaks off.
    pub fn break_body(&self) {
        if let Some(body) = &self.body {
            body.close(true);
        }
    }
}

/// The streams of one connection, by id.
#[derive(Default)]
pub(super) struct Streams(Vec<(u32, Stream)>);

impl Streams {
    /// Stream `id`.
    pub fn get(&self, id: &u32) -> Option<&Stream> {
        self.0.iter().find(|(i, _)| i == id).map(|(_, s)| s)
    }

    /// Stream `id`, to change.
    pub fn get_mut(&mut self, id: &u32) -> Option<&mut Stream> {
        self.0.iter_mut().find(|(i, _)| i == id).map(|(_, s)| s)
    }

    /// True when stream `id` is open.
    pub fn contains_key(&self, id: &u32) -> bool {
        self.get(id).is_some()
    }

    /// Adds stream `id` (the caller knows it is new).
    pub fn insert(&mut self, id: u32, stream: Stream) {
        self.0.push((id, stream));
    }

    /// Takes stream `id` out.
    pub fn remove(&mut self, id: &u32) -> Option<Stream> {
        let at = self.0.iter().position(|(i, _)| i == id)?;
        Some(self.0.swap_remove(at).1)
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every stream, with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u32, &mut Stream)> {
        self.0.iter_mut().map(|(id, s)| (&*id, s))
    }

    /// Every stream.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.0.iter_mut().map(|(_, s)| s)
    }

    /// Takes every stream out.
    pub fn drain(&mut self) -> impl Iterator<Item = (u32, Stream)> + '_ {
        self.0.drain(..)
    }
}
