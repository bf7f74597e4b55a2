//! Secret-mode handshake: success with a forwarded write and a query, wrong secret, wrong
//! cluster, unsupported version and bad magic, each refused with a typed reason.

use holdfast_peer_proto::frame::{self, HANDSHAKE_MAX_FRAME};
use holdfast_peer_proto::handshake::{HelloBody, ServerHello, hello_payload};
use holdfast_peer_proto::{
    CallError, ForwardError, PROTOCOL_VERSION, PeerClient, PeerConfig, PeerError, RefuseReason,
};
use std::sync::Arc;
use tokio::net::TcpStream;

use crate::common::{
    Logs, Put, PutResp, TC, secret_config, start_node, start_node_on, start_single,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn secret_handshake_and_forwarded_write_round_trip() {
    let server = start_single(secret_config(1, SECRET)).await;
    let client = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    let put = |v: &str| Put {
        key: "k".into(),
        value: v.into(),
    };

    let first = client
        .client_write(&server.addr, put("a"))
        .await
        .expect("write a")
        .data;
    assert_eq!(first.previous, None);
    let second = client
        .client_write(&server.addr, put("b"))
        .await
        .expect("write b")
        .data;
    assert_eq!(
        second,
        PutResp {
            previous: Some("a".into()),
            index: first.index + 1
        }
    );
    assert_eq!(server.sm.data().get("k").map(String::as_str), Some("b"));

    let answer = client
        .query(&server.addr, b"ping".to_vec())
        .await
        .expect("query");
    assert_eq!(answer, b"node 1 answers node 2: ping");
    let err = client
        .query(&server.addr, b"reject".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Remote(ForwardError::Rejected(_))),
        "{err}"
    );
    // The connection survives an application-level error.
    client
        .query(&server.addr, b"again".to_vec())
        .await
        .expect("query after remote error");
    server.stop().await;
}

#[tokio::test]
async fn pooled_connection_is_replaced_after_peer_restart() {
    let node = start_node(secret_config(1, SECRET)).await;
    let addr = node.addr.clone();
    let client = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    client
        .query(&addr, b"one".to_vec())
        .await
        .expect("first query");
    node.stop().await; // closes the pooled connection's server side
    let restarted = start_node_on(secret_config(1, SECRET), &addr).await;
    let answer = client
        .query(&addr, b"two".to_vec())
        .await
        .expect("query after restart");
    assert_eq!(answer, b"node 1 answers node 2: two");
    restarted.stop().await;
}

#[tokio::test]
async fn not_leader_is_reported() {
    let node = start_node(secret_config(1, SECRET)).await; // never initialized: no leader
    let client = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    let err = client
        .client_write(
            &node.addr,
            Put {
                key: "k".into(),
                value: "v".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Remote(ForwardError::NotLeader { leader: None })
        ),
        "{err}"
    );
    node.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_refused_on_both_sides() {
    let (logs, _guard) = Logs::capture();
    let node = start_node(secret_config(1, SECRET)).await;
    let intruder = PeerClient::<TC>::new(Arc::new(secret_config(9, b"not the cluster secret")));
    let err = intruder
        .query(&node.addr, b"hi".to_vec())
        .await
        .unwrap_err();
    let CallError::Transport(peer_err) = &err else {
        panic!("expected transport error, got {err}")
    };
    assert_eq!(peer_err.refuse_reason(), Some(&RefuseReason::AuthFailed));
    assert!(
        err.to_string()
            .contains("peer authentication failed: wrong cluster secret"),
        "{err}"
    );

    let server_log = logs.wait_for("wrong cluster secret").await;
    assert!(
        server_log.contains("peer handshake failed"),
        "server log: {server_log}"
    );
    assert!(
        server_log.contains("wrong cluster secret"),
        "server log: {server_log}"
    );

    // The server keeps serving legitimate peers.
    let friend = PeerClient::<TC>::new(Arc::new(secret_config(2, SECRET)));
    friend
        .query(&node.addr, b"ok".to_vec())
        .await
        .expect("legit peer still served");
    node.stop().await;
}

#[tokio::test]
async fn wrong_cluster_is_refused() {
    let node = start_node(secret_config(1, SECRET)).await;
    let other = PeerConfig::with_secret("elsewhere", 2, SECRET.to_vec()).expect("config");
    let err = PeerClient::<TC>::new(Arc::new(other))
        .query(&node.addr, vec![])
        .await
        .unwrap_err();
    let CallError::Transport(PeerError::RefusedByPeer(RefuseReason::WrongCluster {
        expected,
        got,
    })) = &err
    else {
        panic!("expected wrong-cluster refusal, got {err}");
    };
    assert_eq!((expected.as_str(), got.as_str()), ("test", "elsewhere"));
    node.stop().await;
}

/// Sends a raw Hello payload and returns the server's answer.
async fn raw_hello(addr: &str, payload: &[u8]) -> ServerHello {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let bytes = frame::raw_frame(payload, HANDSHAKE_MAX_FRAME).expect("frame");
    frame::write_frame(&mut tcp, &bytes)
        .await
        .expect("send hello");
    frame::read_message(&mut tcp, HANDSHAKE_MAX_FRAME)
        .await
        .expect("server answer")
}

#[tokio::test]
async fn unsupported_version_and_bad_magic_are_refused() {
    let (logs, _guard) = Logs::capture();
    let node = start_node(secret_config(1, SECRET)).await;
    let body = HelloBody {
        cluster: "test".into(),
        node_id: 7,
        nonce: [7; 32],
    };
    let payload = hello_payload(99, &body).expect("hello");
    match raw_hello(&node.addr, &payload).await {
        ServerHello::Refuse(RefuseReason::UnsupportedVersion {
            requested: 99,
            supported: PROTOCOL_VERSION,
        }) => {}
        other => panic!("expected version refusal, got {other:?}"),
    }
    let log = logs.wait_for("unsupported protocol version 99").await;
    assert!(
        log.contains("unsupported protocol version 99"),
        "server log: {log}"
    );

    let mut bad = payload.clone();
    bad[..4].copy_from_slice(b"HTTP");
    assert!(matches!(
        raw_hello(&node.addr, &bad).await,
        ServerHello::Refuse(RefuseReason::BadMagic)
    ));
    node.stop().await;
}

#[tokio::test]
async fn config_validation() {
    assert!(PeerConfig::with_secret("test", 1, Vec::new()).is_err());
    assert!(PeerConfig::with_secret("", 1, SECRET.to_vec()).is_err());
    let mut cfg = secret_config(1, SECRET);
    cfg.max_frame = 10;
    assert!(cfg.validate().is_err());
}
