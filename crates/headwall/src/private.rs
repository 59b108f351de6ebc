//! Files that hold subscriber data are readable by the gateway's own user only.
//!
//! The audit database holds every disclosed number with the subscriber's address, and the
//! bindings database maps every bound address to its number. The process creates every file and
//! folder owner-only (umask 077), so SQLite's database, `-wal` and `-shm` files, the audit
//! checkpoints, keys and tokens all start as 0600 (folders 0700). Files written by an older
//! version (which followed the caller's umask, typically leaving them world-readable) are
//! tightened when `serve` opens them, with a warning naming the file.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// From now on this process creates files 0600 and folders 0700, whatever umask it started with.
pub(crate) fn create_owner_only() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// A SQLite database and the `-wal` and `-shm` files SQLite keeps beside it.
pub(crate) fn sqlite_files(database: &Path) -> [PathBuf; 3] {
    let beside = |suffix: &str| {
        let mut name = OsString::from(database.as_os_str());
        name.push(suffix);
        PathBuf::from(name)
    };
    [database.to_owned(), beside("-wal"), beside("-shm")]
}

/// Removes group and other permissions from each file in `paths` that exists and has any.
/// Missing files are fine (they will be created owner-only).
pub(crate) fn tighten(paths: &[PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("{}: cannot read", path.display()));
            }
        };
        if mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| {
                format!(
                    "{}: holds subscriber data and is accessible by group or others (mode {:o}), \
                     and cannot be changed; run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )
            })?;
        tracing::warn!(
            path = %path.display(),
            was = format_args!("{:o}", mode & 0o777),
            now = format_args!("{:o}", mode & 0o700),
            "file holding subscriber data was accessible by group or others; now owner-only"
        );
    }
    Ok(())
}
