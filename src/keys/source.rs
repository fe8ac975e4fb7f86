//! Where the encryption key ring comes from (`--encryption-key-file` or
//! `--encryption-key-secret`), checked at start-up, and following it afterwards (the file or
//! Secret watch).

use super::reload::KeyRingReloader;
use crate::crypto::{KeyRing, KeyRingError, KeyRingHandle};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The key-ring settings, as plain values (the command line fills them in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySourceConfig {
    /// `--encryption-key-file`: a key ring file or directory.
    pub file: Option<PathBuf>,
    /// `--encryption-key-secret`: a Secret in the process's own namespace.
    pub secret: Option<String>,
}

/// Why the configured key-ring source cannot be used. The messages name the flags, for the
/// operator who set them.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    #[error(
        "--encryption-key-secret {name} is read through the Kubernetes API server and only works with `run`; with `serve`, use --encryption-key-file"
    )]
    SecretNeedsRun { name: String },
    #[error("--encryption-key-secret and --encryption-key-file exclude each other")]
    Both,
    #[error(
        "--encryption-key-secret {name:?} is not a valid Secret name (lower-case letters, digits, '-' and '.')"
    )]
    InvalidSecretName { name: String },
    #[error("encryption key ring: {0}")]
    KeyRing(#[from] KeyRingError),
}

/// A configured key-ring source.
#[derive(Clone)]
pub enum KeySource {
    None,
    /// Loaded at start-up (a bad ring stops the process), then followed.
    File {
        path: PathBuf,
        handle: KeyRingHandle,
    },
    /// Read through the API server after start-up; the stores stay closed until then.
    Secret {
        client: kube::Client,
        namespace: String,
        name: String,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySource {
    /// Resolves the flags. `kube` is the API server connection of `run` (`None` for `serve`):
    /// the Secret is read from its default namespace, which in a pod is the pod's own
    /// (the service account's namespace).
    pub fn resolve(
        config: &KeySourceConfig,
        kube: Option<&kube::Client>,
    ) -> Result<KeySource, KeySourceError> {
        if let Some(name) = &config.secret {
            check_secret_name(name)?;
            let Some(client) = kube else {
                return Err(KeySourceError::SecretNeedsRun { name: name.clone() });
            };
            if config.file.is_some() {
                return Err(KeySourceError::Both);
            }
            return Ok(KeySource::Secret {
                client: client.clone(),
                namespace: client.default_namespace().to_owned(),
                name: name.clone(),
            });
        }
        match &config.file {
            Some(path) => Ok(KeySource::File {
                handle: KeyRingHandle::new(KeyRing::load(path)?),
                path: path.clone(),
            }),
            None => Ok(KeySource::None),
        }
    }

    /// The ring handle, for a source loaded at start-up.
    pub fn handle(&self) -> Option<&KeyRingHandle> {
        match self {
            KeySource::File { handle, .. } => Some(handle),
            KeySource::None | KeySource::Secret { .. } => None,
        }
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self, KeySource::None)
    }

    /// "key file PATH" / "Secret NAMESPACE/NAME", for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::None => "no key ring".to_owned(),
            KeySource::File { path, .. } => format!("key file {}", path.display()),
            KeySource::Secret {
                namespace, name, ..
            } => format!("Secret {namespace}/{name}"),
        }
    }
}

/// A Secret name as Kubernetes accepts it (DNS subdomain), so a typo fails at start-up.
fn check_secret_name(name: &str) -> Result<(), KeySourceError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(KeySourceError::InvalidSecretName {
            name: name.to_owned(),
        })
    }
}

/// Follows `source` (if it can change) into `reloader` until `cancel` fires.
pub fn follow(source: &KeySource, reloader: &Arc<KeyRingReloader>, cancel: &CancellationToken) {
    match source {
        KeySource::None => {}
        KeySource::File { path, .. } => {
            super::file::spawn(path.clone(), reloader.clone(), cancel.clone());
        }
        KeySource::Secret {
            client,
            namespace,
            name,
        } => {
            super::secret::spawn(
                client.clone(),
                namespace,
                name,
                reloader.clone(),
                cancel.clone(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str) -> KeySourceConfig {
        KeySourceConfig {
            secret: Some(name.to_owned()),
            ..KeySourceConfig::default()
        }
    }

    #[test]
    fn a_secret_needs_run() {
        let err = KeySource::resolve(&secret("mcp-keys"), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("only works with `run`") && err.contains("mcp-keys"),
            "{err}"
        );
    }

    #[test]
    fn secret_names_are_checked() {
        for bad in ["", "Keys", "-keys", "keys-", "a..b", "keys_1", "a/b"] {
            assert!(check_secret_name(bad).is_err(), "{bad:?}");
        }
        for good in ["keys", "mcp-oauth-keys", "a.b-c", "k1"] {
            assert!(check_secret_name(good).is_ok(), "{good:?}");
        }
        let err = KeySource::resolve(&secret("Keys"), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a valid Secret name"), "{err}");
    }

    #[test]
    fn a_bad_key_file_stops_start_up_and_none_is_none() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("ring");
        std::fs::write(&file, "primary: k9\n").unwrap_or_else(|e| panic!("{e}"));
        let config = KeySourceConfig {
            file: Some(file),
            secret: None,
        };
        let err = KeySource::resolve(&config, None).err();
        assert!(matches!(err, Some(KeySourceError::KeyRing(_))), "{err:?}");
        let none =
            KeySource::resolve(&KeySourceConfig::default(), None).unwrap_or_else(|e| panic!("{e}"));
        assert!(!none.is_configured());
    }
}
