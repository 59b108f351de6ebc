//! `headwall keygen --out DIR`: new pseudonym and signing keys, mode 0600. With `--tls NAME…`:
//! a self-signed certificate (`api.crt`) and its key (`api.key`, 0600) for those names, a first
//! pair for `[api]` until the operator's CA issues one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub(crate) fn run(out: &Path, tls: &[String]) -> anyhow::Result<ExitCode> {
    if !tls.is_empty() {
        let certified = rcgen::generate_simple_self_signed(tls.to_vec())
            .context("cannot make a certificate for these names")?;
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create folder", out.display()))?;
        let (cert, key) = (out.join("api.crt"), out.join("api.key"));
        for path in [&cert, &key] {
            if path.exists() {
                anyhow::bail!("{}: already exists; never overwritten", path.display());
            }
        }
        write_new(&key, certified.key_pair.serialize_pem().as_bytes())?;
        write_new(&cert, certified.cert.pem().as_bytes())?;
        println!("wrote {} (for {})", cert.display(), tls.join(", "));
        println!("wrote {}", key.display());
        return Ok(ExitCode::SUCCESS);
    }
    for name in ["pseudonym.key", "signing.key"] {
        let path = out.join(name);
        crate::keys::write_new(&path, &crate::keys::random_key()?)?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A new file, mode 0600.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))
}
