//! TLS for the push listener: rustls with the ring provider, ALPN `h2` and `http/1.1`,
//! optional client-certificate verification, and reload on SIGHUP.
//!
//! Owns: reading PEM files into a server config, swapping the config in place (connections
//! already open keep theirs; new ones get the new one), and the names a verified client
//! certificate carries.
//!
//! Must not: log key material, or drop the working config when a reload fails.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// The push listener's current TLS config, replaceable while serving.
#[derive(Debug)]
pub struct TlsState {
    source: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Loads the certificate, key and client CA named by `source`.
    pub fn load(source: TlsConfig) -> Result<TlsState, String> {
        let cfg = build(&source)?;
        Ok(TlsState {
            source,
            current: RwLock::new(cfg),
        })
    }

    /// Re-reads the files; on failure the old config stays in use and the error is returned.
    pub fn reload(&self) -> Result<(), String> {
        let cfg = build(&self.source)?;
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        *cur = cfg;
        Ok(())
    }

    /// The config for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
        tokio_rustls::TlsAcceptor::from(Arc::clone(&cur))
    }
}

fn build(src: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&src.cert)?;
    let key = PrivateKeyDer::from_pem_file(&src.key)
        .map_err(|e| format!("TLS key {}: {e}", src.key.display()))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &src.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("TLS client CA {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS client CA {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {}: {e}", src.cert.display()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The names of the client certificate a finished handshake verified, if any.
pub fn peer_names(conn: &rustls::ServerConnection) -> Vec<String> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(client_names)
        .unwrap_or_default()
}

/// The common names and DNS names of a verified client certificate.
pub fn client_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = x509
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    names
}
