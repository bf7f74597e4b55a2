//! Mutual-TLS material: rustls server and client configs (ring provider) built from the
//! cluster CA and this node's certificate/key. The server requires a client certificate
//! signed by the CA; the client verifies the server against the same CA and server name.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::ConfigError;
use crate::handshake::RefuseReason;

/// Ready-to-use TLS configuration for peer connections (cheap to clone).
#[derive(Clone)]
pub struct TlsMaterial {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    name: String,
    /// This node's own certificate (the chain's first).
    own: CertificateDer<'static>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("server_name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Loads the CA bundle, certificate chain and private key from PEM files.
    ///
    /// `server_name` is the name each node's certificate must carry as a SAN (every node is
    /// both client and server); usually [`crate::DEFAULT_SERVER_NAME`]. Node `n`'s
    /// certificate also carries `node-<n>.<server_name>`, which binds its id to it.
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        server_name: &str,
    ) -> Result<Self, ConfigError> {
        let ca_certs = load_certs(ca.as_ref(), "CA certificate")?;
        let chain = load_certs(cert.as_ref(), "certificate chain")?;
        let key_path = key.as_ref();
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| ConfigError::Pem {
            what: "private key",
            path: key_path.to_path_buf(),
            source,
        })?;
        Self::from_der(ca_certs, chain, key, server_name)
    }

    /// Builds the configs from in-memory PEM text (CA bundle, certificate chain, key).
    pub fn from_pem(
        ca: &[u8],
        cert: &[u8],
        key: &[u8],
        server_name: &str,
    ) -> Result<Self, ConfigError> {
        let pem_err = |what| {
            move |source| ConfigError::Pem {
                what,
                path: "<memory>".into(),
                source,
            }
        };
        let ca_certs = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("CA certificate"))?;
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate chain"))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_err("private key"))?;
        Self::from_der(ca_certs, chain, key, server_name)
    }

    /// Builds the configs from DER material.
    pub fn from_der(
        ca_certs: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        server_name: &str,
    ) -> Result<Self, ConfigError> {
        let memory = || Path::new("<memory>").to_path_buf();
        if ca_certs.is_empty() {
            return Err(ConfigError::EmptyPem {
                what: "CA certificate",
                path: memory(),
            });
        }
        if chain.is_empty() {
            return Err(ConfigError::EmptyPem {
                what: "certificate",
                path: memory(),
            });
        }
        let name = server_name;
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| ConfigError::ServerName(name.to_owned()))?;
        let mut roots = RootCertStore::empty();
        for ca in ca_certs {
            roots.add(ca).map_err(|source| ConfigError::Tls {
                what: "CA certificate",
                source,
            })?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| ConfigError::Verifier(e.to_string()))?;
        let tls_err = |what| move |source| ConfigError::Tls { what, source };
        let own = chain[0].clone();
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("protocol versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(tls_err("server certificate/key"))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err("protocol versions"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(tls_err("client certificate/key"))?;
        Ok(TlsMaterial {
            server: Arc::new(server),
            client: Arc::new(client),
            server_name,
            name: name.to_owned(),
            own,
        })
    }

    /// Replaces the server name used to verify peers' certificates.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, ConfigError> {
        self.server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| ConfigError::ServerName(name.to_owned()))?;
        self.name = name.to_owned();
        Ok(self)
    }

    /// Checks that this node's certificate names node `node_id` (the SAN
    /// `node-<id>.<server name>`), without which every peer refuses it.
    pub fn check_names_node(&self, node_id: u64) -> Result<(), RefuseReason> {
        crate::identity::check(&self.own, node_id, &self.name)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// The server name as configured; node certificates also carry `node-<id>.<it>`.
    pub(crate) fn server_name_str(&self) -> &str {
        &self.name
    }
}

fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem_err = |source| ConfigError::Pem {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err)?;
    if certs.is_empty() {
        return Err(ConfigError::EmptyPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}
