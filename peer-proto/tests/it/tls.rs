//! Mutual TLS: nodes with certificates from the cluster CA talk (handshake + write); a
//! client certificate from another CA, or a server from another CA, is refused; a node
//! announcing an id its certificate does not name is refused on both sides; PEM loading
//! errors name the file.

use std::sync::Arc;

use holdfast_peer_proto::{
    CallError, ConfigError, PeerClient, PeerConfig, PeerError, RefuseReason,
};

use crate::common::certs::{NodeFiles, TestCa};
use crate::common::{Logs, Put, TC, start_single};

fn tls_config(node_id: u64, files: &NodeFiles) -> PeerConfig {
    PeerConfig::with_tls_files("test", node_id, &files.ca, &files.cert, &files.key)
        .expect("tls config")
}

#[tokio::test]
async fn mutual_tls_round_trip_and_foreign_ca_refused() {
    let (logs, _guard) = Logs::capture();
    let ca = TestCa::new("cluster CA");
    let server = start_single(tls_config(1, &ca.node("node1", 1))).await;

    let client = PeerClient::<TC>::new(Arc::new(tls_config(2, &ca.node("node2", 2))));
    let resp = client
        .client_write(
            &server.addr,
            Put {
                key: "tls".into(),
                value: "yes".into(),
            },
        )
        .await
        .expect("write over mTLS")
        .data;
    assert_eq!(resp.previous, None);
    let answer = client
        .query(&server.addr, b"x".to_vec())
        .await
        .expect("query over mTLS");
    assert_eq!(answer, b"node 1 answers node 2: x");

    // A client whose certificate comes from another CA (but which trusts ours).
    let rogue_ca = TestCa::new("rogue CA");
    let rogue = rogue_ca.node("rogue", 3);
    let mixed = NodeFiles {
        ca: ca.dir.path().join("ca.pem"),
        cert: rogue.cert,
        key: rogue.key,
    };
    let rogue_client = PeerClient::<TC>::new(Arc::new(tls_config(3, &mixed)));
    let err = rogue_client
        .query(&server.addr, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Transport(PeerError::Tls(_))),
        "expected TLS error, got {err}"
    );
    assert!(
        err.to_string().contains("TLS handshake with peer failed")
            && err.to_string().contains("cluster CA"),
        "{err}"
    );
    let log = logs.wait_for("peer handshake failed").await;
    assert!(
        log.contains("peer handshake failed") && log.contains("certificate"),
        "server log: {log}"
    );

    // A client that only trusts another CA refuses our server.
    let stranger = PeerClient::<TC>::new(Arc::new(tls_config(4, &rogue_ca.node("stranger", 4))));
    let err = stranger
        .query(&server.addr, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Transport(PeerError::Tls(_))),
        "expected TLS error, got {err}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");

    // The legitimate client is still served (fresh connection).
    let again = PeerClient::<TC>::new(Arc::new(tls_config(2, &ca.node("node2b", 2))));
    again
        .query(&server.addr, b"y".to_vec())
        .await
        .expect("still served");
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_speaks_only_for_the_node_it_names() {
    let (logs, _guard) = Logs::capture();
    let ca = TestCa::new("cluster CA");
    let server = start_single(tls_config(1, &ca.node("node1", 1))).await;

    // Node 2's certificate, announcing node 3: the server refuses it.
    let impostor = PeerClient::<TC>::new(Arc::new(tls_config(3, &ca.node("node2", 2))));
    let err = impostor
        .query(&server.addr, b"x".to_vec())
        .await
        .unwrap_err();
    let expected = RefuseReason::CertificateNotForNode {
        node_id: 3,
        san: "node-3.holdfast-peer".into(),
    };
    assert!(
        matches!(&err, CallError::Transport(PeerError::RefusedByPeer(r)) if *r == expected),
        "{err}"
    );
    let log = logs.wait_for("node-3.holdfast-peer").await;
    assert!(log.contains("is not node 3's"), "{log}");

    // A server announcing node 5 with node 1's certificate: the client refuses it.
    let liar = start_single(tls_config(5, &ca.node("node1-again", 1))).await;
    let honest = PeerClient::<TC>::new(Arc::new(tls_config(2, &ca.node("node2b", 2))));
    let err = honest.query(&liar.addr, b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CallError::Transport(PeerError::Rejected(RefuseReason::CertificateNotForNode {
                node_id: 5,
                ..
            }))
        ),
        "{err}"
    );
    // The honest client is served by the node its certificate is for.
    honest
        .query(&server.addr, b"y".to_vec())
        .await
        .expect("served");
    liar.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn secret_client_against_tls_server_is_refused() {
    let ca = TestCa::new("cluster CA");
    let server = start_single(tls_config(1, &ca.node("node1", 1))).await;
    let plain = PeerClient::<TC>::new(Arc::new(crate::common::secret_config(2, b"secret")));
    assert!(plain.query(&server.addr, vec![]).await.is_err());
    server.stop().await;
}

#[test]
fn pem_errors_name_the_file() {
    let ca = TestCa::new("cluster CA");
    let files = ca.node("n", 1);
    let missing = ca.dir.path().join("missing.key");
    let err = PeerConfig::with_tls_files("test", 1, &files.ca, &files.cert, &missing).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Pem {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.key"), "{err}");

    let empty = ca.dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let err = PeerConfig::with_tls_files("test", 1, &empty, &files.cert, &files.key).unwrap_err();
    assert!(
        err.to_string().contains("empty.pem") && err.to_string().contains("CA certificate"),
        "{err}"
    );

    // Key that does not match the certificate.
    let other = ca.node("other", 1);
    let err =
        PeerConfig::with_tls_files("test", 1, &files.ca, &files.cert, &other.key).unwrap_err();
    assert!(matches!(err, ConfigError::Tls { .. }), "{err}");
}
