//! Hostile input on raw TCP: random bytes, a truncated frame, an oversized length prefix,
//! before and after authentication. The server must close those connections without
//! panicking and keep serving other clients.

use std::sync::Arc;
use std::time::Duration;

use holdfast_peer_proto::{PeerClient, connect_stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Logs, TC, secret_config, start_node};

const SECRET: &[u8] = b"garbage-test-secret";

/// Reads until EOF (server closed); fails if the server keeps the connection open.
async fn expect_closed<S: AsyncReadExt + Unpin>(s: &mut S) {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "server did not close the connection");
}

#[tokio::test]
async fn hostile_bytes_are_rejected_and_server_keeps_serving() {
    let (logs, _guard) = Logs::capture();
    let node = start_node(secret_config(1, SECRET)).await;
    let good = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    good.query(&node.addr, b"before".to_vec())
        .await
        .expect("served before");

    // Random garbage (pseudo-random, fixed seed) in place of a Hello.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let mut tcp = TcpStream::connect(&node.addr).await.expect("connect");
    let _ = tcp.write_all(&junk).await;
    let _ = tcp.shutdown().await;
    expect_closed(&mut tcp).await;

    // A frame header promising 100 bytes, then 10 bytes and EOF.
    let mut tcp = TcpStream::connect(&node.addr).await.expect("connect");
    tcp.write_all(&100u32.to_be_bytes()).await.expect("header");
    tcp.write_all(&[1u8; 10]).await.expect("partial body");
    tcp.shutdown().await.expect("shutdown");
    expect_closed(&mut tcp).await;
    assert!(
        logs.wait_for("truncated frame")
            .await
            .contains("truncated frame")
    );

    // An oversized length prefix (4 GiB) before authentication.
    let mut tcp = TcpStream::connect(&node.addr).await.expect("connect");
    tcp.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("header");
    expect_closed(&mut tcp).await;
    assert!(
        logs.wait_for("exceeds the maximum")
            .await
            .contains("exceeds the maximum")
    );

    // After authentication: garbage payload in a well-formed frame, then an oversized prefix.
    let cfg = secret_config(3, SECRET);
    let (mut io, peer) = connect_stream(&node.addr, &cfg, Some(1))
        .await
        .expect("authenticated");
    assert_eq!(peer.node_id, 1);
    io.write_all(&8u32.to_be_bytes()).await.expect("header");
    io.write_all(&[0xFF; 8]).await.expect("body");
    expect_closed(&mut io).await;
    assert!(
        logs.wait_for("undecodable request")
            .await
            .contains("undecodable request")
    );

    let (mut io, _) = connect_stream(&node.addr, &cfg, Some(1))
        .await
        .expect("authenticated");
    io.write_all(&u32::MAX.to_be_bytes()).await.expect("header");
    expect_closed(&mut io).await;

    // Wrong expected node id is detected by the client.
    let err = connect_stream(&node.addr, &cfg, Some(5))
        .await
        .err()
        .expect("wrong node");
    assert!(err.to_string().contains("expected node 5"), "{err}");

    good.query(&node.addr, b"after".to_vec())
        .await
        .expect("served after");
    let fresh = PeerClient::<TC>::new(Arc::new(secret_config(4, SECRET)));
    fresh
        .query(&node.addr, b"fresh".to_vec())
        .await
        .expect("new client served after");
    node.stop().await;
}

#[tokio::test]
async fn silent_client_times_out_in_handshake() {
    let mut cfg = secret_config(1, SECRET);
    cfg.handshake_timeout = Duration::from_millis(200);
    let node = start_node(cfg).await;
    let mut tcp = TcpStream::connect(&node.addr).await.expect("connect");
    expect_closed(&mut tcp).await; // closed by the handshake timeout, not by us
    node.stop().await;
}
