//! Test PKI with rcgen: a cluster CA and node certificates (SANs "holdfast-peer" and
//! "node-<id>.holdfast-peer", both server and client auth), written as PEM files into a
//! temporary directory.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA able to issue node certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub dir: tempfile::TempDir,
}

/// PEM file paths of one node.
pub struct NodeFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A fresh self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("ca cert");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), issuer.pem()).expect("write ca");
        TestCa { issuer, dir }
    }

    /// Issues a certificate for node `node_id` and writes `ca.pem`, `<name>.pem`,
    /// `<name>.key`.
    pub fn node(&self, name: &str, node_id: u64) -> NodeFiles {
        let sans = vec![
            "holdfast-peer".to_string(),
            holdfast_peer_proto::node_san(node_id, "holdfast-peer"),
        ];
        let mut params = CertificateParams::new(sans).expect("node params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("node key");
        let cert = params
            .signed_by(&key, &*self.issuer)
            .expect("sign node cert");
        let dir = self.dir.path();
        let files = NodeFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }
}
