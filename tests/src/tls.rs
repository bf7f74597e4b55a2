//! TLS for tests: self-signed certificates written for a node to serve, and a client
//! that accepts any certificate (remembering it) for requests over TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::backend::{Answer, parse};

/// Writes `NAME.crt` and `NAME.key` (a self-signed certificate for `name`) into `dir`;
/// returns the certificate's DER.
pub fn write_cert(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
    std::fs::write(dir.join(format!("{name}.crt")), ck.cert.pem()).expect("write cert");
    std::fs::write(
        dir.join(format!("{name}.key")),
        ck.signing_key.serialize_pem(),
    )
    .expect("write key");
    ck.cert.der().to_vec()
}

/// Accepts any certificate and remembers the one the server presented.
#[derive(Debug, Default)]
pub struct AnyCert {
    /// The certificate the server presented last.
    pub seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("lock") = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that accepts any server certificate.
pub fn client_config(alpn: &[&[u8]]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert::default()))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Sends `bytes` over TLS to `addr` (SNI `host`, offering `alpn`) and reads what comes
/// back until the server closes or `limit` passes: (the protocol ALPN chose, the bytes).
pub fn tls_raw(
    addr: &str,
    host: &str,
    alpn: &[&[u8]],
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<(Option<Vec<u8>>, Vec<u8>)> {
    let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::new(client_config(alpn)), name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(limit))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(bytes)?;
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    Ok((alpn, buf))
}

/// An HTTP/1.1 `GET path` over TLS to `addr` (SNI and `Host` = `host`) with `extra`
/// header fields, read until the server closes.
pub fn tls_get(
    addr: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Answer> {
    let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::new(client_config(&[b"http/1.1"])), name)
        .map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes())?;
    let mut buf = Vec::new();
    match tls.read_to_end(&mut buf) {
        Ok(_) => {}
        // A server closing without close_notify still sent the whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&buf)
}

/// Writes a peer PKI into `dir`: `ca.pem`, and for each id `node<id>.pem` and
/// `node<id>.key`, a certificate signed by the CA carrying the SANs `holdfast-peer` and
/// `node-<id>.holdfast-peer` (what `[cluster] tls` expects of node `id`).
pub fn write_peer_pki(dir: &std::path::Path, ids: &[u64]) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("ca key")).expect("ca");
    std::fs::write(dir.join("ca.pem"), issuer.pem()).expect("write ca");
    for id in ids {
        let sans = vec!["holdfast-peer".into(), format!("node-{id}.holdfast-peer")];
        let mut params = CertificateParams::new(sans).expect("node params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("node key");
        let cert = params.signed_by(&key, &*issuer).expect("sign node cert");
        std::fs::write(dir.join(format!("node{id}.pem")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("node{id}.key")), key.serialize_pem()).expect("write key");
    }
}
