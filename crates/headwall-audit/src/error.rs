//! Typed errors of the audit crate, and how to show one with its causes.
//!
//! [`TargetError`] (a PostgreSQL URL and its TLS keys) keeps what failed underneath as its
//! [`std::error::Error::source`]; its `Display` says only its own part, and [`Causes`] writes
//! the whole chain, `: `-separated, the way the CLI and the logs show it. The readers'
//! `Result<_, String>` and [`crate::AuditError`]'s text reasons are next (house issue, item
//! 5); they take their causes from here.
//!
//! None of them carries record content. PostgreSQL failures are kept as the server's message
//! and SQLSTATE only ([`PgFailure`]): its DETAIL, HINT and WHERE fields can quote row values,
//! so the tokio-postgres error itself is not kept.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

/// A PostgreSQL failure as it may be shown: the server's message and SQLSTATE, or the client
/// library's error and its cause — never the server's DETAIL, HINT or WHERE fields.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PgFailure(pub(crate) String);

impl From<tokio_postgres::Error> for PgFailure {
    fn from(error: tokio_postgres::Error) -> PgFailure {
        PgFailure(crate::postgres::describe(&error))
    }
}

impl From<deadpool_postgres::PoolError> for PgFailure {
    fn from(error: deadpool_postgres::PoolError) -> PgFailure {
        PgFailure(crate::postgres::describe_pool(&error))
    }
}

/// Why a PostgreSQL URL and its TLS keys cannot be used. Names what is wrong without repeating
/// the URL, which may hold a password, and names key files without their content.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL's `sslmode`.
    #[error("{0}")]
    SslMode(String),
    /// The URL itself.
    #[error(transparent)]
    Url(PgFailure),
    /// A certificate or key file.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: FileProblem,
    },
    /// The system's trust store holds no CA certificate.
    #[error(
        "the system's trust store holds no CA certificate; give the server's CA as `tls_ca_file`"
    )]
    NoSystemRoots,
    /// The trusted CAs cannot make a verifier.
    #[error("no usable trusted CA")]
    Roots(#[source] rustls::client::VerifierBuilderError),
    /// rustls refused the configuration (protocol versions; the certificate and key pair).
    #[error("{what}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The pool could not be built.
    #[error("cannot make a connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// What is wrong with a certificate or key file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// It cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// It holds no certificate rustls can use.
    #[error("no usable PEM certificate")]
    Certificate(#[source] rustls::pki_types::pem::Error),
    /// It holds no CERTIFICATE block.
    #[error("no usable PEM certificate: the file holds no CERTIFICATE block")]
    NoCertificate,
    /// A certificate rustls refused as a trust anchor.
    #[error(transparent)]
    Anchor(rustls::Error),
    /// It holds no private key rustls can use.
    #[error("no usable PEM private key")]
    Key(#[source] rustls::pki_types::pem::Error),
    /// The key can be read by others.
    #[error("the TLS key can be read by others (mode {0:o}); chmod 600 it")]
    Mode(u32),
}

/// Shows an error and each of its causes, `: `-separated: `a: b: c`.
pub struct Causes<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            write!(f, ": {cause}")?;
            next = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Causes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
