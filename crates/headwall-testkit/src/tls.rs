//! Test certificates made by rcgen: a CA and the certificates it signs, written as PEM files the
//! way an operator's would be (keys at 0600).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// A throwaway certificate authority.
pub struct TestCa {
    key: rcgen::KeyPair,
    certificate: rcgen::Certificate,
}

/// A certificate and its key, as PEM files in one folder.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// `<stem>.crt`.
    pub cert_file: PathBuf,
    /// `<stem>.key`, mode 0600.
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA called `name`.
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).expect("CA certificate");
        TestCa { key, certificate }
    }

    /// The CA's certificate (PEM).
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Writes the CA's certificate to `dir/<stem>.crt` and returns the path.
    pub fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.crt"));
        std::fs::write(&path, self.pem()).expect("write the CA certificate");
        path
    }

    /// A certificate for `names` (DNS names or IP addresses) with common name `common_name`,
    /// signed by this CA: `(certificate PEM, key PEM)`.
    pub fn issue(&self, common_name: &str, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params = rcgen::CertificateParams::new(
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>(),
        )
        .expect("leaf parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("leaf certificate");
        (certificate.pem(), key.serialize_pem())
    }

    /// [`TestCa::issue`] written to `dir/<stem>.crt` and `dir/<stem>.key` (0600).
    pub fn write_pair(&self, dir: &Path, stem: &str, common_name: &str, names: &[&str]) -> PemPair {
        let (cert, key) = self.issue(common_name, names);
        let pair = PemPair {
            cert_file: dir.join(format!("{stem}.crt")),
            key_file: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&pair.cert_file, cert).expect("write the certificate");
        std::fs::write(&pair.key_file, key).expect("write the key");
        std::fs::set_permissions(&pair.key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 the key");
        pair
    }
}
