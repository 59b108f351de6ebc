//! Key files: created with mode 0600 when missing, refused when readable by others.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use headwall_identity::{IdentityError, PseudonymKey, SigningKey, TokenIssuer};

/// Reads a 32-byte key file, or creates it with fresh random bytes when it does not exist.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::metadata(path) {
        Ok(_) => read_key(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key()?;
            write_new(path, &key)?;
            tracing::info!(path = %path.display(), "generated key file (mode 0600)");
            Ok(key)
        }
        Err(error) => {
            Err(error).with_context(|| format!("{}: cannot read key file", path.display()))
        }
    }
}

/// Reads a key file, refusing one that group or others can read.
pub(crate) fn read_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = read_private(path, "key file")?;
    headwall_identity::decode_key_file(&text)
        .map_err(|error: IdentityError| anyhow::anyhow!("{}: {error}", path.display()))
}

/// Reads a secret file (key, RADIUS secret, token), refusing one that group or others can
/// access. Errors name the file, never its content.
pub(crate) fn read_private(path: &Path, what: &str) -> anyhow::Result<String> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read {what}", path.display()))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{}: {what} is accessible by group or others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read {what}", path.display()))
}

/// Writes a new key file with mode 0600; never overwrites.
pub(crate) fn write_new(path: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create folder", parent.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create key file", path.display()))?;
    file.write_all(headwall_identity::encode_key_file(key).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: cannot write key file", path.display()))
}

/// 32 bytes from the operating system's random source.
pub(crate) fn random_key() -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|error| anyhow::anyhow!("no random source: {error}"))?;
    Ok(key)
}

/// The gateway's identity keys from `[identity]`, creating missing key files.
pub(crate) fn identity_keys(
    settings: &headwall_policy::IdentitySettings,
) -> anyhow::Result<headwall_proxy::IdentityKeys> {
    let pseudonym = load_or_create(&settings.pseudonym_key_file)?;
    let signing = load_or_create(&settings.signing_key_file)?;
    let pseudonym = PseudonymKey::from_bytes(&pseudonym)
        .map_err(|error| anyhow::anyhow!("pseudonym key: {error}"))?;
    let signing =
        SigningKey::from_seed(&signing).map_err(|error| anyhow::anyhow!("signing key: {error}"))?;
    Ok(headwall_proxy::IdentityKeys {
        pseudonym,
        issuer: TokenIssuer::new(signing, settings.issuer.clone()),
    })
}

/// The identity signing key (created when missing), for signing audit checkpoints.
pub(crate) fn signing_key(
    settings: &headwall_policy::IdentitySettings,
) -> anyhow::Result<SigningKey> {
    let seed = load_or_create(&settings.signing_key_file)?;
    SigningKey::from_seed(&seed).map_err(|error| anyhow::anyhow!("signing key: {error}"))
}

/// The admin API bearer token from `[admin].token_file`: created (mode 0600, 32 random bytes
/// as base64url) when missing; an operator's own token of at least 16 characters is accepted.
pub(crate) fn admin_token(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        write_new(path, &random_key()?)?;
        tracing::info!(path = %path.display(), "generated admin token file (mode 0600)");
    }
    let token = read_private(path, "admin token file")?.trim().to_owned();
    if token.chars().count() < 16 || token.chars().any(char::is_whitespace) {
        bail!(
            "{}: the admin token must be one line of at least 16 characters without spaces",
            path.display()
        );
    }
    Ok(token)
}
