//! Connections to servers for the fast path: opened under the connect timeout, kept
//! alive between requests in a small idle list per server (its own lock, held for a push
//! or a pop), dropped when idle longer than `timeouts.pool_idle`. Both engines send
//! their requests over them; the response head is read here for both.

use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpStream;

use super::buf::ReadBuf;
use super::head::Head;
use crate::config::TimeoutsSection;
use crate::http::deadline::Deadline;
use crate::http::pool::Server;

/// Idle connections kept per server at most: as many as requests go to one server at
/// once (HTTP/2 clients bring hundreds), or each burst closes connections that the next
/// one opens again (HAProxy keeps idle server connections without a count limit). The
/// most recently used is taken first, so those a burst left over age out after
/// `timeouts.pool_idle`.
const MAX_IDLE: usize = 1024;

/// Bytes buffered from a server: a response head must fit.
pub const BUF_SIZE: usize = 16 * 1024;

/// One connection to a server, with what was read from it and not yet forwarded.
pub struct Upstream {
    /// The socket.
    pub stream: TcpStream,
    /// Read from the server, not yet forwarded.
    pub buf: ReadBuf,
    /// It served a request before (it may have been closed by the server meanwhile).
    pub reused: bool,
    idle_since: Instant,
    /// The response deadline's timer, kept from request to request.
    timer: Deadline,
}

impl Upstream {
    /// True when the server has not closed it or sent anything unasked while it was idle
    /// (one non-blocking read).
    pub fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads the server's next response head (an interim 1xx one included) into `head`,
    /// by `deadline`.
    pub async fn read_head(
        &mut self,
        head: &mut Head,
        deadline: tokio::time::Instant,
    ) -> Result<(), NoResponse> {
        loop {
            if !self.buf.is_empty() {
                match head.parse_response(self.buf.filled()) {
                    Ok(true) => return Ok(()),
                    Ok(false) if self.buf.is_full() => return Err(NoResponse::Malformed),
                    Ok(false) => {}
                    Err(_) => return Err(NoResponse::Malformed),
                }
            }
            let (buf, stream, timer) = (&mut self.buf, &mut self.stream, &mut self.timer);
            let read = std::future::poll_fn(|cx| match buf.poll_fill(cx, stream) {
                Poll::Ready(read) => Poll::Ready(Some(read)),
                Poll::Pending => timer.poll_passed(deadline, cx).map(|()| None),
            });
            match read.await {
                Some(Ok(1..)) => {}
                Some(_) if self.buf.is_empty() => return Err(NoResponse::Closed),
                Some(_) => return Err(NoResponse::Malformed),
                None => return Err(NoResponse::Timeout),
            }
        }
    }
}

/// Why no response head came from a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoResponse {
    /// It closed the connection before sending anything.
    Closed,
    /// Nothing complete came within `timeouts.server`.
    Timeout,
    /// What came is not a response head (or one too large).
    Malformed,
}

/// A connection to `server` for one request: its most recently used idle one (for a
/// request that cannot be sent twice, only one that still looks alive), or a new one.
/// After a pooled connection turned out `stale` (closed by the server: it restarted, or
/// dropped its idle connections), the others that died too are closed and the request
/// goes on a new connection: trying them one by one would end in a 502.
pub async fn checkout(
    server: &Server,
    replayable: bool,
    stale: bool,
    timeouts: &TimeoutsSection,
) -> io::Result<Upstream> {
    if stale {
        server.idle.prune(timeouts.pool_idle);
        return connect(&server.addr, timeouts.connect).await;
    }
    let pooled = server
        .idle
        .take(timeouts.pool_idle)
        .filter(|u| replayable || u.looks_alive());
    match pooled {
        Some(up) => Ok(up),
        None => connect(&server.addr, timeouts.connect).await,
    }
}

/// A server's idle connections, most recently used last.
#[derive(Default)]
pub struct IdleList {
    conns: Mutex<Vec<Upstream>>,
}

impl std::fmt::Debug for IdleList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdleList({})", self.conns.lock().len())
    }
}

impl IdleList {
    /// The most recently used idle connection not idle longer than `max_idle`.
    pub fn take(&self, max_idle: Duration) -> Option<Upstream> {
        let mut conns = self.conns.lock();
        while let Some(mut up) = conns.pop() {
            if up.idle_since.elapsed() < max_idle {
                up.reused = true;
                return Some(up);
            }
        }
        None
    }

    /// Closes the connections idle longer than `max_idle`, or closed or written to by the
    /// server meanwhile: nothing waits half-closed (CLOSE-WAIT) for the next request.
    /// Returns how many were closed.
    pub fn prune(&self, max_idle: Duration) -> usize {
        let mut conns = self.conns.lock();
        let before = conns.len();
        conns.retain(|up| up.idle_since.elapsed() < max_idle && up.looks_alive());
        before - conns.len()
    }

    /// Idle connections held now.
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `up`, which finished an exchange cleanly, for the next request.
    pub fn put(&self, mut up: Upstream) {
        up.idle_since = Instant::now();
        let mut conns = self.conns.lock();
        if conns.len() < MAX_IDLE {
            conns.push(up);
        }
    }
}

/// Opens a connection to `addr` (`host:port`) within `timeout`.
pub async fn connect(addr: &str, timeout: Duration) -> io::Result<Upstream> {
    let open = async {
        match addr.parse::<SocketAddr>() {
            Ok(a) => TcpStream::connect(a).await,
            Err(_) => TcpStream::connect(addr).await,
        }
    };
    let stream = tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
    stream.set_nodelay(true)?;
    Ok(Upstream {
        stream,
        buf: ReadBuf::new(BUF_SIZE),
        reused: false,
        idle_since: Instant::now(),
        timer: Deadline::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_the_server_closed_are_pruned() {
        // A port below the ephemeral range, so it never collides with an outgoing one.
        let base = 20_000 + (std::process::id() % 1_000) as u16 * 10;
        let mut listener = None;
        for port in base..base + 10 {
            if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                listener = Some(l);
                break;
            }
        }
        let listener = listener.expect("a free port");
        let addr = listener.local_addr().expect("addr").to_string();
        let list = IdleList::default();
        let kept = connect(&addr, Duration::from_secs(1))
            .await
            .expect("connect");
        let (_kept_peer, _) = listener.accept().await.expect("accept");
        let closed = connect(&addr, Duration::from_secs(1))
            .await
            .expect("connect");
        let (closed_peer, _) = listener.accept().await.expect("accept");
        list.put(kept);
        list.put(closed);
        drop(closed_peer);
        // The FIN reaches the client side.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            list.prune(Duration::from_secs(60)),
            1,
            "the closed one goes"
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list.prune(Duration::ZERO), 1, "past max idle");
        assert!(list.is_empty());
    }
}
