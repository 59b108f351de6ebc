//! The listener's TLS: a PEM certificate chain and key from `[api]`, rustls with the ring
//! provider, HTTP/1.1 only (docs/design.md, Dependencies: one TLS stack).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key cannot be used. Paths are named; key bytes never are.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("{path}: no usable PEM certificate chain: {reason}")]
    Certificate {
        /// `tls_cert_file`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("{path}: no usable PEM private key: {reason}")]
    Key {
        /// `tls_key_file`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file can be read by others.
    #[error("{path}: the TLS key can be read by others (mode {mode:o}); chmod 600 it")]
    KeyPermissions {
        /// `tls_key_file`.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls server configuration for `cert_file` and `key_file` (mode 0600 or stricter),
/// offering HTTP/1.1 by ALPN.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certificate = |reason: String| TlsError::Certificate {
        path: cert_file.to_owned(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|error| certificate(error.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|error| certificate(error.to_string()))?;
    if chain.is_empty() {
        return Err(certificate("the file holds no CERTIFICATE block".into()));
    }
    let metadata = std::fs::metadata(key_file).map_err(|error| TlsError::Key {
        path: key_file.to_owned(),
        reason: error.to_string(),
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyPermissions {
            path: key_file.to_owned(),
            mode,
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|error| TlsError::Key {
        path: key_file.to_owned(),
        reason: error.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
