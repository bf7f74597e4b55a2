//! Mutual TLS between real node processes: three nodes whose certificates (signed by the
//! cluster CA) name them form a cluster and replicate bindings; `holdfast check` refuses a
//! node whose certificate names another node, since every peer would refuse it.

use std::time::Duration;

use holdfast_tests::tls::write_peer_pki;
use holdfast_tests::{Cluster, ClusterOptions, check_config, wait_for};

fn tls_line(dir: &std::path::Path, cert_of: &str) -> String {
    let d = dir.display();
    format!(
        "tls = {{ ca = \"{d}/ca.pem\", cert = \"{d}/node{cert_of}.pem\", key = \"{d}/node{cert_of}.key\" }}\n"
    )
}

#[test]
fn a_tls_cluster_replicates_and_each_certificate_speaks_for_its_node_only() {
    let pki = tempfile::tempdir().expect("tempdir");
    write_peer_pki(pki.path(), &[1, 2, 3]);

    // A node configured with another node's certificate is refused by `check`.
    let text = format!(
        "[node]\nid = 1\n\n[cluster]\nmembers = [{{ id = 1, addr = \"127.0.0.1:1\" }}]\n{}",
        tls_line(pki.path(), "2")
    );
    let (code, said) = check_config(&text);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("cluster.tls.cert")
            && said.contains("does not name node 1")
            && said.contains("node-1.holdfast-peer"),
        "{said}"
    );

    let options = ClusterOptions {
        cluster_extra: tls_line(pki.path(), "{id}"),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, options);
    cluster.wait_leader();
    let writer = cluster.a_follower();
    assert_eq!(cluster.node(writer).pin("app", "alice", "s2"), 200);
    cluster.wait_everywhere("alice bound to s2 over mutual TLS", |node| {
        node.table("app")
            .and_then(|t| t.binding("alice").map(|b| b.server == "s2"))
            .unwrap_or(false)
    });
    for i in 0..3 {
        let log = cluster.node(i).log_text();
        assert!(!log.contains("is not node"), "node {}: {log}", i + 1);
    }
    wait_for("the cluster to stay formed", Duration::from_secs(5), || {
        cluster.node(0).leader()
    });
}
