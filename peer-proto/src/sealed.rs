//! Encryption of a secret-mode peer connection: keys derived from the handshake, and a
//! byte stream that seals everything written into AEAD records and opens what it reads.
//!
//! Keys: HKDF-SHA256 with the cluster secret as input key material, both handshake nonces
//! as salt, and the transcript (cluster, both node ids, direction) as info, so every
//! connection and every direction has its own key. Records: a `u32` big-endian length,
//! then AES-256-GCM ciphertext and tag; the nonce is the record's sequence number in its
//! direction, never sent and never repeated under one key. A record that fails to open
//! (tampered, replayed, reordered, cut) ends the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest plaintext carried by one record.
const MAX_RECORD: usize = 64 * 1024;
/// Bytes an AEAD tag adds to a record.
const TAG_LEN: usize = 16;
/// Length prefix of a record.
const HEADER: usize = 4;

/// Which way a key protects traffic.
#[derive(Clone, Copy)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::ClientToServer => b"holdfast peer v3 client to server",
            Direction::ServerToClient => b"holdfast peer v3 server to client",
        }
    }
}

/// What both sides of one handshake agree on, and from which the keys are derived.
pub(crate) struct KeyInput<'a> {
    /// The shared cluster secret.
    pub secret: &'a [u8],
    /// The cluster name.
    pub cluster: &'a str,
    /// The connecting node's id and nonce.
    pub client: (u64, &'a [u8]),
    /// The accepting node's id and nonce.
    pub server: (u64, &'a [u8]),
}

/// The two keys of one connection, seen from one side.
pub(crate) struct SessionKeys {
    seal: LessSafeKey,
    open: LessSafeKey,
}

impl SessionKeys {
    /// Keys for the side that connected.
    pub(crate) fn client(input: &KeyInput<'_>) -> SessionKeys {
        let prk = input.prk();
        SessionKeys {
            seal: input.key(&prk, Direction::ClientToServer),
            open: input.key(&prk, Direction::ServerToClient),
        }
    }

    /// Keys for the side that accepted.
    pub(crate) fn server(input: &KeyInput<'_>) -> SessionKeys {
        let prk = input.prk();
        SessionKeys {
            seal: input.key(&prk, Direction::ServerToClient),
            open: input.key(&prk, Direction::ClientToServer),
        }
    }
}

struct KeyLen;

impl KeyType for KeyLen {
    fn len(&self) -> usize {
        AES_256_GCM.key_len()
    }
}

impl KeyInput<'_> {
    fn prk(&self) -> Prk {
        let mut salt = Vec::with_capacity(self.client.1.len() + self.server.1.len());
        salt.extend_from_slice(self.client.1);
        salt.extend_from_slice(self.server.1);
        Salt::new(HKDF_SHA256, &salt).extract(self.secret)
    }

    fn key(&self, prk: &Prk, direction: Direction) -> LessSafeKey {
        let cluster_len = (self.cluster.len() as u32).to_be_bytes();
        let client_id = self.client.0.to_be_bytes();
        let server_id = self.server.0.to_be_bytes();
        let info: [&[u8]; 5] = [
            direction.label(),
            &cluster_len,
            self.cluster.as_bytes(),
            &client_id,
            &server_id,
        ];
        let mut bytes = [0u8; 32];
        // Both calls fail only for an output longer than 255 hash lengths; 32 bytes is one.
        prk.expand(&info, KeyLen)
            .and_then(|okm| okm.fill(&mut bytes))
            .expect("HKDF output of one hash length");
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("AES-256 key of 32 bytes");
        LessSafeKey::new(key)
    }
}

/// One direction's key and its record counter.
struct Cipher {
    key: LessSafeKey,
    sequence: u64,
}

impl Cipher {
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[NONCE_LEN - 8..].copy_from_slice(&self.sequence.to_be_bytes());
        self.sequence = self.sequence.checked_add(1).ok_or_else(|| {
            io::Error::other("peer connection used up its record counter; reconnect")
        })?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

/// A byte stream whose every byte crosses the network sealed under the connection's keys.
pub(crate) struct SealedStream<S> {
    inner: S,
    seal: Cipher,
    open: Cipher,
    /// Sealed records not yet written to `inner`; `written` bytes of it already were.
    outgoing: Vec<u8>,
    written: usize,
    /// Bytes read from `inner` for the record being received.
    incoming: Vec<u8>,
    /// Opened plaintext not yet handed to the reader: `plain[consumed..]`.
    plain: Vec<u8>,
    consumed: usize,
}

impl<S> SealedStream<S> {
    /// Wraps an authenticated stream; `keys` come from its handshake.
    pub(crate) fn new(inner: S, keys: SessionKeys) -> Self {
        SealedStream {
            inner,
            seal: Cipher {
                key: keys.seal,
                sequence: 0,
            },
            open: Cipher {
                key: keys.open,
                sequence: 0,
            },
            outgoing: Vec::new(),
            written: 0,
            incoming: Vec::new(),
            plain: Vec::new(),
            consumed: 0,
        }
    }

    fn seal_record(&mut self, plain: &[u8]) -> io::Result<()> {
        let nonce = self.seal.next_nonce()?;
        self.outgoing.clear();
        self.written = 0;
        let len = (plain.len() + TAG_LEN) as u32;
        self.outgoing.extend_from_slice(&len.to_be_bytes());
        self.outgoing.extend_from_slice(plain);
        let tag = self
            .seal
            .key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut self.outgoing[HEADER..])
            .map_err(|_| io::Error::other("peer record could not be sealed"))?;
        self.outgoing.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens the complete record in `incoming` into `plain`.
    fn open_record(&mut self) -> io::Result<()> {
        let nonce = self.open.next_nonce()?;
        let body = &mut self.incoming[HEADER..];
        let plain = self
            .open
            .key
            .open_in_place(nonce, Aad::empty(), body)
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "peer record failed authentication (tampered, replayed or not sealed with this connection's key)",
                )
            })?;
        self.plain.clear();
        self.plain.extend_from_slice(plain);
        self.consumed = 0;
        self.incoming.clear();
        Ok(())
    }
}

