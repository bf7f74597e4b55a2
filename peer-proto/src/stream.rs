//! Establishing authenticated peer streams: TCP connect with timeout, optional TLS (client
//! or server side), then the protocol handshake, all bounded by the handshake timeout.
//! The result is a boxed byte stream, TLS or sealed under the handshake's keys, that the
//! rest of the crate treats uniformly.

use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::PeerConfig;
use crate::error::PeerError;
use crate::handshake::{self, Established, PeerInfo};
use crate::sealed::SealedStream;

/// Any bidirectional byte stream a peer connection can run on.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> PeerIo for T {}

/// An authenticated, encrypted stream (TLS, or TCP sealed under the handshake's keys).
pub type BoxedStream = Box<dyn PeerIo>;

/// Opens an authenticated stream to `addr` (TCP, TLS if configured, handshake) and returns
/// it raw, positioned where the first request frame goes. For tools and tests; the
/// application normally uses [`crate::PeerClient`] or [`crate::PeerNetwork`].
pub async fn connect_stream(
    addr: &str,
    cfg: &PeerConfig,
    expected: Option<u64>,
) -> Result<(BoxedStream, PeerInfo), PeerError> {
    connect(
        addr,
        cfg,
        expected,
        cfg.connect_timeout + cfg.handshake_timeout,
    )
    .await
}

/// Connects to `addr` and runs TLS + handshake; `expected` is the node id we want to reach.
///
/// `budget` caps the whole operation on top of the configured connect/handshake timeouts.
pub(crate) async fn connect(
    addr: &str,
    cfg: &PeerConfig,
    expected: Option<u64>,
    budget: Duration,
) -> Result<(BoxedStream, PeerInfo), PeerError> {
    let connect_timeout = cfg.connect_timeout.min(budget);
    let tcp = match timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => {
            return Err(PeerError::Connect {
                addr: addr.to_owned(),
                source,
            });
        }
        Err(_) => {
            return Err(PeerError::ConnectTimeout {
                addr: addr.to_owned(),
                timeout: connect_timeout,
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let hs_timeout = cfg.handshake_timeout.min(budget);
    timeout(hs_timeout, client_handshake(tcp, cfg, expected))
        .await
        .unwrap_or(Err(PeerError::HandshakeTimeout(hs_timeout)))
}

async fn client_handshake(
    tcp: TcpStream,
    cfg: &PeerConfig,
    expected: Option<u64>,
) -> Result<(BoxedStream, PeerInfo), PeerError> {
    let (mut io, cert): (BoxedStream, _) = match cfg.tls() {
        Some(tls) => {
            let stream = tls
                .connector()
                .connect(tls.server_name(), tcp)
                .await
                .map_err(PeerError::Tls)?;
            let cert = first_certificate(stream.get_ref().1.peer_certificates());
            (Box::new(stream), cert)
        }
        None => (Box::new(tcp), None),
    };
    let established = handshake::client(&mut io, cfg, expected, cert.as_ref())
        .await
        .map_err(tls_alert)?;
    Ok(seal(io, established))
}

/// The stream the rest of the connection runs on: sealed when the handshake made keys.
fn seal(io: BoxedStream, established: Established) -> (BoxedStream, PeerInfo) {
    let io: BoxedStream = match established.keys {
        Some(keys) => Box::new(SealedStream::new(io, keys)),
        None => io,
    };
    (io, established.peer)
}

fn first_certificate(certs: Option<&[CertificateDer<'_>]>) -> Option<CertificateDer<'static>> {
    certs?.first().map(|c| c.clone().into_owned())
}

/// Runs TLS (if configured) and the server side of the handshake on an accepted socket.
pub(crate) async fn accept(
    tcp: TcpStream,
    cfg: &PeerConfig,
) -> Result<(BoxedStream, PeerInfo), PeerError> {
    let _ = tcp.set_nodelay(true);
    let hs = async {
        let (mut io, cert): (BoxedStream, _) = match cfg.tls() {
            Some(tls) => {
                let stream = tls.acceptor().accept(tcp).await.map_err(PeerError::Tls)?;
                let cert = first_certificate(stream.get_ref().1.peer_certificates());
                (Box::new(stream), cert)
            }
            None => (Box::new(tcp), None),
        };
        let established = handshake::server(&mut io, cfg, cert.as_ref()).await?;
        Ok(seal(io, established))
    };
    timeout(cfg.handshake_timeout, hs)
        .await
        .unwrap_or(Err(PeerError::HandshakeTimeout(cfg.handshake_timeout)))
}

/// In TLS 1.3 a server rejecting our client certificate only shows up as an alert on our
/// first read; report that as a TLS error rather than a frame I/O error.
fn tls_alert(e: PeerError) -> PeerError {
    match e {
        PeerError::Frame(crate::frame::FrameError::Io(io))
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            PeerError::Tls(io)
        }
        other => other,
    }
}
