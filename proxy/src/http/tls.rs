//! TLS for frontends: certificates loaded from PEM files or a directory, chosen per
//! handshake by SNI (exact or wildcard subjectAltName, the first certificate as default),
//! in a rustls `ServerConfig` built on the ring provider with ALPN h2 and http/1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::{TlsSection, read_chain, read_key};

/// Why a frontend's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable certificate or key.
    #[error("{0}")]
    Load(String),
    /// rustls refused the material.
    #[error("{file}: {source}")]
    Rustls {
        /// The certificate file.
        file: String,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// One certificate and the DNS names it serves.
#[derive(Debug)]
struct Entry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// Chooses a certificate by SNI; unknown or absent names get the first one.
#[derive(Debug)]
pub struct SniResolver {
    entries: Vec<Entry>,
}

impl SniResolver {
    /// Loads every certificate of `tls`.
    pub fn load(tls: &TlsSection) -> Result<SniResolver, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let mut entries = Vec::new();
        for (cert, key) in tls.cert_files().map_err(TlsError::Load)? {
            let chain = read_chain(&cert).map_err(TlsError::Load)?;
            let key_der = read_key(&key).map_err(TlsError::Load)?;
            let names = chain.first().map(|c| dns_names(c)).unwrap_or_default();
            let certified =
                CertifiedKey::from_der(chain, key_der, &provider).map_err(|source| {
                    TlsError::Rustls {
                        file: cert.display().to_string(),
                        source,
                    }
                })?;
            entries.push(Entry {
                names,
                key: Arc::new(certified),
            });
        }
        if entries.is_empty() {
            return Err(TlsError::Load("no certificate configured".into()));
        }
        Ok(SniResolver { entries })
    }

    /// The certificate for `sni`.
    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let sni = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        let found = sni.as_deref().and_then(|name| {
            let exact = self
                .entries
                .iter()
                .find(|e| e.names.iter().any(|n| n == name));
            exact.or_else(|| {
                let parent = name.split_once('.').map(|(_, p)| p)?;
                let wild = format!("*.{parent}");
                self.entries.iter().find(|e| e.names.contains(&wild))
            })
        });
        found.or(self.entries.first()).map(|e| e.key.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

/// A rustls server config for `tls` (ring provider, ALPN h2 then http/1.1): the server's
/// cipher suite order wins over the client's, and sessions resume by ticket (keys rotated
/// every 6 hours) as well as by id.
pub fn server_config(tls: &TlsSection, h2_only: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = SniResolver::load(tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            file: "(protocol versions)".into(),
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = match h2_only {
        true => vec![b"h2".to_vec()],
        false => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    config.ignore_client_order = true;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|source| TlsError::Rustls {
        file: "(session tickets)".into(),
        source,
    })?;
    Ok(Arc::new(config))
}

/// One DER TLV: (tag, content, rest).
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The DNS names of a certificate's subjectAltName extension (lower-cased).
fn dns_names(cert: &[u8]) -> Vec<String> {
    const SAN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x11];
    let mut names = Vec::new();
    let Some(at) = cert.windows(SAN_OID.len()).position(|w| w == SAN_OID) else {
        return names;
    };
    let mut rest = &cert[at + SAN_OID.len()..];
    // Optional `critical` BOOLEAN, then the OCTET STRING wrapping the name SEQUENCE.
    let Some((mut tag, mut content, next)) = tlv(rest) else {
        return names;
    };
    if tag == 0x01 {
        rest = next;
        let Some(t) = tlv(rest) else {
            return names;
        };
        (tag, content) = (t.0, t.1);
    }
    if tag != 0x04 {
        return names;
    }
    let Some((0x30, mut seq, _)) = tlv(content) else {
        return names;
    };
    while let Some((tag, value, next)) = tlv(seq) {
        if tag == 0x82
            && let Ok(name) = std::str::from_utf8(value)
        {
            names.push(name.to_ascii_lowercase());
        }
        seq = next;
    }
    names
}
