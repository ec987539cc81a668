//! HTTPS: rustls from PEM files (reloadable on SIGHUP), HTTP/1.1 and HTTP/2 by ALPN, and
//! optional mutual TLS whose verified client-certificate subject becomes the principal.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::auth::ClientCertificate;
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

fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}

/// Serves `app` over TLS until `shutdown` completes, then drains connections for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: SharedTls,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Small TLS records must not wait for delayed ACKs.
        let _ = tcp.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.read().expect("tls lock").clone());
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let client = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(subject);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                if let Some(s) = &client {
                    req.extensions_mut().insert(ClientCertificate(s.clone()));
                }
                app.clone().oneshot(req.map(Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining TLS connections");
    }
}
