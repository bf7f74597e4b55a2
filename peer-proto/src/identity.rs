//! In TLS mode a node's id is bound to its certificate: the certificate that signed the
//! TLS handshake must name `node-<id>.<server name>` among its DNS SANs for the id the peer
//! announces, so one node's certificate cannot speak as another node.

use rustls_pki_types::{CertificateDer, ServerName};

use crate::handshake::RefuseReason;

/// The SAN that a certificate of node `node_id` carries, given the cluster's server name.
pub fn node_san(node_id: u64, server_name: &str) -> String {
    format!("node-{node_id}.{server_name}")
}

/// Checks that `cert` (already verified against the cluster CA by rustls) names `node_id`.
pub(crate) fn check(
    cert: &CertificateDer<'_>,
    node_id: u64,
    server_name: &str,
) -> Result<(), RefuseReason> {
    let san = node_san(node_id, server_name);
    let refuse = || RefuseReason::CertificateNotForNode {
        node_id,
        san: san.clone(),
    };
    let name = ServerName::try_from(san.as_str()).map_err(|_| refuse())?;
    let cert = webpki::EndEntityCert::try_from(cert).map_err(|_| refuse())?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|_| refuse())
}
