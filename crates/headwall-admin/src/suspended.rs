//! The partners an operator suspended (`POST /v1/partners/{name}/enrichment`), kept across
//! restarts in `state/suspended-partners.json` under the state folder, beside the other state
//! files' defaults: `{"suspended": ["name", …]}`,
//! written whole to a temporary file, synced and renamed over the old one, so a crash leaves
//! the old set or the new, never half of one.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The file's name in the state folder.
pub const FILE_NAME: &str = "suspended-partners.json";

/// Where the set is kept for a state folder.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("state").join(FILE_NAME)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    suspended: BTreeSet<String>,
}

/// The suspended partners on record: empty when the file does not exist; an error naming the
/// file when it cannot be read or is not what this module writes.
pub fn load(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    serde_json::from_str::<Stored>(&text)
        .map(|stored| stored.suspended)
        .map_err(|error| {
            format!(
                "{}: not a suspended-partners file ({error}); it holds {{\"suspended\": [\"partner\", ...]}}",
                path.display()
            )
        })
}

/// Writes `suspended` durably (owner-only, like every state file).
pub fn save(path: &Path, suspended: &BTreeSet<String>) -> std::io::Result<()> {
    let text = serde_json::to_string(&Stored {
        suspended: suspended.clone(),
    })
    .map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_set_loads_back_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(load(&path).unwrap().is_empty());
        let set: BTreeSet<String> = ["carrierpay".to_owned()].into();
        save(&path, &set).unwrap();
        assert_eq!(load(&path).unwrap(), set);
        std::fs::write(&path, "[1]").unwrap();
        assert!(load(&path).unwrap_err().contains(FILE_NAME));
    }
}