/// How many more bytes of the record in `incoming` are needed, or an error for a length
/// no sender of this protocol writes.
fn record_missing(incoming: &[u8]) -> io::Result<usize> {
    if incoming.len() < HEADER {
        return Ok(HEADER - incoming.len());
    }
    let len = u32::from_be_bytes([incoming[0], incoming[1], incoming[2], incoming[3]]) as usize;
    if !(TAG_LEN + 1..=MAX_RECORD + TAG_LEN).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer record of {len} bytes is not a sealed record"),
        ));
    }
    Ok(HEADER + len - incoming.len())
}

impl<S: AsyncRead + Unpin> SealedStream<S> {
    /// Reads until one whole record is opened; `Ok(false)` on a clean EOF between records.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            let missing = record_missing(&self.incoming)?;
            if missing == 0 {
                self.open_record()?;
                return Poll::Ready(Ok(true));
            }
            let start = self.incoming.len();
            self.incoming.resize(start + missing, 0);
            let mut buf = ReadBuf::new(&mut self.incoming[start..]);
            let polled = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
            let got = buf.filled().len();
            self.incoming.truncate(start + got);
            ready!(polled)?;
            if got == 0 {
                return Poll::Ready(match self.incoming.is_empty() {
                    true => Ok(false),
                    false => Err(io::ErrorKind::UnexpectedEof.into()),
                });
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SealedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.consumed == this.plain.len() && !ready!(this.poll_fill(cx))? {
            return Poll::Ready(Ok(()));
        }
        let available = &this.plain[this.consumed..];
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        this.consumed += n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> SealedStream<S> {
    /// Writes out the sealed record in `outgoing`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.outgoing.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.outgoing[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SealedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_RECORD);
        this.seal_record(&buf[..n])?;
        // The record is accepted once sealed. Start sending it now, as a socket would; what
        // the socket cannot take yet goes with the next write or flush, which also report
        // any error.
        let _ = this.poll_drain(cx);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn keys() -> (SessionKeys, SessionKeys) {
        let input = KeyInput {
            secret: b"unit-test-secret",
            cluster: "test",
            client: (1, &[1u8; 32]),
            server: (2, &[2u8; 32]),
        };
        (SessionKeys::client(&input), SessionKeys::server(&input))
    }

    #[tokio::test]
    async fn round_trip_in_both_directions_across_record_sizes() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (ck, sk) = keys();
        let mut client = SealedStream::new(a, ck);
        let mut server = SealedStream::new(b, sk);
        let big: Vec<u8> = (0..(3 * MAX_RECORD + 17)).map(|i| i as u8).collect();
        client.write_all(&big).await.expect("write");
        client.flush().await.expect("flush");
        let mut got = vec![0u8; big.len()];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(got, big);
        server.write_all(b"pong").await.expect("write back");
        server.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("read to eof");
        assert_eq!(back, b"pong");
    }

    #[tokio::test]
    async fn plaintext_never_crosses_and_a_flipped_bit_ends_the_stream() {
        let (a, mut wire) = tokio::io::duplex(1 << 16);
        let (ck, sk) = keys();
        let mut client = SealedStream::new(a, ck);
        client.write_all(b"PHPSESSID=bearer").await.expect("write");
        client.flush().await.expect("flush");
        let mut sealed = vec![0u8; HEADER + 16 + TAG_LEN];
        wire.read_exact(&mut sealed).await.expect("read sealed");
        assert!(!sealed.windows(6).any(|w| w == b"bearer"), "{sealed:?}");

        sealed[HEADER + 3] ^= 1;
        let (c, mut d) = tokio::io::duplex(1 << 16);
        let mut server = SealedStream::new(c, sk);
        d.write_all(&sealed).await.expect("forward");
        let err = server.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[tokio::test]
    async fn a_replayed_record_and_a_wrong_key_are_refused() {
        let (ck, sk) = keys();
        let mut sealed = SealedStream::new(tokio::io::sink(), ck);
        sealed.seal_record(b"once").expect("seal");
        let record = sealed.outgoing.clone();
        let (c, mut d) = tokio::io::duplex(1 << 16);
        let mut server = SealedStream::new(c, sk);
        d.write_all(&record).await.expect("first");
        d.write_all(&record).await.expect("replay");
        let mut once = [0u8; 4];
        server
            .read_exact(&mut once)
            .await
            .expect("first record opens");
        assert_eq!(&once, b"once");
        assert!(server.read_u8().await.is_err(), "a replayed record opened");

        let other = KeyInput {
            secret: b"another-secret",
            cluster: "test",
            client: (1, &[1u8; 32]),
            server: (2, &[2u8; 32]),
        };
        let (c, mut d) = tokio::io::duplex(1 << 16);
        let mut stranger = SealedStream::new(c, SessionKeys::server(&other));
        d.write_all(&record).await.expect("send");
        assert!(stranger.read_u8().await.is_err(), "opened with another key");
    }

    #[tokio::test]
    async fn an_impossible_record_length_is_refused_before_buffering() {
        let (_, sk) = keys();
        let (c, mut d) = tokio::io::duplex(1 << 16);
        let mut server = SealedStream::new(c, sk);
        d.write_all(&u32::MAX.to_be_bytes()).await.expect("send");
        let err = server.read_u8().await.unwrap_err();
        assert!(err.to_string().contains("not a sealed record"), "{err}");
    }
}
