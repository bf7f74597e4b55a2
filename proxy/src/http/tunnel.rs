//! A tunnel after a protocol switch (WebSocket): bytes copied both ways, each direction on
//! its own. One side's end, or error, is passed on as a shutdown of the other side's
//! writing half, never by dropping what the other direction still carries: a server that
//! fails a WebSocket connection sends its Close frame and closes at once, and the client
//! must still get that frame even when its own last bytes can no longer be delivered.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Copies between `client` and `server` until both directions ended; once one has, the
/// other gets `grace` to finish (HAProxy's `timeout client-fin`/`server-fin`).
pub async fn splice<C, S>(client: C, server: S, grace: Duration)
where
    C: AsyncRead + AsyncWrite,
    S: AsyncRead + AsyncWrite,
{
    let (mut client_in, mut client_out) = tokio::io::split(client);
    let (mut server_in, mut server_out) = tokio::io::split(server);
    let up = async {
        let _ = tokio::io::copy(&mut client_in, &mut server_out).await;
        let _ = server_out.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_in, &mut client_out).await;
        let _ = client_out.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(grace, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(grace, up).await; }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, ReadBuf};

    /// A server that failed the connection: its last bytes are still to be read, and
    /// nothing can be written to it any more.
    struct Failed(&'static [u8]);

    impl AsyncRead for Failed {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.0.len().min(buf.remaining());
            buf.put_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Failed {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_servers_last_bytes_reach_the_client_after_the_other_way_failed() {
        let (client, mut client_end) = tokio::io::duplex(1024);
        // The client's bytes are waiting before the tunnel starts: sending them fails
        // first.
        client_end
            .write_all(b"close reply")
            .await
            .expect("client writes");
        splice(client, Failed(b"close frame"), Duration::from_secs(5)).await;
        let mut got = Vec::new();
        client_end
            .read_to_end(&mut got)
            .await
            .expect("client reads");
        assert_eq!(got, b"close frame");
    }
}
