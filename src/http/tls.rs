//! HTTPS settings: rustls from PEM files (reloadable on SIGHUP), HTTP/1.1 and HTTP/2 by ALPN,
//! and optional mutual TLS whose verified client-certificate subject becomes the principal.
//! Connections are accepted and served by [`super::serve`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

use crate::config::Config;

/// The current TLS settings; replaced on reload.
pub type SharedTls = Arc<RwLock<Arc<ServerConfig>>>;

fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut r = BufReader::new(File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    let certs = rustls_pemfile::certs(&mut r).collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!certs.is_empty(), "{}: no certificate found", path.display());
    Ok(certs)
}

fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let mut r = BufReader::new(File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    rustls_pemfile::private_key(&mut r)?.ok_or_else(|| anyhow::anyhow!("{}: no private key found", path.display()))
}

/// Reads the certificate, key and (for mutual TLS) client CA named in the config.
pub fn load(config: &Config) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key_path)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &config.tls_client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c)?;
            }
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_single_cert(certs(cert)?, key(key_path)?)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(tls)))
}

/// The subject of a client certificate, as the principal names it (`CN=billing-app`).
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}
