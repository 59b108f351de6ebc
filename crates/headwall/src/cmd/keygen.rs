//! `headwall keygen --out DIR`: new pseudonym and signing keys, mode 0600.

use std::path::Path;
use std::process::ExitCode;

pub(crate) fn run(out: &Path) -> anyhow::Result<ExitCode> {
    for name in ["pseudonym.key", "signing.key"] {
        let path = out.join(name);
        crate::keys::write_new(&path, &crate::keys::random_key()?)?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
