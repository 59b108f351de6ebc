//! TLS to PostgreSQL: rustls with the ring provider, set up the way the URL's `sslmode` asks
//! (libpq's meanings; docs/config.md, "TLS to PostgreSQL and Redis").
//!
//! | `sslmode` | encrypted | server's chain checked | server's name checked |
//! |---|---|---|---|
//! | `disable` | no | – | – |
//! | `prefer` | if offered | against `tls_ca_file` when given | no |
//! | `require` | yes | against `tls_ca_file` when given | no |
//! | `verify-ca` | yes | yes (`tls_ca_file`, else the system's store) | no |
//! | `verify-full` | yes | yes (`tls_ca_file`, else the system's store) | yes |
//!
//! The configuration refuses `disable` and `prefer` toward another machine. The client's
//! certificate (`tls_cert_file`, `tls_key_file` at 0600) is offered when the server asks.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use headwall_policy::{PgSslMode, StoreTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{FileProblem, TargetError};

/// The connector for `mode`; the error names the file and what is wrong with it, never its
/// content.
pub(crate) fn connector(mode: PgSslMode, tls: &StoreTls) -> Result<MakeRustlsConnect, TargetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, &tls.ca_file) {
        (PgSslMode::VerifyFull, ca_file) => webpki(roots(ca_file.as_deref())?, &provider)?,
        (PgSslMode::VerifyCa, ca_file) => {
            Arc::new(AnyName(webpki(roots(ca_file.as_deref())?, &provider)?))
        }
        (_, Some(ca_file)) => Arc::new(AnyName(webpki(roots(Some(ca_file))?, &provider)?)),
        (_, None) => Arc::new(Unauthenticated(provider.signature_verification_algorithms)),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TargetError::Rustls {
            what: "no TLS protocol version in common",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = certificates(&pair.cert_file)?;
            let key = private_key(&pair.key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TargetError::Rustls {
                    what: "the client certificate and key cannot be used together",
                    source,
                })?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TargetError> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TargetError::Roots)
}

/// `tls_ca_file`'s certificates, else the system's trust store.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TargetError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for certificate in certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| file(path, FileProblem::Anchor(error)))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TargetError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

fn file(path: &Path, problem: FileProblem) -> TargetError {
    TargetError::File {
        path: path.to_owned(),
        problem,
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TargetError> {
    let unusable = |error| file(path, FileProblem::Certificate(error));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(unusable)?
        .collect::<Result<_, _>>()
        .map_err(unusable)?;
    if chain.is_empty() {
        return Err(file(path, FileProblem::NoCertificate));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TargetError> {
    let mode = std::fs::metadata(path)
        .map_err(|error| file(path, FileProblem::Io(error)))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(file(path, FileProblem::Mode(mode)));
    }
    PrivateKeyDer::from_pem_file(path).map_err(|error| file(path, FileProblem::Key(error)))
}

/// `verify-ca` (and `require` with a CA file): the chain must lead to a trusted CA; the name
/// in the certificate is not compared with the host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` (and `prefer`) without a CA file, as libpq: encrypted, the server not
/// authenticated. The handshake's signatures are still checked, so the session key belongs to
/// whoever holds the certificate's key.
#[derive(Debug)]
struct Unauthenticated(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
