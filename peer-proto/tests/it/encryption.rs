//! Secret mode encrypts: through a TCP relay that records every byte, a forwarded write
//! carrying a session id crosses the wire without the id in clear; a relay that flips one
//! bit after the handshake breaks that connection (the server names the failed record),
//! and the node keeps serving clean connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_peer_proto::PeerClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{Logs, Put, TC, secret_config, start_single};

const SECRET: &[u8] = b"encryption-test-secret-0123456789";
const SESSION_ID: &str = "PHPSESSID-bearer-4f9c2a77e1";

/// A relay on 127.0.0.1 to `target` that records what the client sends and, when
/// `flip_at` is set, flips one bit of the client's byte at that offset.
async fn relay(target: String, flip_at: Option<usize>) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.expect("relay connect");
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = cr.read(&mut buf).await {
                    let start = {
                        let mut seen = record.lock().expect("record");
                        seen.extend_from_slice(&buf[..n]);
                        seen.len() - n
                    };
                    if let Some(at) = flip_at.filter(|at| (start..start + n).contains(at)) {
                        buf[at - start] ^= 0x01;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    (addr, seen)
}

fn put() -> Put {
    Put {
        key: SESSION_ID.into(),
        value: "s1".into(),
    }
}

#[tokio::test]
async fn a_session_id_never_crosses_the_wire_in_clear() {
    let node = start_single(secret_config(1, SECRET)).await;
    let (addr, seen) = relay(node.addr.clone(), None).await;
    let client = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    client.client_write(&addr, put()).await.expect("write");
    assert_eq!(
        node.sm.data().get(SESSION_ID).map(String::as_str),
        Some("s1")
    );

    let seen = seen.lock().expect("record").clone();
    assert!(
        seen.len() > 100,
        "the relay saw the exchange ({} bytes)",
        seen.len()
    );
    let needle = SESSION_ID.as_bytes();
    assert!(
        !seen.windows(needle.len()).any(|w| w == needle),
        "the session id crossed the wire in clear"
    );
    assert!(!seen.windows(6).any(|w| w == b"bearer"));
    node.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_tampered_record_ends_the_connection_and_the_node_keeps_serving() {
    let (logs, _guard) = Logs::capture();
    let node = start_single(secret_config(1, SECRET)).await;
    // Learn where the handshake ends: the bytes a clean exchange's client sends before
    // its first request.
    let (clean, seen) = relay(node.addr.clone(), None).await;
    let client = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    client
        .query(&clean, b"x".to_vec())
        .await
        .expect("clean query");
    let total = seen.lock().expect("record").len();

    // The request is the last record the client sent: flip a bit in its ciphertext.
    let (tampering, _) = relay(node.addr.clone(), Some(total - 20)).await;
    let victim = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        victim.query(&tampering, b"x".to_vec()),
    )
    .await
    .expect("the tampered call ends")
    .unwrap_err();
    let log = logs.wait_for("failed authentication").await;
    assert!(
        log.contains("peer record failed authentication"),
        "{log}\n{err}"
    );

    let again = PeerClient::<TC>::new(Arc::new(secret_config(3, SECRET)));
    let answer = again
        .query(&node.addr, b"y".to_vec())
        .await
        .expect("still served");
    assert_eq!(answer, b"node 1 answers node 3: y");
    node.stop().await;
}
