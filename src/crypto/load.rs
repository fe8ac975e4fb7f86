//! Reading a key ring from disk: a file in one of the [`KeyRing::parse`] formats, or a directory
//! laid out like a mounted Kubernetes Secret.

use std::fs;
use std::path::Path;

use zeroize::Zeroizing;

use super::error::KeyRingError;
use super::keyring::KeyRing;

impl KeyRing {
    /// Loads the key ring at `path`: a file (see [`KeyRing::parse`]) or a directory (a mounted
    /// Kubernetes Secret: one file per entry, `primary` naming the primary key id, every other
    /// entry `<key id>` → base64 key). Kubernetes' own `..`-prefixed entries (`..data` and the
    /// timestamped directory it points to) are skipped. Errors name the path and key id, never
    /// key material.
    pub fn load(path: &Path) -> Result<KeyRing, KeyRingError> {
        let metadata = fs::metadata(path).map_err(KeyRingError::io(path))?;
        if metadata.is_dir() {
            load_dir(path)
        } else {
            let text = Zeroizing::new(fs::read_to_string(path).map_err(KeyRingError::io(path))?);
            KeyRing::parse(&text)
        }
        .map_err(KeyRingError::at(path))
    }
}

fn load_dir(dir: &Path) -> Result<KeyRing, KeyRingError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(KeyRingError::io(dir))? {
        let entry = entry.map_err(KeyRingError::io(dir))?;
        // A non-UTF-8 name cannot be a valid key id; the lossy form is rejected by validation
        // with a readable message.
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        let path = entry.path();
        // `fs::read` follows the symlinks Kubernetes uses (`<id>` → `..data/<id>`).
        let value = Zeroizing::new(fs::read(&path).map_err(KeyRingError::io(&path))?);
        entries.push((name, value));
    }
    // Moves each buffer out (no copy); `from_entries` wraps it again for wiping.
    KeyRing::from_entries(
        entries
            .into_iter()
            .map(|(name, mut value)| (name, std::mem::take(&mut *value))),
    )
}
